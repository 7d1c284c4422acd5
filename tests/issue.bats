#!/usr/bin/env bats
# certctl-issue: Issuance and Renewal jobs through a real issuer (contrib/issuers/local-ca
# and OpenSSL), and through stand-in issuers that fail in each way an issuer can.
load helpers
load lib/pki

LOCAL_CA="$TESTS_DIR/../contrib/issuers/local-ca"

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_sealing_key
	D="$BATS_TEST_TMPDIR/www"
	S="$BATS_TEST_TMPDIR/stand-ins"
	mkdir -p "$D" "$S"
	add_issuer iss-local "$(jq -cn --arg ca "$LOCAL_CA" --arg pki "$PKI" \
		'{command: [$ca, "--ca-cert", ($pki+"/chain.pem"), "--ca-key", ($pki+"/intermediate.key"), "--days", "30"]}')"
	sql "INSERT INTO managed_certificates (id, sans, issuer_id) VALUES ('mc-shop', '{shop.example,www.shop.example}', 'iss-local')"
}

# add_issuer ID CONFIG_JSON
add_issuer() {
	psql -XAtq -v ON_ERROR_STOP=1 -v id="$1" -v config="$2" <<-'SQL'
	INSERT INTO issuers (id, type, config) VALUES (:'id', 'command', :'config')
	  ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config;
	SQL
}

# add_job ID TYPE [CERTIFICATE]: a Pending job for certctl-issue.
add_job() {
	sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES ('$1', '$2', 'Pending', '${3:-mc-shop}')"
}

# An enrolled agent-web01, online, with a file target mapped to mc-shop.
add_agent_target() {
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now())"
	enroll_agent agent-web01
	sql "INSERT INTO deployment_targets (id, type, agent_id, config) VALUES ('target-web01-files', 'file', 'agent-web01',
	     '$(jq -cn --arg d "$D" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")}')')"
	sql "INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-shop', 'target-web01-files')"
}

# A stand-in issuer: a shell script NAME in $S with the given body; mc-shop issued by it.
stand_in() {
	printf '#!/bin/sh\n%s\n' "$2" > "$S/$1"
	chmod 0755 "$S/$1"
	add_issuer "iss-$1" "$(jq -cn --arg c "$S/$1" '{command: [$c]}')"
	sql "UPDATE managed_certificates SET issuer_id = 'iss-$1' WHERE id = 'mc-shop'"
}

# The current version of mc-shop: id|fingerprint, or nothing.
current_version() {
	sql "SELECT id || '|' || fingerprint_sha256 FROM certificate_versions WHERE certificate_id = 'mc-shop'
	     ORDER BY created_at DESC, id DESC LIMIT 1"
}

job_column() {
	sql "SELECT $2 FROM jobs WHERE id = '$1'"
}

# The SAN list of a PEM certificate, as "DNS:a, DNS:b".
san_of() {
	openssl x509 -in "$1" -noout -ext subjectAltName | sed -n '2p' | sed 's/^ *//'
}

# The SHA-256 of a key's or certificate's public key.
public_key_of() {
	case $(head -n 1 "$1") in
	*REQUEST*) openssl req -in "$1" -noout -pubkey ;;
	*CERTIFICATE*) openssl x509 -in "$1" -noout -pubkey ;;
	*) openssl pkey -in "$1" -pubout ;;
	esac | sha256sum | cut -d' ' -f1
}

# --- central mode, end to end ---------------------------------------------

@test "issue: central mode: local-ca issues it, the key is sealed, deployments enqueued, the agent installs it" {
	add_agent_target
	add_job job-1 Issuance
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "job-1 mc-shop Completed 1" "$(jq -r '"\(.job_id) \(.certificate_id) \(.status) \(.deployment_jobs)"' <<<"$output")"
	version=$(jq -r .version_id <<<"$output")
	sql "SELECT cert_pem || chain_pem FROM certificate_versions WHERE id = '$version'" > "$BATS_TEST_TMPDIR/issued.pem"
	expect_equal "$(fingerprint "$BATS_TEST_TMPDIR/issued.pem")" "$(jq -r .fingerprint_sha256 <<<"$output")" "fingerprint"
	expect_equal "DNS:shop.example, DNS:www.shop.example" "$(san_of "$BATS_TEST_TMPDIR/issued.pem")" "names"
	openssl verify -CAfile "$PKI/root.pem" -untrusted "$PKI/chain.pem" "$BATS_TEST_TMPDIR/issued.pem" >/dev/null
	expect_equal "t|EC-P-256|shop.example" "$(sql "SELECT v.key_sealed IS NOT NULL, v.key_algorithm, m.common_name
		FROM certificate_versions v JOIN managed_certificates m ON m.id = v.certificate_id WHERE v.id = '$version'")"
	expect_equal "agent-web01" "$(sql "SELECT agent_id FROM version_keys WHERE version_id = '$version'")" "sealed to"
	expect_equal "Completed|1|$version" "$(job_column job-1 "status || '|' || attempts || '|' || (result->>'version_id')")"
	expect_equal "Pending|target-web01-files" "$(sql "SELECT status || '|' || target_id FROM jobs WHERE type = 'Deployment'")"
	serial=$(openssl x509 -in "$BATS_TEST_TMPDIR/issued.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//')
	expect_equal "certctl-issue|System|$serial|$(jq -r .not_after <<<"$output")" \
		"$(sql "SELECT actor || '|' || actor_type || '|' || (details->>'serial_number') || '|' || (details->>'not_after')
		        FROM audit_events WHERE action = 'issuance_job_completed' AND resource_id = 'job-1'")"
	expect_contains "$(sql "SELECT message FROM notification_events WHERE type = 'renewal_success' AND job_id = 'job-1'")" "$serial"

	# The agent's own pipeline opens the key sealed to it and installs the pair.
	lines=$(as_agent agent-web01 certctl-claim --agent agent-web01 --limit 10)
	run --separate-stderr as_agent agent-web01 certctl-deploy <<<"$lines"
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	expect_equal "$(fingerprint "$BATS_TEST_TMPDIR/issued.pem")" "$(fingerprint "$D/cert.pem")" "installed certificate"
	expect_equal "$(public_key_of "$D/cert.pem")" "$(public_key_of "$D/key.pem")" "installed key matches"
}

@test "issue: the issuer gets the protocol's environment, a CSR in a private directory, and no secret" {
	stand_in spy "env > $S/env.txt
printf '%s\n' \"\$@\" > $S/args.txt
stat -c %a \"\$(dirname \"\$CERTCTL_CSR_FILE\")\" > $S/dir-mode.txt
ls -A \"\$(dirname \"\$CERTCTL_CSR_FILE\")\" > $S/dir-files.txt
cp \"\$CERTCTL_CSR_FILE\" $S/request.csr
exec $LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key"
	sql "UPDATE managed_certificates SET sans = '{shop.example,www.shop.example,127.0.0.1}'"
	add_job job-1 Renewal
	password=$(sed -n 's/^\*:\*:\*:certctl_test_operator://p' "$PGPASSFILE")
	CERTCTL_DSN="dbname=$PGDATABASE" PGPASSWORD=$password run --separate-stderr certctl-issue
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	env=$(cat "$S/env.txt")
	expect_contains "$env" "CERTCTL_CERTIFICATE_ID=mc-shop"
	expect_contains "$env" "CERTCTL_COMMON_NAME=shop.example"
	expect_contains "$env" "CERTCTL_SANS=shop.example www.shop.example 127.0.0.1"
	dir=$(sed -n 's/^CERTCTL_CSR_FILE=\(.*\)\/request.csr$/\1/p' <<<"$env")
	expect_contains "$env" "CERTCTL_CERT_FILE=$dir/certificate.pem"
	for name in CERTCTL_DSN PGPASSWORD CERTCTL_KEY_FILE PGUSER PGDATABASE; do
		if grep -q "^$name=" "$S/env.txt"; then echo "$name was passed to the issuer"; return 1; fi
	done
	if grep -q "PRIVATE KEY" "$S/env.txt" "$S/args.txt"; then echo "a private key reached the issuer"; return 1; fi
	if grep -qF "$password" "$S/env.txt"; then echo "the database password reached the issuer"; return 1; fi
	expect_equal 700 "$(cat "$S/dir-mode.txt")" "work directory mode"
	expect_equal request.csr "$(cat "$S/dir-files.txt")" "the only file the issuer finds (no key on disk)"
	[ ! -e "$dir" ] || { echo "$dir was left behind"; return 1; }
	openssl req -in "$S/request.csr" -noout -verify 2>/dev/null
	expect_equal "subject=CN = shop.example" "$(openssl req -in "$S/request.csr" -noout -subject)"
	sql "SELECT cert_pem FROM certificate_versions" > "$BATS_TEST_TMPDIR/issued.pem"
	expect_equal "$(public_key_of "$S/request.csr")" "$(public_key_of "$BATS_TEST_TMPDIR/issued.pem")" "issued for the CSR's key"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'renewal_job_completed'")"
}

@test "issue: a Renewal replaces the current version; the old one stays" {
	make_leaf "$PKI" old shop.example
	certctl-import --certificate mc-shop --cert "$PKI/old.pem" --key "$PKI/old.key" --chain "$PKI/chain.pem" >/dev/null
	old=$(current_version)
	add_job job-1 Renewal
	run --separate-stderr certctl-issue
	expect_status 0
	new=$(current_version)
	[ "$new" != "$old" ] || { echo "the current version did not change"; return 1; }
	expect_equal "$(jq -r '"\(.version_id)|\(.fingerprint_sha256)"' <<<"$output")" "$new" "current version"
	expect_equal 2 "$(sql "SELECT count(*) FROM certificate_versions")"
}

@test "issue: names compare as a set: DNS names in any case, IP addresses by value, a CN among them" {
	sql "UPDATE managed_certificates SET sans = '{shop.example,www.shop.example,::1}'"
	stand_in other-spelling "printf 'subjectAltName=IP:0:0:0:0:0:0:0:1,DNS:WWW.Shop.Example,DNS:shop.example\n' > \"\$CERTCTL_CERT_FILE.ext\"
openssl x509 -req -in \"\$CERTCTL_CSR_FILE\" -CA $PKI/chain.pem -CAkey $PKI/intermediate.key -days 5 \
	-extfile \"\$CERTCTL_CERT_FILE.ext\" -out \"\$CERTCTL_CERT_FILE\" 2>/dev/null
cat $PKI/chain.pem >> \"\$CERTCTL_CERT_FILE\""
	add_job job-1 Issuance
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	# A subject CN that was not asked for is refused, though every SAN is right.
	stand_in stray-cn "printf 'subjectAltName=DNS:shop.example,DNS:www.shop.example,IP:::1\n' > \"\$CERTCTL_CERT_FILE.ext\"
openssl x509 -req -in \"\$CERTCTL_CSR_FILE\" -CA $PKI/chain.pem -CAkey $PKI/intermediate.key -days 5 \
	-subj /CN=stray.example -extfile \"\$CERTCTL_CERT_FILE.ext\" -out \"\$CERTCTL_CERT_FILE\" 2>/dev/null"
	add_job job-2 Renewal
	run --separate-stderr certctl-issue
	expect_status 1
	expect_contains "$(jq -r .error <<<"$output")" "the certificate has the common name stray.example, which was not asked for"
}

# --- failing issuers ----------------------------------------------------------

# The state a failed issuance must leave alone: versions, keys, targets, deployment jobs.
untouched_state() {
	sql "SELECT md5(concat_ws('|',
	  (SELECT string_agg(v.id || v.fingerprint_sha256, ',' ORDER BY v.id) FROM certificate_versions v),
	  (SELECT string_agg(k.version_id || k.agent_id, ',' ORDER BY k.version_id) FROM version_keys k),
	  (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM deployment_targets t),
	  (SELECT string_agg(c::text, ',') FROM certificate_targets c),
	  (SELECT string_agg(j::text, ',' ORDER BY j.id) FROM jobs j WHERE j.type = 'Deployment'),
	  (SELECT common_name FROM managed_certificates WHERE id = 'mc-shop')))"
}

# Runs certctl-issue until job-1 has used all three attempts, each time
# checking the backoff, then checks what a failed issuance leaves behind.
expect_retries_then_failure() {
	local reason=$1 before attempt
	make_leaf "$PKI" current shop.example
	certctl-import --certificate mc-shop --cert "$PKI/current.pem" --key "$PKI/current.key" --chain "$PKI/chain.pem" >/dev/null
	add_agent_target
	sql "UPDATE jobs SET status = 'Completed' WHERE type = 'Deployment'"
	before=$(untouched_state)
	add_job job-1 Renewal
	for attempt in 1 2; do
		run --separate-stderr certctl-issue
		expect_status 1
		expect_equal "job-1 Retrying" "$(jq -r '"\(.job_id) \(.status)"' <<<"$output")"
		expect_contains "$(jq -r .error <<<"$output")" "$reason"
		expect_contains "$stderr" "certctl-issue: job-1: "
		# The reaper's backoff: 30 s after the first attempt, 60 s after the second.
		expect_equal "Pending|$attempt|$((30 * attempt))" "$(job_column job-1 \
			"status || '|' || attempts || '|' || round(extract(epoch FROM scheduled_at - updated_at))")"
		expect_equal "$(jq -r .scheduled_at <<<"$output")" "$(job_column job-1 "certctl_rfc3339(scheduled_at)")"
		# Not due yet: nothing is claimed.
		run --separate-stderr certctl-issue
		expect_status 0
		expect_equal "" "$output" "output while backing off"
		sql "UPDATE jobs SET scheduled_at = now() WHERE id = 'job-1'"
	done
	run --separate-stderr certctl-issue
	expect_status 1
	expect_equal "job-1 Failed" "$(jq -r '"\(.job_id) \(.status)"' <<<"$output")"
	expect_equal "Failed|3" "$(job_column job-1 "status || '|' || attempts")"
	expect_contains "$(job_column job-1 last_error)" "$reason"
	expect_equal 3 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'renewal_job_failed' AND resource_id = 'job-1'")"
	expect_equal 3 "$(sql "SELECT count(*) FROM notification_events WHERE type = 'renewal_failure' AND job_id = 'job-1'")"
	expect_contains "$(sql "SELECT message FROM notification_events WHERE type = 'renewal_failure' ORDER BY created_at DESC LIMIT 1")" \
		"failed after 3 attempts"
	expect_contains "$(sql "SELECT message FROM notification_events WHERE type = 'renewal_failure' ORDER BY created_at DESC LIMIT 1")" "$reason"
	expect_equal 0 "$(sql "SELECT count(*) FROM notification_events WHERE type = 'renewal_success'")"
	expect_equal "$before" "$(untouched_state)" "versions, keys, targets and deployment jobs"
}

@test "issue: an issuer exiting 1 retries with backoff, then fails; renewal_failure names its last stderr line" {
	stand_in refuses 'echo "contacting the CA" >&2; echo "the CA said no: rate limited" >&2; exit 1'
	expect_retries_then_failure "refuses exited 1: the CA said no: rate limited"
	if grep -q "contacting the CA" <<<"$(sql "SELECT message FROM notification_events WHERE type = 'renewal_failure'")"; then
		echo "the notification names an earlier stderr line, not the last"
		return 1
	fi
}

@test "issue: an issuer returning a certificate for other names retries, then fails; nothing stored" {
	stand_in other-names "printf 'subjectAltName=DNS:shop.example,DNS:evil.example\n' > \"\$CERTCTL_CERT_FILE.ext\"
openssl x509 -req -in \"\$CERTCTL_CSR_FILE\" -CA $PKI/chain.pem -CAkey $PKI/intermediate.key -days 5 \
	-extfile \"\$CERTCTL_CERT_FILE.ext\" -out \"\$CERTCTL_CERT_FILE\" 2>/dev/null"
	expect_retries_then_failure "names evil.example, which was not asked for"
}

@test "issue: an issuer returning a certificate whose key does not match retries, then fails" {
	make_leaf "$PKI" unrelated shop.example
	stand_in wrong-key "cat $PKI/unrelated.pem $PKI/chain.pem > \"\$CERTCTL_CERT_FILE\""
	expect_retries_then_failure "the private key does not match the certificate"
}

@test "issue: an issuer that outlives its timeout is killed; one that writes nothing; one whose chain is out of order" {
	stand_in slow 'sleep 30'
	add_issuer iss-slow "$(jq -cn --arg c "$S/slow" '{command: [$c], timeout: 1}')"
	add_job job-1 Issuance
	start=$(date +%s)
	run --separate-stderr certctl-issue
	expect_status 1
	[ $(($(date +%s) - start)) -lt 10 ] || { echo "the timeout was not kept"; return 1; }
	expect_contains "$(jq -r .error <<<"$output")" "slow timed out after 1 s"
	expect_equal Retrying "$(jq -r .status <<<"$output")"

	stand_in silent 'exit 0'
	sql "UPDATE jobs SET scheduled_at = now()"
	run --separate-stderr certctl-issue
	expect_status 1
	expect_contains "$(jq -r .error <<<"$output")" "silent exited 0 but left no certificate"

	stand_in backwards "$LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key
	{ cat $PKI/root.pem; sed -n '/BEGIN/,/END/p' \"\$CERTCTL_CERT_FILE\" | head -n \$(grep -n END \"\$CERTCTL_CERT_FILE\" | head -n 1 | cut -d: -f1); cat $PKI/chain.pem; } > \"\$CERTCTL_CERT_FILE.new\"
	mv \"\$CERTCTL_CERT_FILE.new\" \"\$CERTCTL_CERT_FILE\""
	sql "UPDATE jobs SET scheduled_at = now()"
	run --separate-stderr certctl-issue
	expect_status 1
	expect_equal Failed "$(jq -r .status <<<"$output")"
	expect_equal 0 "$(sql "SELECT count(*) FROM certificate_versions")"
}

@test "issue: an issuer with a timeout beyond the 900 s lease gets a lease that outlasts it" {
	stand_in waits-for-go "touch $S/started; while [ ! -e $S/go ]; do sleep 0.1; done
exec $LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key"
	add_issuer iss-waits-for-go "$(jq -cn --arg c "$S/waits-for-go" '{command: [$c], timeout: 3600}')"
	add_job job-1 Issuance
	certctl-issue > "$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	wait_until "SELECT lease_expires_at > now() + interval '3600 seconds' FROM jobs WHERE id = 'job-1'"
	touch "$S/go"
	wait "$pid"
	expect_equal "job-1 Completed" "$(jq -r '"\(.job_id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
}

# --- bad input ----------------------------------------------------------------

@test "issue: an issuer config without a command is a configuration error (78): job Failed, nothing stored" {
	# The schema's CHECK refuses such a row; an operator who dropped it gets the same answer from the command.
	sql "ALTER TABLE issuers DROP CONSTRAINT issuers_config_check"
	sql "UPDATE issuers SET config = '{\"timeout\": 5}' WHERE id = 'iss-local'"
	add_job job-1 Issuance
	run --separate-stderr certctl-issue
	expect_status 78
	expect_equal "job-1 Failed" "$(jq -r '"\(.job_id) \(.status)"' <<<"$output")"
	expect_contains "$(jq -r .error <<<"$output")" 'issuer iss-local: config needs "command"'
	expect_equal "Failed|1" "$(job_column job-1 "status || '|' || attempts")"
	expect_equal 0 "$(sql "SELECT count(*) FROM certificate_versions")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'renewal_job_failed' AND details->>'job_type' = 'Issuance'")"
	expect_equal 1 "$(sql "SELECT count(*) FROM notification_events WHERE type = 'renewal_failure'")"
}

@test "issue: other bad issuer configs and certificates are 78 each, and the run goes on to the next job" {
	configs=('{"command": [42]}' '{"command": [""]}' '{"command": ["x"], "timeout": 0.5}'
		'{"command": ["x"], "timeout": 100000}')
	# The schema refuses each of them; an operator who dropped its CHECK gets the same answer from the command.
	for config in "${configs[@]}"; do
		run add_issuer iss-bad "$config"
		expect_status 3 || { echo "the schema took config $config"; return 1; }
	done
	sql "ALTER TABLE issuers DROP CONSTRAINT issuers_config_check"
	for config in "${configs[@]}"; do
		add_issuer iss-bad "$config"
		sql "DELETE FROM jobs; DELETE FROM managed_certificates WHERE id = 'mc-bad'"
		sql "INSERT INTO managed_certificates (id, sans, issuer_id) VALUES ('mc-bad', '{bad.example}', 'iss-bad')"
		add_job job-bad Issuance mc-bad
		run --separate-stderr certctl-issue
		expect_status 78 || { echo "config: $config"; return 1; }
		expect_equal Failed "$(job_column job-bad status)"
	done
	sql "DELETE FROM jobs"
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-no-issuer'), ('mc-no-names')"
	sql "UPDATE managed_certificates SET issuer_id = 'iss-local' WHERE id = 'mc-no-names'"
	add_job job-a Issuance mc-no-issuer
	add_job job-b Issuance mc-no-names
	sql "UPDATE jobs SET scheduled_at = now() - interval '1 minute' WHERE id IN ('job-a', 'job-b')"
	add_job job-c Issuance mc-shop
	run --separate-stderr certctl-issue
	expect_status 78
	expect_equal "job-a Failed the certificate has no issuer
job-b Failed the certificate has neither sans nor a common name
job-c Completed null" "$(jq -r '"\(.job_id) \(.status) \(.error | tostring | sub("^mc-[a-z-]+: "; ""))"' <<<"$output")"
}

@test "issue: usage errors are 64 and a missing CERTCTL_KEY_FILE is 78, before any job is claimed" {
	add_job job-1 Issuance
	run --separate-stderr certctl-issue --wait 5 --follow
	expect_status 64
	run --separate-stderr certctl-issue --limit 0
	expect_status 64
	run --separate-stderr certctl-issue extra
	expect_status 64
	run --separate-stderr env -u CERTCTL_KEY_FILE certctl-issue
	expect_status 78
	expect_one_line_error certctl-issue
	expect_equal "Pending|0" "$(job_column job-1 "status || '|' || attempts")"
	run --separate-stderr certctl-issue --help
	expect_status 0
	expect_contains "$output" "usage: certctl-issue"
}

@test "issue: a job for an agent, or of another type, is not taken" {
	sql "INSERT INTO agents (id) VALUES ('agent-web01')"
	sql "INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-agent', 'Renewal', 'Pending', 'mc-shop', 'agent-web01')"
	sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES ('job-validation', 'Validation', 'Pending', 'mc-shop')"
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal "" "$output"
	expect_equal "Pending Pending" "$(sql "SELECT string_agg(status, ' ' ORDER BY id) FROM jobs")"
}

# --- agent mode ---------------------------------------------------------------

# agent-web01 makes a key and a CSR for NAMES (openssl) and submits it for job-1 with its own role.
submit_csr() {
	local names=$1 cn=${1%%,*} san
	san=$(tr ',' '\n' <<<"$names" | sed 's/^/DNS:/' | paste -sd, -)
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$BATS_TEST_TMPDIR/agent.key" \
		-subj "/CN=$cn" -addext "subjectAltName=$san" -out "$BATS_TEST_TMPDIR/agent.csr" 2>/dev/null
	PGUSER=$(agent_role agent-web01) PGPASSWORD=$(cat "$(agent_dir agent-web01)/password") PGPASSFILE=/dev/null \
		psql -XAtq -v ON_ERROR_STOP=1 -v csr="$(cat "$BATS_TEST_TMPDIR/agent.csr")" \
		-v digest="$(openssl req -in "$BATS_TEST_TMPDIR/agent.csr" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)" \
		<<<"SELECT certctl_submit_csr('job-1', :'csr', :'digest') IS NOT NULL" >/dev/null
}

@test "issue: agent mode: the submitted CSR is issued, stored with no key, and deployments enqueued" {
	add_agent_target
	sql "UPDATE managed_certificates SET key_mode = 'agent'"
	sql "INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-1', 'Issuance', 'AwaitingCSR', 'mc-shop', 'agent-web01')"
	submit_csr shop.example,www.shop.example
	expect_equal "Pending|" "$(job_column job-1 "status || '|' || coalesce(agent_id, '')")"
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal "Completed 1" "$(jq -r '"\(.status) \(.deployment_jobs)"' <<<"$output")"
	version=$(jq -r .version_id <<<"$output")
	expect_equal "f|0" "$(sql "SELECT key_sealed IS NOT NULL, (SELECT count(*) FROM version_keys) FROM certificate_versions WHERE id = '$version'")"
	sql "SELECT cert_pem FROM certificate_versions WHERE id = '$version'" > "$BATS_TEST_TMPDIR/issued.pem"
	expect_equal "$(public_key_of "$BATS_TEST_TMPDIR/agent.key")" "$(public_key_of "$BATS_TEST_TMPDIR/issued.pem")" "issued for the agent's key"
	expect_equal "Pending|agent-web01" "$(sql "SELECT status || '|' || agent_id FROM jobs WHERE type = 'Deployment'")"
}

@test "issue: agent mode: a CSR whose names differ from the certificate's is refused (65), not retried, nothing stored" {
	add_agent_target
	sql "UPDATE managed_certificates SET key_mode = 'agent'"
	sql "INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-1', 'Issuance', 'AwaitingCSR', 'mc-shop', 'agent-web01')"
	submit_csr shop.example,www.shop.example,evil.example
	stand_in never 'touch '"$S"'/ran; exit 1'
	run --separate-stderr certctl-issue
	expect_status 65
	expect_equal "Failed" "$(jq -r .status <<<"$output")"
	expect_contains "$(jq -r .error <<<"$output")" "the CSR names evil.example, which was not asked for"
	[ ! -e "$S/ran" ] || { echo "the issuer ran for a refused CSR"; return 1; }
	expect_equal "Failed|0" "$(job_column job-1 "status || '|' || (SELECT count(*) FROM certificate_versions)")"
}

@test "issue: agent mode with no CSR submitted is refused (66)" {
	sql "UPDATE managed_certificates SET key_mode = 'agent'"
	add_job job-1 Issuance
	run --separate-stderr certctl-issue
	expect_status 66
	expect_contains "$(jq -r .error <<<"$output")" "no agent submitted a CSR"
}

# --- concurrency, waiting, following -------------------------------------------

@test "issue: two certctl-issue processes never issue the same job twice" {
	stand_in counting "$LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key || exit
openssl x509 -in \"\$CERTCTL_CERT_FILE\" -noout -serial >> $S/issued.log"
	for i in $(seq 1 12); do
		sql "INSERT INTO managed_certificates (id, sans, issuer_id) VALUES ('mc-$i', '{host$i.example}', 'iss-counting')"
		add_job "job-$i" Issuance "mc-$i"
	done
	certctl-issue --limit 100 > "$BATS_TEST_TMPDIR/a.out" 2>"$BATS_TEST_TMPDIR/a.err" &
	a=$!
	certctl-issue --limit 100 > "$BATS_TEST_TMPDIR/b.out" 2>"$BATS_TEST_TMPDIR/b.err" &
	b=$!
	wait "$a"
	wait "$b"
	expect_equal 12 "$(wc -l < "$S/issued.log")" "certificates issued"
	expect_equal 12 "$(sort -u "$S/issued.log" | wc -l)" "distinct serials"
	expect_equal 12 "$(cat "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/b.out" | jq -r 'select(.status == "Completed") | .job_id' | sort -u | wc -l)" "jobs completed"
	expect_equal 12 "$(cat "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/b.out" | wc -l)" "result lines"
	expect_equal "12|12" "$(sql "SELECT count(*) || '|' || count(DISTINCT serial_number) FROM certificate_versions")"
	# The certificates have no targets yet: each run says so, and nothing else.
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/a.err" "$BATS_TEST_TMPDIR/b.err" | grep -v ': no active target is mapped to this certificate; version stored, no job enqueued$')" "stderr"
}

@test "issue: --wait picks up a job that arrives while it waits" {
	certctl-issue --wait 20 > "$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	# Connected, found nothing and waiting.
	wait_until "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()
	            AND pid <> pg_backend_pid() AND state = 'idle' AND query LIKE '%min(scheduled_at)%'"
	start=$(date +%s)
	add_job job-1 Issuance
	rc=0
	wait "$pid" || rc=$?
	expect_equal 0 "$rc" "exit status"
	[ $(($(date +%s) - start)) -lt 10 ] || { echo "it did not wake for the job"; return 1; }
	expect_equal "job-1 Completed" "$(jq -r '"\(.job_id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
}

@test "issue: --follow issues jobs as they come, a retried one when it is due, and stops on SIGTERM with 75" {
	certctl-issue --follow > "$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	add_job job-1 Issuance
	wait_until "SELECT status = 'Completed' FROM jobs WHERE id = 'job-1'"
	stand_in once-failing "if [ ! -e $S/failed-once ]; then touch $S/failed-once; echo try later >&2; exit 1; fi
exec $LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key"
	sql "INSERT INTO managed_certificates (id, sans, issuer_id) VALUES ('mc-two', '{two.example}', 'iss-once-failing')"
	add_job job-2 Issuance mc-two
	wait_until "SELECT attempts = 1 AND status = 'Pending' FROM jobs WHERE id = 'job-2'"
	# Due in 30 s; brought forward, it is claimed without a notification.
	sql "UPDATE jobs SET scheduled_at = now() + interval '1 second' WHERE id = 'job-2'"
	wait_until "SELECT status = 'Completed' FROM jobs WHERE id = 'job-2'"
	kill -0 "$pid"
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	expect_equal 75 "$rc" "exit status after SIGTERM"
	expect_equal "job-1 Completed
job-2 Retrying
job-2 Completed" "$(jq -r '"\(.job_id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
}

@test "issue: SIGTERM while the issuer runs: the job is finished first, then exit 75" {
	stand_in slow-ca "touch $S/started; sleep 2; exec $LOCAL_CA --ca-cert $PKI/chain.pem --ca-key $PKI/intermediate.key"
	add_job job-1 Issuance
	certctl-issue > "$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	for _ in $(seq 1 100); do [ -e "$S/started" ] && break; sleep 0.1; done
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	expect_equal 75 "$rc" "exit status"
	expect_equal "job-1 Completed" "$(jq -r '"\(.job_id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
	expect_equal "Completed|1" "$(job_column job-1 "status || '|' || (SELECT count(*) FROM certificate_versions)")"
}

# --- local-ca -----------------------------------------------------------------

@test "local-ca: usage errors are 64 with the usage line; it copies only the CSR's names, never CA:TRUE" {
	run --separate-stderr "$LOCAL_CA" --ca-cert x
	expect_status 64
	expect_contains "$stderr" "usage: local-ca --ca-cert FILE --ca-key FILE [--days N]"
	run --separate-stderr "$LOCAL_CA" --ca-cert x --ca-key y --days 0
	expect_status 64
	run --separate-stderr "$LOCAL_CA" --ca-cert x --ca-key y
	expect_status 1
	expect_contains "$stderr" "CERTCTL_CSR_FILE and CERTCTL_CERT_FILE must be set"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$BATS_TEST_TMPDIR/k.pem" \
		-subj "/CN=ca.example" -addext "subjectAltName=DNS:ca.example,IP:::1" \
		-addext "basicConstraints=critical,CA:TRUE" -out "$BATS_TEST_TMPDIR/r.csr" 2>/dev/null
	CERTCTL_CSR_FILE="$BATS_TEST_TMPDIR/r.csr" CERTCTL_CERT_FILE="$BATS_TEST_TMPDIR/out.pem" \
		run --separate-stderr "$LOCAL_CA" --ca-cert "$PKI/chain.pem" --ca-key "$PKI/intermediate.key" --days 7
	expect_status 0
	expect_equal "DNS:ca.example, IP Address:0:0:0:0:0:0:0:1" "$(san_of "$BATS_TEST_TMPDIR/out.pem")"
	expect_equal "CA:FALSE" "$(openssl x509 -in "$BATS_TEST_TMPDIR/out.pem" -noout -ext basicConstraints | sed -n '2p' | sed 's/^ *//')"
	expect_equal 2 "$(grep -c 'BEGIN CERTIFICATE' "$BATS_TEST_TMPDIR/out.pem")" "leaf then CA certificate"
	openssl verify -CAfile "$PKI/root.pem" -untrusted "$PKI/chain.pem" "$BATS_TEST_TMPDIR/out.pem" >/dev/null
	end=$(openssl x509 -in "$BATS_TEST_TMPDIR/out.pem" -noout -enddate | cut -d= -f2)
	days=$(( ($(date -d "$end" +%s) - $(date +%s) + 3600) / 86400 ))
	expect_equal 7 "$days" "--days"
	# A CSR whose signature does not verify is refused.
	sed 's/^MII/MIJ/' "$BATS_TEST_TMPDIR/r.csr" > "$BATS_TEST_TMPDIR/bad.csr"
	CERTCTL_CSR_FILE="$BATS_TEST_TMPDIR/bad.csr" CERTCTL_CERT_FILE="$BATS_TEST_TMPDIR/bad.pem" \
		run --separate-stderr "$LOCAL_CA" --ca-cert "$PKI/chain.pem" --ca-key "$PKI/intermediate.key"
	expect_status 1
	[ ! -e "$BATS_TEST_TMPDIR/bad.pem" ] || { echo "a certificate was written for a bad CSR"; return 1; }
}

@test "local-ca: make install puts it in share/certctl/issuers, 0755, and it issues from there" {
	dest="$BATS_TEST_TMPDIR/root"
	run make -s -C "$TESTS_DIR/.." BUILD="$(dirname "$CERTCTL_BIN")" PREFIX=/usr DESTDIR="$dest" install
	expect_status 0
	expect_equal 755 "$(stat -c %a "$dest/usr/share/certctl/issuers/local-ca")" "mode"
	add_issuer iss-local "$(jq -cn --arg ca "$dest/usr/share/certctl/issuers/local-ca" --arg pki "$PKI" \
		'{command: [$ca, "--ca-cert", ($pki+"/chain.pem"), "--ca-key", ($pki+"/intermediate.key")]}')"
	add_job job-1 Issuance
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
}

@test "issue: an issuer and a certificate imported as inventory, certctl-renew, then certctl-issue: issued, and renewed when due" {
	sql "DELETE FROM managed_certificates; DELETE FROM issuers"
	run --separate-stderr certctl-import <<-JSON
	{"kind":"issuer","id":"iss-internal","type":"command","config":{"command":["$LOCAL_CA","--ca-cert","$PKI/chain.pem","--ca-key","$PKI/intermediate.key","--days","9"],"timeout":60}}
	{"kind":"certificate","id":"mc-api","sans":["api.internal","10.0.0.5"],"key_type":"ecdsa-p384","issuer_id":"iss-internal"}
	JSON
	expect_status 0
	run --separate-stderr certctl-renew
	expect_status 0
	expect_equal "Issuance Pending" "$(jq -r '"\(.type) \(.status)"' <<<"$output")"
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	expect_equal "EC-P-384|api.internal" "$(sql "SELECT v.key_algorithm || '|' || m.common_name FROM certificate_versions v
		JOIN managed_certificates m ON m.id = v.certificate_id")"
	# Not due: nothing to renew. Half of a 9-day lifetime later it is.
	run --separate-stderr certctl-renew
	expect_equal "" "$output" "renew right after issuance"
	run --separate-stderr certctl-renew --now "$(date -u -d '+5 days' +%FT%TZ)"
	expect_equal "Renewal Pending" "$(jq -r '"\(.type) \(.status)"' <<<"$output")"
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'renewal_job_completed'")"
	expect_equal 2 "$(sql "SELECT count(*) FROM certificate_versions")"
}

@test "issue: agent mode end to end: claim | csr | deploy on the agent, certctl-issue with local-ca, then the agent installs it with its staged key" {
	export CERTCTL_KEY_DIR="$BATS_TEST_TMPDIR/keys"
	add_agent_target
	sql "UPDATE managed_certificates SET key_mode = 'agent'"
	sql "INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-1', 'Issuance', 'AwaitingCSR', 'mc-shop', 'agent-web01')"
	agent_pipeline() {
		set -o pipefail
		as_agent agent-web01 certctl-claim --agent agent-web01 --limit 10 |
			as_agent agent-web01 certctl-csr | as_agent agent-web01 certctl-deploy
	}
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal CSRSubmitted "$(jq -r .status <<<"$output")"
	run --separate-stderr certctl-issue
	expect_status 0
	expect_equal "Completed 1" "$(jq -r '"\(.status) \(.deployment_jobs)"' <<<"$output")"
	fingerprint=$(jq -r .fingerprint_sha256 <<<"$output")
	run --separate-stderr agent_pipeline
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	expect_equal "$fingerprint" "$(fingerprint "$D/cert.pem")" "installed certificate"
	expect_equal "$(public_key_of "$D/cert.pem")" "$(public_key_of "$D/key.pem")" "installed key matches"
	expect_equal "f" "$(sql "SELECT key_sealed IS NOT NULL FROM certificate_versions")" "a key in the database"
}
