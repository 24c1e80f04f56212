#!/usr/bin/env bash
# Run troupe's whole test suite on this machine, installing what the tests need first.
#   scripts/test.sh
# Steps: offline assets (scripts/setup.sh --assets-only), formatting, clippy with warnings
# as errors, rustdoc with warnings as errors, then every test of every crate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One assets folder for setup and every test, whatever TROUPE_HOME the tests use.
export TROUPE_ASSETS=${TROUPE_ASSETS:-${XDG_DATA_HOME:-$HOME/.local/share}/troupe/assets}

step() { printf '\n==> %s\n' "$*" >&2; }

step "offline assets (embedding model, ONNX Runtime, local model server)"
scripts/setup.sh --assets-only

step "formatting"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "tests"
cargo test --workspace --all-targets --locked
