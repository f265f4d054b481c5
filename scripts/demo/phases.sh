# shellcheck shell=bash
# Phase lines and the cluster lock of scripts/demo.sh. Sourced, not run;
# needs e2e/cluster/lib.sh and $LOG.

# Run "$@" with its output in $LOG; print `== WHAT ... (N s)`.
phase() {
  local what=$1 t0
  shift
  PHASE=$what
  t0=$(now)
  printf '== %s ...' "$what"
  echo "=== $what: $*" >>"$LOG"
  if "$@" >>"$LOG" 2>&1; then
    printf ' (%s s)\n' "$(elapsed "$t0")"
  else
    printf ' failed after %s s\n' "$(elapsed "$t0")"
    return 1
  fi
}

# The e2e lock of $STATE (the one e2e/run.sh takes), held on fd 9 until the
# script exits; the cluster's daemons do not inherit it. The lock file lives
# in $KEYWARD_CACHE, so with a non-default cache the default cache's lock is
# taken as well (fd 8): every cluster on this machine shares the bridge
# `kwe2e0` and /run/containerd, whichever cache built it.
take_cluster_lock() {
  local default_lock t0
  default_lock=$HOME/.cache/keyward/e2e-run$(echo "$STATE" | tr / -).lock
  mkdir -p "$KEYWARD_CACHE" "$(dirname "$default_lock")"
  exec 9>"$RUN_LOCK"
  if [ "$default_lock" != "$RUN_LOCK" ]; then exec 8>"$default_lock"; else exec 8>/dev/null; fi
  if ! flock -n 9 || ! flock -n 8; then
    PHASE="waiting for the cluster lock"
    t0=$(now)
    printf '== another e2e run or demo is using the cluster in %s; waiting for it ...' "$STATE"
    flock 9
    flock 8
    LOCK_WAIT=$(elapsed "$t0")
    printf ' (%s s)\n' "$LOCK_WAIT"
  fi
  export KEYWARD_E2E_RUN_LOCKED=1
}
