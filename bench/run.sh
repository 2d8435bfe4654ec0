#!/usr/bin/env bash
# The l7gate benchmark, one command: Envoy without filter vs native RBAC vs the l7gate filter,
# HTTP/1.1 (wrk) and HTTP/2 (h2load), direct response and proxied, 1 to 10,000 rules.
#
#   bench/run.sh            # full run: 4 rule counts, 3 interleaved rounds of 4 s (~15 min)
#   bench/run.sh --quick    # smoke run: 1 round of 2 s, 1 and 1,000 rules (~1 min)
#   bench/run.sh --rounds 6 --seconds 5 --rules 100,10000
#   bench/run.sh propagation    # policy file → enforced verdict, p50/p99 at 10, 1,000, 10,000 rules
#   bench/run.sh xds-scale      # l7gate serve CPU/RSS with 1,000 simulated ADS clients
#   bench/run.sh tls-egress     # new TLS connections/s through the egress Envoy, 10 and 10,000 toFQDNs entries
#   bench/run.sh soak           # Envoy and Wasm VM memory over 10 million requests
#
# Writes bench/results/<date>.md and .png. Installs gnuplot-nox when missing; builds the wasm
# through scripts/bootstrap.sh unless L7GATE_WASM is given. Run it on a quiet machine: the
# numbers are ratios of runs taken seconds apart, but other load still skews them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v gnuplot >/dev/null; then
    echo "bench: installing gnuplot-nox" >&2
    SUDO=(); [[ $(id -u) -eq 0 ]] || SUDO=(sudo)
    "${SUDO[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq gnuplot-nox >/dev/null
fi

if [[ -z ${L7GATE_WASM:-} || -z ${L7GATE_ENVOY:-} ]]; then
    # shellcheck source=/dev/null
    source scripts/bootstrap.sh >&2
fi
for tool in wrk h2load; do
    command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/bootstrap.sh installs it)" >&2; exit 1; }
done

# `propagation` and `xds-scale` run the `l7gate` binary beside the bench binary.
cargo build -q --release -p l7gate-bench -p l7gate
exec "${CARGO_TARGET_DIR:-$ROOT/target}/release/l7gate-bench" "$@"
