#!/usr/bin/env bats
# bench/fleet, the fleet load generator (bench/fleet.sh): the shape of its
# report, and that every job the operator enqueued was claimed exactly once,
# by its own agent, and finished: directly and through pgbouncer.
load helpers

setup() {
	fresh_database
	FLEET="$CERTCTL_BIN/../bench/fleet/fleet"
	source "$TESTS_DIR/../bench/fleet/lib.bash"
	(umask 077 && openssl rand -hex 16 >"$BATS_TEST_TMPDIR/agent.password" &&
		{ cat "$PGPASSFILE"; printf '*:*:*:*:%s\n' "$(cat "$BATS_TEST_TMPDIR/agent.password")"; } \
			>"$BATS_TEST_TMPDIR/pgpass")
	as_superuser fleet_fixture 20 "$(agent_role fleet)" "$BATS_TEST_TMPDIR/agent.password"
	started=$(sql "SELECT now()")
}

teardown() {
	if [ -n "${FLEET_PGBOUNCER_PID:-}" ]; then
		kill "$FLEET_PGBOUNCER_PID" 2>/dev/null
		wait "$FLEET_PGBOUNCER_PID" 2>/dev/null
	fi
	[ -z "${bouncer_dir:-}" ] || rm -rf "$bouncer_dir"
	return 0
}

# run_fleet DSN: 20 agents, 4 minutes of 1.5 s, each certificate enqueued once a minute;
# a thread per agent, so that only a tick slower than a minute is dropped (ASan, a loaded host).
run_fleet() {
	run --separate-stderr env PGPASSFILE="$BATS_TEST_TMPDIR/pgpass" "$FLEET" \
		-d "host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE" --agents 20 --agent-dsn "$1" \
		--minutes 4 --minute-ms 1500 --threads 20 --enqueue-per-minute 20
	expect_status 0
}

# The report is one JSON line with every figure; the run had no error.
expect_report() {
	local check
	for check in '.agents == 20' '.minutes == 4' '.ticks == 80' '.ticks_skipped == 0' \
		'.heartbeats == 80' '.claims == 80' '.errors == 0' '.duplicate_claims == 0' \
		'.claims_per_s > 0' '.heartbeats_per_s > 0' \
		'[.claim_ms, .connect_ms, .tick_lag_ms][] | (.p50 <= .p99 and .p99 <= .max)' \
		'.postgres_cpu_s > 0' '.postgres_cores > 0' '.postgres_cpu_s_per_1000_agent_minutes > 0' \
		'.server_connections_max >= 1' '.jobs_enqueued > 0' \
		'.jobs_claimed == .jobs_enqueued' '.jobs_finished == .jobs_enqueued'; do
		jq -e "$check" <<<"$output" >/dev/null || { echo "report fails $check: $output"; return 1; }
	done
	expect_equal 1 "$(wc -l <<<"$output")" "report lines"
}

# Every job the report counts exists once, Completed on its first attempt by
# its own agent's worker; every agent beat during the run.
expect_every_job_claimed_once_and_finished() {
	expect_equal "$(jq .jobs_enqueued <<<"$output")" "$(sql "SELECT count(*) FROM jobs")" "jobs"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs WHERE status <> 'Completed' OR attempts <> 1
		OR claimed_by IS DISTINCT FROM 'fleet:' || agent_id OR completed_at IS NULL")" "jobs not finished once"
	expect_equal 20 "$(sql "SELECT count(*) FROM agents WHERE last_heartbeat_at > '$started'")" "agents that beat"
}

@test "fleet: 20 agents as their own logins, directly: every job claimed once and finished" {
	run_fleet "host=127.0.0.1 port=$PGPORT dbname=$PGDATABASE"
	expect_report
	expect_equal '"per-agent"' "$(jq .logins <<<"$output")" "logins"
	expect_every_job_claimed_once_and_finished
}

@test "fleet: 20 agents through pgbouncer (transaction pooling, auth_query): every job claimed once and finished" {
	bouncer_dir=$(mktemp -d)
	bouncer_port=$(free_port)
	PGDATABASE=$PGDATABASE as_superuser fleet_pgbouncer_start "$bouncer_dir" "$PGDATABASE" "$PGPORT" "$bouncer_port"
	run_fleet "host=127.0.0.1 port=$bouncer_port dbname=$PGDATABASE"
	expect_report
	expect_every_job_claimed_once_and_finished
}
