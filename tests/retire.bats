#!/usr/bin/env bats
# certctl-retire: the eight-step retirement contract, the cascade and the retired list.
load helpers
load lib/holder

setup() {
	fresh_database
}

teardown() {
	# A lock holder left by a failed test must not outlive it.
	if [ -n "${holder_pid:-}" ]; then
		exec 4>&- 2>/dev/null
		kill "$holder_pid" 2>/dev/null
		wait "$holder_pid" 2>/dev/null
	fi
	return 0
}

# agent-web01: two active targets (target-a, target-b) and one retired long ago
# (target-old); certificates mc-shop and mc-api on the active ones; four
# unfinished jobs reached through the agent or its active targets, two finished.
# agent-other has its own target and job, which nothing here may touch.
seed_dependencies() {
	sql "INSERT INTO agents (id) VALUES ('agent-web01'), ('agent-other');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES
	       ('target-a', 'nginx', 'agent-web01'), ('target-b', 'file', 'agent-web01'),
	       ('target-old', 'file', 'agent-web01'), ('target-other', 'nginx', 'agent-other');
	     UPDATE deployment_targets SET retired_at = '2026-01-01T00:00:00Z', retired_reason = 'old'
	       WHERE id = 'target-old';
	     INSERT INTO managed_certificates (id) VALUES ('mc-shop'), ('mc-api'), ('mc-old');
	     INSERT INTO certificate_targets (certificate_id, target_id) VALUES
	       ('mc-shop', 'target-a'), ('mc-shop', 'target-b'), ('mc-api', 'target-b'),
	       ('mc-old', 'target-old'), ('mc-shop', 'target-other');
	     INSERT INTO jobs (id, type, status, agent_id, target_id) VALUES
	       ('job-1', 'Deployment', 'Pending', 'agent-web01', 'target-a'),
	       ('job-2', 'Deployment', 'Running', NULL, 'target-b'),
	       ('job-3', 'Issuance', 'AwaitingCSR', 'agent-web01', NULL),
	       ('job-4', 'Deployment', 'AwaitingApproval', NULL, 'target-a'),
	       ('job-5', 'Deployment', 'Completed', 'agent-web01', 'target-a'),
	       ('job-7', 'Deployment', 'Failed', NULL, 'target-b'),
	       ('job-8', 'Deployment', 'Pending', NULL, 'target-old'),
	       ('job-6', 'Deployment', 'Pending', NULL, 'target-other');
	     UPDATE jobs SET claimed_by = 'worker-1', attempts = 1, started_at = now(),
	       lease_expires_at = now() + interval '10 minutes' WHERE id = 'job-2'"
}

# Everything retirement could change, as one string to compare before and after.
snapshot() {
	sql "SELECT (SELECT string_agg(id || ':' || coalesce(retired_at::text, '-') || ':' ||
	                               coalesce(retired_reason, '-'), ',' ORDER BY id) FROM agents)
	     || ' ' || (SELECT string_agg(id || ':' || coalesce(retired_at::text, '-'), ',' ORDER BY id)
	                FROM deployment_targets)
	     || ' ' || (SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobs)
	     || ' audit=' || (SELECT count(*) FROM audit_events)"
}

audit_count() {
	sql "SELECT count(*) FROM audit_events WHERE resource_id = '$1'"
}

retires_waiting_for_lock() {
	wait_until "SELECT count(*) = $1 FROM pg_stat_activity WHERE application_name = 'certctl-retire'
	            AND datname = current_database() AND wait_event_type = 'Lock'"
}

expect_sentinel_refused() {
	local agent=$1
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-of-$agent', 'file', '$agent');
	     INSERT INTO jobs (id, type, status, target_id) VALUES ('job-of-$agent', 'Deployment', 'Pending', 'target-of-$agent')"
	before=$(snapshot)
	run --separate-stderr certctl-retire "$agent"
	expect_status 77
	expect_one_line_error "certctl-retire"
	expect_contains "$stderr" "sentinel"
	expect_equal "" "$output" "stdout"
	run --separate-stderr certctl-retire "$agent" --force --reason "decommissioned"
	expect_status 77
	expect_one_line_error "certctl-retire"
	expect_equal "$before" "$(snapshot)" "database after refusals"
}

@test "retire: step 1: sentinel server-scanner is refused with and without --force" {
	expect_sentinel_refused server-scanner
}

@test "retire: step 1: sentinel cloud-aws-sm is refused with and without --force" {
	expect_sentinel_refused cloud-aws-sm
}

@test "retire: step 1: sentinel cloud-azure-kv is refused with and without --force" {
	expect_sentinel_refused cloud-azure-kv
}

@test "retire: step 1: sentinel cloud-gcp-sm is refused with and without --force" {
	expect_sentinel_refused cloud-gcp-sm
}

@test "retire: step 1: the sentinel refusal needs no database" {
	run --separate-stderr certctl-retire --dsn "host=/nonexistent port=1" cloud-gcp-sm --force --reason x
	expect_status 77
	expect_one_line_error "certctl-retire"
}

@test "retire: step 2: an unknown agent exits 66 and changes nothing" {
	seed_dependencies
	before=$(snapshot)
	run --separate-stderr certctl-retire agent-nope
	expect_status 66
	expect_one_line_error "certctl-retire"
	expect_contains "$stderr" "agent-nope: no such agent"
	expect_equal "" "$output" "stdout"
	expect_equal "$before" "$(snapshot)"
}

@test "retire: an agent without dependencies is retired, printed and audited" {
	sql "INSERT INTO agents (id) VALUES ('agent-idle')"
	run --separate-stderr env -u CERTCTL_ACTOR USER=alice certctl-retire agent-idle
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "agent-idle 0 0" "$(jq -r '"\(.agent_id) \(.cascaded_targets) \(.cancelled_jobs)"' <<<"$output")"
	expect_equal "$(sql "SELECT certctl_rfc3339(retired_at) FROM agents WHERE id = 'agent-idle'")" \
		"$(jq -r .retired_at <<<"$output")" "retired_at printed vs stored"
	expect_equal "agent_retired|alice|User|agent" \
		"$(sql "SELECT action, actor, actor_type, resource_type FROM audit_events WHERE resource_id = 'agent-idle'")"
	sql "INSERT INTO agents (id) VALUES ('agent-idle2')"
	CERTCTL_ACTOR=carol USER=alice certctl-retire agent-idle2 >/dev/null
	expect_equal "carol" "$(sql "SELECT actor FROM audit_events WHERE resource_id = 'agent-idle2'")" "CERTCTL_ACTOR wins"
}

@test "retire: the audit events commit in the retirement's own transaction" {
	sql "INSERT INTO agents (id) VALUES ('agent-tx');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-tx', 'file', 'agent-tx')"
	run --separate-stderr certctl-retire agent-tx --force --reason "one transaction"
	expect_status 0
	# now() is the transaction's start: equal timestamps mean one transaction.
	expect_equal "2|2" "$(sql "SELECT count(*), count(*) FILTER (WHERE e.occurred_at = a.retired_at)
	                           FROM audit_events e JOIN agents a ON a.id = e.resource_id
	                           WHERE e.resource_id = 'agent-tx'")" "audit events stamped with retired_at"
}

@test "retire: step 3: a replay exits 0 with already_retired, no new audit event, nothing changed" {
	seed_dependencies
	certctl-retire agent-web01 --force --reason "first" >/dev/null
	before=$(snapshot)
	audit_before=$(audit_count agent-web01)
	run --separate-stderr certctl-retire agent-web01 --force --reason "second"
	expect_status 0
	expect_equal '{"agent_id":"agent-web01","already_retired":true}' "$output"
	expect_equal "$audit_before" "$(audit_count agent-web01)" "audit events"
	expect_equal "$before" "$(snapshot)"
	expect_equal "first" "$(sql "SELECT retired_reason FROM agents WHERE id = 'agent-web01'")"
}

@test "retire: step 4 and 6: dependencies without --force exit 3 with the counts and change nothing" {
	seed_dependencies
	before=$(snapshot)
	run --separate-stderr certctl-retire agent-web01
	expect_status 3
	expect_one_line_error "certctl-retire"
	jq -e . <<<"$output" >/dev/null
	expect_equal "blocked by dependencies 2 2 4" \
		"$(jq -r '"\(.error) \(.counts.active_targets) \(.counts.active_certificates) \(.counts.pending_jobs)"' <<<"$output")"
	expect_equal "$before" "$(snapshot)"
}

@test "retire: step 4: a lone unfinished job of the agent blocks too" {
	sql "INSERT INTO agents (id) VALUES ('agent-x');
	     INSERT INTO jobs (id, type, status, agent_id) VALUES ('job-x', 'Issuance', 'AwaitingApproval', 'agent-x')"
	run --separate-stderr certctl-retire agent-x
	expect_status 3
	expect_equal '{"active_targets":0,"active_certificates":0,"pending_jobs":1}' "$(jq -c .counts <<<"$output")"
}

@test "retire: step 5: --force without --reason exits 64 before contacting the database" {
	run --separate-stderr certctl-retire --dsn "host=/nonexistent port=1" agent-web01 --force
	expect_status 64
	expect_one_line_error "certctl-retire"
	expect_contains "$stderr" "--reason"
	run --separate-stderr certctl-retire --dsn "host=/nonexistent port=1" agent-web01 --force --reason ""
	expect_status 64
	expect_one_line_error "certctl-retire"
}

@test "retire: step 5 precedes step 1: --force without --reason on a sentinel is a usage error" {
	run --separate-stderr certctl-retire server-scanner --force
	expect_status 64
}

@test "retire: step 7: --force retires agent and active targets at one instant and cancels their jobs" {
	seed_dependencies
	reason="hardware decommissioned; ticket OPS-1234 $(head -c 3000 /dev/zero | tr '\0' 'x')"
	run --separate-stderr certctl-retire agent-web01 --force --reason "$reason" --actor ops-bob
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "agent-web01 2 4" "$(jq -r '"\(.agent_id) \(.cascaded_targets) \(.cancelled_jobs)"' <<<"$output")"
	# One retired_at for the agent and both active targets, equal to the microsecond.
	expect_equal 1 "$(sql "SELECT count(DISTINCT retired_at) FROM (
		SELECT retired_at FROM agents WHERE id = 'agent-web01'
		UNION ALL SELECT retired_at FROM deployment_targets WHERE id IN ('target-a', 'target-b')) r")"
	expect_equal t "$(sql "SELECT a.retired_at = t.retired_at FROM agents a, deployment_targets t
		WHERE a.id = 'agent-web01' AND t.id = 'target-a'")"
	expect_equal "$(jq -r .retired_at <<<"$output")" \
		"$(sql "SELECT certctl_rfc3339(retired_at) FROM deployment_targets WHERE id = 'target-b'")"
	# Counts in the output are what the database holds.
	expect_equal "$(jq -r .cascaded_targets <<<"$output")" \
		"$(sql "SELECT count(*) FROM deployment_targets WHERE agent_id = 'agent-web01'
		        AND retired_at = (SELECT retired_at FROM agents WHERE id = 'agent-web01')")"
	expect_equal "$(jq -r .cancelled_jobs <<<"$output")" "$(sql "SELECT count(*) FROM jobs WHERE status = 'Cancelled'")"
	expect_equal "job-1:Cancelled,job-2:Cancelled,job-3:Cancelled,job-4:Cancelled,job-5:Completed,job-6:Pending,job-7:Failed,job-8:Pending" \
		"$(sql "SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM jobs")"
	expect_equal 4 "$(sql "SELECT count(*) FROM jobs WHERE status = 'Cancelled' AND completed_at IS NOT NULL
		AND lease_expires_at IS NULL AND last_error LIKE 'cancelled: agent agent-web01 retired: hardware decommissioned%'")"
	# The reason is stored whole, on the agent and on the targets.
	expect_equal "$reason" "$(sql "SELECT retired_reason FROM agents WHERE id = 'agent-web01'")" "agent reason"
	expect_equal "$reason" "$(sql "SELECT retired_reason FROM deployment_targets WHERE id = 'target-a'")" "target reason"
	# Earlier retirements and other agents are left alone.
	expect_equal "2026-01-01 00:00:00+00|old|" \
		"$(sql "SELECT retired_at, retired_reason, '' FROM deployment_targets WHERE id = 'target-old'")"
	expect_equal "||" "$(sql "SELECT retired_at, retired_reason, '' FROM agents WHERE id = 'agent-other'")"
	expect_equal "" "$(sql "SELECT retired_at FROM deployment_targets WHERE id = 'target-other'")"
}

@test "retire: step 8: the force path writes agent_retired and agent_retirement_cascaded with counts and reason" {
	seed_dependencies
	certctl-retire agent-web01 --force --reason "moved to k8s" --actor ops-bob >/dev/null
	expect_equal "agent_retired|ops-bob|User,agent_retirement_cascaded|ops-bob|User" \
		"$(sql "SELECT string_agg(action || '|' || actor || '|' || actor_type, ',' ORDER BY action COLLATE \"C\")
		        FROM audit_events WHERE resource_type = 'agent' AND resource_id = 'agent-web01'")"
	details=$(sql "SELECT details FROM audit_events WHERE action = 'agent_retirement_cascaded'")
	expect_equal "moved to k8s 2 2 4 2 4 true" \
		"$(jq -r '"\(.reason) \(.active_targets) \(.active_certificates) \(.pending_jobs) \(.cascaded_targets) \(.cancelled_jobs) \(.force)"' <<<"$details")"
	expect_equal "$(sql "SELECT certctl_rfc3339(retired_at) FROM agents WHERE id = 'agent-web01'")" \
		"$(jq -r .retired_at <<<"$details")" "retired_at in details"
}

@test "retire: --force with no dependencies retires plainly and writes only agent_retired" {
	sql "INSERT INTO agents (id) VALUES ('agent-idle')"
	run --separate-stderr certctl-retire agent-idle --force --reason "spare"
	expect_status 0
	expect_equal "agent_retired" "$(sql "SELECT string_agg(action, ',') FROM audit_events WHERE resource_id = 'agent-idle'")"
	expect_equal "spare" "$(sql "SELECT retired_reason FROM agents WHERE id = 'agent-idle'")"
}

@test "retire: --reason without --force is stored with a plain retirement" {
	sql "INSERT INTO agents (id) VALUES ('agent-idle')"
	run --separate-stderr certctl-retire agent-idle --reason "host renamed"
	expect_status 0
	expect_equal "host renamed" "$(sql "SELECT retired_reason FROM agents WHERE id = 'agent-idle'")"
}

@test "retire: a failing audit insert is logged and does not undo the retirement" {
	seed_dependencies
	role="noaudit_$$_${BATS_TEST_NUMBER}"
	# The command runs as a role that may retire but may not append to the audit trail.
	sql "CREATE ROLE $role NOLOGIN;
	     GRANT $role TO certctl_test_operator;
	     GRANT SELECT, UPDATE ON agents, deployment_targets, jobs TO $role;
	     GRANT SELECT ON certificate_targets, audit_events TO $role;
	     GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO $role;
	     REVOKE INSERT ON audit_events FROM $role"
	for table in agents deployment_targets jobs certificate_targets; do
		sql "CREATE POLICY ${role}_all ON $table TO $role USING (true) WITH CHECK (true)"
	done
	run --separate-stderr env PGOPTIONS="-c role=$role" certctl-retire agent-web01 --force --reason "audit down"
	for table in agents deployment_targets jobs certificate_targets; do
		sql "DROP POLICY ${role}_all ON $table"
	done
	sql "DROP OWNED BY $role; DROP ROLE $role"
	expect_status 0
	expect_one_line_error "certctl-retire"
	expect_contains "$stderr" "audit events not written"
	expect_contains "$stderr" "permission denied"
	expect_equal "agent-web01 2 4" "$(jq -r '"\(.agent_id) \(.cascaded_targets) \(.cancelled_jobs)"' <<<"$output")"
	expect_equal "audit down" "$(sql "SELECT retired_reason FROM agents WHERE id = 'agent-web01'")"
	expect_equal 2 "$(sql "SELECT count(*) FROM deployment_targets WHERE agent_id = 'agent-web01' AND retired_reason = 'audit down'")"
	expect_equal 4 "$(sql "SELECT count(*) FROM jobs WHERE status = 'Cancelled'")"
	expect_equal 0 "$(audit_count agent-web01)" "audit events"
}

@test "retire: the agent row is locked: work routed while a claim holds it is counted, not orphaned" {
	sql "INSERT INTO agents (id) VALUES ('agent-busy')"
	# A claim/enqueue transaction holds FOR SHARE on the agent and adds work.
	holder_start "BEGIN; SELECT 1 FROM agents WHERE id = 'agent-busy' AND retired_at IS NULL FOR SHARE;
	              INSERT INTO jobs (id, type, status, agent_id) VALUES ('job-late', 'Deployment', 'Running', 'agent-busy');"
	certctl-retire agent-busy >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	retire_pid=$!
	retires_waiting_for_lock 1
	holder_commit
	status=0
	wait "$retire_pid" || status=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	expect_status 3
	expect_equal 1 "$(jq -r .counts.pending_jobs <<<"$output")"
	expect_equal "|Running" "$(sql "SELECT a.retired_at, j.status FROM agents a, jobs j WHERE a.id = 'agent-busy' AND j.id = 'job-late'")"
}

@test "retire: two concurrent retirements give one retirement and one already_retired" {
	seed_dependencies
	holder_start "BEGIN; SELECT 1 FROM agents WHERE id = 'agent-web01' FOR SHARE;"
	certctl-retire agent-web01 --force --reason one >"$BATS_TEST_TMPDIR/one" 2>&1 3>&- &
	one=$!
	certctl-retire agent-web01 --force --reason two >"$BATS_TEST_TMPDIR/two" 2>&1 3>&- &
	two=$!
	retires_waiting_for_lock 2
	holder_commit
	wait "$one"
	wait "$two"
	lines=$(cat "$BATS_TEST_TMPDIR/one" "$BATS_TEST_TMPDIR/two")
	expect_equal 1 "$(grep -c '"already_retired":true' <<<"$lines")" "already_retired lines"
	expect_equal 1 "$(grep -c '"cascaded_targets":2' <<<"$lines")" "retirement lines"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'agent_retired'")"
	expect_equal 4 "$(sql "SELECT count(*) FROM jobs WHERE status = 'Cancelled'")"
}

@test "retire: SIGTERM while waiting for the agent lock finishes the retirement, then exits 75" {
	sql "INSERT INTO agents (id) VALUES ('agent-idle')"
	holder_start "BEGIN; SELECT 1 FROM agents WHERE id = 'agent-idle' FOR SHARE;"
	certctl-retire agent-idle >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	retire_pid=$!
	retires_waiting_for_lock 1
	kill -TERM "$retire_pid"
	holder_commit
	status=0
	wait "$retire_pid" || status=$?
	output=$(cat "$BATS_TEST_TMPDIR/out")
	expect_status 75
	expect_contains "$(cat "$BATS_TEST_TMPDIR/err")" "signal"
	expect_equal "agent-idle" "$(jq -r .agent_id <<<"$output")"
	expect_equal t "$(sql "SELECT retired_at IS NOT NULL FROM agents WHERE id = 'agent-idle'")"
	expect_equal 1 "$(audit_count agent-idle)"
}

list_ids() {
	jq -r .id <<<"$output" | paste -sd, -
}

seed_retired_agents() {
	sql "INSERT INTO agents (id, name, retired_at, retired_reason) VALUES
	       ('agent-r1', 'r-one', '2026-03-01T00:00:00Z', 'first'),
	       ('agent-r2', 'r-two', '2026-03-02T00:00:00Z', NULL),
	       ('agent-r3', 'r-three', '2026-03-03T00:00:00Z', 'third'),
	       ('agent-r4', 'r-four', '2026-03-03T00:00:00Z', 'fourth'),
	       ('agent-live', 'live', NULL, NULL)"
}

@test "retire: --list prints retired agents newest first with id, name, retired_at, retired_reason" {
	seed_retired_agents
	run --separate-stderr certctl-retire --list
	expect_status 0
	expect_equal "agent-r3,agent-r4,agent-r2,agent-r1" "$(list_ids)"
	expect_equal '{"id":"agent-r2","name":"r-two","retired_at":"2026-03-02T00:00:00Z","retired_reason":null}' \
		"$(sed -n 3p <<<"$output")"
}

@test "retire: --list pages: page 2 of 2, page 0 is page 1, per-page 0 is 50, past the end is empty" {
	seed_retired_agents
	run --separate-stderr certctl-retire --list --page 2 --per-page 2
	expect_status 0
	expect_equal "agent-r2,agent-r1" "$(list_ids)" "page 2"
	run --separate-stderr certctl-retire --list --page 0 --per-page 2
	expect_status 0
	expect_equal "agent-r3,agent-r4" "$(list_ids)" "page 0"
	run --separate-stderr certctl-retire --list --page -7 --per-page 3
	expect_equal "agent-r3,agent-r4,agent-r2" "$(list_ids)" "negative page"
	sql "INSERT INTO agents (id, retired_at) SELECT 'agent-bulk-' || i, '2025-01-01T00:00:00Z' FROM generate_series(1, 60) i"
	run --separate-stderr certctl-retire --list --per-page 0
	expect_status 0
	expect_equal 50 "$(printf '%s\n' "$output" | wc -l)" "per-page 0 lines"
	run --separate-stderr certctl-retire --list --page 3 --per-page 50
	expect_status 0
	expect_equal "" "$output" "past the end"
	run --separate-stderr certctl-retire --list --page 9223372036854775807 --per-page 50
	expect_status 0
	expect_equal "" "$output" "far past the end"
}

@test "retire: the database itself refuses to retire a sentinel by hand" {
	run --separate-stderr psql -XAtq -v ON_ERROR_STOP=1 -c "UPDATE agents SET retired_at = now() WHERE id = 'cloud-aws-sm'"
	expect_equal 1 "$status" "psql status"
	expect_contains "$stderr" "sentinel"
	expect_equal "" "$(sql "SELECT retired_at FROM agents WHERE id = 'cloud-aws-sm'")"
}

@test "retire: a closed standard output exits 73" {
	seed_retired_agents
	status=0
	certctl-retire --list >&- 2>"$BATS_TEST_TMPDIR/err" || status=$?
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_status 73
	expect_one_line_error "certctl-retire"
}

@test "retire: bad flags exit 64 with one line and change nothing" {
	seed_dependencies
	before=$(snapshot)
	for args in "--bogus agent-web01" "agent-web01 agent-other" "" "--list agent-web01" \
		"--list --force --reason x" "agent-web01 --page 2" "--list --page two" "agent-web01 --actor="; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-retire $args
		expect_status 64
		expect_one_line_error "certctl-retire"
		expect_equal "" "$output" "stdout for: $args"
	done
	expect_equal "$before" "$(snapshot)"
}

@test "retire: an unreachable database exits 69" {
	run --separate-stderr certctl-retire --dsn "host=/nonexistent port=1" agent-web01
	expect_status 69
	expect_one_line_error "certctl-retire"
}

@test "retire: --help prints usage on stdout and exits 0" {
	run --separate-stderr certctl-retire --help
	expect_status 0
	expect_contains "$output" "usage: certctl-retire"
}
