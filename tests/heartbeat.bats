#!/usr/bin/env bats
# certctl-heartbeat: beats, registration, retirement, the --every loop and --stale.
load helpers
load lib/holder

setup() {
	fresh_database
	sql "INSERT INTO agents (id, hostname, version) VALUES ('agent-web01', 'web01.old', '0.9')"
	enroll_agent agent-web01 --no-key
}

teardown() {
	if [ -n "${holder_pid:-}" ]; then
		exec 4>&- 2>/dev/null
		kill "$holder_pid" 2>/dev/null
		wait "$holder_pid" 2>/dev/null
	fi
	if [ -n "${loop_pid:-}" ]; then
		kill "$loop_pid" 2>/dev/null
		wait "$loop_pid" 2>/dev/null
	fi
	return 0
}

# Starts one beat in the background and waits until it blocks on the holder's row lock.
start_blocked_beat() {
	as_agent agent-web01 certctl-heartbeat --agent agent-web01 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	loop_pid=$!
	wait_until "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'certctl-heartbeat'
	            AND datname = current_database() AND wait_event_type = 'Lock'"
}

start_loop() {
	as_agent agent-web01 certctl-heartbeat "$@" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 3>&- &
	loop_pid=$!
	wait_until "SELECT last_heartbeat_at IS NOT NULL FROM agents WHERE id = 'agent-web01'"
}

# Waits up to $1 seconds for the loop to exit; sets status, output and stderr.
wait_loop_exit() {
	local deadline=$((SECONDS + $1))
	while kill -0 "$loop_pid" 2>/dev/null; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "the loop did not exit within $1 s"
			return 1
		fi
		sleep 0.1
	done
	status=0
	wait "$loop_pid" || status=$?
	loop_pid=
	output=$(cat "$BATS_TEST_TMPDIR/out")
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
}

@test "heartbeat: --agent records last_heartbeat_at and prints it" {
	run --separate-stderr as_agent agent-web01 certctl-heartbeat --agent agent-web01
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "agent-web01 false" "$(jq -r '"\(.agent_id) \(.registered)"' <<<"$output")"
	expect_equal "$(sql "SELECT certctl_rfc3339(last_heartbeat_at) FROM agents WHERE id = 'agent-web01'")" \
		"$(jq -r .last_heartbeat_at <<<"$output")"
	expect_equal t "$(sql "SELECT last_heartbeat_at > now() - interval '1 minute' FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: --hostname and --agent-version are stored; omitted ones are kept" {
	run --separate-stderr as_agent agent-web01 certctl-heartbeat --agent agent-web01 --hostname web01.example
	expect_status 0
	expect_equal "web01.example|0.9" "$(sql "SELECT hostname, version FROM agents WHERE id = 'agent-web01'")"
	run --separate-stderr as_agent agent-web01 certctl-heartbeat --agent agent-web01 --agent-version 1.4.2
	expect_status 0
	expect_equal "web01.example|1.4.2" "$(sql "SELECT hostname, version FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: --version still prints the program version, not an agent version" {
	run --separate-stderr certctl-heartbeat --version
	expect_status 0
	expect_contains "$output" "certctl-heartbeat "
	run --separate-stderr as_agent agent-web01 certctl-heartbeat --agent agent-web01 --version 1.2
	expect_status 0
	expect_equal "0.9" "$(sql "SELECT version FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: an unknown agent exits 66 and is not created" {
	run --separate-stderr certctl-heartbeat --agent agent-nope
	expect_status 66
	expect_one_line_error "certctl-heartbeat"
	expect_contains "$stderr" "agent-nope"
	expect_equal "" "$output" "stdout"
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-nope'")"
}

@test "heartbeat: --register creates an unknown agent named after its id" {
	run --separate-stderr certctl-heartbeat --agent agent-new --register --hostname new.example --agent-version 2.0
	expect_status 0
	expect_equal "agent-new true" "$(jq -r '"\(.agent_id) \(.registered)"' <<<"$output")"
	expect_equal "agent-new|new.example|2.0|t|" \
		"$(sql "SELECT name, hostname, version, last_heartbeat_at IS NOT NULL, retired_at FROM agents WHERE id = 'agent-new'")"
	run --separate-stderr certctl-heartbeat --agent agent-new --register
	expect_status 0
	expect_equal "false" "$(jq -r .registered <<<"$output")" "second beat"
	expect_equal 1 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-new'")"
}

@test "heartbeat: a retired agent exits 4 with the retired line and is not touched" {
	sql "UPDATE agents SET retired_at = '2026-02-03T04:05:06Z' WHERE id = 'agent-web01'"
	# The agent beats as itself; --register is an operator's (agents get 77).
	for runner in "as_agent agent-web01 certctl-heartbeat" "certctl-heartbeat --register"; do
		# shellcheck disable=SC2086
		run --separate-stderr $runner --agent agent-web01
		expect_status 4
		expect_equal '{"agent_id":"agent-web01","retired":true,"retired_at":"2026-02-03T04:05:06Z"}' "$output"
		expect_one_line_error "certctl-heartbeat"
		expect_contains "$stderr" "retired"
	done
	expect_equal "" "$(sql "SELECT last_heartbeat_at FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: a beat racing with a retirement waits for it and exits 4" {
	holder_start "BEGIN; UPDATE agents SET retired_at = now() WHERE id = 'agent-web01';"
	start_blocked_beat
	holder_commit
	wait_loop_exit 5
	expect_status 4
	expect_equal true "$(jq -r .retired <<<"$output")"
	expect_equal "" "$(sql "SELECT last_heartbeat_at FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: SIGTERM during a single beat finishes the beat, then exits 75" {
	holder_start "BEGIN; UPDATE agents SET name = 'web01' WHERE id = 'agent-web01';"
	start_blocked_beat
	kill -TERM "$loop_pid"
	holder_commit
	wait_loop_exit 5
	expect_status 75
	expect_one_line_error "certctl-heartbeat"
	expect_equal "agent-web01" "$(jq -r .agent_id <<<"$output")"
	expect_equal t "$(sql "SELECT last_heartbeat_at IS NOT NULL FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: a closed standard output exits 73" {
	status=0
	as_agent agent-web01 certctl-heartbeat --agent agent-web01 >&- 2>"$BATS_TEST_TMPDIR/err" || status=$?
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_status 73
	expect_one_line_error "certctl-heartbeat"
}

@test "heartbeat: an --every 1 loop ends with 4 within two intervals of the retirement" {
	start_loop --agent agent-web01 --every 1
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-web01'"
	wait_loop_exit 3
	expect_status 4
	expect_equal '"retired":true' "$(tail -n 1 <<<"$output" | grep -o '"retired":true')"
	jq -e 'select(.last_heartbeat_at != null)' <<<"$(head -n 1 <<<"$output")" >/dev/null
	expect_one_line_error "certctl-heartbeat"
}

@test "heartbeat: SIGTERM ends an --every loop with 0" {
	start_loop --agent agent-web01 --every 1
	kill -TERM "$loop_pid"
	wait_loop_exit 3
	expect_status 0
	expect_equal "" "$stderr" "stderr"
}

@test "heartbeat: SIGINT ends a long --every loop at once with 0" {
	start_loop --agent agent-web01 --every 3600
	kill -INT "$loop_pid"
	wait_loop_exit 2
	expect_status 0
}

@test "heartbeat: the loop beats repeatedly" {
	start_loop --agent agent-web01 --every 1
	first=$(sql "SELECT last_heartbeat_at FROM agents WHERE id = 'agent-web01'")
	wait_until "SELECT last_heartbeat_at > '$first' FROM agents WHERE id = 'agent-web01'"
	kill -TERM "$loop_pid"
	wait_loop_exit 3
	expect_status 0
	[ "$(printf '%s\n' "$output" | wc -l)" -ge 2 ] || { echo "expected at least 2 beat lines: $output"; return 1; }
}

@test "heartbeat: a lost database connection is logged once and the loop reconnects" {
	start_loop --agent agent-web01 --every 1
	sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	     WHERE application_name = 'certctl-heartbeat' AND datname = current_database()" >/dev/null
	cut=$(sql "SELECT now()")
	wait_until "SELECT last_heartbeat_at > '$cut' FROM agents WHERE id = 'agent-web01'"
	kill -TERM "$loop_pid"
	wait_loop_exit 5
	expect_status 0
	expect_one_line_error "certctl-heartbeat"
	expect_contains "$stderr" "retrying with backoff"
}

@test "heartbeat: --stale lists silent and never-seen agents, not fresh, retired or sentinel ones" {
	sql "INSERT INTO agents (id, last_heartbeat_at, retired_at) VALUES
	       ('agent-silent', now() - interval '10 minutes', NULL),
	       ('agent-older', now() - interval '20 minutes', NULL),
	       ('agent-fresh', now(), NULL),
	       ('agent-gone', now() - interval '10 minutes', now())"
	run --separate-stderr certctl-heartbeat --stale
	expect_status 0
	# agent-web01 never beat (NULL), so it is listed first, then the longest silent.
	expect_equal "agent-web01,agent-older,agent-silent" "$(jq -r .id <<<"$output" | paste -sd, -)"
	silent=$(sed -n 3p <<<"$output")
	jq -e '.seconds_since_heartbeat >= 600 and .seconds_since_heartbeat < 700' <<<"$silent" >/dev/null
	expect_equal null "$(sed -n 1p <<<"$output" | jq -r .seconds_since_heartbeat)"
}

@test "heartbeat: --stale --older-than sets the limit" {
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-silent', now() - interval '10 minutes');
	     UPDATE agents SET last_heartbeat_at = now() WHERE id = 'agent-web01'"
	run --separate-stderr certctl-heartbeat --stale --older-than 900
	expect_status 0
	expect_equal "" "$output" "older than 15 minutes"
	run --separate-stderr certctl-heartbeat --stale --older-than 60
	expect_equal "agent-silent" "$(jq -r .id <<<"$output")"
}

@test "heartbeat: bad flags exit 64 with one line and change nothing" {
	for args in "" "--bogus" "--agent" "--stale --agent agent-web01" "--agent agent-web01 --older-than 5" \
		"--stale --every 5" "--stale --register" "--agent agent-web01 --every 0" \
		"--agent agent-web01 --every soon" "--agent agent-web01 extra" "--stale --older-than -1"; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-heartbeat $args
		expect_status 64
		expect_one_line_error "certctl-heartbeat"
		expect_equal "" "$output" "stdout for: $args"
	done
	run --separate-stderr certctl-heartbeat --agent ""
	expect_status 64
	expect_equal "" "$(sql "SELECT last_heartbeat_at FROM agents WHERE id = 'agent-web01'")"
}

@test "heartbeat: an unreachable database exits 69, also for --every" {
	run --separate-stderr certctl-heartbeat --dsn "host=/nonexistent port=1" --agent agent-web01
	expect_status 69
	expect_one_line_error "certctl-heartbeat"
	run --separate-stderr certctl-heartbeat --dsn "host=/nonexistent port=1" --agent agent-web01 --every 1
	expect_status 69
}
