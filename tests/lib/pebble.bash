# Let's Encrypt's test ACME server, pebble, on loopback, validating for real.
# start_pebble DIR HTTP_PORT [VALIDITY_SECONDS]
#   -> a running pebble whose HTTP-01 (and TLS-ALPN-01) validation connects to
#      127.0.0.1:HTTP_PORT, where the ACME client under test listens, with
#      pebble-challtestsrv as its DNS answering 127.0.0.1 for every name;
#      exports PEBBLE_URL (the ACME directory), PEBBLE_CA_BUNDLE (the root
#      that signed pebble's own TLS certificate, for the client's --ca-bundle),
#      PEBBLE_ROOT (pebble's issuing root, fetched from its management port:
#      what issued certificates verify against), PEBBLE_INTERMEDIATE.
#   VALIDITY_SECONDS: the issued certificates' lifetime (pebble's
#      certificateValidityPeriod; its default is five years).
# stop_pebble DIR: stops both; the URL then refuses connections.
# pebble_setup_file / pebble_teardown_file: one pebble for a bats file, in
#   BATS_FILE_TMPDIR, validating on HTTP_PORT (a free port, exported).
# Needs lib/pki (make_pki, make_leaf) and lib/net (free_port, wait_for_port).

start_pebble() {
	local dir=$1 http_port=$2 validity=${3:-} port management dns
	mkdir -p "$dir"
	make_pki "$dir/tls" || return 1
	make_leaf "$dir/tls" pebble localhost || return 1
	# pebble serves the file as its chain: leaf, then intermediate.
	cat "$dir/tls/pebble.pem" "$dir/tls/chain.pem" > "$dir/tls/served.pem"
	port=$(free_port) && management=$(free_port) && dns=$(free_port) || return 1
	jq -n --arg listen "127.0.0.1:$port" --arg management "127.0.0.1:$management" \
		--arg cert "$dir/tls/served.pem" --arg key "$dir/tls/pebble.key" \
		--argjson http "$http_port" --arg validity "$validity" '
		{pebble: ({listenAddress: $listen, managementListenAddress: $management,
		  certificate: $cert, privateKey: $key, httpPort: $http, tlsPort: $http,
		  ocspResponderURL: "", externalAccountBindingRequired: false}
		  + if $validity == "" then {} else {certificateValidityPeriod: ($validity | tonumber)} end)}' \
		> "$dir/pebble-config.json" || return 1
	# Only DNS: A queries get 127.0.0.1 and AAAA none, so validation never
	# tries ::1, where the client does not listen.
	pebble-challtestsrv -dns01 "127.0.0.1:$dns" -defaultIPv4 127.0.0.1 -defaultIPv6 '' \
		-http01 '' -https01 '' -tlsalpn01 '' -management "127.0.0.1:$(free_port)" \
		>"$dir/challtestsrv.log" 2>&1 3>&- &
	echo $! > "$dir/challtestsrv.pid"
	# Deterministic: no random validation delay, no valid nonce rejected,
	# and every order validated afresh (no authorization reuse).
	PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
		pebble -config "$dir/pebble-config.json" -dnsserver "127.0.0.1:$dns" \
		>"$dir/pebble.log" 2>&1 3>&- &
	echo $! > "$dir/pebble.pid"
	PEBBLE_URL="https://127.0.0.1:$port/dir"
	PEBBLE_CA_BUNDLE=$dir/tls/root.pem
	PEBBLE_ROOT=$dir/root.pem
	PEBBLE_INTERMEDIATE=$dir/intermediate.pem
	export PEBBLE_URL PEBBLE_CA_BUNDLE PEBBLE_ROOT PEBBLE_INTERMEDIATE
	pebble_wait "$dir" "$PEBBLE_URL" || return 1
	wait_for_port "$dns" 10 || return 1
	pebble_fetch "$dir" "https://127.0.0.1:$management/roots/0" "$PEBBLE_ROOT" &&
		pebble_fetch "$dir" "https://127.0.0.1:$management/intermediates/0" "$PEBBLE_INTERMEDIATE"
}

# Polls the directory until it answers (pebble makes its CA keys first).
pebble_wait() {
	local dir=$1 url=$2 deadline=$((SECONDS + 20))
	until curl -fsS --cacert "$dir/tls/root.pem" -o /dev/null "$url" 2>/dev/null; do
		if ! kill -0 "$(cat "$dir/pebble.pid")" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
			echo "pebble did not start:" >&2
			cat "$dir/pebble.log" >&2
			return 1
		fi
		sleep 0.05
	done
}

pebble_fetch() {
	curl -fsS --cacert "$1/tls/root.pem" -o "$3" "$2" &&
		openssl x509 -in "$3" -noout 2>/dev/null || { echo "pebble: no certificate at $2" >&2; return 1; }
}

stop_pebble() {
	local dir=$1 name pid
	for name in pebble challtestsrv; do
		[ -f "$dir/$name.pid" ] || continue
		pid=$(cat "$dir/$name.pid")
		kill "$pid" 2>/dev/null || { rm -f "$dir/$name.pid"; continue; }
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		rm -f "$dir/$name.pid"
	done
}

pebble_setup_file() {
	HTTP_PORT=$(free_port) || return 1
	export HTTP_PORT
	start_pebble "$BATS_FILE_TMPDIR/pebble" "$HTTP_PORT"
}

pebble_teardown_file() {
	stop_pebble "$BATS_FILE_TMPDIR/pebble"
}
