#!/usr/bin/env bats
# A database that goes away: the test cluster itself is restarted (pg_ctlcluster)
# while a deploy, a follower and a heartbeat loop are working. Nothing is lost
# and nothing is done twice.
load helpers
load lib/pki

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" v1 localhost
	make_sealing_key
	D="$BATS_TEST_TMPDIR/www"
	mkdir -p "$D"
	local version owner datadir logfile
	read -r version _ _ _ owner datadir logfile < <(pg_lsclusters -h | head -n 1)
	# The restart as one command (pg_ctl, with the options the cluster was
	# started with): a deploy's reload runs with a scrubbed environment.
	RESTART="$BATS_TEST_TMPDIR/restart-database"
	# The new postmaster must hold none of our descriptors (bats waits for fd 3).
	printf '#!/bin/sh\nexec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- </dev/null\nexec setpriv --reuid=%s --regid=%s --init-groups /usr/lib/postgresql/%s/bin/pg_ctl -D %s -l %s -w -m fast restart >/dev/null 2>&1\n' \
		"$owner" "$owner" "$version" "$datadir" "$logfile" > "$RESTART"
	chmod 0755 "$RESTART"
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now())"
	enroll_agent agent-web01
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
}

teardown() {
	if [ -n "${background:-}" ]; then
		kill "$background" 2>/dev/null
		wait "$background" 2>/dev/null
	fi
	return 0
}

# The database answers again (the restart script waits, this makes sure).
wait_for_database() {
	for _ in $(seq 1 100); do
		sql "SELECT 1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "the database did not come back"
	return 1
}

@test "restart: a deploy whose database restarts after the install exits 69; the reaper and the next deploy complete it once" {
	config=$(jq -cn --arg d "$D" --arg r "$RESTART" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem"), reload_command: [$r]}')
	sql "INSERT INTO deployment_targets (id, type, agent_id, config) VALUES ('target-a', 'file', 'agent-web01', '$config');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-a')"
	certctl-import --certificate mc-shop --cert "$PKI/v1.pem" --key "$PKI/v1.key" --chain "$PKI/chain.pem" --enqueue >/dev/null
	lines=$(as_agent agent-web01 certctl-claim --agent agent-web01)
	run --separate-stderr as_agent agent-web01 certctl-deploy --no-verify <<<"$lines"
	expect_status 69
	expect_contains "$stderr" "database"
	wait_for_database
	# The files are complete and new; the job was not finished: still Running under its lease.
	cmp "$PKI/v1.key" "$D/key.pem"
	expect_equal "Running|1" "$(sql "SELECT status || '|' || attempts FROM jobs")"

	# After the lease, the reaper re-queues it; the next deploy finds the bytes there and Skips.
	sql "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
	run --separate-stderr certctl-claim --reap
	expect_status 0
	sql "UPDATE jobs SET scheduled_at = now() - interval '1 second'; UPDATE agents SET last_heartbeat_at = now()"
	sql "UPDATE deployment_targets SET config = config - 'reload_command'"
	run --separate-stderr as_agent agent-web01 bash -c 'certctl-claim --agent agent-web01 | certctl-deploy --no-verify'
	expect_status 0
	expect_equal Skipped "$(jq -r .status <<<"$output")"
	expect_equal "Completed|2" "$(sql "SELECT status || '|' || attempts FROM jobs")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'deployment_job_completed'")" "completions"
	cmp "$PKI/v1.key" "$D/key.pem"
}

@test "restart: a follower whose database restarts exits 69, and one started again claims the work" {
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-a', 'file', 'agent-web01')"
	as_agent agent-web01 certctl-claim --agent agent-web01 --follow >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	background=$!
	wait_until "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'certctl-claim'
	            AND datname = current_database() AND state = 'idle'"
	"$RESTART"
	wait_for_database
	status=0
	wait "$background" || status=$?
	background=
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_status 69
	expect_one_line_error certctl-claim
	sql "INSERT INTO jobs (id, type, status, agent_id, target_id) VALUES ('job-1', 'Deployment', 'Pending', 'agent-web01', 'target-a')"
	run --separate-stderr as_agent agent-web01 certctl-claim --agent agent-web01 --follow --wait 0
	expect_status 0
	expect_equal job-1 "$(jq -r .id <<<"$output")"
}

@test "restart: a heartbeat loop outlives a database restart and beats again" {
	as_agent agent-web01 certctl-heartbeat --agent agent-web01 --every 1 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	background=$!
	wait_until "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'certctl-heartbeat'
	            AND datname = current_database()"
	"$RESTART"
	wait_for_database
	cut=$(sql "SELECT now()")
	wait_until "SELECT last_heartbeat_at > '$cut' FROM agents WHERE id = 'agent-web01'"
	kill -0 "$background"
}
