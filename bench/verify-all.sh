#!/usr/bin/env bash
# bench/verify-all.sh: certctl-verify --all over ENDPOINTS loopback TLS
# endpoints (one nginx listening on that many ports of 127.0.0.1, one ECDSA
# P-256 leaf), probes per second with the default parallelism and with
# --parallel 1, against what an operator would run instead: a shell loop of
# `openssl s_client | openssl x509 | sha256sum`, one endpoint after another
# and 16 at a time (xargs -P). Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

ENDPOINTS=${ENDPOINTS:-200}

bench_enter_cluster "$0" "$@"

work=$(mktemp -d)
nginx_dir="$work/nginx"
trap '[ ! -f "$nginx_dir/nginx.pid" ] || kill "$(cat "$nginx_dir/nginx.pid")"; rm -rf "$work"' EXIT
bench_owner_database verify_bench
psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

source tests/lib/net.bash
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
	-out "$work/cert.pem" -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
ports=()
while [ "${#ports[@]}" -lt "$ENDPOINTS" ]; do
	port=$(free_port)
	case " ${ports[*]} " in *" $port "*) continue ;; esac
	ports+=("$port")
done
mkdir -p "$nginx_dir/tmp"
{
	echo "daemon on; pid $nginx_dir/nginx.pid; error_log $nginx_dir/error.log warn;"
	echo "worker_processes 2; events { worker_connections 1024; }"
	echo "http { access_log off; client_body_temp_path $nginx_dir/tmp/body; proxy_temp_path $nginx_dir/tmp/proxy;"
	echo " fastcgi_temp_path $nginx_dir/tmp/fastcgi; uwsgi_temp_path $nginx_dir/tmp/uwsgi; scgi_temp_path $nginx_dir/tmp/scgi;"
	echo " server { server_name localhost; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
	for port in "${ports[@]}"; do echo "  listen 127.0.0.1:$port ssl;"; done
	echo " location / { return 200; } } }"
} > "$nginx_dir/nginx.conf"
nginx -p "$nginx_dir" -e "$nginx_dir/error.log" -c "$nginx_dir/nginx.conf"
for port in "${ports[@]}"; do wait_for_port "$port"; done

psql_q "INSERT INTO agents (id) VALUES ('agent-1')"
psql_q "INSERT INTO managed_certificates (id) VALUES ('mc-bench')"
printf '%s\n' "${ports[@]}" > "$work/ports"
psql -XAtq -v ON_ERROR_STOP=1 -v ports="$(tr '\n' ' ' < "$work/ports")" >/dev/null <<-'SQL'
INSERT INTO deployment_targets (id, type, agent_id, config)
SELECT 'target-' || p, 'file', 'agent-1',
       jsonb_build_object('verify_endpoint', '127.0.0.1:' || p, 'verify_sni', 'localhost')
  FROM unnest(string_to_array(trim(:'ports'), ' ')) p;
INSERT INTO certificate_targets (certificate_id, target_id) SELECT 'mc-bench', id FROM deployment_targets;
SQL
(umask 077 && openssl rand -hex 32 > "$work/sealing.key")
CERTCTL_KEY_FILE="$work/sealing.key" certctl-import --certificate mc-bench \
	--cert "$work/cert.pem" --key "$work/key.pem" >/dev/null

rate() { awk -v n="$ENDPOINTS" -v us="$1" 'BEGIN { printf "%.0f", n * 1000000 / us }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
timed_us() {
	local start=${EPOCHREALTIME/./}
	"$@" > "$work/out"
	echo $(( ${EPOCHREALTIME/./} - start ))
}
s_client_one() {
	openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
		openssl x509 -outform DER 2>/dev/null | sha256sum | cut -c1-64
}
s_client_loop() { while read -r port; do s_client_one "$port"; done < "$work/ports"; }
s_client_xargs() {
	export -f s_client_one
	xargs -P 16 -I{} bash -c 's_client_one {}' < "$work/ports"
}

echo "== $ENDPOINTS loopback endpoints (one nginx, 2 workers); wall time, connection and recording included"
default_us=$(timed_us certctl-verify --all)
echo "certctl-verify --all (default --parallel 16): $(rate "$default_us") probes/s ($((default_us / 1000)) ms), $(jq -s 'map(select(.matches)) | length' "$work/out") lines matching, $(psql_q "SELECT count(*) FROM target_probes") recorded"
serial_us=$(timed_us certctl-verify --all --parallel 1)
echo "certctl-verify --all --parallel 1: $(rate "$serial_us") probes/s ($((serial_us / 1000)) ms)"
loop_us=$(timed_us s_client_loop)
echo "shell loop of openssl s_client: $(rate "$loop_us") probes/s ($((loop_us / 1000)) ms), $(sort -u "$work/out" | wc -l) distinct fingerprints"
xargs_us=$(timed_us s_client_xargs)
echo "openssl s_client via xargs -P 16: $(rate "$xargs_us") probes/s ($((xargs_us / 1000)) ms)"
echo "certctl-verify --all / shell loop: $(ratio "$loop_us" "$default_us")x; / xargs -P 16: $(ratio "$xargs_us" "$default_us")x; --parallel 16 / 1: $(ratio "$serial_us" "$default_us")x"
