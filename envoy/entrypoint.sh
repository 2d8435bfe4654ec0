#!/bin/sh
# l7gate-envoy: the entrypoint of the l7gate Envoy image. Renders one of the ADS bootstrap
# templates in /etc/l7gate (sidecar-ads.yaml or egress-ads.yaml) from environment variables,
# checks that no placeholder is left, and execs Envoy on it (Envoy is PID 1: it gets the
# container's signals). Extra arguments go to Envoy.
#
#   L7GATE_ROLE       sidecar (default) or egress
#   L7GATE_NAME       the endpoint this Envoy fronts (`name` or `namespace/name`): its node id,
#                     which selects the config l7gate serve sends                    (required)
#   L7GATE_XDS_ADDRESS / L7GATE_XDS_PORT   l7gate serve, a DNS name or IP   (l7gate / 18000)
#   L7GATE_XDS_SERVER_NAME                 the DNS name on l7gate serve's certificate
#                                          (L7GATE_XDS_ADDRESS)
#   L7GATE_XDS_TLS_DIR                     this Envoy's client certificate: tls.crt, tls.key,
#                                          ca.crt (a secret or cert-manager CSI volume; watched,
#                                          rotation needs no restart)        (/etc/l7gate/tls)
#   L7GATE_ADMIN_PORT                      admin on 127.0.0.1                      (9901)
#   L7GATE_METRICS_ADDRESS / _PORT         GET /metrics for Prometheus        (0.0.0.0 / 9102)
# sidecar:
#   L7GATE_LISTEN_ADDRESS / _PORT          where clients connect              (0.0.0.0 / 8080)
#   L7GATE_UPSTREAM_ADDRESS / _PORT        the app, an IP literal (127.0.0.1 / 8081)
# egress (the outbound side of workload L7GATE_NAME):
#   L7GATE_LISTEN_ADDRESS                  both listeners                          (127.0.0.1)
#   L7GATE_TLS_PORT / L7GATE_HTTP_PORT                                              (443 / 80)
#   L7GATE_DNS_ADDRESS / _PORT             the resolver names are resolved with, over TCP
#                                          (the first nameserver of /etc/resolv.conf / 53)
#   L7GATE_DNS_GUARD_PORT                  the DNS guard on 127.0.0.1 (15053)
set -eu

role=${L7GATE_ROLE:-sidecar}
case "$role" in
    sidecar) template=/etc/l7gate/sidecar-ads.yaml; listen=0.0.0.0 ;;
    egress) template=/etc/l7gate/egress-ads.yaml; listen=127.0.0.1 ;;
    *) echo "l7gate-envoy: L7GATE_ROLE must be sidecar or egress, not '$role'" >&2; exit 64 ;;
esac
[ -n "${L7GATE_NAME:-}" ] || { echo "l7gate-envoy: set L7GATE_NAME to the endpoint this Envoy fronts (namespace/name)" >&2; exit 64; }
resolver=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null || true)

# Values are substituted literally; none may contain the sed delimiter or a newline.
xds_address=${L7GATE_XDS_ADDRESS:-l7gate}
tls_dir=${L7GATE_XDS_TLS_DIR:-/etc/l7gate/tls}
for value in "$L7GATE_NAME" "$xds_address" "${L7GATE_XDS_SERVER_NAME:-}" "$tls_dir" "${L7GATE_UPSTREAM_ADDRESS:-}" "${L7GATE_DNS_ADDRESS:-}"; do
    case "$value" in *'|'*|*'
'*) echo "l7gate-envoy: invalid value '$value'" >&2; exit 64 ;; esac
done
out=${L7GATE_BOOTSTRAP:-/tmp/l7gate-envoy.yaml}
sds_dir=$(dirname "$out")
# The control channel's credentials, as file-based SDS resources beside the bootstrap.
for sds in /etc/l7gate/xds-tls/*.yaml; do
    sed -e "s|\${XDS_TLS_DIR}|$tls_dir|g" "$sds" >"$sds_dir/$(basename "$sds")"
done
[ -r "$tls_dir/tls.crt" ] && [ -r "$tls_dir/tls.key" ] && [ -r "$tls_dir/ca.crt" ] ||
    echo "l7gate-envoy: warning: $tls_dir lacks a readable tls.crt, tls.key or ca.crt: no configuration can arrive until it has them (set L7GATE_XDS_TLS_DIR)" >&2
sed \
    -e "s|\${NAME}|$L7GATE_NAME|g" \
    -e "s|\${XDS_ADDRESS}|$xds_address|g" \
    -e "s|\${XDS_SERVER_NAME}|${L7GATE_XDS_SERVER_NAME:-$xds_address}|g" \
    -e "s|\${XDS_SDS_DIR}|$sds_dir|g" \
    -e "s|\${XDS_PORT}|${L7GATE_XDS_PORT:-18000}|g" \
    -e "s|\${ADMIN_PORT}|${L7GATE_ADMIN_PORT:-9901}|g" \
    -e "s|\${METRICS_ADDRESS}|${L7GATE_METRICS_ADDRESS:-0.0.0.0}|g" \
    -e "s|\${METRICS_PORT}|${L7GATE_METRICS_PORT:-9102}|g" \
    -e "s|\${LISTEN_ADDRESS}|${L7GATE_LISTEN_ADDRESS:-$listen}|g" \
    -e "s|\${LISTEN_PORT}|${L7GATE_LISTEN_PORT:-8080}|g" \
    -e "s|\${UPSTREAM_ADDRESS}|${L7GATE_UPSTREAM_ADDRESS:-127.0.0.1}|g" \
    -e "s|\${UPSTREAM_PORT}|${L7GATE_UPSTREAM_PORT:-8081}|g" \
    -e "s|\${TLS_PORT}|${L7GATE_TLS_PORT:-443}|g" \
    -e "s|\${HTTP_PORT}|${L7GATE_HTTP_PORT:-80}|g" \
    -e "s|\${DNS_ADDRESS}|${L7GATE_DNS_ADDRESS:-${resolver:-127.0.0.11}}|g" \
    -e "s|\${DNS_PORT}|${L7GATE_DNS_PORT:-53}|g" \
    -e "s|\${DNS_GUARD_PORT}|${L7GATE_DNS_GUARD_PORT:-15053}|g" \
    "$template" >"$out"
if grep -n '\${' "$out" >&2; then
    echo "l7gate-envoy: $template has a placeholder this entrypoint does not fill (above)" >&2
    exit 64
fi
# No hot restart: a container is replaced, not hot-restarted, and two Envoys in one pod or
# network namespace would otherwise contend for its domain socket.
exec envoy -c "$out" --service-node "$L7GATE_NAME" --service-cluster "l7gate-$role" --disable-hot-restart "$@"
