#!/usr/bin/env bash
# The compose deployment of the retail example (envoy/compose/docker-compose.yaml):
#
#   scripts/compose.sh [--local-bases]         build the images, bring it up, print the seed
#                                              table from inside the client containers; it stays
#                                              up (edit manifests/policies/*.yaml: verdicts change)
#   scripts/compose.sh [--local-bases] test    the end-to-end test: on a copy of the policies, as
#                                              project l7gate-test; brings it up, checks verdicts,
#                                              what every app received, a live policy edit, the
#                                              control plane stopped, Prometheus and every
#                                              dashboard query; takes it all down again
#   scripts/compose.sh down                    take the deployment down (containers, network, volume)
#
# --local-bases builds every image from bases made on this machine (no registry; see
# scripts/images.sh) and runs Prometheus from Debian's binary; Grafana then stays off (its
# image needs a registry).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

local_bases=()
command=up
for arg in "$@"; do
    case "$arg" in
        --local-bases) local_bases=(--local-bases) ;;
        up|test|down) command=$arg ;;
        *) echo "usage: scripts/compose.sh [--local-bases] [up|test|down]" >&2; exit 2 ;;
    esac
done

compose=(docker-compose -f envoy/compose/docker-compose.yaml)
if [[ $command == down ]]; then
    exec "${compose[@]}" -p "${L7GATE_COMPOSE_PROJECT:-l7gate}" down -v --remove-orphans
fi

scripts/images.sh "${local_bases[@]}"
if ((${#local_bases[@]})); then
    export PROMETHEUS_IMAGE=l7gate-local/prometheus:2 COMPOSE_PROFILES=
fi
cargo build -q -p l7gate-e2e --bin l7gate-compose
checker=target/debug/l7gate-compose

if [[ $command == up ]]; then
    export L7GATE_COMPOSE_PROJECT=${L7GATE_COMPOSE_PROJECT:-l7gate}
    "${compose[@]}" -p "$L7GATE_COMPOSE_PROJECT" up -d --remove-orphans
    "$checker" seed
    echo
    echo "The deployment stays up (project $L7GATE_COMPOSE_PROJECT). Try:"
    echo "  docker-compose -f envoy/compose/docker-compose.yaml -p $L7GATE_COMPOSE_PROJECT exec l7gate /usr/local/bin/l7gate status    # every Envoy and what it acked"
    echo "  docker-compose -f envoy/compose/docker-compose.yaml -p $L7GATE_COMPOSE_PROJECT logs -f inventory-api-sidecar"
    echo "  \$EDITOR manifests/policies/inventory-api.yaml; $checker seed"
    echo "  scripts/compose.sh down"
    exit 0
fi

# test: a private copy of the policies (the test edits one), its own project, always cleaned up.
export L7GATE_COMPOSE_PROJECT=l7gate-test
L7GATE_POLICIES=$(mktemp -d)
export L7GATE_POLICIES
cp manifests/policies/*.yaml "$L7GATE_POLICIES/"
chmod 755 "$L7GATE_POLICIES"
cleanup() {
    local status=$?
    if ((status != 0)); then
        echo "compose test: failed; the deployment's logs:" >&2
        "${compose[@]}" -p "$L7GATE_COMPOSE_PROJECT" logs --no-color --tail 30 >&2 || true
    fi
    "${compose[@]}" -p "$L7GATE_COMPOSE_PROJECT" down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$L7GATE_POLICIES"
    exit "$status"
}
trap cleanup EXIT
"${compose[@]}" -p "$L7GATE_COMPOSE_PROJECT" down -v --remove-orphans >/dev/null 2>&1 || true
"${compose[@]}" -p "$L7GATE_COMPOSE_PROJECT" up -d 2>&1 | grep -v '^Creating\|^Starting' || true
"$checker" test
