#!/usr/bin/env bats
# certctl-claim: jobs go to exactly one claimant, agents see only their own
# work, leases expire into backoff or failure, and retired agents get nothing.
load helpers

setup() {
	fresh_database
}

# add_agent ID: an agent enrolled with a login role of its own, as claims run as it.
add_agent() {
	enroll_agent "$1" --no-key
}

# add_target ID AGENT
add_target() {
	sql "INSERT INTO deployment_targets (id, type, agent_id) VALUES ('$1', 'file', '$2')"
}

# add_certificate ID [TARGET...]: a certificate mapped to the targets.
add_certificate() {
	local id=$1 target
	shift
	sql "INSERT INTO managed_certificates (id) VALUES ('$id')"
	for target in "$@"; do
		sql "INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('$id', '$target')"
	done
}

# add_job ID TYPE STATUS [AGENT] [TARGET] [CERTIFICATE]; '' stands for NULL.
add_job() {
	sql "INSERT INTO jobs (id, type, status, agent_id, target_id, certificate_id)
	     VALUES ('$1', '$2', '$3', NULLIF('${4:-}', ''), NULLIF('${5:-}', ''), NULLIF('${6:-}', ''))"
}

# The sorted ids of the job lines in $output, comma-separated.
claimed_ids() {
	printf '%s\n' "$output" | grep . | jq -r .id | sort | paste -sd, -
}

job_status() {
	sql "SELECT status FROM jobs WHERE id = '$1'"
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

@test "claim: one claim with --limit 10 takes all five Pending jobs, flipped to Running under one lease" {
	for i in 1 2 3 4 5; do add_job "job-$i" Renewal Pending; done
	run --separate-stderr certctl-claim --limit 10 --worker sched-1
	expect_status 0
	expect_equal "job-1,job-2,job-3,job-4,job-5" "$(claimed_ids)" "claimed ids"
	first=$(printf '%s\n' "$output" | head -n 1)
	expect_equal "Running 1 3 sched-1 Renewal" \
		"$(jq -r '"\(.status) \(.attempts) \(.max_attempts) \(.claimed_by) \(.type)"' <<<"$first")" "job line"
	jq -e '.lease_expires_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")' <<<"$first"
	jq -e 'has("certificate_id") and has("target_id") and has("agent_id")' <<<"$first"
	expect_equal "5" "$(sql "SELECT count(*) FROM jobs WHERE status = 'Running' AND attempts = 1
		AND claimed_by = 'sched-1' AND started_at IS NOT NULL
		AND lease_expires_at BETWEEN now() + interval '890 seconds' AND now() + interval '910 seconds'")" \
		"Running rows with attempts 1, claimed_by and a 900 s lease"

	run --separate-stderr certctl-claim --limit 10
	expect_status 0
	expect_equal "" "$output" "second claim"
}

@test "claim: defaults are one job, claimed_by hostname:pid; --lease sets the lease" {
	add_job job-1 Renewal Pending
	add_job job-2 Renewal Pending
	run --separate-stderr certctl-claim
	expect_status 0
	expect_equal 1 "$(printf '%s\n' "$output" | grep -c .)" "lines with the default limit"
	[[ "$(jq -r .claimed_by <<<"$output")" =~ ^$(hostname):[0-9]+$ ]] ||
		{ echo "claimed_by is not hostname:pid: $output"; return 1; }
	run --separate-stderr certctl-claim --lease 60
	expect_status 0
	expect_equal "t" "$(sql "SELECT lease_expires_at BETWEEN now() + interval '50 seconds'
		AND now() + interval '70 seconds' FROM jobs WHERE id = 'job-2'")" "60 s lease"
}

@test "claim: the oldest scheduled_at is claimed first" {
	add_job job-new Renewal Pending
	add_job job-old Renewal Pending
	sql "UPDATE jobs SET scheduled_at = now() - interval '1 hour' WHERE id = 'job-old'"
	run --separate-stderr certctl-claim
	expect_status 0
	expect_equal "job-old" "$(claimed_ids)"
}

@test "claim: -v reports the count on stderr; stdout holds only job lines" {
	add_job job-1 Renewal Pending
	run --separate-stderr certctl-claim -v
	expect_status 0
	expect_equal "job-1" "$(claimed_ids)"
	expect_equal "certctl-claim: 1 job claimed" "$stderr"
}

@test "claim: a failed write to stdout exits 73 and the job stays leased for the reaper" {
	add_job job-1 Renewal Pending
	run --separate-stderr bash -c 'certctl-claim --worker w1 >/dev/full'
	expect_status 73
	expect_one_line_error certctl-claim
	expect_equal "Running|w1" "$(sql "SELECT status, claimed_by FROM jobs")"
}

@test "claim: a closed stdout exits 73 before anything is claimed" {
	add_job job-1 Renewal Pending
	run --separate-stderr bash -c 'certctl-claim --worker w1 >&-'
	expect_status 73
	expect_one_line_error certctl-claim
	expect_equal "Pending|0" "$(sql "SELECT status, attempts FROM jobs")"
}

@test "claim: --type takes only jobs of that type" {
	add_job job-r Renewal Pending
	add_job job-i Issuance Pending
	run --separate-stderr certctl-claim --type Issuance --limit 5
	expect_status 0
	expect_equal "job-i" "$(claimed_ids)"
	expect_equal "Pending" "$(job_status job-r)"
}

@test "claim: eight claimers in parallel never get the same job" {
	for i in $(seq 1 40); do add_job "job-$i" Renewal Pending; done
	pids=()
	for w in 1 2 3 4 5 6 7 8; do
		(
			empty=0 rounds=0
			# Stop after three empty claims in a row, or 100 rounds at most.
			while [ "$empty" -lt 3 ] && [ "$rounds" -lt 100 ]; do
				rounds=$((rounds + 1))
				out=$(certctl-claim --limit 1 --worker "w$w") || exit 1
				if [ -z "$out" ]; then
					empty=$((empty + 1))
				else
					empty=0
					printf '%s\n' "$out" >>"$BATS_TEST_TMPDIR/claimed-$w"
				fi
			done
		) &
		pids+=($!)
	done
	for pid in "${pids[@]}"; do wait "$pid"; done
	cat "$BATS_TEST_TMPDIR"/claimed-* >"$BATS_TEST_TMPDIR/all"
	expect_equal 40 "$(wc -l <"$BATS_TEST_TMPDIR/all")" "lines printed in total"
	expect_equal "" "$(jq -r .id "$BATS_TEST_TMPDIR/all" | sort | uniq -d | paste -sd, -)" "ids claimed twice"
	expect_equal 40 "$(jq -r .id "$BATS_TEST_TMPDIR/all" | sort -u | wc -l)" "distinct ids"
	expect_equal "40" "$(sql "SELECT count(*) FROM jobs WHERE status = 'Running' AND attempts = 1")" \
		"Running rows claimed once"
	expect_equal 0 "$(jq -r .claimed_by "$BATS_TEST_TMPDIR/all" | grep -cv '^w[1-8]$')" \
		"lines whose claimed_by is not one of the workers"
}

@test "claim: --agent gets its own jobs and AwaitingCSR ones; another agent's are never seen" {
	add_agent agent-a
	add_agent agent-b
	add_target target-a agent-a
	add_target target-b agent-b
	add_certificate mc-a target-a
	add_certificate mc-b target-b
	add_certificate mc-b2 target-b
	add_job job-a1 Deployment Pending agent-a target-a mc-a
	add_job job-a2 Deployment Pending agent-a target-a mc-a
	add_job job-csr Issuance AwaitingCSR '' '' mc-a
	add_job job-b1 Renewal Pending agent-b target-b mc-b
	# One unfinished renewal per certificate: the second is for another one.
	add_job job-b-csr Issuance AwaitingCSR agent-b '' mc-b2
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 10 --worker agent-a-host
	expect_status 0
	expect_equal "job-a1,job-a2,job-csr" "$(claimed_ids)" "agent-a's jobs"
	expect_equal "AwaitingCSR null" \
		"$(printf '%s\n' "$output" | jq -r 'select(.id == "job-csr") | "\(.status) \(.claimed_by)"')" "csr line"
	expect_equal "Running|1|agent-a-host" "$(sql "SELECT DISTINCT status, attempts, claimed_by FROM jobs WHERE id IN ('job-a1', 'job-a2')")"
	expect_equal "AwaitingCSR|0|" "$(sql "SELECT status, attempts, claimed_by FROM jobs WHERE id = 'job-csr'")"
	expect_equal "Pending|0" "$(sql "SELECT status, attempts FROM jobs WHERE id = 'job-b1'")"

	run --separate-stderr as_agent agent-b certctl-claim --agent agent-b --limit 10
	expect_status 0
	expect_equal "job-b-csr,job-b1" "$(claimed_ids)" "agent-b's jobs"
}

@test "claim: --limit counts the jobs claimed; AwaitingCSR jobs are listed up to the limit besides" {
	add_agent agent-a
	add_target target-a agent-a
	add_certificate mc-a target-a
	add_certificate mc-a2 target-a
	add_job job-a1 Deployment Pending agent-a target-a mc-a
	add_job job-a2 Deployment Pending '' target-a mc-a
	add_job job-csr1 Issuance AwaitingCSR '' '' mc-a
	add_job job-csr2 Issuance AwaitingCSR agent-a '' mc-a2
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 1
	expect_status 0
	expect_equal "job-a1,job-csr1" "$(claimed_ids)"
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 1
	expect_equal "job-a2,job-csr1" "$(claimed_ids)"
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 5 --type Issuance
	expect_equal "job-csr1,job-csr2" "$(claimed_ids)"
}

@test "claim: a job with no agent, routed through the agent's target, goes to that agent and not to a central claim" {
	add_agent agent-a
	add_agent agent-b
	add_target target-a agent-a
	add_job job-routed Deployment Pending '' target-a
	run --separate-stderr certctl-claim --limit 10
	expect_status 0
	expect_equal "" "$output" "central claim"
	run --separate-stderr as_agent agent-b certctl-claim --agent agent-b --limit 10
	expect_status 0
	expect_equal "" "$output" "another agent's claim"
	expect_equal "Pending" "$(job_status job-routed)"
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 10
	expect_status 0
	expect_equal "job-routed" "$(claimed_ids)"
	expect_equal "Running" "$(job_status job-routed)"
}

@test "claim: a central claim takes only unrouted jobs; --any takes routed ones but never a retired agent's or target's" {
	add_agent agent-a
	add_agent agent-old
	add_target target-a agent-a
	add_target target-old agent-a
	add_job job-central Renewal Pending
	add_job job-agent Deployment Pending agent-a
	add_job job-target Deployment Pending '' target-a
	add_job job-old-agent Deployment Pending agent-old
	add_job job-old-target Deployment Pending '' target-old
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-old'"
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-old'"
	run --separate-stderr certctl-claim --limit 10
	expect_status 0
	expect_equal "job-central" "$(claimed_ids)" "central claim"
	run --separate-stderr certctl-claim --any --limit 10
	expect_status 0
	expect_equal "job-agent,job-target" "$(claimed_ids)" "--any claim"
	expect_equal "Pending|Pending" "$(sql "SELECT string_agg(status, '|') FROM jobs WHERE id IN ('job-old-agent', 'job-old-target')")"
}

@test "claim: --agent skips jobs on the agent's retired target" {
	add_agent agent-a
	add_target target-a agent-a
	add_target target-gone agent-a
	add_certificate mc-gone target-gone
	add_job job-gone Deployment Pending agent-a target-gone
	add_job job-gone-routed Deployment Pending '' target-gone
	add_job job-gone-csr Issuance AwaitingCSR '' '' mc-gone
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-gone'"
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a --limit 10
	expect_status 0
	expect_equal "" "$output"
	expect_equal "0" "$(sql "SELECT count(*) FROM jobs WHERE status <> 'Pending' AND status <> 'AwaitingCSR'")"
}

@test "claim: a job scheduled in the future is not claimed" {
	add_job job-later Renewal Pending
	sql "UPDATE jobs SET scheduled_at = now() + interval '1 hour'"
	run --separate-stderr certctl-claim --limit 10
	expect_status 0
	expect_equal "" "$output"
	expect_equal "Pending" "$(job_status job-later)"
}

@test "claim: --wait returns as soon as a job is enqueued" {
	certctl-claim --wait 5 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	start=$(now_ms)
	add_job job-new Renewal Pending
	wait "$pid"
	elapsed=$(($(now_ms) - start))
	[ "$elapsed" -lt 3000 ] || { echo "woke after $elapsed ms"; return 1; }
	expect_equal "job-new" "$(jq -r .id "$BATS_TEST_TMPDIR/out")"
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/err")" "stderr"
	expect_equal "Running" "$(job_status job-new)"
}

@test "claim: --wait on an empty queue exits 0 with no output after the timeout" {
	start=$(now_ms)
	run --separate-stderr certctl-claim --wait 2
	elapsed=$(($(now_ms) - start))
	expect_status 0
	expect_equal "" "$output"
	[ "$elapsed" -ge 1900 ] && [ "$elapsed" -lt 4000 ] || { echo "returned after $elapsed ms"; return 1; }
}

@test "claim: --wait ignores a job it may not take and keeps waiting" {
	add_agent agent-a
	certctl-claim --wait 3 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	add_job job-agent Deployment Pending agent-a
	sleep 0.5
	kill -0 "$pid" || { echo "claim stopped waiting after an agent's job was enqueued"; return 1; }
	wait "$pid"
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/out")" "stdout"
	expect_equal "Pending" "$(job_status job-agent)"
}

@test "claim: SIGTERM during --wait exits 75 at once" {
	certctl-claim --wait 30 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	start=$(now_ms)
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	elapsed=$(($(now_ms) - start))
	expect_equal 75 "$rc" "exit status"
	[ "$elapsed" -lt 2000 ] || { echo "stopped after $elapsed ms"; return 1; }
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_one_line_error certctl-claim
}

@test "claim: SIGTERM during a claim in flight lets it finish and print, then exits 75" {
	add_agent agent-a
	add_job job-a Deployment Pending agent-a
	# Hold the agent row so the claim blocks inside its transaction.
	psql -XAtq -v ON_ERROR_STOP=1 -c "BEGIN; SELECT 1 FROM agents WHERE id = 'agent-a' FOR UPDATE;
		SELECT pg_sleep(1.5); ROLLBACK;" >/dev/null &
	holder=$!
	sleep 0.5
	as_agent agent-a certctl-claim --agent agent-a >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	wait "$holder"
	expect_equal 75 "$rc" "exit status"
	expect_equal "job-a Running" "$(jq -r '"\(.id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
	expect_equal "Running" "$(job_status job-a)"
}

@test "claim: --wait wakes for a job whose scheduled_at comes during the wait" {
	sql "INSERT INTO jobs (id, type, status, scheduled_at)
	     VALUES ('job-soon', 'Renewal', 'Pending', now() + interval '1.5 seconds')"
	start=$(now_ms)
	run --separate-stderr certctl-claim --wait 10
	elapsed=$(($(now_ms) - start))
	expect_status 0
	expect_equal "job-soon" "$(jq -r .id <<<"$output")"
	[ "$elapsed" -lt 5000 ] || { echo "claimed after $elapsed ms"; return 1; }
}

# claim_backend: the server process of the running certctl-claim's connection.
claim_backend() {
	sql "SELECT pid FROM pg_stat_activity WHERE application_name = 'certctl-claim'"
}

@test "claim: --follow claims round after round on one connection, and exits 0 after --wait seconds idle" {
	sql "INSERT INTO jobs (id, type, status) SELECT 'job-' || g, 'Renewal', 'Pending' FROM generate_series(1, 250) g"
	certctl-claim --follow --limit 100 --wait 2 >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	wait_until "SELECT count(*) = 250 FROM jobs WHERE status = 'Running'"
	first_backend=$(claim_backend)
	[ -n "$first_backend" ] || { echo "no connection of certctl-claim"; return 1; }
	add_job job-late Renewal Pending
	wait_until "SELECT status = 'Running' FROM jobs WHERE id = 'job-late'"
	expect_equal "$first_backend" "$(claim_backend)" "backend after a later round"
	start=$(now_ms)
	rc=0
	wait "$pid" || rc=$?
	elapsed=$(($(now_ms) - start))
	expect_equal 0 "$rc" "exit status"
	[ "$elapsed" -ge 1000 ] && [ "$elapsed" -lt 4000 ] || { echo "exited $elapsed ms after the last job"; return 1; }
	expect_equal 251 "$(grep -c . "$BATS_TEST_TMPDIR/out")" "lines"
	expect_equal 251 "$(jq -r .id "$BATS_TEST_TMPDIR/out" | sort -u | wc -l)" "distinct jobs"
	expect_equal "251|1" "$(sql "SELECT count(*), count(DISTINCT claimed_by) FROM jobs WHERE status = 'Running' AND attempts = 1")"
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/err")" "stderr"
}

@test "claim: --follow without --wait follows until SIGTERM, which exits 75 with every claimed line printed" {
	certctl-claim --follow >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	add_job job-1 Renewal Pending
	for _ in $(seq 1 50); do
		grep -q job-1 "$BATS_TEST_TMPDIR/out" && break
		sleep 0.1
	done
	sleep 1
	kill -0 "$pid" || { echo "the follower stopped on its own"; return 1; }
	kill -TERM "$pid"
	rc=0
	wait "$pid" || rc=$?
	expect_equal 75 "$rc" "exit status"
	expect_equal "job-1 Running" "$(jq -r '"\(.id) \(.status)"' "$BATS_TEST_TMPDIR/out")"
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_one_line_error certctl-claim
}

@test "claim: --follow into a pipe claims the next round only once the reader has taken the last" {
	for i in 1 2 3 4 5 6; do add_job "job-$i" Renewal Pending; done
	# The reader takes one line, works on it for a while, then takes the rest.
	certctl-claim --follow --limit 1 --wait 0 2>"$BATS_TEST_TMPDIR/err" |
		{ read -r first; echo "$first" >"$BATS_TEST_TMPDIR/first"; sleep 2; cat >"$BATS_TEST_TMPDIR/rest"; } &
	pipeline=$!
	wait_until "SELECT count(*) >= 2 FROM jobs WHERE status = 'Running'"
	sleep 0.5
	# One job with the reader, one waiting in the pipe; the other four still Pending.
	expect_equal "2|4" "$(sql "SELECT count(*) FILTER (WHERE status = 'Running'),
		count(*) FILTER (WHERE status = 'Pending') FROM jobs")" "Running and Pending while the reader works"
	wait "$pipeline"
	expect_equal 6 "$(cat "$BATS_TEST_TMPDIR/first" "$BATS_TEST_TMPDIR/rest" | jq -r .id | sort -u | wc -l)" "lines read"
	expect_equal 6 "$(sql "SELECT count(*) FROM jobs WHERE status = 'Running'")" "Running at the end"
}

@test "claim: --follow and --wait exit 73 at once when the reader of their pipe goes away, even while idle" {
	add_job job-1 Renewal Pending
	start=$(now_ms)
	run bash -c 'timeout 20 certctl-claim --follow 2>"$1" | head -n 1 >/dev/null; echo "${PIPESTATUS[0]}"' \
		_ "$BATS_TEST_TMPDIR/err"
	elapsed=$(($(now_ms) - start))
	expect_equal 73 "$output" "exit status of certctl-claim"
	[ "$elapsed" -lt 5000 ] || { echo "noticed after $elapsed ms"; return 1; }
	stderr=$(cat "$BATS_TEST_TMPDIR/err")
	expect_one_line_error certctl-claim
	expect_contains "$stderr" "reader has gone away"
	# A one-shot --wait notices it as well, instead of waiting out its time.
	start=$(now_ms)
	run bash -c 'timeout 20 certctl-claim --wait 30 2>/dev/null | true; echo "${PIPESTATUS[0]}"'
	elapsed=$(($(now_ms) - start))
	expect_equal 73 "$output" "exit status of certctl-claim --wait"
	[ "$elapsed" -lt 5000 ] || { echo "--wait noticed after $elapsed ms"; return 1; }
}

@test "claim: an agent's --follow lists AwaitingCSR jobs in each round, and a round with nothing else to claim ends in a wait" {
	add_agent agent-a
	add_target target-a agent-a
	add_certificate mc-a target-a
	add_job job-csr Issuance AwaitingCSR '' '' mc-a
	add_job job-a1 Deployment Pending agent-a target-a mc-a
	start=$(now_ms)
	run --separate-stderr as_agent agent-a timeout 20 certctl-claim --agent agent-a --follow --wait 2
	elapsed=$(($(now_ms) - start))
	expect_status 0
	[ "$elapsed" -lt 5000 ] || { echo "exited after $elapsed ms"; return 1; }
	# Round 1 claims job-a1 and lists job-csr; round 2 lists job-csr again and
	# claims nothing, so the follower waits; the try when the wait runs out
	# lists it once more, and the follower exits. A spinning one prints it
	# thousands of times.
	expect_equal "job-a1 job-csr job-csr job-csr" "$(printf '%s\n' "$output" | jq -r .id | paste -sd' ' -)"
	expect_equal "AwaitingCSR" "$(job_status job-csr)"
}

@test "claim: --follow of an agent retired while it waits exits 4" {
	add_agent agent-a
	as_agent agent-a certctl-claim --follow --agent agent-a >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.5
	certctl-retire -q agent-a >/dev/null
	start=$(now_ms)
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rc=0
	kill -0 "$pid" 2>/dev/null && { kill "$pid"; echo "the follower of a retired agent kept waiting"; return 1; }
	wait "$pid" || rc=$?
	expect_equal 4 "$rc" "exit status"
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/out")" "stdout"
}

@test "claim: a retired agent gets exit 4 and no jobs" {
	add_agent agent-a
	add_job job-a Deployment Pending agent-a
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-a'"
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a
	expect_status 4
	expect_equal "" "$output"
	expect_one_line_error certctl-claim
	expect_contains "$stderr" "retired"
	expect_equal "Pending" "$(job_status job-a)"
}

@test "claim: a retirement committed while the claim waits on the agent row still refuses the claim" {
	add_agent agent-a
	add_job job-a Deployment Pending agent-a
	psql -XAtq -v ON_ERROR_STOP=1 -c "BEGIN; UPDATE agents SET retired_at = now() WHERE id = 'agent-a';
		SELECT pg_sleep(2); COMMIT;" >/dev/null &
	retire=$!
	sleep 0.7
	run --separate-stderr as_agent agent-a certctl-claim --agent agent-a
	wait "$retire"
	expect_status 4
	expect_equal "" "$output"
	expect_equal "Pending" "$(job_status job-a)"
}

@test "claim: an unknown agent exits 66" {
	run --separate-stderr certctl-claim --agent agent-nobody
	expect_status 66
	expect_equal "" "$output"
	expect_one_line_error certctl-claim
	expect_contains "$stderr" "agent-nobody"
}

@test "reap: an expired lease goes back to Pending with an exponential backoff" {
	add_job job-1 Renewal Pending
	add_job job-2 Renewal Pending
	certctl-claim --limit 2 --worker w1 >/dev/null
	sql "UPDATE jobs SET attempts = 2 WHERE id = 'job-2'"
	sql "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
	run --separate-stderr certctl-claim --reap
	expect_status 0
	expect_equal 2 "$(printf '%s\n' "$output" | grep -c .)" "lines"
	expect_equal "Pending requeued null null" \
		"$(printf '%s\n' "$output" | jq -r 'select(.id == "job-1") | "\(.status) \(.reaped) \(.claimed_by) \(.lease_expires_at)"')"
	expect_equal "Pending|||lease expired on attempt 1" \
		"$(sql "SELECT status, claimed_by, lease_expires_at, last_error FROM jobs WHERE id = 'job-1'")"
	# 30 s after attempt 1, 60 s after attempt 2.
	expect_equal "t" "$(sql "SELECT scheduled_at BETWEEN now() + interval '25 seconds' AND now() + interval '35 seconds' FROM jobs WHERE id = 'job-1'")" "backoff after attempt 1"
	expect_equal "t" "$(sql "SELECT scheduled_at BETWEEN now() + interval '55 seconds' AND now() + interval '65 seconds' FROM jobs WHERE id = 'job-2'")" "backoff after attempt 2"
	run --separate-stderr certctl-claim --limit 10
	expect_equal "" "$output" "claim during the backoff"
}

@test "reap: the backoff is capped at one hour" {
	add_job job-1 Renewal Pending
	sql "UPDATE jobs SET status = 'Running', attempts = 20, max_attempts = 50, claimed_by = 'w1',
		lease_expires_at = now() - interval '1 second'"
	run --separate-stderr certctl-claim --reap
	expect_status 0
	expect_equal "t" "$(sql "SELECT scheduled_at BETWEEN now() + interval '3590 seconds' AND now() + interval '3610 seconds' FROM jobs")"
}

@test "reap: a lease expired on the last attempt fails the job, with audit and notification" {
	add_job job-1 Renewal Pending
	sql "UPDATE jobs SET status = 'Running', attempts = 3, claimed_by = 'w1',
		lease_expires_at = now() - interval '1 second'"
	run --separate-stderr certctl-claim --reap
	expect_status 0
	expect_equal "Failed failed lease expired after 3 attempts" \
		"$(jq -r '"\(.status) \(.reaped) \(.last_error)"' <<<"$output")"
	expect_equal "Failed|lease expired after 3 attempts|t" \
		"$(sql "SELECT status, last_error, completed_at IS NOT NULL FROM jobs WHERE id = 'job-1'")"
	expect_equal "1" "$(sql "SELECT count(*) FROM audit_events WHERE action = 'job_failed' AND resource_id = 'job-1'")" "audit"
	expect_equal "1" "$(sql "SELECT count(*) FROM notification_events WHERE job_id = 'job-1' AND type = 'job_failed'")" "notification"
}

@test "reap: a lease that has not expired is left alone" {
	add_job job-1 Renewal Pending
	certctl-claim --worker w1 >/dev/null
	run --separate-stderr certctl-claim --reap
	expect_status 0
	expect_equal "" "$output"
	expect_equal "Running|w1" "$(sql "SELECT status, claimed_by FROM jobs")"
}

@test "reap: after a re-claim the old claimant's fenced finish is refused and the new one's accepted" {
	add_job job-1 Renewal Pending
	run --separate-stderr certctl-claim --worker w1 --lease 1
	expect_equal "w1 1" "$(jq -r '"\(.claimed_by) \(.attempts)"' <<<"$output")"
	sql "UPDATE jobs SET lease_expires_at = now() - interval '1 second'"
	certctl-claim --reap >/dev/null
	# While reaped, the old token is refused too.
	run --separate-stderr "$CERTCTL_UNIT/test_jobs_fence" job-1 w1 1 Completed
	expect_status 75
	sql "UPDATE jobs SET scheduled_at = now()"
	run --separate-stderr certctl-claim --worker w2
	expect_equal "w2 2" "$(jq -r '"\(.claimed_by) \(.attempts)"' <<<"$output")"
	run --separate-stderr "$CERTCTL_UNIT/test_jobs_fence" job-1 w1 1 Completed
	expect_status 75
	expect_equal "Running|w2|2" "$(sql "SELECT status, claimed_by, attempts FROM jobs")"
	run --separate-stderr "$CERTCTL_UNIT/test_jobs_fence" job-1 w2 2 Completed
	expect_status 0
	expect_equal "Completed" "$(job_status job-1)"
}

@test "reap: Pending jobs of a retired agent or its retired target fail, with audit and notification events" {
	add_agent agent-a
	add_agent agent-b
	add_target target-a agent-a
	add_target target-b agent-b
	add_certificate mc-a target-a
	add_job job-assigned Deployment Pending agent-a
	add_job job-routed Deployment Pending '' target-a mc-a
	add_job job-target Deployment Pending agent-b target-b
	add_job job-alive Deployment Pending agent-b
	add_job job-leased Deployment Running agent-a
	sql "UPDATE jobs SET attempts = 1, claimed_by = 'w1', lease_expires_at = now() - interval '1 second'
		WHERE id = 'job-leased'"
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-a'"
	sql "UPDATE deployment_targets SET retired_at = now() WHERE id = 'target-b'"
	run --separate-stderr certctl-claim --reap
	expect_status 0
	expect_equal "job-assigned,job-leased,job-routed,job-target" "$(claimed_ids)" "reaped ids"
	expect_equal "failed" "$(printf '%s\n' "$output" | jq -r .reaped | sort -u)"
	expect_equal "4" "$(sql "SELECT count(*) FROM jobs WHERE status = 'Failed' AND last_error = 'assigned agent is retired'")"
	expect_equal "Pending" "$(job_status job-alive)"
	expect_equal "job-assigned,job-leased,job-routed,job-target" "$(sql "SELECT string_agg(resource_id, ',' ORDER BY resource_id)
		FROM audit_events WHERE action = 'job_failed' AND actor_type = 'System'")" "audit events"
	expect_equal "job-assigned,job-leased,job-routed,job-target" "$(sql "SELECT string_agg(job_id, ',' ORDER BY job_id)
		FROM notification_events WHERE type = 'job_failed' AND message LIKE '%assigned agent is retired'")" "notifications"
	expect_equal "mc-a" "$(sql "SELECT certificate_id FROM notification_events WHERE job_id = 'job-routed'")"
}

@test "claim: bad flags exit 64 with one line on stderr and change nothing" {
	add_job job-1 Renewal Pending
	for args in "--limit 0" "--limit x" "--limit -3" "--lease 0" "--wait soon" "--type Bogus" \
		"--bogus" "--reap --limit 2" "--reap --follow" "--any --agent agent-a" "--agent=" "--worker=" "extra"; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-claim $args
		expect_status 64 || { echo "args: $args"; return 1; }
		expect_one_line_error certctl-claim || { echo "args: $args"; return 1; }
		expect_equal "" "$output" "stdout for $args"
	done
	expect_equal "Pending|0" "$(sql "SELECT status, attempts FROM jobs")"
}

@test "claim: bad flags are refused before the database is contacted" {
	run --separate-stderr certctl-claim --dsn "host=/nonexistent dbname=x" --limit 0
	expect_status 64
}

@test "claim: an unreachable database exits 69" {
	run --separate-stderr certctl-claim --dsn "host=/nonexistent dbname=nothing connect_timeout=2"
	expect_status 69
	expect_one_line_error certctl-claim
	run --separate-stderr certctl-claim --reap --dsn "host=/nonexistent dbname=nothing connect_timeout=2"
	expect_status 69
}

@test "claim: --help prints usage on stdout and --version the version" {
	run --separate-stderr certctl-claim --help
	expect_status 0
	expect_contains "$output" "usage: certctl-claim"
	expect_contains "$output" "--reap"
	run --separate-stderr certctl-claim --version
	expect_status 0
	[[ "$output" =~ ^certctl-claim\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "version: $output"; return 1; }
}
