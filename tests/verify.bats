#!/usr/bin/env bats
# certctl-verify: reads the certificate a live endpoint serves and compares it.
load helpers
load lib/pki
load lib/nginx

# One PKI and one nginx (serving leaf + intermediate for shop.test) for the file.
setup_file() {
	export PKI="$BATS_FILE_TMPDIR/pki" NGINX_DIR="$BATS_FILE_TMPDIR/nginx"
	make_pki "$PKI"
	make_leaf "$PKI" shop shop.test
	make_leaf "$PKI" other other.test
	cat "$PKI/shop.pem" "$PKI/chain.pem" > "$PKI/shop-full.pem"
	cat "$PKI/other.pem" "$PKI/chain.pem" > "$PKI/other-full.pem"
	NGINX_PORT=$(free_port)
	export NGINX_PORT
	start_nginx "$NGINX_DIR" "$NGINX_PORT" "$PKI/shop-full.pem" "$PKI/shop.key" shop.test
	SHOP_SHA256=$(fingerprint "$PKI/shop.pem")
	OTHER_SHA256=$(fingerprint "$PKI/other.pem")
	export SHOP_SHA256 OTHER_SHA256
}

teardown_file() {
	stop_nginx "$NGINX_DIR"
}

teardown() {
	[ -z "${HELPER_PID:-}" ] || { kill "$HELPER_PID" 2>/dev/null; wait "$HELPER_PID" 2>/dev/null; } || :
}

# A TCP listener that accepts connections and never says a word.
start_silent_listener() {
	SILENT_PORT=$(free_port)
	nc -dlk 127.0.0.1 "$SILENT_PORT" >/dev/null 2>&1 3>&- &
	HELPER_PID=$!
	wait_for_port "$SILENT_PORT"
}

# openssl s_server on $SNI_PORT: start_openssl_server HOST CERT KEY [s_server options...]
start_openssl_server() {
	local host=$1 cert=$2 key=$3
	shift 3
	SNI_PORT=$(free_port)
	openssl s_server -quiet -www -accept "$host:$SNI_PORT" -cert "$cert" -key "$key" \
		-cert_chain "$PKI/chain.pem" "$@" \
		</dev/null >/dev/null 2>&1 3>&- &
	HELPER_PID=$!
	if [ "$host" = "[::1]" ]; then
		for _ in $(seq 1 100); do nc -z ::1 "$SNI_PORT" 2>/dev/null && return 0; sleep 0.05; done
		echo "nothing listens on [::1]:$SNI_PORT"; return 1
	fi
	wait_for_port "$SNI_PORT"
}

# Serves other.test's leaf when the client's SNI is $1, shop's otherwise.
start_sni_server() {
	start_openssl_server "${2:-127.0.0.1}" "$PKI/shop-full.pem" "$PKI/shop.key" \
		-servername "$1" -cert2 "$PKI/other-full.pem" -key2 "$PKI/other.key"
}

# A leaf from the test intermediate that expired on 2020-03-01 12:00 UTC.
make_expired_leaf() {
	local dir=$BATS_TEST_TMPDIR/ca
	mkdir -p "$dir"
	: > "$dir/index.txt"
	echo 1000 > "$dir/serial"
	cat > "$dir/ca.cnf" <<CNF
[ ca ]
default_ca = test
[ test ]
database = $dir/index.txt
new_certs_dir = $dir
serial = $dir/serial
default_md = sha256
policy = any
[ any ]
commonName = supplied
[ leaf ]
subjectAltName = DNS:old.test,IP:127.0.0.1
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
CNF
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/old.key" -subj /CN=old.test -out "$dir/old.csr" 2>/dev/null
	openssl ca -batch -config "$dir/ca.cnf" -cert "$PKI/chain.pem" -keyfile "$PKI/intermediate.key" \
		-in "$dir/old.csr" -out "$dir/old.pem" -notext -extensions leaf \
		-startdate 20200101000000Z -enddate 20200301120000Z 2>/dev/null
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# A database row for certificate $1 with versions "id:fingerprint:created_at_offset" ...
insert_certificate() {
	local id=$1 version
	shift
	sql "INSERT INTO managed_certificates (id) VALUES ('$id')"
	for version in "$@"; do
		IFS=: read -r vid fp offset <<<"$version"
		sql "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
		       fingerprint_sha256, cert_pem, created_at)
		     VALUES ('$vid', '$id', '$vid', now(), now() + interval '20 days', '$fp', 'pem',
		       now() + interval '$offset')"
	done
}

@test "verify: the served certificate matches --expect-sha256: exit 0, one JSON line with every key" {
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --expect-sha256 "$SHOP_SHA256"
	expect_status 0
	expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "stdout lines"
	expect_equal "" "$stderr" "stderr"
	expect_equal "127.0.0.1:$NGINX_PORT|$SHOP_SHA256|true" \
		"$(jq -r '"\(.endpoint)|\(.fingerprint_sha256)|\(.matches)"' <<<"$output")"
	expect_equal '["endpoint","sni","fingerprint_sha256","not_after","days_left","matches","verified_chain","verify_error"]' \
		"$(jq -c keys_unsorted <<<"$output")" "keys"
}

@test "verify: not_after is the leaf's notAfter in RFC 3339 UTC and days_left the whole days to it" {
	end=$(date -u -d "$(openssl x509 -noout -enddate -in "$PKI/shop.pem" | cut -d= -f2)" +%s)
	most=$(((end - $(date +%s)) / 86400))
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT"
	least=$(((end - $(date +%s)) / 86400))
	expect_status 0
	expect_equal "$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)" "$(jq -r .not_after <<<"$output")" "not_after"
	days=$(jq -r .days_left <<<"$output")
	[ "$days" -ge "$least" ] && [ "$days" -le "$most" ] ||
		{ echo "days_left $days not in [$least, $most]"; return 1; }
}

@test "verify: an expired certificate is still read: negative days_left, verify_error says expired" {
	make_expired_leaf
	start_openssl_server 127.0.0.1 "$BATS_TEST_TMPDIR/ca/old.pem" "$BATS_TEST_TMPDIR/ca/old.key"
	end=$(date -u -d 2020-03-01T12:00:00Z +%s)
	# floor of a negative quotient: bash rounds toward zero, so subtract one day unless exact
	most=$(( -((( $(date +%s) - end) + 86399) / 86400) ))
	run --separate-stderr certctl-verify "127.0.0.1:$SNI_PORT" --ca-file "$PKI/root.pem" \
		--expect-sha256 "$(fingerprint "$BATS_TEST_TMPDIR/ca/old.pem")"
	least=$(( -((( $(date +%s) - end) + 86399) / 86400) ))
	expect_status 0
	expect_equal "2020-03-01T12:00:00Z|true|false|certificate has expired" \
		"$(jq -r '"\(.not_after)|\(.matches)|\(.verified_chain)|\(.verify_error)"' <<<"$output")"
	days=$(jq -r .days_left <<<"$output")
	[ "$days" -ge "$least" ] && [ "$days" -le "$most" ] && [ "$days" -lt 0 ] ||
		{ echo "days_left $days not in [$least, $most]"; return 1; }
}

@test "verify: without --ca-file the system default store is used (SSL_CERT_FILE points it at the test root)" {
	SSL_CERT_FILE="$PKI/root.pem" run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT"
	expect_status 0
	expect_equal true "$(jq -r .verified_chain <<<"$output")"
}

@test "verify: a closed standard output is exit 73" {
	run --separate-stderr bash -c 'certctl-verify "$1" >/dev/full' _ "127.0.0.1:$NGINX_PORT"
	expect_status 73
	expect_one_line_error certctl-verify
}

@test "verify: with nothing expected, matches is null and the exit status is 0" {
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT"
	expect_status 0
	expect_equal null "$(jq -c .matches <<<"$output")" "matches"
}

@test "verify: a different fingerprint is a mismatch: exit 1, matches false, one-line error naming both" {
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --expect-sha256 "$OTHER_SHA256"
	expect_status 1
	expect_equal "false|$SHOP_SHA256" "$(jq -r '"\(.matches)|\(.fingerprint_sha256)"' <<<"$output")"
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "fingerprint mismatch: serves $SHOP_SHA256, expected $OTHER_SHA256"
}

@test "verify: --expect-sha256 takes openssl's colon-separated uppercase form" {
	colons=$(openssl x509 -noout -fingerprint -sha256 -in "$PKI/shop.pem" | cut -d= -f2)
	expect_contains "$colons" ":"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --expect-sha256 "$colons"
	expect_status 0
	expect_equal true "$(jq -r .matches <<<"$output")"
}

@test "verify: --ca-file with the test root verifies the chain the server sends (IP literal checked against the IP SAN)" {
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --ca-file "$PKI/root.pem"
	expect_status 0
	expect_equal "true|null" "$(jq -r '"\(.verified_chain)|\(.verify_error)"' <<<"$output")"
}

@test "verify: without --ca-file the system store does not know the test root: verified_chain false with a reason" {
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --expect-sha256 "$SHOP_SHA256"
	expect_status 0
	expect_equal false "$(jq -r .verified_chain <<<"$output")"
	expect_equal "unable to get local issuer certificate" "$(jq -r .verify_error <<<"$output")"
}

@test "verify: an SNI the certificate does not name fails the hostname check, and the SNI sent is printed" {
	# nginx has one server block, so it serves shop.test's leaf whatever SNI it gets.
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --sni wrong.test --ca-file "$PKI/root.pem"
	expect_status 0
	expect_equal "wrong.test|$SHOP_SHA256|false|hostname mismatch" \
		"$(jq -r '"\(.sni)|\(.fingerprint_sha256)|\(.verified_chain)|\(.verify_error)"' <<<"$output")"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --sni shop.test --ca-file "$PKI/root.pem"
	expect_status 0
	expect_equal "shop.test|true" "$(jq -r '"\(.sni)|\(.verified_chain)"' <<<"$output")"
}

@test "verify: a host name endpoint is checked against that name (localhost is not in the SAN)" {
	run --separate-stderr certctl-verify "localhost:$NGINX_PORT" --ca-file "$PKI/root.pem"
	expect_status 0
	expect_equal "localhost|false|hostname mismatch" \
		"$(jq -r '"\(.sni)|\(.verified_chain)|\(.verify_error)"' <<<"$output")"
}

@test "verify: --sni is sent on the wire: a server choosing its certificate by SNI serves the other leaf" {
	start_sni_server other.test
	run --separate-stderr certctl-verify "127.0.0.1:$SNI_PORT" --sni other.test
	expect_status 0
	expect_equal "other.test|$OTHER_SHA256" "$(jq -r '"\(.sni)|\(.fingerprint_sha256)"' <<<"$output")"
	run --separate-stderr certctl-verify "127.0.0.1:$SNI_PORT"
	expect_status 0
	expect_equal "null|$SHOP_SHA256" "$(jq -r '"\(.sni)|\(.fingerprint_sha256)"' <<<"$output")"
}

@test "verify: a host name endpoint sends the host as SNI; an IP literal sends none" {
	start_sni_server localhost
	run --separate-stderr certctl-verify "localhost:$SNI_PORT"
	expect_status 0
	expect_equal "localhost|$OTHER_SHA256" "$(jq -r '"\(.sni)|\(.fingerprint_sha256)"' <<<"$output")"
	kill "$HELPER_PID"; wait "$HELPER_PID" 2>/dev/null || :
	start_sni_server 127.0.0.1
	run --separate-stderr certctl-verify "127.0.0.1:$SNI_PORT"
	expect_status 0
	expect_equal "null|$SHOP_SHA256" "$(jq -r '"\(.sni)|\(.fingerprint_sha256)"' <<<"$output")"
}

@test "verify: an IPv6 literal in brackets is probed over IPv6" {
	start_sni_server none.test '[::1]'
	run --separate-stderr certctl-verify "[::1]:$SNI_PORT" --expect-sha256 "$SHOP_SHA256"
	expect_status 0
	expect_equal "[::1]:$SNI_PORT|null|true" "$(jq -r '"\(.endpoint)|\(.sni)|\(.matches)"' <<<"$output")"
}

@test "verify: a closed port is unavailable: exit 69 at once, nothing on stdout" {
	port=$(free_port)
	start=$(now_ms)
	run --separate-stderr certctl-verify "127.0.0.1:$port" --timeout 5
	elapsed=$(($(now_ms) - start))
	expect_status 69
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "127.0.0.1:$port: connect: Connection refused"
	[ "$elapsed" -lt 5000 ] || { echo "took ${elapsed} ms"; return 1; }
}

@test "verify: --timeout bounds a handshake with a server that never speaks TLS: exit 69 after about that long" {
	start_silent_listener
	start=$(now_ms)
	run --separate-stderr certctl-verify "127.0.0.1:$SILENT_PORT" --timeout 2
	elapsed=$(($(now_ms) - start))
	expect_status 69
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "TLS handshake timed out after 2 s"
	[ "$elapsed" -ge 1900 ] && [ "$elapsed" -lt 4000 ] || { echo "took ${elapsed} ms"; return 1; }
}

@test "verify: a server that closes the connection is a failed handshake: exit 69" {
	port=$(free_port)
	# Accepts one connection and closes it straight away.
	nc -dl 127.0.0.1 "$port" </dev/null >/dev/null 2>&1 3>&- &
	HELPER_PID=$!
	sleep 0.3
	run --separate-stderr certctl-verify "127.0.0.1:$port" --timeout 5
	expect_status 69
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "TLS handshake"
}

@test "verify: SIGTERM during a probe stops it with exit 75" {
	start_silent_listener
	start=$(now_ms)
	certctl-verify "127.0.0.1:$SILENT_PORT" --timeout 30 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	pid=$!
	# Signal only once it is in the handshake (connected), not while it starts up.
	for _ in $(seq 1 100); do
		[ -n "$(ss -Htn state established "( dport = :$SILENT_PORT )")" ] && break
		sleep 0.05
	done
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	elapsed=$(($(now_ms) - start))
	expect_status 75
	expect_contains "$(cat "$BATS_TEST_TMPDIR/err")" "interrupted by a signal"
	[ "$elapsed" -lt 5000 ] || { echo "took ${elapsed} ms"; return 1; }
}

@test "verify: --certificate compares with the newest version in the database" {
	fresh_database
	insert_certificate mc-shop "v-old:$OTHER_SHA256:-1 day" "v-new:$SHOP_SHA256:0 seconds"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --certificate mc-shop
	expect_status 0
	expect_equal "true|$SHOP_SHA256" "$(jq -r '"\(.matches)|\(.fingerprint_sha256)"' <<<"$output")"
}

@test "verify: --certificate whose newest version is another certificate is a mismatch (ties broken by id)" {
	fresh_database
	# Same created_at: the higher id is the current version.
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
	sql "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
	       fingerprint_sha256, cert_pem, created_at)
	     VALUES ('v-a', 'mc-shop', '1', now(), now(), '$SHOP_SHA256', 'pem', '2026-01-01Z'),
	            ('v-b', 'mc-shop', '2', now(), now(), '$OTHER_SHA256', 'pem', '2026-01-01Z')"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --certificate mc-shop
	expect_status 1
	expect_equal false "$(jq -r .matches <<<"$output")"
	expect_contains "$stderr" "expected $OTHER_SHA256"
}

@test "verify: an unknown certificate is exit 66 before any probe" {
	fresh_database
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --certificate mc-nope
	expect_status 66
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "mc-nope: no such certificate"
}

@test "verify: a certificate without any version is exit 66" {
	fresh_database
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-empty')"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --certificate mc-empty
	expect_status 66
	expect_contains "$stderr" "mc-empty: certificate has no version"
}

@test "verify: a stored fingerprint that is not SHA-256 hex is bad data: exit 65" {
	fresh_database
	insert_certificate mc-bad "v1:not-a-fingerprint:0 seconds"
	run --separate-stderr certctl-verify "127.0.0.1:$NGINX_PORT" --certificate mc-bad
	expect_status 65
	expect_one_line_error certctl-verify
}

@test "verify: --certificate with an unreachable database is exit 69; --dsn wins over the environment" {
	fresh_database
	insert_certificate mc-shop "v1:$SHOP_SHA256:0 seconds"
	run --separate-stderr certctl-verify --dsn "host=127.0.0.1 port=$(free_port) dbname=x connect_timeout=2" \
		"127.0.0.1:$NGINX_PORT" --certificate mc-shop
	expect_status 69
	expect_one_line_error certctl-verify
	CERTCTL_DSN="host=127.0.0.1 port=$(free_port)" run --separate-stderr certctl-verify \
		-d "dbname=$PGDATABASE" "127.0.0.1:$NGINX_PORT" --certificate mc-shop
	expect_status 0
}

@test "verify: without --certificate no database is needed" {
	PGHOST=/nonexistent PGPORT=1 CERTCTL_DSN="host=/nonexistent" run --separate-stderr \
		certctl-verify "127.0.0.1:$NGINX_PORT" --expect-sha256 "$SHOP_SHA256"
	expect_status 0
	expect_equal true "$(jq -r .matches <<<"$output")"
}

@test "verify: a missing --ca-file is exit 66 and one that holds no certificate exit 65, before connecting" {
	start_silent_listener
	run --separate-stderr certctl-verify "127.0.0.1:$SILENT_PORT" --ca-file "$BATS_TEST_TMPDIR/none.pem"
	expect_status 66
	expect_one_line_error certctl-verify
	echo "not a certificate" > "$BATS_TEST_TMPDIR/junk.pem"
	run --separate-stderr certctl-verify "127.0.0.1:$SILENT_PORT" --ca-file "$BATS_TEST_TMPDIR/junk.pem"
	expect_status 65
	expect_one_line_error certctl-verify
	expect_contains "$stderr" "junk.pem: no usable CA certificate"
}

@test "verify: usage errors are exit 64 and checked before the database is contacted" {
	export CERTCTL_DSN="host=127.0.0.1 port=$(free_port)"
	for args in "" "localhost" "::1:443" "[::1]443" "host:0" "host:65536" "host:https" \
		"127.0.0.1:1 extra" "127.0.0.1:1 --timeout 0" "127.0.0.1:1 --timeout x" \
		"127.0.0.1:1 --expect-sha256 abc" "127.0.0.1:1 --expect-sha256 $SHOP_SHA256 --certificate mc-x" \
		"nohost --certificate mc-x" "127.0.0.1:1 --bogus"; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-verify $args
		expect_status 64 || { echo "args: $args"; return 1; }
		expect_one_line_error certctl-verify || { echo "args: $args"; return 1; }
	done
}

@test "verify: --help prints the usage on stdout; --version the name and version" {
	run --separate-stderr certctl-verify --help
	expect_status 0
	expect_contains "$output" "usage: certctl-verify"
	run --separate-stderr certctl-verify --version
	expect_status 0
	expect_contains "$output" "certctl-verify "
}
