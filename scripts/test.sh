#!/usr/bin/env bash
# Run troupe's whole test suite on this machine, installing what the tests need first.
#   scripts/test.sh
# Steps: offline assets and test tools (scripts/setup.sh --assets-only), cargo-deny,
# formatting, module cycles (scripts/module-cycles.py), clippy with warnings as errors,
# rustdoc with warnings as errors, then every test of every crate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# One assets folder for setup and every test, whatever TROUPE_HOME the tests use.
export TROUPE_ASSETS=${TROUPE_ASSETS:-${XDG_DATA_HOME:-$HOME/.local/share}/troupe/assets}

step() { printf '\n==> %s\n' "$*" >&2; }

step "offline assets (embedding model, ONNX Runtime, local model server)"
scripts/setup.sh --assets-only

step "dependency tree: licenses, bans, sources (cargo-deny, installed by setup)"
deny=$TROUPE_ASSETS/tools/cargo-deny/bin/cargo-deny
[ -x "$deny" ] || deny=$(command -v cargo-deny || true)
[ -n "$deny" ] || { echo "test: cargo-deny is missing; run scripts/setup.sh --assets-only" >&2; exit 1; }
"$deny" deny --offline check bans licenses sources

step "formatting"
cargo fmt --all --check

step "module cycles: no module imports one that imports it back"
python3 scripts/module-cycles.py --nested

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "tests"
cargo test --workspace --all-targets --locked
