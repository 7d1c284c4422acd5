#!/usr/bin/env bats
# Least privilege: agent B, logged in as its own role over TCP with SCRAM and
# holding only its own key file, can neither see nor change agent A's rows,
# nor the schema, nor the audit trail. Every refusal also checks that
# nothing changed.
load helpers
load lib/pki

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" a localhost
	make_leaf "$PKI" b localhost
	make_sealing_key
	D="$BATS_TEST_TMPDIR/www"
	mkdir -p "$D/a" "$D/b"
	for x in a b; do
		jq -cn --arg x "$x" --arg d "$D/$x" '
			{kind:"agent", id:("agent-"+$x)},
			{kind:"target", id:("target-"+$x), type:"file", agent_id:("agent-"+$x),
			 config:{cert_path:($d+"/cert.pem"), key_path:($d+"/key.pem")}},
			{kind:"certificate", id:("mc-"+$x), targets:[("target-"+$x)]}' | certctl-import >/dev/null
		enroll_agent "agent-$x"
		certctl-import --certificate "mc-$x" --cert "$PKI/$x.pem" --key "$PKI/$x.key" \
			--chain "$PKI/chain.pem" --enqueue >/dev/null
	done
	sql "UPDATE agents SET last_heartbeat_at = now() - interval '1 minute'"
	JOB_A=$(sql "SELECT id FROM jobs WHERE agent_id = 'agent-a'")
}

# SQL run as agent ID's login, the way an attacker on its host would.
agent_psql() {
	local id=$1
	shift
	PGUSER=$(agent_role "$id") PGPASSWORD=$(cat "$(agent_dir "$id")/password") PGPASSFILE=/dev/null \
		psql -XAt -v ON_ERROR_STOP=1 "$@"
}

# Everything an agent could want to change, as one string to compare.
state() {
	sql "SELECT md5(concat_ws('|',
	  (SELECT string_agg(a::text, ',' ORDER BY a.id) FROM agents a),
	  (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM deployment_targets t),
	  (SELECT string_agg(j::text, ',' ORDER BY j.id) FROM jobs j),
	  (SELECT string_agg(k::text, ',' ORDER BY k.version_id, k.agent_id) FROM version_keys k),
	  (SELECT string_agg(v.id, ',' ORDER BY v.id) FROM certificate_versions v),
	  (SELECT count(*) FROM audit_events), (SELECT count(*) FROM notification_events),
	  (SELECT string_agg(tgname::text || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal),
	  (SELECT count(*) FROM pg_roles), (SELECT count(*) FROM pg_class)))"
}

# The statement fails, or changes no row ("UPDATE 0", "DELETE 0").
refused() {
	local out rc=0
	out=$(agent_psql agent-b -c "$1" 2>&1) || rc=$?
	if [ "$rc" -eq 0 ] && ! [[ "$out" =~ ^(UPDATE|DELETE)\ 0$ ]]; then
		echo "as agent-b, not refused: $1"
		echo "got: $out"
		return 1
	fi
}

@test "scope: agent B sees none of agent A's agent row, targets, jobs, certificates or sealed keys" {
	expect_equal "agent-b" "$(agent_psql agent-b -c "SELECT string_agg(id, ',') FROM agents")" "agents"
	expect_equal "target-b" "$(agent_psql agent-b -c "SELECT string_agg(id, ',') FROM deployment_targets")" "targets"
	expect_equal "agent-b" "$(agent_psql agent-b -c "SELECT string_agg(DISTINCT agent_id, ',') FROM jobs")" "jobs"
	expect_equal "mc-b" "$(agent_psql agent-b -c "SELECT string_agg(id, ',') FROM managed_certificates")" "certificates"
	expect_equal "mc-b" "$(agent_psql agent-b -c "SELECT string_agg(certificate_id, ',') FROM certificate_versions")" "versions"
	expect_equal "agent-b" "$(agent_psql agent-b -c "SELECT string_agg(agent_id, ',') FROM version_keys")" "version_keys"
	expect_equal 0 "$(agent_psql agent-b -c "SELECT count(*) FROM jobs WHERE id = '$JOB_A'")" "A's job by id"
	# Both agents' rows exist: the superuser sees them.
	expect_equal 2 "$(sql "SELECT count(*) FROM version_keys")" "sealed keys in all"
}

@test "scope: agent B sees the unassigned jobs of its own target and certificate only, never A's" {
	sql "INSERT INTO jobs (id, type, status, target_id) VALUES
		('job-target-a', 'Deployment', 'Pending', 'target-a'), ('job-target-b', 'Deployment', 'Pending', 'target-b')"
	sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES
		('job-csr-a', 'Issuance', 'AwaitingCSR', 'mc-a'), ('job-csr-b', 'Issuance', 'AwaitingCSR', 'mc-b')"
	expect_equal "job-csr-b,job-target-b" \
		"$(agent_psql agent-b -c "SELECT string_agg(id, ',' ORDER BY id) FROM jobs WHERE agent_id IS NULL")" "unassigned jobs"
	# The policy's tests (migration 000009) answer for the caller's own agent only.
	expect_equal "f|t|f|t" "$(agent_psql agent-b -c "SELECT certctl_session_target('target-a'),
		certctl_session_target('target-b'), certctl_session_certificate('mc-a'), certctl_session_certificate('mc-b')")"
	run --separate-stderr agent_psql agent-b -c "UPDATE jobs SET status = 'Running', attempts = 1 WHERE id = 'job-target-a'"
	expect_status 0
	expect_equal "Pending|0" "$(sql "SELECT status, attempts FROM jobs WHERE id = 'job-target-a'")" "A's job untouched"
}

@test "scope: no agent role reads key_sealed, audit events or the migrations table" {
	for statement in "SELECT key_sealed FROM certificate_versions" "SELECT * FROM certificate_versions" \
		"SELECT count(*) FROM audit_events" "SELECT count(*) FROM schema_migrations" \
		"SELECT count(*) FROM notification_events"; do
		run --separate-stderr agent_psql agent-b -c "$statement"
		[ "$status" -ne 0 ] || { echo "not refused: $statement: $output"; return 1; }
		expect_contains "$stderr" "permission denied"
	done
}

@test "scope: agent B can change neither A's rows nor its own target config, the audit trail or the schema" {
	before=$(state)
	refused "UPDATE deployment_targets SET config = '{\"reload_command\":[\"sh\",\"-c\",\"id\"]}' WHERE id = 'target-a'"
	refused "UPDATE deployment_targets SET config = '{\"reload_command\":[\"sh\",\"-c\",\"id\"]}' WHERE id = 'target-b'"
	refused "UPDATE jobs SET status = 'Completed' WHERE id = '$JOB_A'"
	refused "UPDATE agents SET last_heartbeat_at = now() WHERE id = 'agent-a'"
	refused "UPDATE agents SET public_key = NULL, db_role = NULL WHERE id = 'agent-b'"
	refused "UPDATE agents SET retired_at = NULL WHERE id = 'agent-b'"
	refused "INSERT INTO jobs (id, type, status, agent_id, target_id) VALUES ('job-x', 'Deployment', 'Pending', 'agent-b', 'target-b')"
	refused "INSERT INTO agents (id) VALUES ('agent-evil')"
	refused "INSERT INTO version_keys (version_id, agent_id, sealed_key) SELECT version_id, 'agent-a', sealed_key FROM version_keys"
	refused "INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id) VALUES ('agent-a', 'Agent', 'x', 'job', 'j')"
	refused "INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id) VALUES ('alice', 'User', 'x', 'job', 'j')"
	refused "INSERT INTO notification_events (type, message, job_id) VALUES ('x', 'spam', '$JOB_A')"
	refused "DELETE FROM audit_events"
	refused "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
	refused "ALTER TABLE jobs DISABLE ROW LEVEL SECURITY"
	refused "DROP TABLE jobs"
	refused "CREATE TABLE mine (x int)"
	refused "CREATE ROLE evil LOGIN"
	refused "GRANT certctl_operator TO CURRENT_USER"
	expect_equal "$before" "$(state)" "database state"
}

@test "scope: agent B records probes of its own targets only and sees no probe of A's" {
	sql "INSERT INTO target_probes (target_id, endpoint, error) VALUES ('target-a', '127.0.0.1:1', 'refused')"
	probes() { sql "SELECT string_agg(p::text, ',' ORDER BY target_id) FROM target_probes p"; }
	before=$(probes)
	expect_equal 0 "$(agent_psql agent-b -c "SELECT count(*) FROM target_probes")" "probes B sees"
	refused "INSERT INTO target_probes (target_id, endpoint, error) VALUES ('target-a', '127.0.0.1:2', 'spoofed')"
	refused "INSERT INTO target_probes (target_id, endpoint) VALUES ('target-a', '127.0.0.1:2')
	         ON CONFLICT (target_id) DO UPDATE SET error = 'spoofed'"
	refused "UPDATE target_probes SET served_fingerprint = repeat('a', 64) WHERE target_id = 'target-a'"
	refused "UPDATE target_probes SET target_id = 'target-b'"
	refused "DELETE FROM target_probes"
	expect_equal "$before" "$(probes)" "A's probe"
	agent_psql agent-b -c "INSERT INTO target_probes (target_id, endpoint, error) VALUES ('target-b', '127.0.0.1:1', 'refused')" >/dev/null
	expect_equal target-b "$(agent_psql agent-b -c "SELECT string_agg(target_id, ',') FROM target_probes")" "B's own probe"
}

@test "scope: agent B's own job moves only forward: no un-finishing, no winding attempts back" {
	job_b=$(sql "SELECT id FROM jobs WHERE agent_id = 'agent-b'")
	refused "UPDATE jobs SET attempts = 0 WHERE id = '$job_b'"
	refused "UPDATE jobs SET status = 'Completed' WHERE id = '$job_b'"
	expect_equal "Pending|0" "$(sql "SELECT status || '|' || attempts FROM jobs WHERE id = '$job_b'")"
}

@test "scope: an agent role writes audit events only in its own name" {
	agent_psql agent-b -c "INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id)
	                       VALUES ('agent-b', 'Agent', 'probe', 'agent', 'agent-b')"
	expect_equal "agent-b|Agent" "$(sql "SELECT actor || '|' || actor_type FROM audit_events WHERE action = 'probe'")"
}

@test "scope: certctl-claim --agent, certctl-deploy --job and certctl-heartbeat for another agent exit 77" {
	before=$(state)
	run --separate-stderr as_agent agent-b certctl-claim --agent agent-a
	expect_status 77
	expect_one_line_error certctl-claim
	run --separate-stderr as_agent agent-b certctl-deploy --job "$JOB_A"
	expect_status 77
	expect_one_line_error certctl-deploy
	run --separate-stderr as_agent agent-b certctl-heartbeat --agent agent-a
	expect_status 77
	expect_one_line_error certctl-heartbeat
	run --separate-stderr as_agent agent-b certctl-heartbeat --agent agent-new --register
	expect_status 77
	expect_one_line_error certctl-heartbeat
	run --separate-stderr as_agent agent-b certctl-heartbeat --agent agent-b --register
	expect_status 77
	expect_equal "$before" "$(state)" "database state"
	# The operator's "no such" stays 66.
	run --separate-stderr certctl-claim --agent agent-nobody
	expect_status 66
}

@test "scope: a job line of agent A's job fed to agent B's certctl-deploy is 77 and untouched" {
	lines=$(as_agent agent-a certctl-claim --agent agent-a)
	before=$(state)
	run --separate-stderr as_agent agent-b certctl-deploy <<<"$lines"
	expect_status 77
	expect_one_line_error certctl-deploy
	expect_equal "$before" "$(state)" "database state"
	[ ! -e "$D/a/cert.pem" ]
}

@test "scope: agent-role commands outside their scope: migrate down, enroll, import, enqueue, retire" {
	before=$(state)
	run --separate-stderr as_agent agent-b certctl-migrate down --to 0
	expect_status 77
	run --separate-stderr as_agent agent-b certctl-enroll agent-b --public-key "$TEST_PUBLIC_KEY"
	expect_status 77
	run --separate-stderr as_agent agent-b certctl-enroll agent-c --password-file "$BATS_TEST_TMPDIR/c.password"
	expect_status 77
	[ ! -e "$BATS_TEST_TMPDIR/c.password" ]
	run --separate-stderr as_agent agent-b certctl-import <<<'{"kind":"agent","id":"agent-evil"}'
	expect_status 77
	run --separate-stderr as_agent agent-b certctl-enqueue --certificate mc-b
	expect_status 77
	run --separate-stderr as_agent agent-b certctl-retire agent-a --force --reason x
	expect_status 77
	expect_equal "$before" "$(state)" "database state"
}

@test "scope: no agent role reads, claims, marks or requeues notification events (certctl-notify is 77)" {
	sql "INSERT INTO notification_events (id, type, job_id, message) VALUES
	     ('notif-a', 'deployment_failed', '$JOB_A', 'about A'),
	     ('notif-dead', 'deployment_failed', '$JOB_A', 'about A')"
	sql "UPDATE notification_events SET status = 'dead', retry_count = 5 WHERE id = 'notif-dead'"
	events() {
		sql "SELECT string_agg(id || ':' || status || ':' || retry_count, ',' ORDER BY id) FROM notification_events"
	}
	before=$(events)
	printf '#!/bin/sh\ntouch %s/ran\n' "$BATS_TEST_TMPDIR" > "$BATS_TEST_TMPDIR/notifier"
	chmod 0755 "$BATS_TEST_TMPDIR/notifier"
	for args in "-- $BATS_TEST_TMPDIR/notifier" "--requeue-dead" "--requeue notif-dead"; do
		# shellcheck disable=SC2086
		run --separate-stderr as_agent agent-b certctl-notify $args
		expect_status 77 || { echo "args: $args"; return 1; }
		expect_one_line_error certctl-notify
	done
	[ ! -e "$BATS_TEST_TMPDIR/ran" ] || { echo "an agent's notifier ran"; return 1; }
	refused "UPDATE notification_events SET status = 'sent'"
	refused "SELECT id FROM notification_events FOR UPDATE SKIP LOCKED"
	expect_equal "$before" "$(events)" "notification events"
}

@test "scope: agent A's claim | deploy installs its own key without the control host's key file" {
	run --separate-stderr as_agent agent-a bash -c '[ -z "${CERTCTL_KEY_FILE:-}" ] &&
		certctl-claim --agent agent-a | certctl-deploy --no-verify'
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	cmp "$PKI/a.key" "$D/a/key.pem"
	expect_equal Completed "$(sql "SELECT status FROM jobs WHERE id = '$JOB_A'")"
	expect_equal "agent-a|Agent" "$(sql "SELECT actor || '|' || actor_type FROM audit_events
	                                      WHERE action = 'deployment_job_completed'")"
}

@test "scope: a version key sealed to A does not open with B's key file" {
	lines=$(as_agent agent-a certctl-claim --agent agent-a)
	run --separate-stderr as_agent agent-a env CERTCTL_AGENT_KEY_FILE="$(agent_dir agent-b)/agent.key" \
		certctl-deploy --no-verify <<<"$lines"
	expect_status 65
	expect_contains "$stderr" "does not open"
	[ ! -e "$D/a/key.pem" ]
	expect_equal Failed "$(sql "SELECT status FROM jobs WHERE id = '$JOB_A'")"
}

@test "scope: a version_keys row copied to another version or another agent is refused after opening" {
	# Another version of mc-a, whose sealed row is replaced by the old one's.
	make_leaf "$PKI" a2 localhost
	certctl-import --certificate mc-a --cert "$PKI/a2.pem" --key "$PKI/a2.key" --chain "$PKI/chain.pem" >/dev/null
	new=$(sql "SELECT id FROM certificate_versions WHERE certificate_id = 'mc-a' ORDER BY created_at DESC, id DESC LIMIT 1")
	sql "UPDATE version_keys SET sealed_key = (SELECT k.sealed_key FROM version_keys k
	       JOIN certificate_versions v ON v.id = k.version_id
	       WHERE v.certificate_id = 'mc-a' AND k.version_id <> '$new' AND k.agent_id = 'agent-a')
	     WHERE version_id = '$new' AND agent_id = 'agent-a'"
	lines=$(as_agent agent-a certctl-claim --agent agent-a)
	run --separate-stderr as_agent agent-a certctl-deploy --no-verify <<<"$lines"
	expect_status 65
	expect_contains "$stderr" "version"
	[ ! -e "$D/a/key.pem" ]

	# B's own sealed row of mc-b, copied to A for mc-b's version, after mapping mc-b to a target of A.
	sql "INSERT INTO deployment_targets (id, type, agent_id, config) VALUES ('target-a2', 'file', 'agent-a',
	       '{\"cert_path\":\"$D/a/cert2.pem\",\"key_path\":\"$D/a/key2.pem\"}');
	     INSERT INTO certificate_targets VALUES ('mc-b', 'target-a2');
	     INSERT INTO version_keys (version_id, agent_id, sealed_key)
	       SELECT version_id, 'agent-a', sealed_key FROM version_keys WHERE agent_id = 'agent-b';
	     INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id)
	       VALUES ('job-a2', 'Deployment', 'Pending', 'mc-b', 'target-a2', 'agent-a')"
	run --separate-stderr as_agent agent-a certctl-deploy --job job-a2 --no-verify
	[ "$status" -eq 65 ] || { echo "status $status: $stderr"; return 1; }
	[ ! -e "$D/a/key2.pem" ]
}

@test "scope: an agent added to a certificate later gets its sealed key at the next enqueue" {
	enroll_agent agent-c
	jq -cn --arg d "$D/c" '{kind:"target", id:"target-c", type:"file", agent_id:"agent-c",
		 config:{cert_path:($d+"/cert.pem"), key_path:($d+"/key.pem")}},
		{kind:"certificate", id:"mc-a", targets:["target-a", "target-c"]}' | certctl-import >/dev/null
	mkdir -p "$D/c"
	sql "UPDATE agents SET last_heartbeat_at = now() WHERE id = 'agent-c'"
	expect_equal 0 "$(sql "SELECT count(*) FROM version_keys WHERE agent_id = 'agent-c'")" "before"
	run --separate-stderr certctl-enqueue --certificate mc-a
	expect_status 0
	expect_equal 1 "$(sql "SELECT count(*) FROM version_keys WHERE agent_id = 'agent-c'")" "after"
	run --separate-stderr as_agent agent-c bash -c 'certctl-claim --agent agent-c | certctl-deploy --no-verify'
	expect_status 0
	cmp "$PKI/a.key" "$D/c/key.pem"
}

@test "scope: an unenrolled agent's target is reported and skipped, the others enqueued" {
	jq -cn '{kind:"agent", id:"agent-d"}, {kind:"target", id:"target-d", type:"file", agent_id:"agent-d"},
		{kind:"certificate", id:"mc-a", targets:["target-a", "target-d"]}' | certctl-import >/dev/null
	sql "DELETE FROM jobs"
	run --separate-stderr certctl-enqueue --certificate mc-a
	expect_status 0
	expect_equal "target-a|" "$(jq -r 'select(.type == "Deployment") | .target_id' <<<"$output")|" "job lines"
	expect_equal "target-d agent-d agent not enrolled" \
		"$(jq -r 'select(.error) | "\(.target_id) \(.agent_id) \(.error)"' <<<"$output")"
	expect_one_line_error certctl-enqueue
	expect_contains "$stderr" "target-d"
	expect_equal "target-a" "$(sql "SELECT string_agg(target_id, ',') FROM jobs")"

	# Only unenrolled agents: nothing enqueued, exit 78.
	sql "DELETE FROM jobs; DELETE FROM certificate_targets WHERE target_id = 'target-a'"
	run --separate-stderr certctl-enqueue --certificate mc-a
	expect_status 78
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")"
}

@test "scope: an operator's login imports, enqueues, retires and reaps, and cannot disable the audit trigger" {
	expect_equal f "$(sql "SELECT rolsuper OR pg_has_role('certctl_test_operator', 'certctl_owner', 'MEMBER')
	                      FROM pg_roles WHERE rolname = 'certctl_test_operator'")" "operator is no owner"
	make_leaf "$PKI" b2 localhost
	run --separate-stderr certctl-import --certificate mc-b --cert "$PKI/b2.pem" --key "$PKI/b2.key" --enqueue
	expect_status 0
	run --separate-stderr certctl-claim --reap
	expect_status 0
	run --separate-stderr certctl-retire agent-b --force --reason "host lost"
	expect_status 0
	run --separate-stderr psql -XAtq -v ON_ERROR_STOP=1 -c "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"
	[ "$status" -ne 0 ]
	expect_contains "$stderr" "must be owner"
	run --separate-stderr psql -XAtq -v ON_ERROR_STOP=1 -c "DELETE FROM audit_events"
	[ "$status" -ne 0 ]
	expect_equal O "$(sql "SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_events_append_only'")"
}

# The lifecycle (migration 000006): issuers, CSRs and the submission function.
awaiting_csr_job() {
	local cert=$1 agent=$2 job=$3
	sql "UPDATE managed_certificates SET key_mode = 'agent' WHERE id = '$cert';
	     INSERT INTO jobs (id, type, status, certificate_id, agent_id)
	     VALUES ('$job', 'Renewal', 'AwaitingCSR', '$cert', '$agent')" >/dev/null
}

test_csr() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$BATS_TEST_TMPDIR/csr.key" -subj /CN=localhost 2>/dev/null
}

@test "scope: no agent role reads or writes issuers, or creates Issuance and Renewal jobs" {
	sql "INSERT INTO issuers (id, type, config) VALUES ('iss-a', 'command', '{\"command\":[\"true\"]}')"
	before=$(state)
	for statement in "SELECT count(*) FROM issuers" \
		"INSERT INTO issuers (id, type, config) VALUES ('iss-b', 'command', '{\"command\":[\"true\"]}')" \
		"UPDATE issuers SET config = '{\"command\":[\"evil\"]}'" \
		"UPDATE managed_certificates SET issuer_id = 'iss-a' WHERE id = 'mc-b'" \
		"INSERT INTO jobs (id, type, status, certificate_id, agent_id) VALUES ('job-x', 'Renewal', 'Pending', 'mc-b', 'agent-b')" \
		"INSERT INTO jobs (id, type, status, certificate_id) VALUES ('job-y', 'Issuance', 'Pending', 'mc-b')"; do
		refused "$statement"
	done
	expect_equal "$before" "$(state)" "state after the refusals"
	expect_equal "" "$(sql "SELECT issuer_id FROM managed_certificates WHERE id = 'mc-b'")" "issuer of mc-b"
	expect_equal '{"command": ["true"]}' "$(sql "SELECT config FROM issuers")" "issuer config"
}

@test "scope: an agent submits a CSR only for its own AwaitingCSR job, and sees only its own CSRs" {
	awaiting_csr_job mc-a agent-a job-csr-a
	awaiting_csr_job mc-b agent-b job-csr-b
	csr=$(test_csr)
	fp=$(printf '%064d' 0)
	# B cannot submit for A's job, nor insert a CSR or move the job by hand.
	refused "SELECT certctl_submit_csr('job-csr-a', \$\$$csr\$\$, '$fp')"
	refused "INSERT INTO job_csrs (job_id, certificate_id, agent_id, csr_pem, public_key_sha256) VALUES ('job-csr-b', 'mc-b', 'agent-b', \$\$$csr\$\$, '$fp')"
	refused "UPDATE jobs SET status = 'Pending', agent_id = NULL WHERE id = 'job-csr-b'"
	expect_equal "AwaitingCSR|agent-a" "$(sql "SELECT status, agent_id FROM jobs WHERE id = 'job-csr-a'")"
	# Its own: the job becomes Pending with no agent, for certctl-issue.
	agent_psql agent-b -c "SELECT certctl_submit_csr('job-csr-b', \$\$$csr\$\$, '$fp')" >/dev/null
	expect_equal "Pending|" "$(sql "SELECT status, agent_id FROM jobs WHERE id = 'job-csr-b'")"
	expect_equal "agent-b" "$(sql "SELECT agent_id FROM job_csrs WHERE job_id = 'job-csr-b'")"
	# Once Pending, a second submission is refused; A sees none of B's CSRs.
	refused "SELECT certctl_submit_csr('job-csr-b', \$\$$csr\$\$, '$fp')"
	expect_equal 0 "$(agent_psql agent-a -c "SELECT count(*) FROM job_csrs")" "B's CSRs seen by A"
	expect_equal 1 "$(agent_psql agent-b -c "SELECT count(*) FROM job_csrs")" "B's own CSRs"
	# An operator's login is no agent: it cannot submit either.
	run --separate-stderr psql -XAt -v ON_ERROR_STOP=1 -c "SELECT certctl_submit_csr('job-csr-a', 'x', '$fp')"
	expect_status 1
}
