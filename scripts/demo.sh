#!/usr/bin/env bash
# The main job: build everything, start Envoy sidecars with the l7gate filter in front of the
# retail app (inventory-api, payment-gateway, catalog), apply manifests/policies, and print a
# table of requests with expected and actual results. Exits non-zero if any row differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=bootstrap.sh
source scripts/bootstrap.sh

cargo run --quiet -p l7gate-e2e --bin l7gate-demo -- "$@"
