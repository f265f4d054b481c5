#!/usr/bin/env bash
# Checks the generated CRDs against a real Kubernetes 1.20 API server:
# they install and become Established, every example is accepted, and each
# manifest in crds/tests/apiserver/ is refused with the message on its
# `# expect:` line.
#
#   crds/check-apiserver.sh
#
# Runs only etcd and kube-apiserver, on loopback ports, in a temporary
# directory, and stops both on exit. Needs kube-apiserver as cached by
# e2e/cluster/build-k8s ($KEYWARD_CACHE/k8s-1.20.2/bin), and etcd, kubectl,
# openssl and python3 on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

KEYWARD_CACHE=${KEYWARD_CACHE:-$HOME/.cache/keyward}
APISERVER=${KEYWARD_KUBE_APISERVER:-$KEYWARD_CACHE/k8s-1.20.2/bin/kube-apiserver}
for tool in "$APISERVER" etcd kubectl openssl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (run e2e/cluster/build-k8s for kube-apiserver)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/keyward-crds-apiserver.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
echo "$token,admin,admin,system:masters" >"$work/tokens.csv"
etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port)

etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
pids+=($!)
"$APISERVER" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
  --secure-port "$api_port" --cert-dir "$work/pki" --token-auth-file "$work/tokens.csv" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$work/sa.pub" --service-account-signing-key-file "$work/sa.key" \
  --service-cluster-ip-range 10.96.0.0/16 --authorization-mode RBAC \
  --disable-admission-plugins ServiceAccount >"$work/apiserver.log" 2>&1 &
pids+=($!)

export KUBECONFIG=$work/kubeconfig
cat >"$KUBECONFIG" <<KCFG
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: "$token"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
KCFG
for _ in $(seq 1 60); do
  kubectl get --raw /readyz >/dev/null 2>&1 && break
  sleep 1
done
kubectl get --raw /readyz >/dev/null || { tail -20 "$work/apiserver.log" >&2; exit 1; }
echo "API server $(kubectl version -o json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') on port $api_port"

passed=0 failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

if kubectl apply --server-side -f crds/generated/ >"$work/out" 2>&1 &&
  kubectl wait --for condition=Established crd --all --timeout 30s >>"$work/out" 2>&1; then
  pass "CRDs installed and Established"
else
  fail "CRDs not installed: $(cat "$work/out")"
fi
nonstructural=$(kubectl get crd -o jsonpath='{.items[*].status.conditions[?(@.type=="NonStructuralSchema")].message}')
if [ -z "$nonstructural" ]; then pass "no NonStructuralSchema condition"; else fail "$nonstructural"; fi

kubectl create namespace payments >/dev/null
kubectl create namespace platform >/dev/null
for example in examples/*.yaml; do
  if kubectl apply --server-side -f "$example" >"$work/out" 2>&1; then
    pass "accepted $example"
  else
    fail "refused $example: $(cat "$work/out")"
  fi
done

for manifest in crds/tests/apiserver/*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$manifest")
  if kubectl apply --validate=false -f "$manifest" >"$work/out" 2>&1; then
    fail "accepted $manifest"
  elif grep -qF -- "$expect" "$work/out"; then
    pass "refused $manifest: $(tail -1 "$work/out")"
  else
    fail "refused $manifest, but without \"$expect\": $(cat "$work/out")"
  fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
