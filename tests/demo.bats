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
	expect_equal 2 "$(grep -c '"matches":true,"verified_chain":true' <<<"$output")" "verified fingerprints"
	expect_contains "$output" '{"error":"blocked by dependencies","counts":{"active_targets":2'
	expect_contains "$output" "exit status 3"
	expect_contains "$output" '"cascaded_targets":2'
	expect_contains "$output" "exit status 4"
	expect_equal "$before" "$(ls -d /tmp/certctl-demo.* 2>/dev/null | wc -l)" "demo work directories left behind"
}
