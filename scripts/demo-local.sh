#!/usr/bin/env bash
# The CLI alone, no cluster (`./scripts/demo.sh --local`; about a minute):
# on the embedded default (`local` provider) create a keyring,
# seal a secret for Git, inspect it, unseal it, and show that a copy moved to
# another namespace or tampered with does not open.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

section "build the keyward CLI"
cargo build --locked -p keyward
keyward="$CARGO_TARGET_DIR/debug/keyward"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export KEYWARD_KEYRING="$work/keyring"

section "keyward local init (a keyring under $KEYWARD_KEYRING)"
"$keyward" local init --key payments

section "keyward seal: a Secret for namespace shop, name db"
printf 'correct horse battery staple' > "$work/password"
"$keyward" seal -n shop --name db --key payments \
  --from-literal username=app --from-file password="$work/password" > "$work/db.sealed.yaml"
cat "$work/db.sealed.yaml"

section "keyward inspect (no decryption)"
"$keyward" inspect -f "$work/db.sealed.yaml"

section "keyward unseal"
"$keyward" unseal -f "$work/db.sealed.yaml"
printf 'password item: '; "$keyward" unseal -f "$work/db.sealed.yaml" --item password; echo

section "the same manifest moved to namespace staging does not open"
sed 's/namespace: shop/namespace: staging/' "$work/db.sealed.yaml" > "$work/moved.yaml"
if "$keyward" unseal -f "$work/moved.yaml"; then echo "BUG: moved secret opened"; exit 1; fi

section "offline sealing with a published RSA public key"
"$keyward" local create-key release-signing --algorithm RSA3072 >/dev/null
"$keyward" local public-key release-signing > "$work/release.pub"
head -3 "$work/release.pub"
"$keyward" seal -n shop --name api --cert "$work/release.pub" --from-literal token=s3cr3t > "$work/api.sealed.yaml"
printf 'token item: '; "$keyward" unseal -f "$work/api.sealed.yaml" --item token; echo

section "rotation: old secrets still open, new ones use version 2"
"$keyward" local rotate payments
"$keyward" unseal -f "$work/db.sealed.yaml" --item username; echo
"$keyward" seal -n shop --name db2 --key payments --from-literal k=v | grep -c 'k:' >/dev/null
"$keyward" local list

section "keyward audit verify: every key operation and unseal above, hash-chained"
"$keyward" audit verify
section "demo finished"
