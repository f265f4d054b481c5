#!/usr/bin/env bash
# Installs moto's server (pinned) into a cached venv, idempotently, and prints
# the path of the `moto_server` executable. Called by the AWS provider tests;
# safe to run by hand. Needs python3 (>= 3.9) with venv and PyPI access the
# first time; later runs reuse the cache.
set -euo pipefail

MOTO_VERSION="5.2.5"
CACHE="${KEYWARD_CACHE:-$HOME/.cache/keyward}"
VENV="$CACHE/venv-moto"
STAMP="$VENV/.keyward-moto-$MOTO_VERSION"
PYTHON="${PYTHON:-python3}"

if [[ -x "$VENV/bin/moto_server" && -f "$STAMP" ]]; then
  echo "$VENV/bin/moto_server"
  exit 0
fi

mkdir -p "$CACHE"
# One installer at a time: test binaries may call this concurrently.
exec 9>"$CACHE/venv-moto.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -x "$VENV/bin/moto_server" && -f "$STAMP" ]]; then
  echo "$VENV/bin/moto_server"
  exit 0
fi

command -v "$PYTHON" >/dev/null || { echo "moto.sh: $PYTHON not found; install Python 3 with venv" >&2; exit 1; }
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
"$VENV/bin/moto_server" --help >/dev/null
touch "$STAMP"
echo "$VENV/bin/moto_server"
