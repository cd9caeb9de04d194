#!/usr/bin/env bash
# Builds keyfront and uses it from a real PKCS#11 consumer, OpenSC's
# pkcs11-tool, against the embedded default token (no configuration file).
# The token lives in a fresh temporary directory, printed at the end.
set -euo pipefail
cd "$(dirname "$0")"

# OpenSC's pkcs11-tool; a C compiler and libc headers, since rustc links with cc and the
# bundled SQLite is compiled from C.
pkgs=()
command -v pkcs11-tool >/dev/null || pkgs+=(opensc)
command -v cc >/dev/null || pkgs+=(gcc libc6-dev)
if [ ${#pkgs[@]} -gt 0 ]; then
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { echo "quickstart.sh: run as root, or install sudo, to install ${pkgs[*]}" >&2; exit 2; }
		sudo=sudo
	fi
	echo "quickstart.sh: installing ${pkgs[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# Cargo.toml's rust-version; Debian's own rustc (1.63) is too old.
rustc_version=$(rustc --version 2>/dev/null | awk '{print $2}')
if ! command -v cargo >/dev/null || [ "$(printf '%s\n' 1.95.0 "$rustc_version" | sort -V | head -n1)" != 1.95.0 ]; then
	echo "quickstart.sh: needs Rust 1.95 or newer (found: ${rustc_version:-none}); install it with rustup" >&2
	exit 2
fi

cargo build --release --locked
MODULE=$PWD/target/release/libkeyfront.so

# Without KEYFRONT_CONFIG keyfront offers one soft token, stored in
# $KEYFRONT_DATA_DIR/soft.db.
unset KEYFRONT_CONFIG
KEYFRONT_DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keyfront-quickstart.XXXXXX")
export KEYFRONT_DATA_DIR

SO_PIN=12345678
USER_PIN=123456
p11() {
	echo
	echo "\$ pkcs11-tool --module $MODULE $*"
	pkcs11-tool --module "$MODULE" "$@"
}

echo "(pkcs11-tool warns 'C_GetAttributeValue(VALUE) failed: ... CKR_ATTRIBUTE_SENSITIVE' and"
echo " '...(ALWAYS_AUTHENTICATE) failed: ... CKR_ATTRIBUTE_TYPE_INVALID' when it shows a key: expected.)"

p11 --show-info
p11 --list-slots
p11 --init-token --label demo --so-pin "$SO_PIN"
p11 --init-pin --so-pin "$SO_PIN" --pin "$USER_PIN"
p11 --login --pin "$USER_PIN" --keygen --key-type AES:32 --label demo-key --id 01
p11 --login --pin "$USER_PIN" --list-objects

printf 'hello from keyfront\n' >"$KEYFRONT_DATA_DIR/message.txt"
IV=000102030405060708090a0b0c0d0e0f
p11 --login --pin "$USER_PIN" --encrypt -m AES-CBC-PAD --iv "$IV" --id 01 \
	-i "$KEYFRONT_DATA_DIR/message.txt" -o "$KEYFRONT_DATA_DIR/message.enc"
p11 --login --pin "$USER_PIN" --decrypt -m AES-CBC-PAD --iv "$IV" --id 01 \
	-i "$KEYFRONT_DATA_DIR/message.enc" -o "$KEYFRONT_DATA_DIR/message.dec"
echo
echo "decrypted: $(cat "$KEYFRONT_DATA_DIR/message.dec")"
cmp -s "$KEYFRONT_DATA_DIR/message.txt" "$KEYFRONT_DATA_DIR/message.dec"

echo
echo "Done.  Module: $MODULE"
echo "Token file:  $KEYFRONT_DATA_DIR/soft.db  (export KEYFRONT_DATA_DIR=$KEYFRONT_DATA_DIR to keep using it)"
