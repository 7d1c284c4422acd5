#!/usr/bin/env bats
# certctl-verify --all: every active target's endpoint probed, what it serves recorded.
load helpers
load lib/pki
load lib/nginx

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" shop localhost
	make_leaf "$PKI" other localhost
	make_sealing_key
	SHOP=$(fingerprint "$PKI/shop.pem")
	OTHER=$(fingerprint "$PKI/other.pem")
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now()), ('agent-web02', now())"
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
}

teardown() {
	[ -z "${NGINX_DIR:-}" ] || stop_nginx "$NGINX_DIR"
	for pid in ${HELPER_PIDS:-}; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done || :
}

# add_target ID AGENT ENDPOINT: a target of mc-shop probed at ENDPOINT.
add_target() {
	psql -XAtq -v ON_ERROR_STOP=1 -v id="$1" -v agent="$2" \
		-v config="$(jq -cn --arg e "$3" '{cert_path: "/nonexistent/cert.pem", key_path: "/nonexistent/key.pem", verify_endpoint: $e, verify_sni: "localhost"}')" <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id, config) VALUES (:'id', 'file', :'agent', :'config');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-shop', :'id');
	SQL
}

# nginx serving shop; openssl s_server serving other; a port nobody listens on.
three_endpoints() {
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" --chain "$PKI/chain.pem" >/dev/null
	cat "$PKI/shop.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/shop-full.pem"
	NGINX_DIR="$BATS_TEST_TMPDIR/nginx"
	NGINX_PORT=$(free_port)
	start_nginx "$NGINX_DIR" "$NGINX_PORT" "$BATS_TEST_TMPDIR/shop-full.pem" "$PKI/shop.key"
	OTHER_PORT=$(free_port)
	openssl s_server -quiet -www -accept "127.0.0.1:$OTHER_PORT" -cert "$PKI/other.pem" -key "$PKI/other.key" \
		-cert_chain "$PKI/chain.pem" </dev/null >/dev/null 2>&1 3>&- &
	HELPER_PIDS="$HELPER_PIDS $!"
	wait_for_port "$OTHER_PORT"
	CLOSED_PORT=$(free_port)
	add_target target-nginx agent-web01 "127.0.0.1:$NGINX_PORT"
	add_target target-other agent-web01 "127.0.0.1:$OTHER_PORT"
	add_target target-closed agent-web02 "127.0.0.1:$CLOSED_PORT"
}

line() {
	jq -c --arg t "$1" 'select(.target_id == $t)' <<<"$output"
}

@test "verify --all: nginx, another certificate and a closed port: three lines, fingerprints and the error recorded, exit 69" {
	three_endpoints
	run --separate-stderr certctl-verify --all
	expect_status 69
	expect_equal 3 "$(wc -l <<<"$output")" "lines"
	expect_equal "$SHOP|true|localhost" "$(line target-nginx | jq -r '"\(.served_fingerprint)|\(.matches)|\(.sni)"')" "nginx"
	expect_equal "$OTHER|false" "$(line target-other | jq -r '"\(.served_fingerprint)|\(.matches)"')" "other"
	expect_equal "null" "$(line target-closed | jq -r .served_fingerprint)" "closed"
	expect_contains "$(line target-closed | jq -r .error)" "127.0.0.1:$CLOSED_PORT: connect: Connection refused"
	expect_equal 2 "$(grep -c . <<<"$stderr")" "stderr lines: $stderr"
	expect_contains "$stderr" "certctl-verify: target-other: 127.0.0.1:$OTHER_PORT serves $OTHER"
	expect_contains "$stderr" "certctl-verify: target-closed: 127.0.0.1:$CLOSED_PORT: connect: Connection refused"
	expect_equal "target-closed||t|127.0.0.1:$CLOSED_PORT: connect: Connection refused
target-nginx|$SHOP|t|
target-other|$OTHER|t|" \
		"$(sql "SELECT target_id, served_fingerprint, probed_at <= now(), error FROM target_probes ORDER BY target_id")" "target_probes"
}

@test "verify --all: a failed probe keeps the last fingerprint read and records the new error" {
	three_endpoints
	run --separate-stderr certctl-verify --all
	before=$(sql "SELECT served_at FROM target_probes WHERE target_id = 'target-nginx'")
	stop_nginx "$NGINX_DIR"
	run --separate-stderr certctl-verify --all --agent agent-web01
	expect_status 69
	expect_equal "$SHOP|$before|t" \
		"$(sql "SELECT served_fingerprint, served_at, probed_at > served_at FROM target_probes WHERE target_id = 'target-nginx'")" "kept"
	expect_contains "$(sql "SELECT error FROM target_probes WHERE target_id = 'target-nginx'")" "Connection refused"
}

@test "verify --all: only mismatches (exit 1); only matches (exit 0); retired targets and targets without an endpoint are not probed" {
	three_endpoints
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-closed'"
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-no-endpoint', 'file', 'agent-web01')"
	run --separate-stderr certctl-verify --all
	expect_status 1
	expect_equal "target-nginx target-other" "$(jq -r .target_id <<<"$output" | tr '\n' ' ' | sed 's/ $//')" "probed"
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-other'"
	run --separate-stderr certctl-verify --all
	expect_status 0
	expect_equal "" "$stderr" "stderr"
}

@test "verify --all: silent endpoints are probed in parallel, each within its timeout" {
	certctl-import --certificate mc-shop --cert "$PKI/shop.pem" --key "$PKI/shop.key" --chain "$PKI/chain.pem" >/dev/null
	for i in 1 2 3 4; do
		port=$(free_port)
		nc -dlk 127.0.0.1 "$port" >/dev/null 2>&1 3>&- &
		HELPER_PIDS="$HELPER_PIDS $!"
		wait_for_port "$port"
		add_target "target-silent-$i" agent-web01 "127.0.0.1:$port"
	done
	start=$SECONDS
	run --separate-stderr certctl-verify --all --timeout 2 --parallel 4
	elapsed=$((SECONDS - start))
	expect_status 69
	expect_equal 4 "$(jq -r .error <<<"$output" | grep -c 'TLS handshake timed out after 2 s')" "timeouts: $output"
	# one after the other they would take 8 s
	[ "$elapsed" -lt 6 ] || { echo "took $elapsed s"; return 1; }
}

@test "verify --all --agent as the agent's own role probes and records its targets only; another agent's is 77" {
	three_endpoints
	enroll_agent agent-web01
	enroll_agent agent-web02
	run --separate-stderr as_agent agent-web02 certctl-verify --all --agent agent-web02
	expect_status 69
	expect_equal target-closed "$(jq -r .target_id <<<"$output")" "agent-web02's probes"
	expect_equal target-closed "$(sql "SELECT string_agg(target_id, ',') FROM target_probes")" "recorded"
	run --separate-stderr as_agent agent-web02 certctl-verify --all --agent agent-web01
	expect_status 77
	expect_one_line_error certctl-verify
	expect_equal target-closed "$(sql "SELECT string_agg(target_id, ',') FROM target_probes")" "recorded after the refusal"
}

@test "verify --all: a malformed verify_endpoint is 78 for that target; the others are probed" {
	three_endpoints
	sql "UPDATE deployment_targets SET config = config || '{\"verify_endpoint\": \"no-port\"}' WHERE id = 'target-closed'"
	run --separate-stderr certctl-verify --all
	expect_status 78
	expect_equal 3 "$(wc -l <<<"$output")" "lines"
	expect_contains "$(line target-closed | jq -r .error)" "endpoint must be HOST:PORT"
}

@test "verify --all: usage errors are 64 before the database is asked" {
	run --separate-stderr certctl-verify --all 127.0.0.1:443
	expect_status 64
	run --separate-stderr certctl-verify --all --expect-sha256 "$SHOP"
	expect_status 64
	run --separate-stderr certctl-verify --agent agent-web01 127.0.0.1:443
	expect_status 64
	run --separate-stderr certctl-verify --all --parallel 0
	expect_status 64
	run --separate-stderr certctl-verify --all --agent agent-nope
	expect_status 66
}
