#!/usr/bin/env bash
# Build what scripts/demo.sh runs: the operator, webhook and CLI (debug, as
# the e2e tests use them) and the chart_on_node test binary that drives the
# steps in the cluster. Prints the test binary's path.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked -p keyward-operator -p keyward-webhook -p keyward >&2
cargo test --locked -p keyward-e2e --test chart_on_node --no-run --message-format=json-render-diagnostics \
  | python3 -c 'import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["executable"])'
