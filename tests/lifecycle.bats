#!/usr/bin/env bats
# The certificate lifecycle end to end, against pebble with each ACME adapter:
# certctl-renew makes the job, the agent's pipeline (certctl-claim |
# certctl-csr | certctl-deploy) submits a CSR for a key it keeps, certctl-issue
# runs the adapter (real HTTP-01 on loopback), and the next pipeline run puts
# the certificate on a real nginx, which then serves it, verified against
# pebble's root from its management port. Then the same for a renewal.
load helpers
load lib/pki
load lib/nginx
load lib/pebble

setup_file() {
	export ISSUERS="$TESTS_DIR/../contrib/issuers"
	pebble_setup_file
}

teardown_file() {
	pebble_teardown_file
}

setup() {
	fresh_database
	make_sealing_key
	D="$BATS_TEST_TMPDIR/www"
	mkdir -p "$D" "$BATS_TEST_TMPDIR/tmp"
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now())"
	enroll_agent agent-web01
}

teardown() {
	[ -z "${NGINX_DIR:-}" ] || stop_nginx "$NGINX_DIR"
}

# issuer_command ADAPTER: the issuer's argv as JSON, pebble's URL and CA in
# it, the client's state and scratch files in this test's directory.
issuer_command() {
	local challenge
	case $1 in
	lego) challenge='["--http","--http.port","127.0.0.1:'"$HTTP_PORT"'"]' ;;
	certbot) challenge='["--standalone","--http-01-address","127.0.0.1","--http-01-port","'"$HTTP_PORT"'"]' ;;
	uacme) challenge='["--hook","'"$ISSUERS/uacme-http01"'"]' ;;
	esac
	jq -cn --arg adapter "$ISSUERS/$1" --arg url "$PEBBLE_URL" --arg ca "$PEBBLE_CA_BUNDLE" \
		--arg state "$BATS_TEST_TMPDIR/issuer-state" --arg tmp "$BATS_TEST_TMPDIR/tmp" \
		--arg listen "127.0.0.1:$HTTP_PORT" --argjson challenge "$challenge" \
		'["env", ("CERTCTL_ISSUER_STATE=" + $state), ("TMPDIR=" + $tmp), ("UACME_HTTP01_LISTEN=" + $listen),
		  $adapter, "--server", $url, "--email", "ops@shop.example", "--ca-bundle", $ca, "--"] + $challenge'
}

# managed_certificate ADAPTER KEY_MODE: the issuer, mc-shop using it, and an
# nginx target of agent-web01 for it, serving a throw-away certificate first.
managed_certificate() {
	local adapter=$1 key_mode=$2
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" v0 shop.example
	NGINX_DIR="$BATS_TEST_TMPDIR/nginx"
	PORT=$(free_port)
	cat "$PKI/v0.pem" "$PKI/chain.pem" > "$D/cert.pem"
	cp "$PKI/v0.key" "$D/key.pem"
	start_nginx "$NGINX_DIR" "$PORT" "$D/cert.pem" "$D/key.pem" shop.example
	jq -cn --arg adapter "$adapter" --argjson command "$(issuer_command "$adapter")" --arg mode "$key_mode" '
		{kind: "issuer", id: "iss-pebble", name: ("pebble via " + $adapter), type: "command",
		 config: {command: $command, timeout: 120}},
		{kind: "certificate", id: "mc-shop", common_name: "shop.example",
		 sans: ["shop.example", "www.shop.example"], key_mode: $mode, issuer_id: "iss-pebble"}' |
		certctl-import >/dev/null
	psql -XAtq -v ON_ERROR_STOP=1 -v config="$(jq -cn --arg d "$D" \
		--argjson v "$(nginx_validate_argv "$NGINX_DIR")" --argjson r "$(nginx_reload_argv "$NGINX_DIR")" \
		'{cert_path: ($d + "/cert.pem"), key_path: ($d + "/key.pem"), validate_command: $v, reload_command: $r}')" <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id, config) VALUES ('target-web01-nginx', 'nginx', 'agent-web01', :'config');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-shop', 'target-web01-nginx');
	SQL
}

# The agent's pipeline, once, as its own role.
agent_pipeline() {
	set -o pipefail
	as_agent agent-web01 certctl-claim --agent agent-web01 --limit 10 |
		as_agent agent-web01 certctl-csr |
		as_agent agent-web01 certctl-deploy
}

# renew_and_deploy TYPE: certctl-renew makes one job of TYPE; for an agent
# key the pipeline submits its CSR; certctl-issue issues; the pipeline
# deploys. Ends with nginx serving the new version.
renew_and_deploy() {
	local type=$1 before
	before=$(served_fingerprint "$PORT" shop.example)
	run --separate-stderr certctl-renew
	expect_status 0
	expect_equal "$type" "$(jq -r .type <<<"$output")" "job type"
	if [ "$(sql "SELECT key_mode FROM managed_certificates WHERE id = 'mc-shop'")" = agent ]; then
		run --separate-stderr agent_pipeline
		expect_status 0
		expect_equal Pending "$(sql "SELECT status FROM jobs WHERE type = '$type'")" "after the CSR"
	fi
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")" "issue: $output $stderr"
	fingerprint=$(jq -r .fingerprint_sha256 <<<"$output")
	run --separate-stderr agent_pipeline
	expect_status 0
	wait_served_fingerprint "$PORT" "$fingerprint"
	[ "$fingerprint" != "$before" ]
	# What nginx serves chains to pebble's root, for both names.
	for name in shop.example www.shop.example; do
		openssl s_client -connect "127.0.0.1:$PORT" -servername "$name" -showcerts </dev/null 2>/dev/null |
			sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' > "$BATS_TEST_TMPDIR/served.pem"
		run openssl verify -CAfile "$PEBBLE_ROOT" -untrusted "$BATS_TEST_TMPDIR/served.pem" \
			-verify_hostname "$name" "$BATS_TEST_TMPDIR/served.pem"
		expect_status 0
	done
}

# Makes the current version due: renew_before longer than its lifetime.
make_due() {
	sql "UPDATE managed_certificates SET renew_before = interval '100 years' WHERE id = 'mc-shop'" >/dev/null
}

lifecycle() {
	managed_certificate "$1" "$2"
	renew_and_deploy Issuance
	make_due
	renew_and_deploy Renewal
	expect_equal 2 "$(sql "SELECT count(*) FROM certificate_versions WHERE certificate_id = 'mc-shop'")" "versions"
}

@test "lifecycle: lego issues and renews an agent-key certificate, deployed to nginx" {
	lifecycle lego agent
}

@test "lifecycle: certbot issues and renews a central-key certificate, deployed to nginx" {
	lifecycle certbot central
}

@test "lifecycle: uacme issues and renews an agent-key certificate, deployed to nginx" {
	lifecycle uacme agent
}
