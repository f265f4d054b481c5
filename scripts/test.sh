#!/usr/bin/env bash
# Runs every test Keyward has: formatting and lints, unit and integration
# tests, then the end-to-end suite against a real Kubernetes cluster that
# e2e/run.sh starts (and stops) on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# A shared target dir grows by a test binary per change: drop superseded ones.
python3 scripts/prune-target.py "$CARGO_TARGET_DIR"

section "cargo fmt --check"
cargo fmt --all -- --check

section "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

section "unit and integration tests"
cargo test --workspace --exclude keyward-e2e --locked

if [[ "${KEYWARD_SKIP_E2E:-}" == 1 ]]; then
  echo "KEYWARD_SKIP_E2E=1: end-to-end tests skipped"
else
  section "end-to-end tests on a real cluster"
  e2e/run.sh
fi
section "all tests passed"
