#!/usr/bin/env bats
# certctl-renew: which certificates are due, judged with fixed clocks (--now),
# the jobs it makes, once, and the expiry warnings, once per version.
load helpers
load lib/pki

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_sealing_key
	printf '%s\n' '{"kind":"issuer","id":"iss-test","type":"command","config":{"command":["/bin/false"]}}' |
		certctl-import >/dev/null
}

# A certificate ID with the issuer and a version valid for DAYS days from now;
# more inventory fields as JSON (e.g. ',"renew_before":86400').
certificate_with_version() {
	local id=$1 days=$2 extra=${3:-}
	printf '{"kind":"certificate","id":"%s","issuer_id":"iss-test"%s}\n' "$id" "$extra" | certctl-import >/dev/null
	make_leaf "$PKI" "$id" "$id.example" "$days"
	certctl-import --certificate "$id" --cert "$PKI/$id.pem" --key "$PKI/$id.key" --chain "$PKI/chain.pem" >/dev/null
}

# The jitter share of the lifetime, computed here from its definition (the
# first 32 bits of md5(id), scaled to [0, 0.02)), not by asking the database.
jitter() {
	local hex
	hex=$(printf '%s' "$1" | md5sum | cut -c1-8)
	awk -v h=$((16#$hex)) 'BEGIN { printf "%.12f", h / 4294967296 * 0.02 }'
}

# The first of mc-1, mc-2, … whose jitter is under FRACTION of the lifetime.
id_with_jitter_under() {
	local n
	for n in $(seq 1 200); do
		if awk -v j="$(jitter "mc-$n")" -v f="$1" 'BEGIN { exit !(j < f) }'; then
			echo "mc-$n"
			return
		fi
	done
	return 1
}

# RFC 3339 of (not_before of ID's version) + SECONDS, rounded down or up.
at() {
	local id=$1 seconds=$2 round=${3:-floor}
	sql "SELECT certctl_rfc3339(to_timestamp($round(extract(epoch FROM not_before) + $seconds)))
	     FROM certificate_versions WHERE certificate_id = '$id'"
}

renewal_jobs() {
	sql "SELECT count(*) FROM jobs WHERE type IN ('Issuance', 'Renewal')"
}

DAY=86400

@test "renew: a 90-day certificate is due at 60 days less its jitter, not a minute before" {
	id=$(id_with_jitter_under 0.011)
	certificate_with_version "$id" 90
	due=$(awk -v j="$(jitter "$id")" -v d=$DAY 'BEGIN { printf "%.3f", 60 * d - j * 90 * d }')

	run --separate-stderr certctl-renew --now "$(at "$id" "$due - 60")"
	expect_status 0
	expect_equal "" "$output" "a minute before the due point"
	# The id was chosen with a jitter under a day: at 59 days it is not due.
	run --separate-stderr certctl-renew --now "$(at "$id" $((59 * DAY)))"
	expect_equal "" "$output" "at 59 days"
	expect_equal 0 "$(renewal_jobs)"

	run --separate-stderr certctl-renew --now "$(at "$id" "$due" ceil)"
	expect_status 0
	expect_equal "Renewal|Pending|$id|null" "$(jq -r '[.type, .status, .certificate_id, (.agent_id // "null")] | join("|")' <<<"$output")"
	expect_equal "Renewal|Pending||$id" "$(sql "SELECT type, status, agent_id, certificate_id FROM jobs")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'renewal_job_created' AND actor_type = 'System'")"
}

@test "renew: at 60 days a 90-day certificate is due whatever its jitter" {
	for n in 1 2 3 4 5; do
		certificate_with_version "mc-$n" 90
	done
	run --separate-stderr certctl-renew --now "$(at mc-1 $((60 * DAY)) ceil)"
	expect_status 0
	expect_equal 5 "$(printf '%s\n' "$output" | grep -c '"type":"Renewal"')" "jobs at 60 days"
}

@test "renew: a 6-day certificate is due at 3 days (half its lifetime) less its jitter" {
	certificate_with_version mc-short 6
	due=$(awk -v j="$(jitter mc-short)" -v d=$DAY 'BEGIN { printf "%.3f", 3 * d - j * 6 * d }')
	run --separate-stderr certctl-renew --now "$(at mc-short "$due - 60")"
	expect_equal "" "$output" "before the due point"
	run --separate-stderr certctl-renew --now "$(at mc-short $((3 * DAY)))"
	expect_status 0
	expect_contains "$output" '"certificate_id":"mc-short"'
}

@test "renew: renew_before wins over the lifetime rule" {
	# 80 days before not_after: due at day 10 (less the jitter), long before day 60.
	certificate_with_version mc-early 90 ",\"renew_before\":$((80 * DAY))"
	run --separate-stderr certctl-renew --now "$(at mc-early $((8 * DAY)))"
	expect_equal "" "$output" "at day 8"
	run --separate-stderr certctl-renew --now "$(at mc-early $((10 * DAY)))"
	expect_contains "$output" '"certificate_id":"mc-early"'
	# Changing renew_before moves the due point of the current version.
	sql "UPDATE jobs SET status = 'Cancelled'"
	printf '%s\n' "{\"kind\":\"certificate\",\"id\":\"mc-early\",\"renew_before\":$DAY}" | certctl-import >/dev/null
	run --separate-stderr certctl-renew --now "$(at mc-early $((80 * DAY)))"
	expect_equal "" "$output" "at day 80 with renew_before one day"
}

@test "renew: the jitter is stable across runs, within 2% of the lifetime, and spread" {
	for n in $(seq 1 12); do
		certificate_with_version "mc-$n" 90
	done
	first=$(sql "SELECT string_agg(certctl_rfc3339(renewal_due_at), ',' ORDER BY id) FROM managed_certificates")
	# What the due points are, from the definition, to the second.
	for n in $(seq 1 12); do
		expected=$(awk -v j="$(jitter "mc-$n")" -v d=$DAY 'BEGIN { printf "%.3f", 60 * d - j * 90 * d }')
		expect_equal t "$(sql "SELECT abs(extract(epoch FROM m.renewal_due_at) - (extract(epoch FROM v.not_before) + $expected)) < 1
			FROM managed_certificates m JOIN certificate_versions v ON v.id = m.current_version_id
			WHERE m.id = 'mc-$n'")" "due point of mc-$n"
	done
	expect_equal t "$(sql "SELECT bool_and(extract(epoch FROM (v.not_before + interval '60 days') - m.renewal_due_at)
	                            BETWEEN 0 AND 0.02 * 90 * 86400)
	                     FROM managed_certificates m JOIN certificate_versions v ON v.id = m.current_version_id")" "within 2%"
	expect_equal t "$(sql "SELECT count(DISTINCT renewal_due_at - v.not_before) > 6
	                     FROM managed_certificates m JOIN certificate_versions v ON v.id = m.current_version_id")" "spread"
	certctl-renew --now "$(at mc-1 $DAY)" >/dev/null
	certctl-renew --now "$(at mc-1 $DAY)" >/dev/null
	expect_equal "$first" "$(sql "SELECT string_agg(certctl_rfc3339(renewal_due_at), ',' ORDER BY id) FROM managed_certificates")"
}

@test "renew: a second run creates no second job; a finished one lets the next run renew again" {
	certificate_with_version mc-a 90
	now=$(at mc-a $((61 * DAY)))
	run --separate-stderr certctl-renew --now "$now"
	expect_equal 1 "$(printf '%s\n' "$output" | grep -c .)"
	run --separate-stderr certctl-renew --now "$now"
	expect_status 0
	expect_equal "" "$output"
	expect_equal 1 "$(renewal_jobs)"
	# The unique index holds even for a job written by hand.
	run sql "INSERT INTO jobs (id, type, status, certificate_id) VALUES ('job-dup', 'Renewal', 'Pending', 'mc-a')"
	expect_status 1
	sql "UPDATE jobs SET status = 'Failed'"
	run --separate-stderr certctl-renew --now "$now"
	expect_equal 1 "$(printf '%s\n' "$output" | grep -c .)"
	expect_equal 2 "$(renewal_jobs)"
}

@test "renew: two renews at once create one job" {
	certificate_with_version mc-a 90
	now=$(at mc-a $((61 * DAY)))
	certctl-renew --now "$now" > "$BATS_TEST_TMPDIR/1" &
	certctl-renew --now "$now" > "$BATS_TEST_TMPDIR/2" &
	wait
	expect_equal 1 "$(cat "$BATS_TEST_TMPDIR/1" "$BATS_TEST_TMPDIR/2" | grep -c .)"
	expect_equal 1 "$(renewal_jobs)"
}

@test "renew: no issuer, or auto_renew false, is never due; no version means Issuance" {
	certificate_with_version mc-off 90 ',"auto_renew":false'
	printf '%s\n' '{"kind":"certificate","id":"mc-imported"}' | certctl-import >/dev/null
	make_leaf "$PKI" imported imported.example 90
	certctl-import --certificate mc-imported --cert "$PKI/imported.pem" --key "$PKI/imported.key" >/dev/null
	printf '%s\n' '{"kind":"certificate","id":"mc-new","issuer_id":"iss-test","sans":["new.example"]}' | certctl-import >/dev/null
	run --separate-stderr certctl-renew --now 2099-01-01T00:00:00Z
	expect_status 0
	expect_equal "Issuance|mc-new" "$(jq -r '[.type, .certificate_id] | join("|")' <<<"$output")"
	expect_equal 1 "$(renewal_jobs)"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'issuance_job_created'")"
}

@test "renew: key_mode agent is AwaitingCSR for the certificate's agent; two agents is 78, named, and the rest goes on" {
	jq -cn '{kind:"agent", id:"agent-a"}, {kind:"agent", id:"agent-b"},
		{kind:"target", id:"target-a", type:"file", agent_id:"agent-a", config:{}},
		{kind:"target", id:"target-b", type:"file", agent_id:"agent-b", config:{}},
		{kind:"certificate", id:"mc-one", issuer_id:"iss-test", key_mode:"agent", sans:["one.example"], targets:["target-a"]},
		{kind:"certificate", id:"mc-two", issuer_id:"iss-test", key_mode:"agent", sans:["two.example"], targets:["target-a","target-b"]},
		{kind:"certificate", id:"mc-central", issuer_id:"iss-test", targets:["target-a","target-b"]}' |
		certctl-import >/dev/null
	run --separate-stderr certctl-renew
	expect_status 78
	expect_one_line_error certctl-renew
	expect_contains "$stderr" "mc-two"
	expect_equal "AwaitingCSR|agent-a" "$(sql "SELECT status, agent_id FROM jobs WHERE certificate_id = 'mc-one'")"
	expect_equal "Pending|" "$(sql "SELECT status, agent_id FROM jobs WHERE certificate_id = 'mc-central'")"
	expect_equal 0 "$(sql "SELECT count(*) FROM jobs WHERE certificate_id = 'mc-two'")"
	# The agent's claim lists its AwaitingCSR job, unchanged.
	enroll_agent agent-a
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a
	expect_status 0
	expect_contains "$output" '"status":"AwaitingCSR"'
}

@test "renew: expiry warnings once per version and kind, then expired once" {
	certificate_with_version mc-a 60
	# Five sixths of 60 days: 50 days in, ten left.
	run --separate-stderr certctl-renew --now "$(at mc-a $((51 * DAY)))"
	certctl-renew --now "$(at mc-a $((52 * DAY)))" >/dev/null
	expect_equal "expiry_warning|1" "$(sql "SELECT type, count(*) FROM notification_events GROUP BY type")"
	expect_contains "$(sql "SELECT message FROM notification_events")" "mc-a expires at"
	certctl-renew --now "$(at mc-a $((61 * DAY)))" >/dev/null
	certctl-renew --now "$(at mc-a $((62 * DAY)))" >/dev/null
	expect_equal "expired|1,expiry_warning|1" "$(sql "SELECT string_agg(type || '|' || n, ',' ORDER BY type)
		FROM (SELECT type, count(*) n FROM notification_events GROUP BY type) c")"
	# Before the warning point: nothing.
	certificate_with_version mc-b 60
	certctl-renew --certificate mc-b --now "$(at mc-b $((49 * DAY)))" >/dev/null
	expect_equal 0 "$(sql "SELECT count(*) FROM notification_events WHERE certificate_id = 'mc-b'")"
}

@test "renew: --dry-run prints the job it would create and changes nothing" {
	certificate_with_version mc-a 60
	run --separate-stderr certctl-renew --dry-run --now "$(at mc-a $((55 * DAY)))"
	expect_status 0
	expect_contains "$output" '"type":"Renewal"'
	expect_equal 0 "$(renewal_jobs)"
	expect_equal 0 "$(sql "SELECT count(*) FROM notification_events")"
	expect_equal 0 "$(sql "SELECT count(*) FROM audit_events WHERE action LIKE '%job_created'")"
}

@test "renew: an unknown certificate is 66, a bad --now 64, an agent's role 77, and nothing is created" {
	run --separate-stderr certctl-renew --certificate mc-none
	expect_status 66
	expect_one_line_error certctl-renew
	run --separate-stderr certctl-renew --now yesterday
	expect_status 64
	jq -cn '{kind:"agent", id:"agent-a"},
		{kind:"target", id:"target-a", type:"file", agent_id:"agent-a", config:{}},
		{kind:"certificate", id:"mc-a", issuer_id:"iss-test", targets:["target-a"]}' | certctl-import >/dev/null
	enroll_agent agent-a
	run --separate-stderr as_agent agent-a certctl-renew
	expect_status 77
	expect_equal 0 "$(renewal_jobs)"
}
