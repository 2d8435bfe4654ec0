#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser l7gate exposes to input it does not control
# (fuzz/fuzz_targets/: policy YAML + validator, inventory, filter config -> engine, one request's
# header map -> decision, FQDN and CIDR matching, the flow-record writer, the DNS guard).
# libFuzzer through libfuzzer-sys, built with the machine's Rust and LLVM's coverage passes (no
# cargo-fuzz, no nightly toolchain needed); each target also checks a property (accepted input
# compiles, output re-parses, a fixed point, ...), so a finding is a panic or a broken property.
#
#   scripts/fuzz.sh smoke [SECONDS]       every target for SECONDS each (default 10): CI runs this
#   scripts/fuzz.sh run TARGET [ARGS...]  one target until stopped, or with libFuzzer ARGS, e.g.
#                                         scripts/fuzz.sh run dns -max_total_time=3600 -jobs=2
#   scripts/fuzz.sh list                  the targets
#
# Seeds are written from manifests/, tests/fixtures/ and a few hand-made inputs into
# target/fuzz/corpus/TARGET/ (where libFuzzer also keeps what it finds); every file under
# fuzz/regressions/TARGET/ (crashes found before, kept as regression tests) is replayed on every
# run. A crash is written to target/fuzz/artifacts/TARGET/: copy it into fuzz/regressions/TARGET/
# once fixed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGETS=(policy_yaml inventory filter_config request names_cidrs flow_record dns)
OUT=$PWD/target/fuzz
# LLVM's SanitizerCoverage, as cargo-fuzz sets it (without a sanitizer runtime: the targets are
# safe Rust; overflow checks and debug assertions stay on in fuzz/Cargo.toml's release profile).
FLAGS=(-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing)

say() { echo "fuzz: $*"; }
die() { echo "fuzz: ERROR: $*" >&2; exit 1; }

# With an explicit --target, RUSTFLAGS reach only the targets' code, not build scripts and
# proc macros (which would not link without libFuzzer).
HOST=$(rustc -vV | sed -n 's/^host: //p')
BIN=$OUT/build/$HOST/release

build() {
    say "building the targets (coverage-instrumented release build)"
    RUSTFLAGS="${FLAGS[*]}" CARGO_TARGET_DIR="$OUT/build" \
        cargo build -q --release --target "$HOST" --manifest-path fuzz/Cargo.toml --bins \
        || die "building fuzz/ failed"
}

# Seeds: the project's own inputs, plus inputs of the binary formats written here.
seed() {
    local c=$OUT/corpus
    mkdir -p "${TARGETS[@]/#/$c/}"
    cp manifests/policies/*.yaml "$c/policy_yaml/"
    for f in tests/fixtures/*/policies/*.yaml tests/fixtures/observability/*/*.yaml; do
        [[ -f $f ]] && cp "$f" "$c/policy_yaml/$(echo "$f" | tr / _)"
    done
    cp manifests/endpoints.yaml "$c/inventory/seed.yaml"
    cp envoy/compose/endpoints.yaml "$c/inventory/compose.yaml"
    for f in tests/fixtures/*/endpoints.yaml; do cp "$f" "$c/inventory/$(echo "$f" | tr / _)"; done
    local l7gate=target/debug/l7gate
    [[ -x $l7gate ]] || cargo build -q -p l7gate || die "building l7gate for the config seeds failed"
    for endpoint in inventory-api payment-gateway catalog frontend reporting; do
        "$l7gate" compile --policies manifests/policies --endpoints manifests/endpoints.yaml \
            --endpoint "$endpoint" >"$c/filter_config/$endpoint.json"
    done
    python3 - "$c" <<'EOF'
import struct, sys, os
c = sys.argv[1]
def pairs(headers):
    sizes = b"".join(struct.pack("<II", len(k), len(v)) for k, v in headers)
    data = b"".join(k + b"\0" + v + b"\0" for k, v in headers)
    return struct.pack("<I", len(headers)) + sizes + data
for i, (method, path, auth) in enumerate([
        (b"GET", b"/api/inventory/item1", b"inventory-api:8080"),
        (b"POST", b"/api/inventory/%2e%2e;/admin", b"inventory-api:8080"),
        (b"GET", b"/api/inventory/..;/x?a=1", b"api.example.com"),
        (b"DELETE", b"/", b"api.example.com:443")]):
    h = [(b":method", method), (b":path", path), (b":authority", auth),
         (b"x-l7gate-connection", b"127.0.0.2:40000 127.0.0.10:8080"), (b"x-h", b"v")]
    open(os.path.join(c, "request", f"{i}"), "wb").write(pairs(h))
def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
def response(n, addrs):
    m = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, len(addrs), 0, 0) + name(n) + struct.pack(">HH", 1, 1)
    for a in addrs:
        m += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes(int(x) for x in a.split("."))
    return m
for i, addrs in enumerate([["192.0.2.1"], ["10.0.0.5", "192.0.2.2"], []]):
    m = response("api.example.com", addrs)
    open(os.path.join(c, "dns", f"msg{i}"), "wb").write(m)
    open(os.path.join(c, "dns", f"tcp{i}"), "wb").write(struct.pack(">H", len(m)) + m)
for i, s in enumerate(["*.example.com\napi.example.com", "**.example.com\na.b.example.com",
                       "10.0.0.0/8\n10.1.0.0/16", "fd00::/8\n::ffff:10.0.0.1", "api.example.com\nAPI.Example.COM."]):
    open(os.path.join(c, "names_cidrs", f"{i}"), "w").write(s)
for i, s in enumerate([b"GET\0/api/inventory/x\0inventory-api:8080\0", b"P\"OST\0/\xff\n\\\0h\0sni.example.com"]):
    open(os.path.join(c, "flow_record", f"{i}"), "wb").write(s)
EOF
}

# Runs one target for $2 seconds; prints "target executions new-units" on success.
run_for() {
    local target=$1 seconds=$2 log=$OUT/logs/$1.log
    mkdir -p "$OUT/logs" "$OUT/artifacts/$target" "fuzz/regressions/$target"
    if ! "$BIN/$target" "$OUT/corpus/$target" "fuzz/regressions/$target" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$target/" >"$log" 2>&1; then
        tail -40 "$log" >&2
        die "$target found a failure (input in $OUT/artifacts/$target/; log $log)"
    fi
    local execs units cov
    cov=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$log")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    units=$(sed -n 's/^stat::new_units_added: *//p' "$log")
    printf "fuzz: %-14s %10s executions, %5s new inputs, %5s edges covered, corpus %s files\n" \
        "$target" "${execs:-?}" "${units:-?}" "${cov:-?}" "$(find "$OUT/corpus/$target" -type f | wc -l)"
}

case "${1:-smoke}" in
    list) printf '%s\n' "${TARGETS[@]}" ;;
    smoke)
        seconds=${2:-10}
        build
        seed
        for target in "${TARGETS[@]}"; do run_for "$target" "$seconds"; done
        say "no failures in ${#TARGETS[@]} targets (${seconds}s each)"
        ;;
    run)
        target=${2:?name a target: scripts/fuzz.sh list}
        [[ " ${TARGETS[*]} " == *" $target "* ]] || die "unknown target $target"
        shift 2
        build
        seed
        mkdir -p "$OUT/artifacts/$target" "fuzz/regressions/$target"
        exec "$BIN/$target" "$OUT/corpus/$target" "fuzz/regressions/$target" \
            -timeout=10 -rss_limit_mb=2048 -max_len=65536 -artifact_prefix="$OUT/artifacts/$target/" "$@"
        ;;
    *) die "usage: scripts/fuzz.sh smoke [SECONDS] | run TARGET [ARGS...] | list" ;;
esac
