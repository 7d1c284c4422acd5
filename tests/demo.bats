#!/usr/bin/env bats
# make demo: the README's first command must keep working end to end.
load helpers

@test "demo: the whole pipeline runs on a throw-away database and cleans up after itself" {
	before=$(ls -d /tmp/certctl-demo.* 2>/dev/null | wc -l)
	run --separate-stderr "$TESTS_DIR/demo"
	expect_status 0
	# v1, v2 and three ACME versions reach all three targets (the last also
	# mc-api's), and nginx serves what was deployed.
	expect_equal 16 "$(grep -c '"target_id":"[^"]*","status":"Completed"' <<<"$output")" "Completed deploy lines"
	expect_equal 3 "$(grep -c '"status":"Skipped"' <<<"$output")" "Skipped redeploy lines"
	expect_equal 5 "$(grep -c '"target_id":"target-mail-ssh","status":"Completed"' <<<"$output")" "ssh deploys"
	expect_equal 4 "$(grep -c '"matches":true,"verified_chain":true' <<<"$output")" "verified fingerprints"
	# Issued by pebble through lego, three renewals and one issuance, one of
	# them for a key made on the agent, which never reached the database.
	expect_equal 4 "$(grep -c '"certificate_id":"mc-[a-z]*","status":"Completed","fingerprint_sha256"' <<<"$output")" "issued"
	expect_contains "$output" '"certificate_id":"mc-api","status":"CSRSubmitted"'
	expect_contains "$output" "in the database: 0"
	key=$(grep -o 'its public key: *[0-9a-f]*' <<<"$output" | grep -o '[0-9a-f]*$')
	expect_equal "$key" "$(grep -o 'nginx serves one: *[0-9a-f]*' <<<"$output" | grep -o '[0-9a-f]*$')" "served public key"
	# The status table and a notification delivered.
	expect_contains "$output" "target-web01-api    current"
	expect_contains "$output" '"text":'
	expect_equal 0 "$(grep -c '"error":"[^"]' <<<"$(sed -n '/certctl-verify --all/,/certctl-status/p' <<<"$output")")" "probe errors"
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
