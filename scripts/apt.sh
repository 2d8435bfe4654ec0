# Sourced by the scripts that need Debian packages: `apt_ensure WHO PACKAGE...` installs those not
# installed yet (one `apt-get update` first, only then), as root or through sudo, and says what
# it did as `WHO: apt: ...`. Returns non-zero when it cannot.
apt_ensure() {
    local who=$1 p
    shift
    local sudo=() missing=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "$who: not root and no sudo: cannot install $*" >&2; return 1; }
        sudo=(sudo)
    fi
    for p in "$@"; do
        # (no `| grep -q`: with pipefail, grep's early exit can SIGPIPE the writer and fail)
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        echo "$who: apt: ok ($*)"
        return 0
    fi
    echo "$who: apt: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq || { echo "$who: apt-get update failed" >&2; return 1; }
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
        || { echo "$who: apt-get install ${missing[*]} failed" >&2; return 1; }
}
