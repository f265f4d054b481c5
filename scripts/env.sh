# Shared settings for Keyward's scripts: sourced, not run.
# Build output and downloaded tools live outside the checkout so that a fresh
# clone (as in CI) reuses them.
export KEYWARD_CACHE="${KEYWARD_CACHE:-$HOME/.cache/keyward}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KEYWARD_CACHE/target}"
mkdir -p "$KEYWARD_CACHE"

# Prints a section header with the elapsed seconds since the script started.
section() {
  printf '\n== %s (t=%ss)\n' "$*" "$SECONDS"
}
