#!/usr/bin/env bash
# Run Keyward's end-to-end tests against a real cluster.
#
#   e2e/run.sh [cargo test args...]     e.g. e2e/run.sh -- --test-threads=1
#
# Starts a throwaway cluster with e2e/cluster/up (or uses the one in
# KEYWARD_E2E_KUBECONFIG), runs `cargo test -p keyward-e2e` with KUBECONFIG
# exported, always tears the cluster down, and exits with the tests' status.
# On failure the cluster logs are kept in $KEYWARD_E2E_LOGS
# (default /tmp/keyward-e2e-logs).
set -euo pipefail
cd "$(dirname "$0")/.."
source e2e/cluster/lib.sh

t0=$(now)
log "building the e2e tests"
cargo test -p keyward-e2e --no-run "$@" 2>&1 | { grep -v '^\s*Compiling' || true; } >&2
t_build=$(elapsed "$t0")

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
set +e
cargo test -p keyward-e2e "$@"
status=$?
set -e

log "timings (s): build tests ${t_build}, cluster up ${t_cluster}, tests $(elapsed "$t_tests"), total $(elapsed "$t0")"
if [ -f "$STATE/timings" ]; then
  log "cluster: $(tr '\n' ' ' <"$STATE/timings")"
fi
if [ "$status" -eq 0 ]; then log "e2e tests passed"; else log "e2e tests FAILED (status $status)"; fi
exit "$status"
