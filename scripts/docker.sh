#!/usr/bin/env bash
# Makes Docker usable here: installs Debian's docker.io and docker-compose when missing (and, with
# --local-bases, mmdebstrap and prometheus, the inputs of scripts/images.sh --local-bases), and
# starts dockerd when no daemon answers (its log: /var/log/l7gate-dockerd.log). Idempotent.
set -euo pipefail
want=(docker.io docker-compose)
[[ ${1:-} == --local-bases ]] && want+=(mmdebstrap prometheus)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=apt.sh
source scripts/apt.sh
apt_ensure docker "${want[@]}"
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
if ! docker info >/dev/null 2>&1; then
    echo "docker: starting dockerd"
    "${SUDO[@]}" bash -c 'nohup dockerd >>/var/log/l7gate-dockerd.log 2>&1 &'
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 0.5
    done
    docker info >/dev/null 2>&1 || { echo "docker: dockerd did not come up (see /var/log/l7gate-dockerd.log)" >&2; exit 1; }
fi
