#!/usr/bin/env bats
# certctl-status: what is deployed where, from the database alone.
load helpers
load lib/pki
load lib/nginx

# The agents are enrolled once for the file: their key and password files live there.
agent_dir() {
	printf '%s' "$BATS_FILE_TMPDIR/agents/$1"
}

# One fleet for the file, built by the real commands:
#   mc-shop (v2) on target-a (nginx, deployed and reloaded: current),
#     target-b (nginx whose reload is skipped: still serves v1, drifted) and
#     target-c (validate fails: failing); deployed with --no-verify, then
#     probed by certctl-verify --all;
#   mc-other on target-d: a Deployment job Pending (pending);
#   mc-new on target-e (agent-web01) and target-w2 (agent-web02): never
#     deployed, and past its renewal point (renew_before 30 days, 20-day leaf).
setup_file() {
	fresh_database
	export PGDATABASE
	export PKI="$BATS_FILE_TMPDIR/pki" W="$BATS_FILE_TMPDIR/www"
	export CERTCTL_KEY_FILE="$BATS_FILE_TMPDIR/sealing.key"
	openssl rand -hex 32 > "$CERTCTL_KEY_FILE"
	chmod 600 "$CERTCTL_KEY_FILE"
	make_pki "$PKI"
	for leaf in v1 v2 other new; do make_leaf "$PKI" "$leaf" localhost; done
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now()), ('agent-web02', now())"
	enroll_agent agent-web01
	enroll_agent agent-web02
	sql "INSERT INTO managed_certificates (id, renew_before) VALUES
		('mc-shop', '7 days'), ('mc-other', '7 days'), ('mc-new', '30 days')"

	mkdir -p "$W/a" "$W/b" "$W/c" "$W/d" "$W/e" "$W/w2"
	for t in a b; do
		cat "$PKI/v1.pem" "$PKI/chain.pem" > "$W/$t/cert.pem"
		cp "$PKI/v1.key" "$W/$t/key.pem"
	done
	PORT_A=$(free_port)
	start_nginx "$BATS_FILE_TMPDIR/nginx-a" "$PORT_A" "$W/a/cert.pem" "$W/a/key.pem"
	PORT_B=$(free_port)
	start_nginx "$BATS_FILE_TMPDIR/nginx-b" "$PORT_B" "$W/b/cert.pem" "$W/b/key.pem"
	export PORT_A PORT_B
	add_target target-a agent-web01 mc-shop "$(nginx_config a "$PORT_A" "$(nginx_reload_argv "$BATS_FILE_TMPDIR/nginx-a")")"
	add_target target-b agent-web01 mc-shop "$(nginx_config b "$PORT_B" '[]')"
	add_target target-c agent-web01 mc-shop "$(jq -cn --arg d "$W/c" \
		'{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem"), validate_command: ["false"]}')"
	add_target target-d agent-web01 mc-other "$(file_config d)"
	add_target target-e agent-web01 mc-new "$(file_config e)"
	add_target target-w2 agent-web02 mc-new "$(file_config w2)"

	import_version mc-shop v1
	import_version mc-shop v2
	import_version mc-other other
	import_version mc-new new
	certctl-enqueue --certificate mc-shop >/dev/null
	as_agent agent-web01 certctl-claim --agent agent-web01 --limit 10 |
		as_agent agent-web01 certctl-deploy --no-verify >/dev/null 2>&1 || :
	certctl-enqueue --certificate mc-other >/dev/null
	wait_served_fingerprint "$PORT_A" "$(fingerprint "$PKI/v2.pem")"
	export V1=$(fingerprint "$PKI/v1.pem") V2=$(fingerprint "$PKI/v2.pem")
}

teardown_file() {
	stop_nginx "$BATS_FILE_TMPDIR/nginx-a"
	stop_nginx "$BATS_FILE_TMPDIR/nginx-b"
}

# add_target ID AGENT CERTIFICATE CONFIG_JSON
add_target() {
	psql -XAtq -v ON_ERROR_STOP=1 -v id="$1" -v agent="$2" -v cert="$3" -v config="$4" <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id, config) VALUES (:'id', 'file', :'agent', :'config');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES (:'cert', :'id');
	SQL
}

file_config() {
	jq -cn --arg d "$W/$1" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")}'
}

# nginx_config DIR PORT RELOAD_ARGV: a file target nginx serves from $W/DIR.
nginx_config() {
	jq -cn --arg d "$W/$1" --arg e "127.0.0.1:$2" --argjson r "$3" \
		'{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem"), reload_command: $r,
		  verify_endpoint: $e, verify_sni: "localhost"}'
}

import_version() {
	certctl-import --certificate "$1" --cert "$PKI/$2.pem" --key "$PKI/$2.key" --chain "$PKI/chain.pem" >/dev/null
}

# state TARGET: the state certctl-status gives the target ($output: its lines).
state() {
	jq -r --arg t "$1" 'select(.target_id == $t) | .state' <<<"$output"
}

probe_all() {
	run --separate-stderr certctl-verify --all
}

@test "status: before any probe, deployed targets are unverified; failing, pending and never_deployed stand" {
	sql "DELETE FROM target_probes"
	run --separate-stderr certctl-status
	expect_status 0
	expect_equal 6 "$(wc -l <<<"$output")" "lines"
	expect_equal unverified "$(state target-a)" "target-a"
	expect_equal unverified "$(state target-b)" "target-b"
	expect_equal failing "$(state target-c)" "target-c"
	expect_equal pending "$(state target-d)" "target-d"
	expect_equal never_deployed "$(state target-e)" "target-e"
	expect_equal never_deployed "$(state target-w2)" "target-w2"
}

@test "status: after certctl-verify --all: current, drifted (nginx still serves v1), failing" {
	probe_all
	expect_status 1
	run --separate-stderr certctl-status
	expect_status 0
	expect_equal current "$(state target-a)" "target-a"
	expect_equal drifted "$(state target-b)" "target-b"
	expect_equal failing "$(state target-c)" "target-c"
	expect_equal pending "$(state target-d)" "target-d"
	expect_equal never_deployed "$(state target-e)" "target-e"
}

@test "status: each line has the contract's keys; fingerprints, dates and days as recorded" {
	probe_all
	run --separate-stderr certctl-status --certificate mc-shop
	expect_status 0
	expect_equal 3 "$(wc -l <<<"$output")" "lines"
	expect_equal "agent_id,certificate_id,days_left,deployed_at,deployed_fingerprint,expected_fingerprint,not_after,renewal_due_at,renewal_in_progress,served_at,served_error,served_fingerprint,state,target_id" \
		"$(head -1 <<<"$output" | jq -r 'keys | join(",")')" "keys"
	b=$(jq -c 'select(.target_id == "target-b")' <<<"$output")
	expect_equal "$V2" "$(jq -r .expected_fingerprint <<<"$b")" "expected"
	expect_equal "$V2" "$(jq -r .deployed_fingerprint <<<"$b")" "deployed"
	expect_equal "$V1" "$(jq -r .served_fingerprint <<<"$b")" "served"
	expect_equal "$(sql "SELECT certctl_rfc3339(completed_at) FROM jobs WHERE target_id = 'target-b'")" \
		"$(jq -r .deployed_at <<<"$b")" "deployed_at"
	expect_equal "$(sql "SELECT certctl_rfc3339(served_at) FROM target_probes WHERE target_id = 'target-b'")" \
		"$(jq -r .served_at <<<"$b")" "served_at"
	expect_equal "$(date -u -d "$(openssl x509 -in "$PKI/v2.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)" \
		"$(jq -r .not_after <<<"$b")" "not_after"
	expect_equal 19 "$(jq -r .days_left <<<"$b")" "days_left"
	expect_equal "$(sql "SELECT certctl_rfc3339(renewal_due_at) FROM managed_certificates WHERE id = 'mc-shop'")" \
		"$(jq -r .renewal_due_at <<<"$b")" "renewal_due_at"
	c=$(jq -c 'select(.target_id == "target-c")' <<<"$output")
	expect_equal null "$(jq -r .deployed_fingerprint <<<"$c")" "target-c never completed"
}

@test "status: a deploy of the current version after the probe makes a drifted target unverified until the next probe" {
	probe_all
	# the operator reloads nginx by hand and redeploys; the old probe says nothing about it
	nginx -p "$BATS_FILE_TMPDIR/nginx-b" -e "$BATS_FILE_TMPDIR/nginx-b/error.log" \
		-c "$BATS_FILE_TMPDIR/nginx-b/nginx.conf" -s reload
	wait_served_fingerprint "$PORT_B" "$V2"
	job=$(sql "INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, completed_at, deployed_fingerprint)
		VALUES ('job-b-redeploy', 'Deployment', 'Completed', 'mc-shop', 'target-b', 'agent-web01', now(), '$V2') RETURNING id")
	run --separate-stderr certctl-status --certificate mc-shop
	expect_equal unverified "$(state target-b)" "after the redeploy"
	probe_all
	run --separate-stderr certctl-status --certificate mc-shop
	expect_equal current "$(state target-b)" "after the probe"
	# back to the file's fleet: nginx-b serves v1 again
	sql "DELETE FROM jobs WHERE id = '$job'"
	cat "$PKI/v1.pem" "$PKI/chain.pem" > "$W/b/cert.pem"
	cp "$PKI/v1.key" "$W/b/key.pem"
	nginx -p "$BATS_FILE_TMPDIR/nginx-b" -e "$BATS_FILE_TMPDIR/nginx-b/error.log" \
		-c "$BATS_FILE_TMPDIR/nginx-b/nginx.conf" -s reload
	wait_served_fingerprint "$PORT_B" "$V1"
}

@test "status --check exits 1 naming the drifted and failing targets and the certificate past its renewal point" {
	probe_all
	run --separate-stderr certctl-status --check
	expect_status 1
	expect_equal "" "$output" "stdout"
	expect_equal 3 "$(grep -c . <<<"$stderr")" "stderr lines: $stderr"
	expect_contains "$stderr" "certctl-status: mc-shop on target-b: drifted: deployed $V2, served $V1, current version $V2"
	expect_contains "$stderr" "certctl-status: mc-shop on target-c: failing: "
	expect_contains "$stderr" "certctl-status: mc-new: past its renewal point ("
}

@test "status --check --table prints the table and still names the problems (exit 1)" {
	probe_all
	run --separate-stderr certctl-status --check --table --certificate mc-shop
	expect_status 1
	expect_equal "CERTIFICATE  TARGET    STATE    EXPIRES                RENEWAL" "$(head -1 <<<"$output")" "header"
	expect_equal 4 "$(wc -l <<<"$output")" "table lines"
	expect_equal 2 "$(grep -c . <<<"$stderr")" "problems: $stderr"
}

@test "status --table: under a day, relative times count hours" {
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-soon')"
	sql "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after, fingerprint_sha256, cert_pem)
		VALUES ('v-soon', 'mc-soon', '1', now() - interval '1 day', now() + interval '5 hours 30 minutes', repeat('b', 64), 'pem')"
	sql "INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-soon', 'target-e')"
	run --separate-stderr certctl-status --table --certificate mc-soon
	sql "DELETE FROM certificate_targets WHERE certificate_id = 'mc-soon'"
	sql "DELETE FROM certificate_versions WHERE certificate_id = 'mc-soon'"
	sql "DELETE FROM managed_certificates WHERE id = 'mc-soon'"
	expect_status 0
	expect_contains "$(sed -n 2p <<<"$output")" "$(date -u -d '+5 hours 30 minutes' +%Y-%m-%d) in 5 hours  overdue "
	expect_contains "$(sed -n 2p <<<"$output")" " hours"
}

@test "status --check: a renewal in progress is no problem; a clean scope exits 0" {
	sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES ('job-renew-new', 'Renewal', 'Pending', 'mc-new')"
	run --separate-stderr certctl-status --check --certificate mc-new
	sql "DELETE FROM jobs WHERE id = 'job-renew-new'"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	run --separate-stderr certctl-status --check --certificate mc-other
	expect_status 0
}

@test "status --table: aligned, within 100 columns, human dates, as expected" {
	probe_all
	run --separate-stderr certctl-status --table
	expect_status 0
	end() { date -u -d "$(openssl x509 -in "$PKI/$1.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%d; }
	expected=$(sed -e "s/@SHOP@/$(end v2)/" -e "s/@OTHER@/$(end other)/" -e "s/@NEW@/$(end new)/" \
		"$TESTS_DIR/status/table.expected")
	expect_equal "$expected" "$output" "table"
	expect_equal 0 "$(awk 'length > 100' <<<"$output" | wc -l)" "lines over 100 columns"
}

@test "status --prometheus writes a textfile promtool accepts, parsed back to the same states" {
	probe_all
	file="$BATS_TEST_TMPDIR/textfile/certctl.prom"
	mkdir -p "${file%/*}"
	echo stale > "$file"
	run --separate-stderr certctl-status --prometheus "$file"
	expect_status 0
	expect_equal "" "$output" "stdout"
	expect_equal 644 "$(stat -c %a "$file")" "mode"
	run promtool check metrics < "$file"
	expect_status 0
	expect_equal "" "$output" "promtool"
	expect_equal 0 "$(find "${file%/*}" -name '.*' -type f | wc -l)" "temp files left"
	parsed=$(awk '/^certctl_target_state\{/ && $2 == 1 {
		match($0, /target_id="[^"]*"/); t = substr($0, RSTART + 11, RLENGTH - 12)
		match($0, /state="[^"]*"/); s = substr($0, RSTART + 7, RLENGTH - 8)
		print t "=" s }' "$file" | sort | tr '\n' ' ')
	run --separate-stderr certctl-status
	expected=$(jq -r '.target_id + "=" + .state' <<<"$output" | sort | tr '\n' ' ')
	expect_equal "$expected" "$parsed" "states"
	expect_equal 36 "$(grep -c '^certctl_target_state{' "$file")" "six states for each of six targets"
	expect_contains "$(cat "$file")" \
		"certctl_certificate_not_after_seconds{certificate_id=\"mc-shop\"} $(sql "SELECT extract(epoch FROM not_after)::bigint FROM certificate_versions v JOIN managed_certificates c ON c.id = v.certificate_id WHERE v.fingerprint_sha256 = '$V2'")"
	expect_contains "$(cat "$file")" 'certctl_certificate_renewal_overdue{certificate_id="mc-new"} 1'
	expect_contains "$(cat "$file")" 'certctl_certificate_renewal_overdue{certificate_id="mc-shop"} 0'
}

@test "status --prometheus into a directory that does not exist is 73 and writes nothing" {
	run --separate-stderr certctl-status --prometheus "$BATS_TEST_TMPDIR/missing/certctl.prom"
	expect_status 73
	expect_one_line_error certctl-status
}

@test "status: an agent's role sees only its own targets; another agent's scope is 77" {
	run --separate-stderr as_agent agent-web02 certctl-status
	expect_status 0
	expect_equal "target-w2" "$(jq -r .target_id <<<"$output" | tr '\n' ' ' | sed 's/ $//')" "agent-web02's targets"
	run --separate-stderr as_agent agent-web01 certctl-status
	expect_status 0
	expect_equal "target-a target-b target-c target-d target-e" \
		"$(jq -r .target_id <<<"$output" | sort | tr '\n' ' ' | sed 's/ $//')" "agent-web01's targets"
	run --separate-stderr as_agent agent-web02 certctl-status --agent agent-web01
	expect_status 77
	expect_one_line_error certctl-status
}

@test "status: an agent's role learns of a renewal in progress for its own certificate" {
	sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES ('job-renew-new', 'Renewal', 'Pending', 'mc-new')"
	run --separate-stderr as_agent agent-web02 certctl-status --check
	sql "DELETE FROM jobs WHERE id = 'job-renew-new'"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	run --separate-stderr as_agent agent-web02 certctl-status --check
	expect_status 1
	expect_contains "$stderr" "mc-new: past its renewal point"
}

@test "status: unknown --certificate and --agent are 66; bad flags are 64" {
	run --separate-stderr certctl-status --certificate mc-nope
	expect_status 66
	expect_one_line_error certctl-status
	run --separate-stderr certctl-status --agent agent-nope
	expect_status 66
	run --separate-stderr certctl-status --table --prometheus /tmp/x.prom
	expect_status 64
	run --separate-stderr certctl-status extra
	expect_status 64
}

@test "status --table: ids longer than their column end in ~ and every line stays within 100 columns" {
	long_cert="mc-$(printf 'c%.0s' $(seq 1 40))"
	long_target="target-$(printf 't%.0s' $(seq 1 40))"
	sql "INSERT INTO managed_certificates (id) VALUES ('$long_cert')"
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('$long_target', 'file', 'agent-web01')"
	sql "INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('$long_cert', '$long_target')"
	run --separate-stderr certctl-status --table --certificate "$long_cert"
	sql "DELETE FROM certificate_targets WHERE target_id = '$long_target'"
	sql "DELETE FROM deployment_targets WHERE id = '$long_target'"
	sql "DELETE FROM managed_certificates WHERE id = '$long_cert'"
	expect_status 0
	expect_equal "mc-cccccccccccccc~  target-tttttttttttttt~  never_deployed  -        -" \
		"$(sed -n 2p <<<"$output")" "row"
	expect_equal 0 "$(awk 'length > 100' <<<"$output" | wc -l)" "lines over 100 columns"
}
