#!/usr/bin/env bats
# The ACME issuer adapters (contrib/issuers/lego, certbot, uacme) as
# certctl-issue runs them: a CSR in CERTCTL_CSR_FILE, the leaf and its chain
# out in CERTCTL_CERT_FILE, against a real pebble validating HTTP-01 on a
# loopback port where the client itself listens.
load helpers
load lib/pki
load lib/pebble

setup_file() {
	export ISSUERS="$TESTS_DIR/../contrib/issuers"
	pebble_setup_file
}

teardown_file() {
	pebble_teardown_file
}

setup() {
	export CERTCTL_ISSUER_STATE="$BATS_TEST_TMPDIR/state" TMPDIR="$BATS_TEST_TMPDIR/tmp"
	mkdir -p "$TMPDIR" "$BATS_TEST_TMPDIR/out"
	export CERTCTL_CSR_FILE="$BATS_TEST_TMPDIR/request.pem"
	export CERTCTL_CERT_FILE="$BATS_TEST_TMPDIR/out/issued.pem"
	export CERTCTL_CERTIFICATE_ID=mc-shop CERTCTL_COMMON_NAME=shop.example
	export CERTCTL_SANS="shop.example www.shop.example"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$BATS_TEST_TMPDIR/request.key" -subj "/CN=$CERTCTL_COMMON_NAME" \
		-addext "subjectAltName=DNS:shop.example,DNS:www.shop.example" \
		-out "$CERTCTL_CSR_FILE" 2>/dev/null
}

teardown() {
	if [ -f "$BATS_TEST_TMPDIR/shared" ]; then
		rm -rf "$(cat "$BATS_TEST_TMPDIR/shared")"
	fi
}

# The client arguments that make each client answer HTTP-01 on $1.
challenge_args() {
	case $1 in
	lego) echo --http --http.port "127.0.0.1:$2" ;;
	certbot) echo --standalone --http-01-address 127.0.0.1 --http-01-port "$2" ;;
	uacme) echo --hook "$ISSUERS/uacme-http01" ;;
	esac
}

# issue ADAPTER [SERVER [CHALLENGE_PORT]]: runs the adapter as certctl-issue
# does (argv, stdin /dev/null), stdout and stderr apart.
issue() {
	local adapter=$1 server=${2:-$PEBBLE_URL} port=${3:-$HTTP_PORT}
	# shellcheck disable=SC2046
	run --separate-stderr env UACME_HTTP01_LISTEN="127.0.0.1:$port" \
		"$ISSUERS/$adapter" --server "$server" --email ops@shop.example \
		--ca-bundle "$PEBBLE_CA_BUNDLE" -- $(challenge_args "$adapter" "$port") </dev/null
}

dns_names() {
	openssl "$1" -in "$2" -noout -text | grep -o 'DNS:[^,[:space:]]*' | sort | tr '\n' ' '
}

# The Nth certificate (1-based) of a PEM file.
nth_certificate() {
	awk -v n="$1" '/-----BEGIN CERTIFICATE-----/ { i++ } i == n { print } /-----END CERTIFICATE-----/ && i == n { exit }' "$2"
}

expect_issued() {
	local adapter=$1 cert=$CERTCTL_CERT_FILE
	expect_status 0
	expect_equal "" "$output" "stdout"
	expect_equal "" "$stderr" "stderr"
	# The leaf first, then pebble's intermediate: what its management port hands out.
	nth_certificate 1 "$cert" > "$BATS_TEST_TMPDIR/leaf.pem"
	nth_certificate 2 "$cert" > "$BATS_TEST_TMPDIR/chain.pem"
	expect_equal 2 "$(grep -c -- '-----BEGIN CERTIFICATE-----' "$cert")" "certificates in $cert"
	expect_equal "$(openssl x509 -in "$PEBBLE_INTERMEDIATE" -outform DER | sha256sum)" \
		"$(openssl x509 -in "$BATS_TEST_TMPDIR/chain.pem" -outform DER | sha256sum)" "chain"
	expect_equal "$(openssl req -in "$CERTCTL_CSR_FILE" -noout -pubkey)" \
		"$(openssl x509 -in "$BATS_TEST_TMPDIR/leaf.pem" -noout -pubkey)" "leaf public key"
	expect_equal "$(dns_names req "$CERTCTL_CSR_FILE")" "$(dns_names x509 "$BATS_TEST_TMPDIR/leaf.pem")" "names"
	run openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$BATS_TEST_TMPDIR/chain.pem" \
		-purpose sslserver "$BATS_TEST_TMPDIR/leaf.pem"
	expect_status 0
	# pebble fetched each name's token from the client's own listener.
	for name in shop.example www.shop.example; do
		grep -q "Attempting to validate w/ HTTP: http://$name:$HTTP_PORT/.well-known/acme-challenge/" \
			"$BATS_FILE_TMPDIR/pebble/pebble.log" || { echo "pebble never validated $name over HTTP"; return 1; }
	done
	expect_state_private "$adapter"
	expect_no_leftovers
}

# The client's state directory is 0700 and nothing in it is readable by others.
expect_state_private() {
	expect_equal 700 "$(stat -c %a "$CERTCTL_ISSUER_STATE/$1")" "mode of $CERTCTL_ISSUER_STATE/$1"
	expect_equal "" "$(find "$CERTCTL_ISSUER_STATE/$1" -perm /077 ! -type l)" "files others may read"
}

# No run directory, no temporary file beside the result, no listener left.
expect_no_leftovers() {
	expect_equal "" "$(ls -A "$TMPDIR")" "left in TMPDIR"
	expect_equal "" "$(find "$(dirname "$CERTCTL_CERT_FILE")" -name "$(basename "$CERTCTL_CERT_FILE").*")" "temporary files"
	if (exec 3<>"/dev/tcp/127.0.0.1/$HTTP_PORT") 2>/dev/null; then
		echo "something still listens on the challenge port $HTTP_PORT"
		return 1
	fi
}

# A pebble that has stopped: the adapter fails, says why in one line, and
# leaves the previous certificate file as it was.
expect_failure_with_pebble_stopped() {
	local adapter=$1
	start_pebble "$BATS_TEST_TMPDIR/pebble" "$HTTP_PORT"
	stop_pebble "$BATS_TEST_TMPDIR/pebble"
	cp "$BATS_FILE_TMPDIR/pebble/tls/pebble.pem" "$CERTCTL_CERT_FILE"
	issue "$adapter"
	expect_status 1
	expect_one_line_error "$adapter"
	expect_contains "$stderr" "$adapter exited "
	cmp "$BATS_FILE_TMPDIR/pebble/tls/pebble.pem" "$CERTCTL_CERT_FILE"
	expect_no_leftovers
	# The client's whole output stays for the operator, readable by no one else.
	expect_equal 600 "$(stat -c %a "$CERTCTL_ISSUER_STATE/$adapter/last-failure.log")" "mode of last-failure.log"
	expect_state_private "$adapter"
}

@test "issuers: each ACME adapter prints its usage line; a missing --email is a usage error" {
	for adapter in lego certbot uacme; do
		run --separate-stderr "$ISSUERS/$adapter" --help
		expect_status 0
		expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "usage lines"
		expect_contains "$output" "usage: $adapter --server URL --email ADDR [--ca-bundle FILE] [-- ${adapter^^}-"
		run --separate-stderr "$ISSUERS/$adapter" --server "$PEBBLE_URL"
		expect_status 64
		expect_contains "$stderr" "usage: $adapter --server URL"
		run --separate-stderr "$ISSUERS/$adapter" --server "$PEBBLE_URL" --email ops@shop.example \
			--ca-bundle "$BATS_TEST_TMPDIR/no-such-bundle.pem"
		expect_status 66
		expect_one_line_error "$adapter"
	done
}

@test "issuers: a file that is no CSR is bad input (65) and nothing is written" {
	echo "not a request" > "$CERTCTL_CSR_FILE"
	for adapter in lego certbot uacme; do
		issue "$adapter"
		expect_status 65
		expect_one_line_error "$adapter"
		[ ! -e "$CERTCTL_CERT_FILE" ]
	done
}

@test "issuers: lego issues for the CSR over real HTTP-01, leaf then chain" {
	issue lego
	expect_issued lego
}

@test "issuers: certbot issues for the CSR over real HTTP-01, leaf then chain" {
	issue certbot
	expect_issued certbot
}

@test "issuers: uacme issues for the CSR over real HTTP-01 with the uacme-http01 hook" {
	issue uacme
	expect_issued uacme
}

@test "issuers: an account is made once and used again; its directory is kept 0700" {
	issue certbot
	expect_status 0
	accounts=$(find "$CERTCTL_ISSUER_STATE/certbot/config/accounts" -name regr.json | wc -l)
	rm "$CERTCTL_CERT_FILE"
	# An operator's chmod is undone: the state holds the account key.
	chmod 0755 "$CERTCTL_ISSUER_STATE/certbot"
	issue certbot
	expect_issued certbot
	expect_equal "$accounts" "$(find "$CERTCTL_ISSUER_STATE/certbot/config/accounts" -name regr.json | wc -l)" "accounts"
}

@test "issuers: a challenge pebble cannot reach fails with what pebble saw" {
	# The client listens on another port than the one pebble validates on.
	for adapter in certbot uacme; do
		issue "$adapter" "$PEBBLE_URL" "$(free_port)"
		expect_status 1
		expect_one_line_error "$adapter"
		expect_contains "$stderr" ":$HTTP_PORT/.well-known/acme-challenge/"
		expect_contains "$stderr" "connection refused"
		[ ! -e "$CERTCTL_CERT_FILE" ]
		expect_no_leftovers
	done
}

@test "issuers: lego fails cleanly when pebble has stopped" {
	expect_failure_with_pebble_stopped lego
}

@test "issuers: certbot fails cleanly when pebble has stopped" {
	expect_failure_with_pebble_stopped certbot
}

@test "issuers: uacme fails cleanly when pebble has stopped" {
	expect_failure_with_pebble_stopped uacme
}

@test "issuers: uacme run by an unprivileged user trusts --ca-bundle in a user namespace" {
	# The bats directories are root's alone: this test's files live in one
	# that user nobody can reach.
	shared=$(mktemp -d /tmp/certctl-issuers.XXXXXX)
	echo "$shared" > "$BATS_TEST_TMPDIR/shared"
	chmod 0755 "$shared"
	install -d -o nobody "$shared/state" "$shared/out" "$shared/tmp"
	install -m 0644 "$CERTCTL_CSR_FILE" "$shared/request.pem"
	install -m 0644 "$PEBBLE_CA_BUNDLE" "$shared/ca.pem"
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups \
		env TMPDIR="$shared/tmp" CERTCTL_ISSUER_STATE="$shared/state" \
		CERTCTL_CSR_FILE="$shared/request.pem" CERTCTL_CERT_FILE="$shared/out/issued.pem" \
		UACME_HTTP01_LISTEN="127.0.0.1:$HTTP_PORT" \
		"$ISSUERS/uacme" --server "$PEBBLE_URL" --email ops@shop.example --ca-bundle "$shared/ca.pem" \
		-- --hook "$ISSUERS/uacme-http01" </dev/null
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	run openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$shared/out/issued.pem" "$shared/out/issued.pem"
	expect_status 0
	expect_equal nobody "$(stat -c %U "$shared/state/uacme")" "owner of the state"
	expect_equal 700 "$(stat -c %a "$shared/state/uacme")" "mode of the state"
}

@test "issuers: make install puts the adapters in share/certctl/issuers, and they run from there" {
	dest="$BATS_TEST_TMPDIR/root"
	run make -s -C "$TESTS_DIR/.." BUILD="$(dirname "$CERTCTL_BIN")" PREFIX=/usr DESTDIR="$dest" install
	expect_status 0
	for adapter in lego certbot uacme uacme-http01; do
		expect_equal 755 "$(stat -c %a "$dest/usr/share/certctl/issuers/$adapter")" "mode of $adapter"
	done
	expect_equal 644 "$(stat -c %a "$dest/usr/share/certctl/issuers/acme.sh")" "mode of acme.sh"
	CERTCTL_CERT_FILE="$BATS_TEST_TMPDIR/installed.pem"
	run --separate-stderr env UACME_HTTP01_LISTEN="127.0.0.1:$HTTP_PORT" \
		"$dest/usr/share/certctl/issuers/uacme" --server "$PEBBLE_URL" --email ops@shop.example \
		--ca-bundle "$PEBBLE_CA_BUNDLE" -- --hook "$dest/usr/share/certctl/issuers/uacme-http01" </dev/null
	expect_status 0
	run openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$CERTCTL_CERT_FILE" "$CERTCTL_CERT_FILE"
	expect_status 0
}

@test "issuers: uacme-http01 answers its tokens on the address given, 404 to others, and stops after the last" {
	port=$(free_port)
	export UACME_HTTP01_DIR="$BATS_TEST_TMPDIR/http01" UACME_HTTP01_LISTEN="[::1]:$port"
	"$ISSUERS/uacme-http01" begin http-01 shop.example tokenA tokenA.thumbprint
	"$ISSUERS/uacme-http01" begin http-01 www.shop.example tokenB tokenB.thumbprint
	expect_equal tokenA.thumbprint "$(curl -fsS -g "http://[::1]:$port/.well-known/acme-challenge/tokenA")" "tokenA"
	expect_equal tokenB.thumbprint "$(curl -fsS -g "http://[::1]:$port/.well-known/acme-challenge/tokenB")" "tokenB"
	expect_equal 404 "$(curl -s -g -o /dev/null -w '%{http_code}' "http://[::1]:$port/.well-known/acme-challenge/tokenC")" "unknown token"
	expect_equal 700 "$(stat -c %a "$UACME_HTTP01_DIR")" "mode of its directory"
	# Other challenge types are declined, so uacme moves on to HTTP-01.
	run "$ISSUERS/uacme-http01" begin dns-01 shop.example tokenD digest
	expect_status 1
	"$ISSUERS/uacme-http01" done http-01 shop.example tokenA tokenA.thumbprint
	expect_equal 404 "$(curl -s -g -o /dev/null -w '%{http_code}' "http://[::1]:$port/.well-known/acme-challenge/tokenA")" "a finished token"
	"$ISSUERS/uacme-http01" failed http-01 www.shop.example tokenB tokenB.thumbprint
	run curl -s -g "http://[::1]:$port/"
	expect_status 7
}

@test "issuers: uacme-http01's responder stops by itself when uacme is gone without a done" {
	port=$(free_port)
	export UACME_HTTP01_DIR="$BATS_TEST_TMPDIR/http01" UACME_HTTP01_LISTEN="127.0.0.1:$port"
	# sh stands in for uacme: it runs the hook, then dies without calling "done".
	sh -c '"$0" begin http-01 shop.example tokenA tokenA.thumbprint; exit 0' "$ISSUERS/uacme-http01"
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 0
		sleep 0.1
	done
	echo "the responder still listens on $port"
	return 1
}
