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

# shellcheck source=bootstrap.sh
source scripts/bootstrap.sh

echo "test: style and lints"
scripts/lint.sh

echo "test: native unit, CLI and end-to-end tests"
cargo test --workspace --all-targets

echo "test: filter unit tests on wasm32 (Node)"
scripts/wasm-test.sh

echo "test: fuzz smoke run (every target, 10 s each)"
scripts/fuzz.sh smoke 10

echo "test: the compose deployment (images, docker-compose, Prometheus)"
scripts/compose.sh --local-bases test

echo "test: the Kubernetes manifests (offline schema validation)"
scripts/k8s-validate.sh

echo "test: all passed"
