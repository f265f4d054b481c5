#!/usr/bin/env bash
# What `scripts/demo.sh --keep` prints: how to look at the kept cluster and
# how to tear it down.   kept.sh STATE_DIR WORK_DIR
set -euo pipefail
state=$1 work=$2
kubectl_hint=
command -v kubectl >/dev/null || kubectl_hint="  (no kubectl here: apt-get install kubernetes-client)"
cat <<TEXT

The cluster is still running (state in $state).
  export KUBECONFIG=$state/kubeconfig$kubectl_hint
  kubectl -n keyward-system get deploy,pods,secrets
  kubectl get managedkeys -A; kubectl -n shop get sealedsecrets,pods
  kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations
Pod logs are files on the node (the API server cannot reach this kubelet,
so \`kubectl logs\` does not work): ls /var/log/pods/shop_reader_*/*/
The public key and the sealed manifest: $work/app.pub, $work/db.sealed.json
It stays up until the next e2e/run.sh or demo starts (they replace it) or
until you tear it down: ./scripts/demo.sh --down   (with a non-default
KEYWARD_CACHE, pass the same one). Never run e2e/cluster/down by hand while
someone else may be running e2e tests: it would stop their cluster.
TEXT
