#!/usr/bin/env bats
# certctl-enqueue: one Deployment job per active target mapped to a certificate.
load helpers
load lib/pki

setup() {
	fresh_database
	sql "INSERT INTO agents (id) VALUES ('agent-web01'), ('agent-web02');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES
	       ('target-web01-nginx', 'nginx', 'agent-web01'),
	       ('target-web02-nginx', 'nginx', 'agent-web02');
	     INSERT INTO managed_certificates (id) VALUES ('mc-shop');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-web01-nginx'), ('mc-shop', 'target-web02-nginx')"
	give_public_key agent-web01 agent-web02
}

# A version row as certctl-import would store it; enqueue only needs it to exist.
add_version() {
	sql "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
	       fingerprint_sha256, cert_pem)
	     VALUES ('cv-${2:-1}', '$1', '01', now(), now() + interval '20 days', 'fp-${2:-1}', 'pem')"
}

pending_jobs() {
	sql "SELECT count(*) FROM jobs WHERE type = 'Deployment' AND status = 'Pending'"
}

@test "enqueue: one Pending Deployment job per active target, agent taken from the target" {
	add_version mc-shop
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal 2 "$(printf '%s\n' "$output" | wc -l)" "job lines"
	expect_equal "target-web01-nginx agent-web01
target-web02-nginx agent-web02" "$(jq -r '"\(.target_id) \(.agent_id)"' <<<"$output")"
	expect_equal "target-web01-nginx|agent-web01|mc-shop
target-web02-nginx|agent-web02|mc-shop" \
		"$(sql "SELECT target_id, agent_id, certificate_id FROM jobs WHERE type = 'Deployment' AND status = 'Pending' ORDER BY target_id")"
}

@test "enqueue: job lines have the shape of certctl-claim's" {
	add_version mc-shop
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	line=$(head -n 1 <<<"$output")
	expect_equal '["agent_id","attempts","certificate_id","claimed_by","id","lease_expires_at","max_attempts","scheduled_at","status","target_id","type"]' \
		"$(jq -c 'keys' <<<"$line")"
	jq -e '(.id | test("^job-[0-9a-f-]{36}$")) and .type == "Deployment" and .status == "Pending"
		and .attempts == 0 and .max_attempts == 3 and .lease_expires_at == null and .claimed_by == null
		and (.scheduled_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"))' <<<"$line"
	expect_equal 1 "$(sql "SELECT count(*) FROM jobs WHERE id = '$(jq -r .id <<<"$line")'")"
}

@test "enqueue: a retired target gets no job" {
	add_version mc-shop
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-web02-nginx'"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "target-web01-nginx" "$(jq -r .target_id <<<"$output")"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs WHERE target_id = 'target-web02-nginx'")"
}

@test "enqueue: a target of a retired agent gets no job" {
	add_version mc-shop
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-web02'"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "target-web01-nginx" "$(jq -r .target_id <<<"$output")"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs WHERE agent_id = 'agent-web02'")"
}

@test "enqueue: no active target exits 66 and creates nothing" {
	add_version mc-shop
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-web01-nginx';
	     UPDATE agents SET retired_at = now() WHERE id = 'agent-web02'"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 66
	expect_one_line_error certctl-enqueue
	expect_contains "$stderr" "no active target"
	expect_equal "" "$output" "stdout"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")"
	expect_equal 0 "$(sql "SELECT count(*) FROM audit_events")"
}

@test "enqueue: a certificate mapped to no target at all exits 66" {
	add_version mc-shop
	sql "DELETE FROM certificate_targets"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 66
	expect_contains "$stderr" "no active target"
}

@test "enqueue: an unknown certificate exits 66" {
	run --separate-stderr certctl-enqueue --certificate mc-nope
	expect_status 66
	expect_one_line_error certctl-enqueue
	expect_contains "$stderr" "mc-nope: no such certificate"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")"
}

@test "enqueue: a certificate with no version exits 66" {
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 66
	expect_one_line_error certctl-enqueue
	expect_contains "$stderr" "no version imported"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs")"
}

@test "enqueue: a target that already has a Pending job gets no second one" {
	add_version mc-shop
	certctl-enqueue --certificate mc-shop >/dev/null
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "" "$output" "stdout"
	expect_equal 2 "$(pending_jobs)" "pending jobs"
	# once one job is no longer Pending, that target gets a new one
	sql "UPDATE jobs SET status = 'Completed' WHERE target_id = 'target-web01-nginx'"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "target-web01-nginx" "$(jq -r .target_id <<<"$output")"
	expect_equal 2 "$(pending_jobs)" "pending jobs"
}

@test "enqueue: concurrent runs still create one Pending job per target" {
	add_version mc-shop
	for i in 1 2 3 4 5 6; do certctl-enqueue --certificate mc-shop >/dev/null & done
	wait
	expect_equal 2 "$(pending_jobs)" "pending jobs"
}

@test "enqueue: the audit event deployment_jobs_created carries the counts" {
	add_version mc-shop
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-web01-apache', 'apache', 'agent-web01');
	     INSERT INTO certificate_targets VALUES ('mc-shop', 'target-web01-apache');
	     INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id)
	       VALUES ('job-old', 'Deployment', 'Pending', 'mc-shop', 'target-web01-apache', 'agent-web01')"
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal "certificate|mc-shop|3|2|1" \
		"$(sql "SELECT resource_type || '|' || resource_id || '|' || (details->>'active_targets') || '|' || (details->>'jobs_created') || '|' || (details->>'already_pending') FROM audit_events WHERE action = 'deployment_jobs_created'")"
}

@test "enqueue: jobs for a version imported by certctl-import" {
	make_pki "$BATS_TEST_TMPDIR/pki"
	make_leaf "$BATS_TEST_TMPDIR/pki" shop shop.example
	make_sealing_key
	certctl-import -q --certificate mc-shop --cert "$BATS_TEST_TMPDIR/pki/shop.pem" --key "$BATS_TEST_TMPDIR/pki/shop.key" >/dev/null
	run --separate-stderr certctl-enqueue --certificate mc-shop
	expect_status 0
	expect_equal 2 "$(pending_jobs)" "pending jobs"
}

@test "enqueue: an unwritable standard output exits 73, the jobs being created" {
	add_version mc-shop
	status=0
	certctl-enqueue --certificate mc-shop > /dev/full 2> "$BATS_TEST_TMPDIR/err" || status=$?
	expect_status 73
	expect_contains "$(cat "$BATS_TEST_TMPDIR/err")" "certctl-enqueue: standard output"
	expect_equal 2 "$(pending_jobs)" "pending jobs"
}

@test "enqueue: usage errors exit 64; an unreachable database exits 69" {
	run --separate-stderr certctl-enqueue
	expect_status 64
	expect_one_line_error certctl-enqueue
	run --separate-stderr certctl-enqueue --certificate mc-shop extra
	expect_status 64
	run --separate-stderr certctl-enqueue --dsn "host=/nonexistent dbname=x" --certificate mc-shop
	expect_status 69
	expect_one_line_error certctl-enqueue
	run --separate-stderr certctl-enqueue --help
	expect_status 0
	expect_contains "$output" "--certificate"
	run --separate-stderr certctl-enqueue --version
	expect_equal "certctl-enqueue 0.1.0" "$output"
}

@test "enqueue: a closed standard output exits 73 and creates no job" {
	add_version mc-shop
	run --separate-stderr bash -c 'certctl-enqueue --certificate mc-shop >&-'
	expect_status 73
	expect_one_line_error certctl-enqueue
	expect_equal 0 "$(pending_jobs)" "Pending jobs"
}
