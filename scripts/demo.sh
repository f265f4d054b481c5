#!/usr/bin/env bash
# Keyward's main job, end to end on a real throwaway cluster (Kubernetes
# 1.20.2 on loopback: etcd, API server, controller manager, scheduler, one
# containerd + kubelet node): install the Helm chart, run the operator and
# webhook on the node from the project's own binaries, create a ManagedKey,
# seal a secret with the `keyward` CLI, start an annotated pod and print
# what its app container read from the injected file.
#
#   ./scripts/demo.sh           the cluster demo; the cluster is torn down at the end
#   ./scripts/demo.sh --keep    leave the cluster running and say how to use it
#   ./scripts/demo.sh --down    tear a kept cluster down (waits for the e2e lock)
#   ./scripts/demo.sh --local   the CLI alone, no cluster (scripts/demo-local.sh)
#
# The first run installs Debian packages and a Helm venv, and builds
# Kubernetes and the project into $KEYWARD_CACHE (default ~/.cache/keyward).
# The steps in the cluster are the `readme_demo` test of
# e2e/tests/chart_on_node.rs, which shares them with the CI test.
set -euo pipefail
cd "$(dirname "$0")/.."

keep= down=
case ${1:-} in
  "") ;;
  --keep) keep=1 ;;
  --down) down=1 ;;
  --local) shift; exec scripts/demo-local.sh "$@" ;;
  -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown option '$1'; use --keep, --down, --local or --help" >&2; exit 2 ;;
esac

source scripts/env.sh     # KEYWARD_CACHE, CARGO_TARGET_DIR
source e2e/cluster/lib.sh # STATE, RUN_LOCK, K8S_BIN, ensure_packages, ensure_helm, now, elapsed
source scripts/demo/phases.sh

if [ -n "$down" ]; then
  # Under the lock: a cluster in $STATE may belong to a run in progress.
  LOG=/dev/null
  take_cluster_lock
  e2e/cluster/down
  exit 0
fi

work=$(mktemp -d /tmp/keyward-demo.XXXXXX)
LOG=$work/demo.log
t_start=$(now)
status=1 cluster_started=
finish() {
  if [ "$status" -ne 0 ]; then
    echo
    echo "demo FAILED during: ${PHASE:-?}"
    echo "last lines of the log:"
    tail -n 25 "$LOG" | sed 's/^/  | /'
    echo "full log: $LOG"
  fi
  # Only a cluster this run started (another run's may be in $STATE).
  if [ -n "$cluster_started" ] && [ -z "$keep" ]; then
    [ "$status" -eq 0 ] || export KEYWARD_E2E_LOGS=$work/cluster-logs
    phase "cluster torn down (e2e/cluster/down)" e2e/cluster/down || true
    [ "$status" -eq 0 ] || echo "cluster logs: $work/cluster-logs"
  fi
  if [ -n "$cluster_started" ] && [ -n "$keep" ] && [ -f "$STATE/env" ]; then
    scripts/demo/kept.sh "$STATE" "$work"
  elif [ "$status" -eq 0 ]; then
    rm -rf "$work"
  fi
  echo "total $(elapsed "$t_start") s${LOCK_WAIT:+, of which $LOCK_WAIT s waiting for another run}"
}
trap finish EXIT

echo "Keyward demo on a throwaway Kubernetes $K8S_VERSION cluster (log: $LOG)"

# --- tools: Debian packages, the Helm library, Kubernetes binaries.
[ -x "$K8S_BIN/kube-apiserver" ] \
  || echo "   first run: building Kubernetes $K8S_VERSION from Debian's source (about 10 min on 2 cores)"
phase "tools: Debian packages, Helm 4 library (helm-sdkpy), Kubernetes $K8S_VERSION binaries" \
  bash -c 'source e2e/cluster/lib.sh && ensure_packages "${APT_PACKAGES[@]}" && ensure_helm && e2e/cluster/build-k8s'

# --- the project's binaries and the driver of the in-cluster steps.
[ -d "$CARGO_TARGET_DIR/debug" ] \
  || echo "   first run: compiling the workspace (about 15 min on 2 cores)"
phase "cargo build: keyward-operator, keyward-webhook, keyward CLI, demo driver" \
  bash -c 'scripts/demo/build.sh >"$1"' - "$work/driver"
driver=$(cat "$work/driver")
[ -x "$driver" ] || { echo "scripts/demo/build.sh named no test binary" >>"$LOG"; exit 1; }

# --- one cluster per machine: wait for another e2e run or demo.
take_cluster_lock

cluster_started=1
phase "cluster up: etcd, API server, controller manager, scheduler, containerd + kubelet node" \
  e2e/cluster/up
eval "$(e2e/cluster/env)"

# --- in the cluster: its own phase lines come from the driver (libtest
# may print `test readme_demo ... ` before the first one, hence grep -o).
PHASE="the steps in the cluster (e2e/tests/chart_on_node.rs readme_demo)"
(cd e2e && KEYWARD_DEMO_DIR=$work "$driver" readme_demo --exact --ignored --nocapture --test-threads 1) 2>&1 \
  | tee -a "$LOG" | grep --line-buffered -oE '(== |app container read ).*'
grep -q '^app container read ' "$LOG" || exit 1
status=0
