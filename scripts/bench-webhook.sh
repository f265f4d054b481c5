#!/usr/bin/env bash
# The webhook's performance figures (docs/performance.md), in one run.
#
#   scripts/bench-webhook.sh [load|e2e|abuse|all]      default: all
#
# load  /mutate over TLS on 127.0.0.1 with oha: the real webhook router
#       (release build of webhook/examples/bench_server.rs, admission only)
#       and a trivial axum route behind the same TLS and accept loop (the
#       floor), at fixed rates and unlimited; between them "sized", the
#       floor answering with /mutate's own answer bytes (what moving a 3 KB
#       patch over TLS costs without Keyward's work). Installs oha from
#       crates.io into $KEYWARD_CACHE/tools on first use.
# e2e   the measurements of e2e/tests/webhook_perf.rs on a throwaway
#       cluster (release build): /v1/unseal for a pod with ten items,
#       provider calls for 100 pods of one Deployment, pod start-up cost.
# abuse the real keyward-webhook binary (release) on loopback while 5,000
#       idle TLS connections, 200 slow-header connections and 10,000 junk
#       unseal requests hit it: /mutate and unseal p99 quiet vs under
#       attack, RSS, audit bytes per junk request (e2e/tests/webhook_abuse.rs,
#       on a throwaway cluster). Not part of `all` (a few minutes).
#
# Environment: BENCH_SECONDS (per oha run, default 10), BENCH_RATES
# (default "500 1000 2000 4000 8000"), BENCH_CONNECTIONS (default 50),
# BENCH_BEFORE (load only: the bench_server binary of an earlier commit,
# measured third as "before", e.g. built by `git worktree add /tmp/old REV
# && cd /tmp/old && cargo build --release -p keyward-webhook --example
# bench_server` and copied aside).
# The machine is shared: read the figures as ratios, next to `uptime`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

what=${1:-all}
seconds=${BENCH_SECONDS:-10}
rates=${BENCH_RATES:-500 1000 2000 4000 8000}
connections=${BENCH_CONNECTIONS:-50}
tools=$KEYWARD_CACHE/tools
oha=$tools/bin/oha
oha_version=1.16.0
review=webhook/tests/fixtures/pod-create-annotated.json

install_oha() {
  [ -x "$oha" ] && return
  section "installing oha $oha_version into $tools"
  # Its own target dir, so the workspace's build cache is left alone; from
  # outside the repository, so .cargo/config.toml (Keyward's jemalloc
  # options) does not reach oha's own jemalloc.
  mkdir -p "$tools"
  (cd "$tools" && CARGO_TARGET_DIR=$KEYWARD_CACHE/tools-target \
    cargo install oha --version "$oha_version" --locked --root "$tools")
}

# Starts bench_server in MODE; sets server_pid, port and ca.
start_server() {
  local mode=$1 out bin=$CARGO_TARGET_DIR/release/examples/bench_server
  ca=$(mktemp) out=$(mktemp)
  local extra=()
  if [ "$mode" = before ]; then
    bin=$BENCH_BEFORE mode=mutate
  fi
  [ "$mode" = sized ] && extra=("$review")
  "$bin" "$mode" "$ca" "${extra[@]}" >"$out" &
  server_pid=$!
  for _ in $(seq 50); do
    port=$(sed -n 's/^listening on 127.0.0.1://p' "$out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  rm -f "$out"
  [ -n "$port" ] || { echo "bench_server $mode did not start" >&2; exit 1; }
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -f "$ca"
}

# One oha run; prints one summary line. Args: label, connections, rate (0 = unlimited).
run_oha() {
  local label=$1 c=$2 q=$3 json
  json=$(mktemp)
  local rate_args=()
  [ "$q" -gt 0 ] && rate_args=(-q "$q" --latency-correction)
  "$oha" -z "${seconds}s" -c "$c" "${rate_args[@]}" -m POST -T application/json \
    -D "$review" --cacert "$ca" --no-tui --output-format json \
    "https://127.0.0.1:$port/mutate" >"$json"
  python3 - "$json" "$label" "$c" "$q" <<'EOF'
import json, sys
path, label, c, q = sys.argv[1:]
d = json.load(open(path))
s, p = d["summary"], d["latencyPercentiles"]
codes = d.get("statusCodeDistribution") or {}
errors = d.get("errorDistribution") or {}
ok = codes.get("200", 0)
# oha cuts requests in flight at the deadline (at most one per connection).
cut = sum(v for k, v in errors.items() if "deadline" in k)
other = sum(v for k, v in codes.items() if k != "200") + sum(errors.values()) - cut
target = "unlimited" if q == "0" else q
ms = lambda x: (x or 0) * 1000
print(f"{label:7} c={c:<4} target={target:>9}/s achieved={s['requestsPerSec']:8.0f}/s "
      f"p50={ms(p['p50']):6.2f} ms p99={ms(p['p99']):7.2f} ms avg={ms(s['average']):6.2f} ms "
      f"ok={ok} failed={other} cut-at-deadline={cut}")
EOF
  rm -f "$json"
}

load() {
  install_oha
  section "building bench_server (release)"
  cargo build --release --locked -p keyward-webhook --example bench_server
  section "machine"
  uptime
  nproc
  "$oha" --version
  echo "each run: ${seconds}s, POST $review ($(wc -c <"$review") bytes) over TLS 1.3, keep-alive"
  local modes=(floor sized mutate)
  [ -n "${BENCH_BEFORE:-}" ] && modes+=(before)
  for mode in "${modes[@]}"; do
    start_server "$mode"
    section "$mode on 127.0.0.1:$port"
    for q in $rates; do run_oha "$mode" "$connections" "$q"; done
    run_oha "$mode" "$connections" 0
    # Kyverno's published figure is at 100 virtual users.
    run_oha "$mode" 100 0
    stop_server
  done
  uptime
}

e2e() {
  section "machine"
  uptime
  # The start-up test packs this binary into the injector image: build it
  # now, not while the cluster lock is held.
  section "building the injector binary (release)"
  cargo build --release --locked -p keyward-webhook --bin keyward-webhook
  section "e2e/tests/webhook_perf.rs, release build, ignored measurements included"
  e2e/run.sh --release --test webhook_perf -- --nocapture --include-ignored --test-threads=1
  uptime
}

abuse() {
  section "machine"
  uptime
  section "building the webhook binary (release)"
  cargo build --release --locked -p keyward-webhook --bin keyward-webhook
  section "e2e/tests/webhook_abuse.rs, release build, the full-size load"
  e2e/run.sh --release --test webhook_abuse -- --ignored --nocapture
  uptime
}

case $what in
  load) load ;;
  e2e) e2e ;;
  abuse) abuse ;;
  all) load; e2e ;;
  *) echo "usage: $0 [load|e2e|abuse|all]" >&2; exit 2 ;;
esac
