#!/usr/bin/env bats
# make demo: the README's first command must keep working end to end.
load helpers

@test "demo: the whole pipeline runs on a throw-away database and cleans up after itself" {
	before=$(ls -d /tmp/certctl-demo.* 2>/dev/null | wc -l)
	run --separate-stderr "$TESTS_DIR/demo"
	expect_status 0
	# v1 and v2 reach all three targets, and nginx serves what was deployed.
	expect_equal 6 "$(grep -c '"status":"Completed"' <<<"$output")" "Completed deploy lines"
	expect_equal 3 "$(grep -c '"status":"Skipped"' <<<"$output")" "Skipped redeploy lines"
	expect_equal 2 "$(grep -c '"target_id":"target-mail-ssh","status":"Completed"' <<<"$output")" "ssh deploys"
	expect_equal 2 "$(grep -c '"matches":true,"verified_chain":true' <<<"$output")" "verified fingerprints"
	expect_contains "$output" '{"error":"blocked by dependencies","counts":{"active_targets":2'
	expect_contains "$output" "exit status 77"
	expect_contains "$output" '"agent_id":"agent-web01","db_role":"certctl_agent_agent_web01"'
	expect_contains "$output" "exit status 3"
	expect_contains "$output" '"cascaded_targets":2'
	expect_contains "$output" "exit status 4"
	expect_equal "$before" "$(ls -d /tmp/certctl-demo.* 2>/dev/null | wc -l)" "demo work directories left behind"
}

@test "demo: Ctrl-C stops nginx, sshd, the database and removes its files" {
	out="$BATS_TEST_TMPDIR/demo.out"
	# A background job starts with SIGINT ignored; perl restores it, as a terminal would have it.
	setsid perl -e '$SIG{INT} = "DEFAULT"; exec @ARGV' "$TESTS_DIR/demo" > "$out" 2>&1 &
	leader=$!
	for _ in $(seq 1 120); do
		grep -aq 'Inventory' "$out" && break
		sleep 0.5
	done
	workdir=$(grep -ao '/tmp/certctl-demo\.[A-Za-z0-9]*' "$out" | head -n 1)
	[ -n "$workdir" ] || { echo "the demo never got as far as nginx: $(cat "$out")"; false; }
	pgrep -f "nginx -p $workdir/nginx" >/dev/null
	pgrep -f "sshd -f $workdir/sshd" >/dev/null
	kill -INT -- "-$leader"
	for _ in $(seq 1 60); do
		kill -0 "$leader" 2>/dev/null || break
		sleep 0.5
	done
	run pgrep -f "nginx -p $workdir/nginx"
	expect_status 1
	run pgrep -f "sshd -f $workdir/sshd"
	expect_status 1
	[ ! -e "$workdir" ] || { echo "$workdir left behind"; false; }
	run kill -0 "$leader"
	expect_status 1
}
