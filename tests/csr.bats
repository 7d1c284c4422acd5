#!/usr/bin/env bats
# certctl-csr: keys made on the agent (key_mode agent), their CSRs submitted,
# and certctl-deploy putting the certificate issued for them on a real nginx.
# Every command runs as the agent's own role; the test plays the issuer.
load helpers
load lib/pki
load lib/nginx
load lib/keyless

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" v0 localhost
	export CERTCTL_KEY_DIR="$BATS_TEST_TMPDIR/keys"
	STORE="$CERTCTL_KEY_DIR/mc-shop"
	D="$BATS_TEST_TMPDIR/www"
	mkdir -p "$D"
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now())"
	enroll_agent agent-web01
	sql "INSERT INTO managed_certificates (id, common_name, sans, key_mode)
	     VALUES ('mc-shop', 'localhost', '{localhost,127.0.0.1,www.shop.example}', 'agent')"
}

teardown() {
	[ -z "${NGINX_DIR:-}" ] || stop_nginx "$NGINX_DIR"
}

# A target of agent-web01 for mc-shop: files in $D, or (nginx) a running nginx serving v0 from them.
add_target() {
	local config type=file
	config=$(jq -cn --arg d "$D" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")}')
	if [ "${1:-}" = nginx ]; then
		type=nginx
		NGINX_DIR="$BATS_TEST_TMPDIR/nginx"
		PORT=$(free_port)
		cat "$PKI/v0.pem" "$PKI/chain.pem" > "$D/cert.pem"
		cp "$PKI/v0.key" "$D/key.pem"
		start_nginx "$NGINX_DIR" "$PORT" "$D/cert.pem" "$D/key.pem"
		config=$(jq -c --argjson v "$(nginx_validate_argv "$NGINX_DIR")" --argjson r "$(nginx_reload_argv "$NGINX_DIR")" \
			--arg e "127.0.0.1:$PORT" '. + {validate_command: $v, reload_command: $r, verify_endpoint: $e, verify_sni: "localhost"}' <<<"$config")
	fi
	psql -XAtq -v ON_ERROR_STOP=1 -v type="$type" -v config="$config" <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id, config) VALUES ('target-web01', :'type', 'agent-web01', :'config');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-shop', 'target-web01');
	SQL
}

# awaiting_csr JOB [TYPE [AGENT]]: what certctl-renew makes for an agent-mode certificate.
awaiting_csr() {
	sql "INSERT INTO jobs (id, type, status, certificate_id, agent_id)
	     VALUES ('$1', '${2:-Issuance}', 'AwaitingCSR', 'mc-shop', '${3:-agent-web01}')"
}

# The agent unit's pipeline.
agent_pipeline() {
	set -o pipefail
	as_agent agent-web01 certctl-claim --agent agent-web01 --limit 10 |
		as_agent agent-web01 certctl-csr | as_agent agent-web01 certctl-deploy
}

# The issuer's part, done by hand: sign job's CSR as NAME, store it keyless, finish the job, enqueue.
issue_for() {
	local job=$1 name=$2
	sql "SELECT csr_pem FROM job_csrs WHERE job_id = '$job'" > "$PKI/$name.csr"
	sign_csr "$PKI" "$name" "$PKI/$name.csr"
	store_keyless_version mc-shop "$PKI/$name.pem" "$PKI/chain.pem" >/dev/null
	sql "UPDATE jobs SET status = 'Completed', completed_at = now() WHERE id = '$job'"
	certctl-enqueue --certificate mc-shop >/dev/null
}

# The names in the key store, in order, one line.
store_listing() {
	ls -A "$STORE" | paste -sd' ' -
}

# needle_hits PEM_LINE SCALAR_HEX: "HITS in COLUMNS" over every text, json and bytea column.
needle_hits() {
	as_superuser psql -XAtq -v ON_ERROR_STOP=1 -v pem_line="$1" -v scalar="$2" <<-'SQL'
	CREATE TEMP TABLE needles AS SELECT :'pem_line'::text AS pem_line, :'scalar'::text AS scalar;
	DO $$
	DECLARE c record; hits bigint; total bigint := 0; columns int := 0;
	BEGIN
	    FOR c IN SELECT table_name, column_name, data_type FROM information_schema.columns
	             WHERE table_schema = 'public'
	               AND data_type IN ('text', 'bytea', 'jsonb', 'json', 'ARRAY', 'character varying')
	    LOOP
	        IF c.data_type = 'bytea' THEN
	            EXECUTE format('SELECT count(*) FROM public.%I, needles'
	                           ' WHERE position(decode(scalar, ''hex'') IN %I) > 0',
	                           c.table_name, c.column_name) INTO hits;
	        ELSE
	            EXECUTE format('SELECT count(*) FROM public.%I, needles'
	                           ' WHERE strpos(%I::text, pem_line) > 0 OR strpos(lower(%I::text), scalar) > 0',
	                           c.table_name, c.column_name, c.column_name) INTO hits;
	        END IF;
	        total := total + hits;
	        columns := columns + 1;
	    END LOOP;
	    PERFORM set_config('certctl.hits', total::text || ' in ' || columns::text, false);
	END $$;
	SELECT current_setting('certctl.hits');
	SQL
}

mode_of() {
	stat -c %a "$1"
}

@test "csr: an AwaitingCSR job gets a key staged 0600 in a 0700 directory and a CSR for its names; the job goes to the issuer" {
	add_target
	awaiting_csr job-1
	# --type Deployment leaves it out: it is an Issuance job, so the agent's pipeline gives no --type
	expect_equal "" "$(as_agent agent-web01 certctl-claim --agent agent-web01 --type Deployment)" "claim --type Deployment"
	run --separate-stderr as_agent agent-web01 certctl-csr <<<"$(as_agent agent-web01 certctl-claim --agent agent-web01)"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	hash=$(jq -r .public_key_sha256 <<<"$output")
	expect_equal "{\"job_id\":\"job-1\",\"certificate_id\":\"mc-shop\",\"status\":\"CSRSubmitted\",\"public_key_sha256\":\"$hash\"}" \
		"$output" "result line"
	expect_equal "staged-$hash.key" "$(store_listing)" "key store"
	expect_equal 600 "$(mode_of "$STORE/staged-$hash.key")" "staged key mode"
	expect_equal 700 "$(mode_of "$STORE")" "certificate directory mode"
	expect_equal 700 "$(mode_of "$CERTCTL_KEY_DIR")" "key directory mode"
	expect_equal "$hash" "$(key_public_sha256 "$STORE/staged-$hash.key")" "the file's public key"
	expect_contains "$(openssl pkey -in "$STORE/staged-$hash.key" -noout -text)" "NIST CURVE: P-256"
	# Pending for certctl-issue, off the agent's queue; the CSR holds the staged key's public key and the names.
	expect_equal "Pending||$hash|agent-web01" \
		"$(sql "SELECT j.status, j.agent_id, c.public_key_sha256, c.agent_id FROM jobs j JOIN job_csrs c ON c.job_id = j.id")"
	sql "SELECT csr_pem FROM job_csrs" > "$BATS_TEST_TMPDIR/req.pem"
	openssl req -in "$BATS_TEST_TMPDIR/req.pem" -verify -noout 2>/dev/null
	text=$(openssl req -in "$BATS_TEST_TMPDIR/req.pem" -noout -text)
	expect_contains "$text" "Subject: CN = localhost"
	expect_contains "$text" "DNS:localhost, IP Address:127.0.0.1, DNS:www.shop.example"
	expect_contains "$text" "ecdsa-with-SHA256"
	expect_equal "$hash" "$(openssl req -in "$BATS_TEST_TMPDIR/req.pem" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)" \
		"CSR public key"
	expect_equal "agent-web01|Agent|job|job-1|mc-shop|$hash" \
		"$(sql "SELECT actor, actor_type, resource_type, resource_id, details->>'certificate_id', details->>'public_key_sha256' FROM audit_events WHERE action = 'csr_submitted'")"
	run --separate-stderr as_agent agent-web01 certctl-claim --agent agent-web01
	expect_equal "" "$output" "the agent's queue after the submission"
}

@test "csr: each key_type gets its own kind of key" {
	add_target
	for type in ecdsa-p384 rsa-2048 rsa-3072; do
		sql "UPDATE managed_certificates SET key_type = '$type'"
		awaiting_csr "job-$type"
		run --separate-stderr as_agent agent-web01 certctl-csr <<<"{\"id\":\"job-$type\",\"status\":\"AwaitingCSR\"}"
		expect_status 0
		key="$STORE/staged-$(jq -r .public_key_sha256 <<<"$output").key"
		case $type in
		ecdsa-p384) expect_contains "$(openssl pkey -in "$key" -noout -text)" "NIST CURVE: P-384" ;;
		rsa-2048) expect_contains "$(openssl pkey -in "$key" -noout -text)" "Private-Key: (2048 bit" ;;
		rsa-3072) expect_contains "$(openssl pkey -in "$key" -noout -text)" "Private-Key: (3072 bit" ;;
		esac
		sql "UPDATE jobs SET status = 'Completed' WHERE id = 'job-$type'"
	done
	expect_equal 3 "$(sql "SELECT count(*) FROM job_csrs")" "CSRs"
}

@test "csr: other lines pass through byte for byte, job lines and others alike" {
	add_target
	deployment='{"id":"job-d","type":"Deployment",  "status":"Running","extra":[1, 2]}'
	other='{"note": "not a job line"}'
	run --separate-stderr as_agent agent-web01 certctl-csr <<<"$deployment"$'\n'"$other"
	expect_status 0
	expect_equal "$deployment"$'\n'"$other" "$output" "passed-through lines"
	[ ! -e "$CERTCTL_KEY_DIR" ]
}

@test "csr: claim | csr | deploy puts the leaf issued for the staged key on nginx; the key in service is untouched until then" {
	add_target nginx
	served_v0=$(fingerprint "$PKI/v0.pem")
	key_v0=$(sha256sum < "$D/key.pem")
	awaiting_csr job-issue
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal CSRSubmitted "$(jq -r .status <<<"$output")" "what reaches the end of the pipeline"
	hash=$(jq -r .public_key_sha256 <<<"$output")
	# Staged only: the issuer has not answered, nginx serves v0 with the v0 key.
	expect_equal "staged-$hash.key" "$(store_listing)" "key store"
	expect_equal "$served_v0" "$(served_fingerprint "$PORT")" "served before the issuer answered"
	expect_equal "$key_v0" "$(sha256sum < "$D/key.pem")" "key in service before the issuer answered"
	# The issuer fails for good: the next runs change nothing either.
	sql "UPDATE jobs SET status = 'Failed', last_error = 'issuer failed' WHERE id = 'job-issue'"
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal "" "$output" "pipeline output after the issuer failed"
	expect_equal "staged-$hash.key" "$(store_listing)" "key store after the issuer failed"
	expect_equal "$served_v0" "$(served_fingerprint "$PORT")" "served after the issuer failed"
	expect_equal "$(key_public_sha256 "$PKI/v0.key")" "$(served_public_sha256 "$PORT")" "public key served after the issuer failed"
	expect_equal "$key_v0" "$(sha256sum < "$D/key.pem")" "key in service after the issuer failed"
	sql "UPDATE jobs SET status = 'Pending', last_error = NULL WHERE id = 'job-issue'"

	issue_for job-issue v1
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal "Completed|success" "$(jq -r '.status + "|" + .verification.status' <<<"$output")"
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v1.pem")"
	expect_equal "$hash" "$(served_public_sha256 "$PORT")" "public key nginx serves"
	expect_equal "$hash" "$(key_public_sha256 "$D/key.pem")" "key file's public key"
	expect_equal "current-$hash.key" "$(store_listing)" "key store after the deploy"
	expect_equal 600 "$(mode_of "$STORE/current-$hash.key")" "mode of the key in service"
	cmp "$STORE/current-$hash.key" "$D/key.pem"
}

@test "csr: agent key mode stores no private key bytes in any table, text or bytea" {
	add_target
	awaiting_csr job-issue
	run --separate-stderr agent_pipeline
	expect_status 0
	hash=$(jq -r .public_key_sha256 <<<"$output")
	key="$STORE/staged-$hash.key"
	issue_for job-issue v1
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	key="$STORE/current-$hash.key"
	expect_equal "$hash" "$(key_public_sha256 "$D/key.pem")" "deployed key"
	# Needles: the PEM's first base64 line, and the private scalar as bytes and as hex.
	pem_line=$(sed -n 2p "$key")
	scalar=$(openssl pkey -in "$key" -noout -text | tr -d ' :\n' | sed 's/.*priv//; s/pub.*//')
	scalar=${scalar#00}
	scalar=$(printf '%64s' "$scalar" | tr ' ' 0)
	[ "${#scalar}" -eq 64 ]
	[ "${#pem_line}" -ge 40 ]
	found=$(needle_hits "$pem_line" "$scalar")
	expect_contains "$found" "0 in "
	[ "${found#0 in }" -gt 30 ] || { echo "searched only ${found#0 in } columns"; return 1; }
	# The search finds what it looks for: each needle, once planted.
	sql "INSERT INTO notification_events (type, message) VALUES ('test', 'x$pem_line')"
	expect_contains "$(needle_hits "$pem_line" "$scalar")" "1 in "
	sql "UPDATE notification_events SET message = 'y' || upper('$scalar') WHERE type = 'test'"
	expect_contains "$(needle_hits "$pem_line" "$scalar")" "1 in "
	sql "DELETE FROM notification_events WHERE type = 'test';
	     UPDATE certificate_versions SET key_sealed = decode('00$scalar', 'hex')"
	expect_contains "$(needle_hits "$pem_line" "$scalar")" "1 in "
	sql "UPDATE certificate_versions SET key_sealed = NULL"
	expect_equal "0|0" "$(sql "SELECT count(*) FILTER (WHERE key_sealed IS NOT NULL), (SELECT count(*) FROM version_keys) FROM certificate_versions")"
	expect_equal 0 "$(sql "SELECT count(*) FROM audit_events WHERE details::text LIKE '%PRIVATE KEY%'")" "audit"
	[[ "$output$stderr" != *"PRIVATE KEY"* ]]
}

@test "csr: a leaf for another key fails the deploy (66) and changes nothing on disk or in the key store" {
	add_target nginx
	awaiting_csr job-issue
	run --separate-stderr agent_pipeline
	expect_status 0
	hash=$(jq -r .public_key_sha256 <<<"$output")
	before=$(store_listing)
	files_before=$(sha256sum "$D"/* "$STORE"/*)
	# The issuer signs a CSR of a key this agent never made.
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$PKI/stranger.key" \
		-subj /CN=localhost -out "$PKI/stranger.csr" 2>/dev/null
	sign_csr "$PKI" stranger "$PKI/stranger.csr"
	store_keyless_version mc-shop "$PKI/stranger.pem" "$PKI/chain.pem" >/dev/null
	sql "UPDATE jobs SET status = 'Completed' WHERE id = 'job-issue'"
	certctl-enqueue --certificate mc-shop >/dev/null
	run --separate-stderr agent_pipeline
	expect_status 66
	expect_equal Failed "$(jq -r .status <<<"$output")"
	expect_contains "$(jq -r .error <<<"$output")" "no key sealed for agent agent-web01"
	expect_contains "$stderr" "no key in $STORE has public key $(cert_public_sha256 "$PKI/stranger.pem")"
	expect_one_line_error certctl-deploy
	expect_equal Failed "$(sql "SELECT status FROM jobs WHERE type = 'Deployment'")"
	expect_equal "$before" "$(store_listing)" "key store"
	expect_equal "$files_before" "$(sha256sum "$D"/* "$STORE"/*)" "files"
	expect_equal "$(fingerprint "$PKI/v0.pem")" "$(served_fingerprint "$PORT")" "served"
}

@test "csr: the next version keeps exactly one previous key; older staged keys go, newer ones stay" {
	add_target nginx
	for round in 1 2 3; do
		awaiting_csr "job-$round" "$([ "$round" = 1 ] && echo Issuance || echo Renewal)"
		run --separate-stderr agent_pipeline
		expect_status 0
		hash[round]=$(jq -r .public_key_sha256 <<<"$output")
		if [ "$round" = 3 ]; then
			# an orphan staged before the round's key, and one staged after it (a CSR still in flight)
			touch "$STORE/staged-$(printf 'a%.0s' $(seq 64)).key" -d '-1 hour'
			touch "$STORE/staged-$(printf 'b%.0s' $(seq 64)).key" -d '+1 hour'
		fi
		issue_for "job-$round" "v$round"
		run --separate-stderr agent_pipeline
		expect_status 0
		expect_equal Completed "$(jq -r .status <<<"$output")" "round $round"
		wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v$round.pem")"
		expect_equal "${hash[round]}" "$(served_public_sha256 "$PORT")" "round $round: served public key"
	done
	expect_equal "current-${hash[3]}.key previous-${hash[2]}.key staged-$(printf 'b%.0s' $(seq 64)).key" \
		"$(ls -A "$STORE" | sort | paste -sd' ' -)" "key store after three rounds"
	expect_equal "${hash[2]}" "$(key_public_sha256 "$STORE/previous-${hash[2]}.key")" "the previous key"
}

@test "csr: an agent's role cannot answer another agent's job: 77, nothing staged or submitted" {
	add_target
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-b', now())"
	enroll_agent agent-b
	awaiting_csr job-a
	run --separate-stderr as_agent agent-b certctl-csr <<<'{"id":"job-a","type":"Issuance","status":"AwaitingCSR"}'
	expect_status 77
	expect_one_line_error certctl-csr
	expect_contains "$stderr" "job-a:"
	expect_equal "AwaitingCSR|agent-web01|0" "$(sql "SELECT status, agent_id, (SELECT count(*) FROM job_csrs) FROM jobs")"
	[ ! -e "$STORE" ]
	# An operator's login is no agent either: the database refuses the submission, and the key staged for it goes.
	run --separate-stderr certctl-csr <<<'{"id":"job-a","status":"AwaitingCSR"}'
	expect_status 77
	expect_contains "$stderr" "permission denied for function certctl_submit_csr"
	expect_equal "AwaitingCSR|0" "$(sql "SELECT status, (SELECT count(*) FROM job_csrs) FROM jobs")"
	expect_equal "" "$(store_listing)" "key store"
}

@test "csr: SANs that are neither DNS names nor IP literals are 65; nothing staged or stored" {
	add_target
	for sans in '{localhost,"bad name"}' '{localhost,-x.example}' '{localhost,*.com}' '{localhost,[::1]}'; do
		sql "UPDATE managed_certificates SET sans = '$sans'"
		awaiting_csr job-1
		run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
		expect_status 65
		expect_one_line_error certctl-csr
		expect_contains "$stderr" "job-1: mc-shop: SAN"
		expect_equal "AwaitingCSR|0|0" "$(sql "SELECT status, (SELECT count(*) FROM job_csrs),
			(SELECT count(*) FROM audit_events WHERE action = 'csr_submitted') FROM jobs")"
		expect_equal "" "$(store_listing)" "key store for $sans"
		sql "DELETE FROM jobs"
	done
}

@test "csr: an unknown key_type is 78; nothing staged or stored" {
	add_target
	# The schema refuses one; a database whose CHECK was dropped by hand still gets no key.
	sql "ALTER TABLE managed_certificates DROP CONSTRAINT managed_certificates_key_type_check;
	     UPDATE managed_certificates SET key_type = 'dsa-1024'"
	awaiting_csr job-1
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 78
	expect_one_line_error certctl-csr
	expect_contains "$stderr" "key type \"dsa-1024\": unknown"
	expect_equal "AwaitingCSR|0" "$(sql "SELECT status, (SELECT count(*) FROM job_csrs) FROM jobs")"
	expect_equal "" "$(store_listing)" "key store"
}

@test "csr: a central-mode certificate's job is 78, a job no longer awaiting a CSR 75, an unknown one 66; all left alone" {
	add_target
	awaiting_csr job-1
	sql "UPDATE managed_certificates SET key_mode = 'central'"
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 78
	expect_contains "$stderr" "key_mode is central"
	sql "UPDATE managed_certificates SET key_mode = 'agent'; UPDATE jobs SET status = 'Running'"
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 75
	expect_contains "$stderr" "job-1: job is Issuance Running, not awaiting a CSR; left alone"
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-none","status":"AwaitingCSR"}'
	expect_status 66
	expect_contains "$stderr" "job-none: no such job"
	expect_equal "0|0" "$(sql "SELECT count(*), (SELECT count(*) FROM audit_events WHERE action = 'csr_submitted') FROM job_csrs")"
	[ ! -e "$STORE" ] || expect_equal "" "$(store_listing)" "key store"
}

@test "csr: a stale line for a job answered already is 75; the job and its CSR are left alone" {
	add_target
	awaiting_csr job-1
	line=$(as_agent agent-web01 certctl-claim --agent agent-web01)
	as_agent agent-web01 certctl-csr <<<"$line" >/dev/null
	csr=$(sql "SELECT md5(csr_pem) FROM job_csrs")
	run --separate-stderr as_agent agent-web01 certctl-csr <<<"$line"
	expect_status 75
	expect_contains "$stderr" "job-1: its CSR was submitted at "
	expect_contains "$stderr" "the job is the issuer's now; left alone"
	expect_equal "Pending|$csr|1" "$(sql "SELECT status, (SELECT md5(csr_pem) FROM job_csrs),
		(SELECT count(*) FROM audit_events WHERE action = 'csr_submitted') FROM jobs")"
	expect_equal 1 "$(ls -A "$STORE" | wc -l)" "staged keys"
}

@test "csr: a bad line is 65 with its line number; the next job is still answered" {
	add_target
	awaiting_csr job-1
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id": broken'$'\n''{"status":"AwaitingCSR"}'$'\n''{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 65
	expect_contains "$stderr" "line 1:"
	expect_contains "$stderr" "line 2: an AwaitingCSR job line needs a string id"
	expect_equal CSRSubmitted "$(jq -r .status <<<"$output")"
}

@test "csr: a key directory open to others is 78 and nothing is submitted" {
	add_target
	mkdir -p "$CERTCTL_KEY_DIR"
	chmod 0755 "$CERTCTL_KEY_DIR"
	awaiting_csr job-1
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 78
	expect_contains "$stderr" "key directory $CERTCTL_KEY_DIR: open to group or others (mode 0755)"
	expect_equal "AwaitingCSR|0" "$(sql "SELECT status, (SELECT count(*) FROM job_csrs) FROM jobs")"
	expect_equal "" "$(ls -A "$CERTCTL_KEY_DIR")" "key directory"
}

@test "csr: a certificate with no common name is asked for as its first SAN; with no names at all it is 65" {
	add_target
	sql "UPDATE managed_certificates SET common_name = NULL, sans = '{a.shop.example,b.shop.example}'"
	awaiting_csr job-1
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 0
	text=$(sql "SELECT csr_pem FROM job_csrs" | openssl req -noout -text)
	expect_contains "$text" "Subject: CN = a.shop.example"
	expect_contains "$text" "DNS:a.shop.example, DNS:b.shop.example"
	sql "UPDATE managed_certificates SET sans = '{}'"
	sql "UPDATE jobs SET status = 'Completed' WHERE id = 'job-1'"
	awaiting_csr job-2 Renewal
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-2","status":"AwaitingCSR"}'
	expect_status 65
	expect_contains "$stderr" "job-2: mc-shop: the certificate has neither a common name nor SANs"
	expect_equal AwaitingCSR "$(sql "SELECT status FROM jobs WHERE id = 'job-2'")"
}

@test "csr: a retired agent's role is refused (77) and its staged key removed again" {
	add_target
	awaiting_csr job-1
	sql "UPDATE agents SET retired_at = now(), retired_reason = 'test' WHERE id = 'agent-web01'"
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 77
	expect_contains "$stderr" "agent agent-web01 is retired"
	expect_equal "AwaitingCSR|0" "$(sql "SELECT status, (SELECT count(*) FROM job_csrs) FROM jobs")"
	expect_equal "" "$(store_listing)" "key store"
}

@test "csr: a certificate id that is no plain file name is 65; a certificate directory open to others 78" {
	sql "INSERT INTO managed_certificates (id, common_name, key_mode) VALUES ('../escape', 'localhost', 'agent')"
	psql -XAtq -v ON_ERROR_STOP=1 <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-web01', 'file', 'agent-web01');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('../escape', 'target-web01'), ('mc-shop', 'target-web01');
	INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-escape', 'Issuance', 'AwaitingCSR', '../escape', 'agent-web01');
	SQL
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-escape","status":"AwaitingCSR"}'
	expect_status 65
	expect_contains "$stderr" "certificate id \"../escape\": not usable as a directory name"
	expect_equal "" "$(ls -A "$CERTCTL_KEY_DIR")" "key directory"
	[ ! -e "$BATS_TEST_TMPDIR/escape" ]
	mkdir -m 0750 "$STORE"
	awaiting_csr job-1
	run --separate-stderr as_agent agent-web01 certctl-csr <<<'{"id":"job-1","status":"AwaitingCSR"}'
	expect_status 78
	expect_contains "$stderr" "key directory $STORE: open to group or others (mode 0750)"
	expect_equal "0" "$(sql "SELECT count(*) FROM job_csrs")"
	expect_equal "" "$(store_listing)" "key store"
}

@test "csr: --help, and a stray argument is a usage error" {
	run certctl-csr --help
	expect_status 0
	expect_contains "$output" "usage: certctl-csr"
	run --separate-stderr certctl-csr extra
	expect_status 64
}
