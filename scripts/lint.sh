#!/usr/bin/env bash
# Style and lint gates, run by scripts/test.sh (after scripts/bootstrap.sh installed the tools):
#   1. rustfmt: `cargo fmt --all -- --check` (settings in rustfmt.toml);
#   2. clippy, warnings as errors, on every native target of the workspace, and on the control
#      library without its `cli` feature (the build fuzz/ uses);
#   3. clippy on the filter built for wasm32, where the proxy-wasm glue (filter/src/wasm/) exists
#      only: Debian's clippy (rust-web-clippy) matches the Debian rustc that builds the module.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "lint: rustfmt"
cargo fmt --all -- --check

echo "lint: clippy (native)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p l7gate --lib --no-default-features --quiet -- -D warnings

echo "lint: clippy (wasm32 filter)"
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo-clippy clippy --quiet -p l7gate-filter --lib \
    --target wasm32-unknown-unknown -Z build-std=std,panic_abort -- -D warnings
