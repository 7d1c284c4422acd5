# A real nginx serving TLS on a loopback port from files a target points at.
# start_nginx DIR PORT CERT KEY [SERVER_NAME]  -> DIR/nginx.conf, running
# nginx_validate_argv DIR / nginx_reload_argv DIR -> JSON argv arrays for a target config
# served_fingerprint PORT [SNI]                -> SHA-256 of the leaf nginx serves
# wait_served_fingerprint PORT EXPECTED [SECONDS] (reload is asynchronous)
# stop_nginx DIR

start_nginx() {
	local dir=$1 port=$2 cert=$3 key=$4 name=${5:-localhost}
	mkdir -p "$dir/tmp"
	cat > "$dir/nginx.conf" <<CONF
daemon on;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_processes 1;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port ssl;
        server_name $name;
        ssl_certificate $cert;
        ssl_certificate_key $key;
        location / { return 200 "certctl test\n"; }
    }
}
CONF
	nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" || return 1
	wait_for_port "$port" 10
}

nginx_validate_argv() {
	jq -cn --arg d "$1" '["nginx","-q","-t","-p",$d,"-e",($d+"/error.log"),"-c",($d+"/nginx.conf")]'
}

nginx_reload_argv() {
	jq -cn --arg d "$1" '["nginx","-p",$d,"-e",($d+"/error.log"),"-c",($d+"/nginx.conf"),"-s","reload"]'
}

served_fingerprint() {
	local port=$1 sni=${2:-localhost}
	openssl s_client -connect "127.0.0.1:$port" -servername "$sni" </dev/null 2>/dev/null |
		openssl x509 -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1
}

wait_served_fingerprint() {
	local port=$1 expected=$2 deadline=$((SECONDS + ${3:-10})) got
	while :; do
		got=$(served_fingerprint "$port")
		[ "$got" = "$expected" ] && return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "nginx on $port serves $got, expected $expected" >&2
			return 1
		fi
		sleep 0.1
	done
}

stop_nginx() {
	local dir=$1
	[ -f "$dir/nginx.pid" ] || return 0
	kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
	for _ in $(seq 1 50); do
		kill -0 "$(cat "$dir/nginx.pid" 2>/dev/null)" 2>/dev/null || return 0
		sleep 0.1
	done
}
