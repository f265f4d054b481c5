# shellcheck shell=bash
# Shared settings and helpers for the e2e cluster scripts. Sourced, not run.

K8S_VERSION=1.20.2
KEYWARD_CACHE=${KEYWARD_CACHE:-$HOME/.cache/keyward}
K8S_DIR=$KEYWARD_CACHE/k8s-$K8S_VERSION
K8S_BIN=$K8S_DIR/bin
STATE=${KEYWARD_E2E_STATE:-/tmp/keyward-e2e}
case $STATE in /*/*) ;; *) echo "KEYWARD_E2E_STATE must be an absolute path at least two levels deep, got '$STATE'" >&2; exit 1 ;; esac
NODE_NAME=${KEYWARD_E2E_NODE:-keyward-node}
PAUSE_IMAGE=keyward.local/pause:e2e
BUSYBOX_IMAGE=keyward.local/busybox:e2e
HELM_VENV=$KEYWARD_CACHE/helm-venv
HELM_SDKPY_VERSION=0.1.32
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

K8S_BINARIES=(kube-apiserver kube-controller-manager kubelet kube-scheduler)
APT_PACKAGES=(golang-go etcd-server jq rsync golang-github-modern-go-reflect2-dev
  containerd runc containernetworking-plugins busybox-static gcc libc6-dev
  openssl python3-venv iproute2 procps util-linux
  prometheus) # promtool for the chart's alert tests

# One e2e run per state dir at a time: `run.sh` holds this lock throughout,
# a standalone `up` checks it. Kept in the cache so /tmp stays clean.
RUN_LOCK=$KEYWARD_CACHE/e2e-run$(echo "$STATE" | tr / -).lock

log() { printf '[keyward-e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Seconds since the epoch with millisecond precision, for timings.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Install Debian packages that are missing; `apt-get update` only if needed.
ensure_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
      || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >&2
}

# A free TCP port on 127.0.0.1 (the kernel picks it; small race accepted).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until "$@" succeeds, at most $1 seconds.
wait_for() {
  local timeout=$1 what=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && die "timed out after ${timeout}s waiting for $what"
    sleep 0.2
  done
}

# Start a daemon in the background, remember its pid under $STATE/pids.
start_daemon() {
  local name=$1; shift
  mkdir -p "$STATE/pids" "$STATE/logs"
  # fds 8 and 9 may hold the run lock; a daemon must not keep it.
  setsid "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  echo $! >"$STATE/pids/$name"
  log "started $name (pid $!), log: $STATE/logs/$name.log"
}

# A virtualenv with the Helm 4 library (helm-sdkpy), once per cache dir.
# The wheel says Python >= 3.12 but works on 3.11, hence --ignore-requires-python.
ensure_helm() {
  local marker=$HELM_VENV/.keyward-helm-sdkpy-$HELM_SDKPY_VERSION
  [ -f "$marker" ] && return 0
  ensure_packages python3-venv
  mkdir -p "$KEYWARD_CACHE"
  (
    flock 9
    [ -f "$marker" ] && exit 0
    log "installing helm-sdkpy $HELM_SDKPY_VERSION into $HELM_VENV"
    rm -rf "$HELM_VENV"
    python3 -m venv "$HELM_VENV"
    "$HELM_VENV/bin/pip" install -q --ignore-requires-python "helm-sdkpy==$HELM_SDKPY_VERSION" >&2
    touch "$marker"
  ) 9>"$KEYWARD_CACHE/.helm.lock"
}
