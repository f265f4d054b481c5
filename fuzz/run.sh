#!/usr/bin/env bash
# Runs the envelope parser fuzz target for N seconds (default 600).
# Usage: fuzz/run.sh [seconds]
# Needs cargo-fuzz (installed if missing); works on stable Rust through
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes -Z flags to rustc).
set -euo pipefail
seconds="${1:-600}"
cd "$(dirname "$0")"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# The target directory is kept apart from the main workspace's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
mkdir -p corpus/envelope
# Seed the corpus with the committed envelope test vectors (raw bytes and text).
python3 - <<'PY' || true
import base64, json, hashlib, pathlib
data = json.load(open("../core/tests/vectors/envelope-v1.json"))
out = pathlib.Path("corpus/envelope")
for case in data["positive"] + data["negative"]:
    text = case["envelope_base64"].encode()
    blobs = [text]
    try:
        blobs.append(base64.b64decode(text, validate=True))
    except Exception:
        pass
    for blob in blobs:
        (out / ("seed-" + hashlib.sha1(blob).hexdigest())).write_bytes(blob)
PY
# -a: debug assertions (overflow checks) on. -s none: keyward-core is
# #![forbid(unsafe_code)] and AWS-LC's C code is not instrumented by these
# flags anyway, so AddressSanitizer would only cost speed.
exec cargo fuzz run -a -s none envelope corpus/envelope -- \
    -max_total_time="$seconds" -print_final_stats=1
