#!/usr/bin/env bash
# The main job: build everything, run `l7gate serve` on manifests/ and Envoy sidecars with the
# l7gate filter in front of the retail app (inventory-api, payment-gateway, catalog), configured
# over ADS by that server, and print a table of requests with expected and actual results. Exits
# non-zero if any row differs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=bootstrap.sh
source scripts/bootstrap.sh

# The demo runs the real control plane binary (`l7gate serve`), found next to itself.
cargo build --quiet -p l7gate --bin l7gate
cargo run --quiet -p l7gate-e2e --bin l7gate-demo -- "$@"
