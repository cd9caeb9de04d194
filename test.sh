#!/usr/bin/env bash
# Runs every test of keyfront: the Rust unit and integration tests, then the
# real-consumer conformance checks (conformance/run) against the debug module;
# the Rust tests and conformance/run also for the `aws-lc` feature's build
# (target/aws-lc).
# Installs the Debian packages it needs when they are missing (OpenSC, a C
# compiler, OpenSSL, and the consumers: GnuTLS tools, the libp11 engine,
# OpenSSH client, a JDK), so a second run starts straight away.  Exit status is
# non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")"

# ---- system packages (only when missing)
pkgs=()
command -v pkcs11-tool >/dev/null || pkgs+=(opensc)
command -v cc >/dev/null || pkgs+=(gcc libc6-dev)
{ command -v nm && command -v readelf; } >/dev/null || pkgs+=(binutils)
command -v openssl >/dev/null || pkgs+=(openssl)
# consumers driven by conformance/run's asymmetric-key checks
{ command -v p11tool && command -v certtool; } >/dev/null || pkgs+=(gnutls-bin)
{ command -v ssh-keygen && command -v ssh-agent && command -v ssh-add; } >/dev/null || pkgs+=(openssh-client)
{ command -v javac && command -v keytool; } >/dev/null || pkgs+=(default-jdk-headless)
# forwarding slots: SoftHSM2 and NSS softokn (tests/forward.rs, KEYFRONT_TEST_BACKEND=softhsm2,
# conformance/run --forward-softhsm2)
{ [ -f /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util; } >/dev/null || pkgs+=(softhsm2)
[ -f /usr/lib/x86_64-linux-gnu/libsoftokn3.so ] || pkgs+=(libnss3)
command -v certutil >/dev/null || pkgs+=(libnss3-tools)
# cloud slots: conformance/servers (curl for its checks), p11tool exports, envelope.c's header
command -v curl >/dev/null || pkgs+=(curl)
[ -f /usr/include/p11-kit-1/p11-kit/pkcs11.h ] || pkgs+=(libp11-kit-dev)
engines=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p' || true)
[ -n "$engines" ] && [ -f "$engines/pkcs11.so" ] || pkgs+=(libengine-pkcs11-openssl)
if [ ${#pkgs[@]} -gt 0 ]; then
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || { echo "test.sh: run as root, or install sudo, to install ${pkgs[*]}" >&2; exit 2; }
		sudo=sudo
	fi
	echo "test.sh: installing ${pkgs[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
# Cargo.toml's rust-version; Debian's own rustc (1.63) is too old.
rustc_version=$(rustc --version 2>/dev/null | awk '{print $2}')
if ! command -v cargo >/dev/null || [ "$(printf '%s\n' 1.95.0 "$rustc_version" | sort -V | head -n1)" != 1.95.0 ]; then
	echo "test.sh: needs Rust 1.95 or newer (found: ${rustc_version:-none}); install it with rustup" >&2
	exit 2
fi

status=0

# ---- the cloud slots' test servers on 127.0.0.1: LocalStack (AWS KMS) and OpenBao (Vault
# Transit), installed into a venv of conformance/servers' own and started once for every
# step below (tests/cloud.rs, the services' own tests, conformance/run --cloud); stopped at
# exit
SERVERS_DIR=$(mktemp -d)
trap 'conformance/servers stop "$SERVERS_DIR" >/dev/null 2>&1; rm -rf "$SERVERS_DIR"' EXIT
echo "== conformance/servers start"
conformance/servers start "$SERVERS_DIR"
set -a
. "$SERVERS_DIR/env"
set +a
export KEYFRONT_TEST_SERVERS_DIR=$SERVERS_DIR

# ---- build and Rust tests (debug profile)
echo "== cargo build --locked"
cargo build --locked

echo "== cargo test --locked --no-fail-fast"
cargo test --locked --no-fail-fast || status=1

# ---- the integration tests again with every fixture slot a forwarding slot in front of a
# SoftHSM2 token (KEYFRONT_TEST_BACKEND=softhsm2, tests/common/mod.rs): what SoftHSM2 does
# its own way is gated or checked against SoftHSM2 itself (skip notes: KF_SKIP_NOTE with
# --nocapture). crash, faults, fork, load and multiprocess test keyfront's soft token, and
# tests/forward.rs (in `cargo test` above) builds its own forwarding slots: they ignore
# the switch and are not run again.
echo "== KEYFRONT_TEST_BACKEND=softhsm2 cargo test --locked --no-fail-fast (forwarded slots)"
KEYFRONT_TEST_BACKEND=softhsm2 cargo test --locked --no-fail-fast --test general --test tokens --test objects \
	--test aes --test wrap --test digest_mac --test asymmetric --test lifecycle --test threads || status=1

# The key services' own tests against the servers (ignored by a plain `cargo test`).
echo "== cargo test --lib -- --ignored backend::aws_kms backend::vault_transit"
cargo test --locked --lib -- --ignored backend::aws_kms backend::vault_transit || status=1

# ---- the same with the aws-lc feature (RSA, P-256, Ed25519 on AWS-LC), in its own target
# directory so the default build above is not invalidated; AWS-LC's C code is compiled by
# aws-lc-sys with the C compiler above (no cmake, nasm or clang on x86_64 Linux)
echo "== cargo build --locked --features aws-lc (CARGO_TARGET_DIR=target/aws-lc)"
CARGO_TARGET_DIR=target/aws-lc cargo build --locked --features aws-lc || status=1

echo "== cargo test --locked --no-fail-fast --features aws-lc (CARGO_TARGET_DIR=target/aws-lc)"
CARGO_TARGET_DIR=target/aws-lc cargo test --locked --no-fail-fast --features aws-lc || status=1

# ---- real consumers against the module just built
echo "== conformance/run"
conformance/run --module target/debug/libkeyfront.so || status=1

echo "== conformance/run (aws-lc build)"
conformance/run --module target/aws-lc/debug/libkeyfront.so || status=1

# The benchmark as a smoke test only: every case must produce a number; speed is never
# asserted here (docs/performance.md has the figures).
echo "== keyfront bench --smoke"
target/debug/keyfront bench --smoke --module keyfront=target/debug/libkeyfront.so \
	--module softhsm2=/usr/lib/softhsm/libsofthsm2.so || status=1

echo "== conformance/run --forward-softhsm2"
conformance/run --forward-softhsm2 --module target/debug/libkeyfront.so || status=1

echo "== conformance/run --cloud"
conformance/run --cloud --module target/debug/libkeyfront.so || status=1

# Every fuzz target for a few seconds, with AddressSanitizer (fuzz/README.md: the 10-minute
# runs, and what this costs: about 7 minutes, most of it the instrumented build).
echo "== fuzz/run-smoke (FUZZ_SECONDS=10)"
FUZZ_SECONDS=10 fuzz/run-smoke || status=1

if [ $status -eq 0 ]; then
	echo "test.sh: every step passed"
else
	echo "test.sh: a step failed (see above)"
fi
exit $status
