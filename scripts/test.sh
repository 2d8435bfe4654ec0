#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what is missing (scripts/bootstrap.sh),
# builds the wasm filter, then runs
#   0. the style and lint gates (scripts/lint.sh: rustfmt --check, clippy -D warnings on the
#      native targets and on the wasm32 filter);
#   1. every native test of the workspace: engine and parser unit tests, the l7gate CLI tests,
#      and the end-to-end tests that run the wasm inside real Envoys against real upstreams;
#   2. the filter's unit tests compiled to wasm32 and run under Node (the code Envoy runs);
#      then every fuzz target for 10 s (scripts/fuzz.sh smoke: coverage-guided, seeded from
#      manifests/ and tests/fixtures/, replaying fuzz/regressions/);
#   3. the compose deployment end to end (scripts/compose.sh --local-bases test: Docker installed
#      and started if need be, images built from bases made on this machine, the retail example
#      brought up, checked from inside its client containers, taken down);
#   4. the Kubernetes manifests rendered and validated offline (scripts/k8s-validate.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Each step prints its wall-clock time, so a slow CI run shows where the time went.
step() {
    local name=$1 started=$SECONDS
    shift
    echo "test: $name"
    "$@"
    echo "test: $name: done in $((SECONDS - started)) s"
}

# shellcheck source=bootstrap.sh
step "bootstrap" source scripts/bootstrap.sh
step "style and lints" scripts/lint.sh
step "native unit, CLI and end-to-end tests" cargo test --workspace --all-targets
step "filter unit tests on wasm32 (Node)" scripts/wasm-test.sh
step "fuzz smoke run (every target, 10 s each)" scripts/fuzz.sh smoke 10
step "the compose deployment (images, docker-compose, Prometheus)" \
    scripts/compose.sh --local-bases test
step "the Kubernetes manifests (offline schema validation)" scripts/k8s-validate.sh
echo "test: all passed in $SECONDS s"
