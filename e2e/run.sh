#!/usr/bin/env bash
# Run Keyward's end-to-end tests against a real cluster.
#
#   e2e/run.sh [cargo args] [-- test args]   e.g. e2e/run.sh --test smoke -- --nocapture
#
# Starts a throwaway cluster with e2e/cluster/up (or uses the one in
# KEYWARD_E2E_KUBECONFIG), runs the tests of `cargo test -p keyward-e2e` with
# KUBECONFIG exported, always tears the cluster down, and exits with the tests' status.
# On failure the cluster logs are kept in $KEYWARD_E2E_LOGS
# (default /tmp/keyward-e2e-logs).
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/cluster/lib.sh

# Arguments before `--` go to cargo, after it to the test binaries.
cargo_args=() test_args=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do cargo_args+=("$1"); shift; done
[ $# -gt 0 ] && shift && test_args=("$@")

# Build first, so a compile error costs no cluster start, and the tests then
# run without waiting on cargo's lock of a target dir shared with other builds.
t0=$(now)
log "building the e2e tests"
artifacts=$(mktemp)
if ! cargo test -p keyward-e2e --no-run --message-format=json-render-diagnostics "${cargo_args[@]}" >"$artifacts"; then
  rm -f "$artifacts"
  die "building the e2e tests failed (see cargo's output above)"
fi
mapfile -t test_bins < <(python3 -c 'import json, sys
for line in open(sys.argv[1]):
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])' "$artifacts")
rm -f "$artifacts"
[ ${#test_bins[@]} -gt 0 ] || die "cargo built no e2e test binaries"
t_build=$(elapsed "$t0")

# Another run with the same state dir (e.g. a colleague's) would be torn
# down by our `up`: wait for it instead.
mkdir -p "$KEYWARD_CACHE"
exec 9>"$RUN_LOCK"
if ! flock -n 9; then
  log "another e2e run is using $STATE; waiting for it"
  flock 9
fi
export KEYWARD_E2E_RUN_LOCKED=1

status=1
teardown() {
  [ "$status" -eq 0 ] || export KEYWARD_E2E_LOGS=${KEYWARD_E2E_LOGS:-/tmp/keyward-e2e-logs}
  e2e/cluster/down || log "warning: e2e/cluster/down failed"
}
trap teardown EXIT

t_up=$(now)
e2e/cluster/up >/dev/null
eval "$(e2e/cluster/env)"
t_cluster=$(elapsed "$t_up")

t_tests=$(now)
status=0
for bin in "${test_bins[@]}"; do
  log "running $(basename "$bin")"
  # Cargo sets CARGO_MANIFEST_DIR only under `cargo test`; a binary whose
  # build was reused from another checkout would otherwise read that one.
  (cd e2e && CARGO_MANIFEST_DIR="$PWD" "$bin" "${test_args[@]}") || status=$?
done

log "timings (s): build tests ${t_build}, cluster up ${t_cluster}, tests $(elapsed "$t_tests"), total $(elapsed "$t0")"
if [ -f "$STATE/timings" ]; then
  log "cluster: $(tr '\n' ' ' <"$STATE/timings")"
fi
if [ "$status" -eq 0 ]; then log "e2e tests passed"; else log "e2e tests FAILED (status $status)"; fi
exit "$status"
