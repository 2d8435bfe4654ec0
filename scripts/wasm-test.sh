#!/usr/bin/env bash
# Run the filter crate's unit tests compiled to wasm32-unknown-unknown, under Node, through
# wasm-bindgen-test-runner (installed at the Cargo.lock version by scripts/bootstrap.sh).
# Tests opt in with:
#     #[test]
#     #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
# Extra arguments are passed to cargo test (e.g. a test name filter).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

die() { printf 'wasm-test: ERROR: %s\n' "$*" >&2; exit 1; }
command -v wasm-bindgen-test-runner >/dev/null || die "wasm-bindgen-test-runner not found: run scripts/bootstrap.sh"
command -v node >/dev/null || die "node not found: run scripts/bootstrap.sh (installs nodejs)"
[[ -x /usr/bin/rustc && -x /usr/bin/rustdoc ]] || die "Debian rustc-web missing: run scripts/bootstrap.sh"

export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner

exec cargo test -p l7gate-filter --target wasm32-unknown-unknown -Z build-std=std,panic_abort --lib "$@"
