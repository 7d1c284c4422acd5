#!/usr/bin/env bats
# certctl-notify: due events go through the operator's command exactly once,
# failures back off 1, 2, 4, 8 units and die on the fifth, requeueing brings
# them back, --follow wakes on the events commands write; and the adapters
# against what they drive: a webhook receiver, a sendmail, a syslog socket.
load helpers
load lib/receiver

NOTIFIERS="$TESTS_DIR/../contrib/notifiers"

setup() {
	fresh_database
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
	RECEIVED="$BATS_TEST_TMPDIR/received"
	mkdir -p "$RECEIVED"
}

teardown() {
	stop_receivers
	[ -z "${FOLLOWER:-}" ] || kill "$FOLLOWER" 2>/dev/null || true
}

# add_event ID TYPE [MESSAGE]: a pending event about mc-shop.
add_event() {
	sql "INSERT INTO notification_events (id, type, certificate_id, message)
	     VALUES ('$1', '$2', 'mc-shop', '${3:-certificate mc-shop renewed}')"
}

event_column() {
	sql "SELECT $2 FROM notification_events WHERE id = '$1'"
}

# A command that records its stdin and environment in $RECEIVED, then exits $1.
recording_command() {
	cat > "$BATS_TEST_TMPDIR/record" <<SCRIPT
#!/bin/sh
n=\$(ls "$RECEIVED" | grep -c '\.stdin\$')
n=\$((n + 1))
cat > "$RECEIVED/\$n.stdin"
env > "$RECEIVED/\$n.env"
date +%s.%N >> "$RECEIVED/times"
echo "first line of the complaint" >&2
echo "notifier says: mailbox full" >&2
exit ${1:-0}
SCRIPT
	chmod 0755 "$BATS_TEST_TMPDIR/record"
}

@test "notify: a pending event reaches a real webhook receiver as {\"text\": ...}, and is marked sent" {
	start_webhook_receiver "$RECEIVED"
	add_event notif-1 renewal_success
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook" --url "http://127.0.0.1:$WEBHOOK_PORT/hook"
	expect_status 0
	expect_equal "notif-1 sent 0 null" "$(jq -r '"\(.id) \(.status) \(.retry_count) \(.error)"' <<<"$output")"
	expect_equal 1 "$(requests_received "$RECEIVED")" "requests"
	expect_equal '{"text":"[certctl] renewal_success mc-shop: certificate mc-shop renewed"}' "$(cat "$RECEIVED/1.body")"
	grep -qix 'X-Certctl-Notification-Id: notif-1' "$RECEIVED/1.headers"
	grep -qix 'Content-Type: application/json' "$RECEIVED/1.headers"
	expect_equal "sent|true|" "$(event_column notif-1 "status || '|' || (sent_at IS NOT NULL) || '|' || coalesce(next_retry_at::text, '')")"
	# Sent is sent: the next run has nothing to do.
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook" --url "http://127.0.0.1:$WEBHOOK_PORT/hook"
	expect_status 0
	expect_equal "" "$output"
	expect_equal 1 "$(requests_received "$RECEIVED")" "requests after a second run"
}

@test "notify: the command reads the event as one JSON line, gets its type and id, and no DSN, password or key path" {
	recording_command 0
	add_event notif-1 deployment_failed "job job-1 failed: reload command failed"
	sql "UPDATE notification_events SET recipient = 'ops@example.org' WHERE id = 'notif-1'"
	# The operator's password, where a control host keeps it.
	password=$(grep ':certctl_test_operator:' "$PGPASSFILE" | cut -d: -f5)
	(umask 077 && printf '%s\n' "$password" > "$BATS_TEST_TMPDIR/control.password")
	CERTCTL_DSN="dbname=$PGDATABASE" PGPASSWORD=$password CERTCTL_KEY_FILE=/etc/certctl/key \
		CERTCTL_AGENT_KEY_FILE=/etc/certctl/agent.key CERTCTL_PASSWORD_FILE="$BATS_TEST_TMPDIR/control.password" \
		run --separate-stderr certctl-notify -- "$BATS_TEST_TMPDIR/record"
	expect_status 0
	run grep -cF "$password" "$RECEIVED/1.env"
	expect_equal 0 "$output" "lines holding the password in the command's environment"
	expect_equal 1 "$(wc -l < "$RECEIVED/1.stdin")" "lines on stdin"
	expect_equal "notif-1|deployment_failed|mc-shop|null|log|ops@example.org|job job-1 failed: reload command failed|0" \
		"$(jq -r '[.id, .type, .certificate_id, (.job_id | tostring), .channel, .recipient, .message, .retry_count] | join("|")' "$RECEIVED/1.stdin")"
	[[ "$(jq -r .created_at "$RECEIVED/1.stdin")" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]
	grep -qx 'CERTCTL_NOTIFICATION_TYPE=deployment_failed' "$RECEIVED/1.env"
	grep -qx 'CERTCTL_NOTIFICATION_ID=notif-1' "$RECEIVED/1.env"
	run grep -E '^(CERTCTL_DSN|PGPASSWORD|PGPASSFILE|PGUSER|CERTCTL_KEY_FILE|CERTCTL_AGENT_KEY_FILE|CERTCTL_PASSWORD_FILE)=' "$RECEIVED/1.env"
	expect_status 1
}

@test "notify: a failing command: failed, retry_count 1, a retry one minute on, last_error its last stderr line, exit 1" {
	recording_command 1
	add_event notif-1 renewal_failure
	run --separate-stderr certctl-notify -- "$BATS_TEST_TMPDIR/record"
	expect_status 1
	expect_equal "notif-1 failed 1 notifier says: mailbox full" "$(jq -r '"\(.id) \(.status) \(.retry_count) \(.error)"' <<<"$output")"
	expect_equal "failed|1|notifier says: mailbox full" "$(event_column notif-1 "status || '|' || retry_count || '|' || last_error")"
	# One minute after the failure: after the command ran, by at most the time it took to mark it.
	expect_equal t "$(event_column notif-1 "extract(epoch FROM next_retry_at) - $(sed -n 1p "$RECEIVED/times") BETWEEN 60 AND 65")"
	expect_equal "$(event_column notif-1 "certctl_rfc3339(next_retry_at)")" "$(jq -r .next_retry_at <<<"$output")"
	# Not before its time.
	run --separate-stderr certctl-notify -- "$BATS_TEST_TMPDIR/record"
	expect_status 0
	expect_equal "" "$output"
	expect_equal 1 "$(wc -l < "$RECEIVED/times")" "command runs"
	# Its time come (the clock moved by the fixture), it is tried again and waits 2 minutes.
	sql "UPDATE notification_events SET next_retry_at = now() - interval '1 second' WHERE id = 'notif-1'"
	run --separate-stderr certctl-notify -- "$BATS_TEST_TMPDIR/record"
	expect_status 1
	expect_equal "failed|2" "$(event_column notif-1 "status || '|' || retry_count")"
	expect_equal t "$(event_column notif-1 "extract(epoch FROM next_retry_at) - $(sed -n 2p "$RECEIVED/times") BETWEEN 120 AND 125")"
}

@test "notify: --follow retries a failing command at 1, 2, 4, 8 units, the fifth failure is dead, --requeue-dead brings it back" {
	recording_command 1
	add_event notif-1 renewal_failure
	CERTCTL_NOTIFY_RETRY_UNIT=1 certctl-notify --follow -- "$BATS_TEST_TMPDIR/record" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	FOLLOWER=$!
	for _ in $(seq 1 300); do
		[ "$(event_column notif-1 status)" = dead ] && break
		sleep 0.1
	done
	expect_equal "dead|5|" "$(event_column notif-1 "status || '|' || retry_count || '|' || coalesce(next_retry_at::text, '')")"
	expect_equal "failed failed failed failed dead" "$(jq -r .status "$BATS_TEST_TMPDIR/out" | paste -sd' ')"
	expect_equal 5 "$(wc -l < "$RECEIVED/times")" "command runs"
	# The gaps between the runs: 1, 2, 4, 8 s (the unit is 1 s), each at most a second late.
	run awk 'NR > 1 { gap = $1 - last; want = 2 ^ (NR - 2);
	                  if (gap < want - 0.05 || gap > want + 1) { print "run " NR ": gap " gap ", want " want; bad = 1 } }
	         { last = $1 } END { exit bad }' "$RECEIVED/times"
	expect_status 0
	# Dead stays dead.
	sleep 1
	expect_equal 5 "$(wc -l < "$RECEIVED/times")" "command runs after dead"
	kill -TERM "$FOLLOWER"
	rc=0
	wait "$FOLLOWER" || rc=$?
	FOLLOWER=
	expect_equal 75 "$rc" "the follower's exit status on SIGTERM"

	run --separate-stderr certctl-notify --requeue-dead
	expect_status 0
	expect_equal "notif-1 pending dead" "$(jq -r '"\(.id) \(.status) \(.previous_status)"' <<<"$output")"
	expect_equal "pending|0" "$(event_column notif-1 "status || '|' || retry_count")"
	recording_command 0
	run --separate-stderr certctl-notify -- "$BATS_TEST_TMPDIR/record"
	expect_status 0
	expect_equal "sent" "$(event_column notif-1 status)"
}

@test "notify: two notifiers in parallel never send one event twice (the receiver counts)" {
	start_webhook_receiver "$RECEIVED"
	sql "INSERT INTO notification_events (id, type, certificate_id, message)
	     SELECT 'notif-' || n, 'expiry_warning', 'mc-shop', 'event ' || n FROM generate_series(1, 40) n"
	for worker in a b; do
		certctl-notify -- "$NOTIFIERS/webhook" --url "http://127.0.0.1:$WEBHOOK_PORT/" \
			>"$BATS_TEST_TMPDIR/$worker.out" 2>"$BATS_TEST_TMPDIR/$worker.err" &
		eval "pid_$worker=\$!"
	done
	wait "$pid_a"
	wait "$pid_b"
	expect_equal 40 "$(requests_received "$RECEIVED")" "requests"
	expect_equal 40 "$(cat "$RECEIVED"/*.headers | grep -i '^X-Certctl-Notification-Id:' | sort -u | wc -l)" "distinct events received"
	expect_equal 40 "$(cat "$BATS_TEST_TMPDIR"/[ab].out | jq -r .id | sort -u | wc -l)" "distinct lines"
	expect_equal 40 "$(cat "$BATS_TEST_TMPDIR"/[ab].out | wc -l)" "lines"
	expect_equal 40 "$(sql "SELECT count(*) FROM notification_events WHERE status = 'sent'")"
	# Both took part: neither waited for the other's locks.
	[ -s "$BATS_TEST_TMPDIR/a.out" ] && [ -s "$BATS_TEST_TMPDIR/b.out" ] || {
		echo "one notifier sent everything: a $(wc -l < "$BATS_TEST_TMPDIR/a.out"), b $(wc -l < "$BATS_TEST_TMPDIR/b.out")"; return 1; }
}

@test "notify: --follow wakes for an event a command writes (certctl-claim --reap failing a job) and delivers it" {
	recording_command 0
	certctl-notify --follow -- "$BATS_TEST_TMPDIR/record" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	FOLLOWER=$!
	sql "INSERT INTO jobs (id, type, status, certificate_id, attempts, max_attempts, lease_expires_at, claimed_by)
	     VALUES ('job-1', 'Renewal', 'Running', 'mc-shop', 3, 3, now() - interval '1 minute', 'w')"
	sleep 0.5
	certctl-claim --reap >/dev/null
	wait_until "SELECT EXISTS (SELECT 1 FROM notification_events WHERE job_id = 'job-1' AND type = 'job_failed' AND status = 'sent')"
	expect_equal job_failed "$(jq -r .type "$RECEIVED/1.stdin")"
	# A requeue wakes it too.
	id=$(sql "SELECT id FROM notification_events WHERE job_id = 'job-1'")
	certctl-notify --requeue "$id" >/dev/null
	for _ in $(seq 1 100); do
		[ -f "$RECEIVED/2.stdin" ] && break
		sleep 0.1
	done
	expect_equal "$id" "$(jq -r .id "$RECEIVED/2.stdin")"
	kill -0 "$FOLLOWER" || { echo "the follower stopped on its own"; return 1; }
}

@test "notify: --requeue ID makes sent, failed and dead events pending again; an unknown id changes nothing (66)" {
	add_event notif-1 a
	add_event notif-2 b
	sql "UPDATE notification_events SET status = 'dead', retry_count = 5, last_error = 'mailbox full' WHERE id = 'notif-1';
	     UPDATE notification_events SET status = 'sent', sent_at = now() WHERE id = 'notif-2'"
	run --separate-stderr certctl-notify --requeue notif-1 notif-missing
	expect_status 66
	expect_one_line_error certctl-notify
	expect_contains "$stderr" "notif-missing"
	expect_equal "" "$output"
	expect_equal "dead|5" "$(event_column notif-1 "status || '|' || retry_count")"
	run --separate-stderr certctl-notify --requeue notif-1 notif-2
	expect_status 0
	expect_equal "notif-1 pending dead,notif-2 pending sent" \
		"$(jq -r '"\(.id) \(.status) \(.previous_status)"' <<<"$output" | paste -sd, -)"
	expect_equal "pending|0,pending|0" "$(sql "SELECT string_agg(status || '|' || retry_count, ',' ORDER BY id) FROM notification_events")"
	expect_equal "mailbox full" "$(event_column notif-1 last_error)" "last_error kept"
}

@test "notify: a command that outlives its timeout is killed and the event failed" {
	add_event notif-1 a
	CERTCTL_COMMAND_TIMEOUT=1 run --separate-stderr certctl-notify -- sh -c 'echo "still connecting" >&2; exec sleep 30'
	expect_status 1
	expect_equal failed "$(event_column notif-1 status)"
	# Killed, it is the timeout that last_error names, then what it said.
	expect_equal "sh timed out after 1 s and was killed: still connecting" "$(event_column notif-1 last_error)"
}

@test "notify: a command failing without a word on stderr: last_error says how it failed" {
	add_event notif-1 a
	run --separate-stderr certctl-notify -- false
	expect_status 1
	expect_equal "false exited 1" "$(event_column notif-1 last_error)"
}

@test "notify: --limit bounds one run" {
	recording_command 0
	for n in 1 2 3; do add_event "notif-$n" a; done
	run --separate-stderr certctl-notify --limit 2 -- "$BATS_TEST_TMPDIR/record"
	expect_status 0
	expect_equal 2 "$(printf '%s\n' "$output" | wc -l)" "lines"
	expect_equal 1 "$(sql "SELECT count(*) FROM notification_events WHERE status = 'pending'")"
}

@test "notify: usage errors exit 64 before the database is touched" {
	for args in "" "--requeue" "--requeue notif-1 --follow" "--requeue-dead notif-1" "--requeue --requeue-dead x" \
		"--limit 0 -- true" "--limit x -- true" "--bogus -- true"; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-notify -d "host=/nonexistent" $args
		expect_status 64 || { echo "args: $args"; return 1; }
		expect_one_line_error certctl-notify
	done
	CERTCTL_NOTIFY_RETRY_UNIT=0 run --separate-stderr certctl-notify -d "host=/nonexistent" -- true
	expect_status 64
	expect_contains "$stderr" CERTCTL_NOTIFY_RETRY_UNIT
}

@test "notify: webhook: a header from --header-file reaches the receiver; an HTTP error fails the event with curl's reason" {
	start_webhook_receiver "$RECEIVED"
	printf 'Authorization: Bearer s3cret-token\n' > "$BATS_TEST_TMPDIR/auth"
	chmod 600 "$BATS_TEST_TMPDIR/auth"
	add_event notif-1 a
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook" --url "http://127.0.0.1:$WEBHOOK_PORT/" \
		--header-file "$BATS_TEST_TMPDIR/auth" --header 'X-Team: ops'
	expect_status 0
	grep -qx 'Authorization: Bearer s3cret-token' "$RECEIVED/1.headers"
	grep -qx 'X-Team: ops' "$RECEIVED/1.headers"
	echo 500 > "$RECEIVED/status"
	add_event notif-2 b
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook" --url "http://127.0.0.1:$WEBHOOK_PORT/"
	expect_status 1
	expect_equal failed "$(event_column notif-2 status)"
	expect_contains "$(event_column notif-2 last_error)" "500"
}

@test "notify: webhook: a secret URL and token from a --curl-config file, never on the command line" {
	start_webhook_receiver "$RECEIVED"
	printf 'url = "http://127.0.0.1:%s/hooks/s3cret-path"\nheader = "Authorization: Bearer s3cret-token"\n' \
		"$WEBHOOK_PORT" > "$BATS_TEST_TMPDIR/curl.conf"
	chmod 600 "$BATS_TEST_TMPDIR/curl.conf"
	add_event notif-1 a
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook" --curl-config "$BATS_TEST_TMPDIR/curl.conf"
	expect_status 0
	expect_equal /hooks/s3cret-path "$(cat "$RECEIVED/1.path")"
	grep -qx 'Authorization: Bearer s3cret-token' "$RECEIVED/1.headers"
	expect_equal '{"text":"[certctl] a mc-shop: certificate mc-shop renewed"}' "$(cat "$RECEIVED/1.body")"
}

@test "notify: sendmail: a stand-in sendmail in PATH gets -t and one valid RFC 5322 message with the certificate id in the subject" {
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	cat > "$BATS_TEST_TMPDIR/bin/sendmail" <<STUB
#!/bin/sh
printf '%s\n' "\$@" > "$RECEIVED/sendmail.args"
cat > "$RECEIVED/message"
STUB
	chmod 0755 "$BATS_TEST_TMPDIR/bin/sendmail"
	add_event notif-1 expiry_warning "mc-shop expires on 2026-12-24: renew it
Subject: injected"
	PATH="$BATS_TEST_TMPDIR/bin:$PATH" run --separate-stderr certctl-notify -- \
		"$NOTIFIERS/sendmail" --to ops@example.org --from certctl@control.example
	expect_status 0
	expect_equal "-t -oi" "$(paste -sd' ' "$RECEIVED/sendmail.args")"
	run /usr/bin/python3 - "$RECEIVED/message" <<'PY'
import email, email.policy, email.utils, sys
data = open(sys.argv[1], "rb").read()
message = email.message_from_bytes(data, policy=email.policy.strict)
assert not message.defects, message.defects
for header in ("From", "To", "Date", "Subject", "Message-ID"):
    assert len(message.get_all(header, [])) == 1, f"{header}: {message.get_all(header)}"
assert email.utils.parsedate_to_datetime(message["Date"]) is not None
assert all(len(line) <= 998 for line in data.split(b"\n")), "a line over 998 octets"
assert message["From"] == "certctl@control.example", message["From"]
assert message["To"] == "ops@example.org", message["To"]
print(message["Subject"])
print(message.get_content().splitlines()[0])
PY
	expect_status 0
	expect_equal "[certctl] expiry_warning: mc-shop" "${lines[0]}" "subject"
	expect_equal "mc-shop expires on 2026-12-24: renew it" "${lines[1]}" "first body line"
	expect_equal sent "$(event_column notif-1 status)"
	# Without --to, the event's recipient; a line break in a field never makes a header.
	add_event notif-2 "expired
Bcc: victim@example.org"
	sql "UPDATE notification_events SET recipient = 'owner@example.org' WHERE id = 'notif-2'"
	PATH="$BATS_TEST_TMPDIR/bin:$PATH" run --separate-stderr certctl-notify -- "$NOTIFIERS/sendmail"
	expect_status 0
	grep -qx 'To: owner@example.org' "$RECEIVED/message"
	grep -qx 'Subject: \[certctl\] expired Bcc: victim@example.org: mc-shop' "$RECEIVED/message"
	run bash -c 'sed "/^\$/q" "$1" | grep -c "^Bcc:"' _ "$RECEIVED/message"
	expect_equal 0 "$output" "Bcc headers"
}

@test "notify: journal: logger writes the event to a real syslog socket" {
	start_syslog_receiver "$RECEIVED"
	add_event notif-1 renewal_failure "issuer said no
<11>forged: a second line"
	run --separate-stderr certctl-notify -- "$NOTIFIERS/journal" --socket "$SYSLOG_SOCKET" --tag certctl-test
	expect_status 0
	for _ in $(seq 1 50); do
		[ -s "$RECEIVED/messages" ] && break
		sleep 0.1
	done
	expect_equal 1 "$(wc -l < "$RECEIVED/messages")" "datagrams"
	message=$(cat "$RECEIVED/messages")
	# <12>: facility user (1) * 8 + priority warning (4).
	expect_contains "$message" "<12>"
	expect_contains "$message" "certctl-test"
	expect_contains "$message" "renewal_failure certificate=mc-shop job=- id=notif-1: issuer said no <11>forged: a second line"
	# Anything else at notice: <13>.
	add_event notif-2 renewal_success
	run --separate-stderr certctl-notify -- "$NOTIFIERS/journal" --socket "$SYSLOG_SOCKET"
	expect_status 0
	for _ in $(seq 1 50); do
		[ "$(wc -l < "$RECEIVED/messages")" -ge 2 ] && break
		sleep 0.1
	done
	expect_contains "$(sed -n 2p "$RECEIVED/messages")" "<13>"
	expect_contains "$(sed -n 2p "$RECEIVED/messages")" "renewal_success certificate=mc-shop"
}

@test "notify: an adapter without its required argument exits 64 with its usage line, and the event is failed" {
	add_event notif-1 a
	run --separate-stderr certctl-notify -- "$NOTIFIERS/webhook"
	expect_status 1
	expect_contains "$(event_column notif-1 last_error)" "usage: webhook --url URL"
}

@test "notify: a command that cannot be found is refused (78) before any event is taken" {
	add_event notif-1 a
	for command in no-such-notifier "$BATS_TEST_TMPDIR/missing"; do
		run --separate-stderr certctl-notify -- "$command"
		expect_status 78
		expect_one_line_error certctl-notify
		expect_contains "$stderr" "$command"
	done
	expect_equal "pending|0" "$(event_column notif-1 "status || '|' || retry_count")"
}

@test "notify: a notifier killed while its command runs leaves the event pending, its try not counted" {
	add_event notif-1 a
	run --separate-stderr certctl-notify -- sh -c 'kill -KILL $PPID; sleep 1'
	expect_status 137
	wait_until "SELECT status = 'pending' AND retry_count = 0 FROM notification_events WHERE id = 'notif-1'"
	# Its lock went with its connection: the next notifier takes the event.
	run --separate-stderr certctl-notify -- true
	expect_status 0
	expect_equal sent "$(event_column notif-1 status)"
}

@test "notify: SIGTERM while a command runs lets it finish and marks its event, then exits 75 with the rest left pending" {
	add_event notif-1 a
	add_event notif-2 b
	sql "UPDATE notification_events SET created_at = now() - interval '1 minute' WHERE id = 'notif-1'"
	certctl-notify -- sh -c "touch '$BATS_TEST_TMPDIR/started'; sleep 1" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	for _ in $(seq 1 100); do
		[ -e "$BATS_TEST_TMPDIR/started" ] && break
		sleep 0.05
	done
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	expect_equal 75 "$rc" "exit status"
	expect_equal "notif-1 sent" "$(jq -r '"\(.id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
	expect_equal "sent,pending" "$(sql "SELECT string_agg(status, ',' ORDER BY id) FROM notification_events")"
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_one_line_error certctl-notify
}
