#!/usr/bin/env bats
# bench/rollout.sh with 3 agents in this test's database: the report's shape,
# and every job of every round completed exactly once. Speed is not asserted.
load helpers

setup() {
	fresh_database
}

@test "rollout bench: 3 followers and a 1 s timer complete each round's jobs exactly once, one report line per round" {
	run --separate-stderr env ROLLOUT_IN_PLACE=1 ROLLOUT_AGENTS=3 TIMER_INTERVALS=1 \
		BENCH_DIR="$BATS_TEST_TMPDIR" "$TESTS_DIR/../bench/rollout.sh"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	numbers='jobs 3, completed once 3, targets 3; p50 [0-9]+ ms, p99 [0-9]+ ms, max [0-9]+ ms'
	expect_equal 3 "$(grep -cE "^(followers, first deploy \(warm-up\)|followers \(certctl-claim --follow \| certctl-deploy\)|timer, 1 s interval): $numbers\$" <<<"$output")" \
		"report lines of the three rounds"
	expect_contains "$output" "rollout: 3 agents, one file target each; latency from "
	# The database agrees: three rounds of three jobs, each Completed on its
	# first attempt, one per target and round, one completion audit event each.
	expect_equal "9|9|3" "$(sql "SELECT count(*), count(*) FILTER (WHERE status = 'Completed' AND attempts = 1),
		count(DISTINCT target_id) FROM jobs")"
	expect_equal "3" "$(sql "SELECT count(*) FROM certificate_versions")"
	expect_equal "9|9" "$(sql "SELECT count(*), count(DISTINCT resource_id) FROM audit_events
		WHERE action = 'deployment_job_completed'")"
	# Nothing is left behind: no claimer or deployer of this database still connected.
	expect_equal 0 "$(sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name IN ('certctl-claim', 'certctl-deploy')")"
}
