#!/usr/bin/env bash
# bench/rollout.sh: how long a new certificate version takes to reach every
# target. ROLLOUT_AGENTS agents, each enrolled with its own role and key and
# owning one `file` target, all mapped to one certificate; one new version is
# imported with --enqueue, and each target's latency is the time from that
# import's commit to its job's completed_at. Two ways for agents to pick jobs:
#   followers: `certctl-claim --agent A --follow | certctl-deploy`, left running;
#   timer:     `certctl-claim --agent A --limit 100 | certctl-deploy` once per
#              interval at a random offset (a systemd timer, a cron poll), for
#              each interval in TIMER_INTERVALS (seconds).
# Prints p50/p99/max per model and whether every job completed exactly once;
# asserts nothing else. Runs in a throw-away cluster (pg_virtualenv -t, TCP
# with SCRAM, max_connections raised for the followers' connections) unless
# ROLLOUT_IN_PLACE=1: then PG* name a migrated database and an operator's
# login with CREATEROLE (tests/rollout.bats runs it so, with 3 agents).
set -eEuo pipefail
trap '[ "$BASHPID" != "$$" ] || echo "bench/rollout.sh: line $LINENO: exit status $?" >&2' ERR
cd "$(dirname "$0")/.."
source bench/lib.bash

AGENTS=${ROLLOUT_AGENTS:-100}
TIMER_INTERVALS=${TIMER_INTERVALS-30 60} # empty: followers only
TIMER_LIMIT=100
[ "$AGENTS" -ge 1 ] || { echo "bench/rollout.sh: ROLLOUT_AGENTS must be at least 1" >&2; exit 64; }

if [ "${ROLLOUT_IN_PLACE:-}" = 1 ]; then
	export CERTCTL_BENCH_CLUSTER=1
fi
# Each follower holds two connections (claim and deploy); commit timestamps
# give the enqueue's commit time exactly.
# pg_stat_statements: where the server's time goes in the followers' round.
BENCH_CLUSTER_OPTIONS="-o max_connections=$((AGENTS * 2 + 30)) -o track_commit_timestamp=on
	-o shared_preload_libraries=pg_stat_statements -o pg_stat_statements.track_planning=on" \
	bench_enter_cluster "$0" "$@"

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/certctl-rollout.XXXXXX")
pids=()
# Stop whatever is still running (a failed round), then remove the work tree.
cleanup() {
	local pid
	for pid in "${pids[@]}" $(cat "$work"/claim.*.pid 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || :; done
	wait 2>/dev/null || :
	rm -rf "$work"
}
trap cleanup EXIT

if [ "${ROLLOUT_IN_PLACE:-}" != 1 ]; then
	# Inside the throw-away cluster: roles as in production, the owner
	# migrates, an operator enrolls and imports.
	bench_database rollout_bench "$work"
	psql -XAtq -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_stat_statements" >/dev/null
	statements_login=("PGUSER=$PGUSER" "PGPASSWORD=$PGPASSWORD")
	unset PGPASSWORD
	export PGUSER=certctl_bench_operator
fi

source tests/lib/pki.bash
export CERTCTL_KEY_FILE="$work/sealing.key"
(umask 077 && openssl rand -hex 32 >"$CERTCTL_KEY_FILE")
psql_q() { psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
now_us() { echo "${EPOCHREALTIME/./}"; }

# agent_role N / agent_dir N: the login role and the files of agent-N.
agent_role() { local role="${PGDATABASE}_rollout_agent_$1"; printf '%s' "${role:0:63}"; }
agent_dir() { printf '%s' "$work/agents/$1"; }
# as_agent N COMMAND...: as agent-N on its host: its role, password and key file.
as_agent() {
	local n=$1 dir
	shift
	dir=$(agent_dir "$n")
	env -u CERTCTL_KEY_FILE -u PGPASSWORD PGUSER="$(agent_role "$n")" PGPASSFILE=/dev/null \
		CERTCTL_PASSWORD_FILE="$dir/password" CERTCTL_AGENT_KEY_FILE="$dir/agent.key" "$@"
}

# for_each_agent COMMAND...: COMMAND N for each agent, up to 8 at a time;
# the first that fails stops the script.
for_each_agent() {
	local n pid batch=()
	for n in $(seq 1 "$AGENTS"); do
		"$@" "$n" &
		batch+=("$!")
		if [ "${#batch[@]}" -eq 8 ] || [ "$n" -eq "$AGENTS" ]; then
			for pid in "${batch[@]}"; do wait "$pid"; done
			batch=()
		fi
	done
}

enroll() {
	local n=$1 dir public_key
	dir=$(agent_dir "$n")
	mkdir -p "$dir" "$work/targets/$n"
	public_key=$(certctl-keygen --key-file "$dir/agent.key" | jq -r .public_key)
	certctl-enroll "agent-$n" --db-role "$(agent_role "$n")" --password-file "$dir/password" \
		--public-key "$public_key" >/dev/null
}
heartbeat() { as_agent "$1" certctl-heartbeat --agent "agent-$1" >/dev/null; }

setup_start=$(now_us)
for_each_agent enroll
for n in $(seq 1 "$AGENTS"); do
	jq -nc --arg n "$n" --arg dir "$work/targets/$n" \
		'{kind: "target", id: "target-\($n)", type: "file", agent_id: "agent-\($n)",
		  config: {cert_path: "\($dir)/cert.pem", key_path: "\($dir)/key.pem",
		           chain_path: "\($dir)/chain.pem", validate_command: ["true"], reload_command: ["true"]}}'
done >"$work/inventory.jsonl"
jq -nc --argjson m "$AGENTS" \
	'{kind: "certificate", id: "mc-rollout", targets: [range(1; $m + 1) | "target-\(.)"]}' >>"$work/inventory.jsonl"
certctl-import <"$work/inventory.jsonl" >/dev/null
make_pki "$work/pki"
rounds=$((2 + $(wc -w <<<"$TIMER_INTERVALS")))
for v in $(seq 1 "$rounds"); do make_leaf "$work/pki" "v$v" rollout.example; done
echo "setup: $AGENTS agents enrolled, $AGENTS file targets, in $(( ($(now_us) - setup_start) / 1000000 )) s"

if [ "$(psql_q -c 'SHOW track_commit_timestamp')" = on ]; then
	origin_label="the enqueue's commit (track_commit_timestamp)"
else
	origin_label="certctl-import's exit (track_commit_timestamp is off: an upper bound of the commit)"
fi
echo "rollout: $AGENTS agents, one file target each; latency from $origin_label to completed_at"

version=0
# enqueue: imports the next version with --enqueue; sets $round_jobs (the
# job ids, a PostgreSQL array) and $origin_ms (epoch milliseconds).
enqueue() {
	local exited_ms
	version=$((version + 1))
	certctl-import --certificate mc-rollout --cert "$work/pki/v$version.pem" \
		--key "$work/pki/v$version.key" --chain "$work/pki/chain.pem" --enqueue >"$work/import.$version"
	exited_ms=$(( $(now_us) / 1000 ))
	round_jobs="{$(jq -r 'select(.type == "Deployment") | .id' "$work/import.$version" | paste -sd, -)}"
	if [ "$(psql_q -c 'SHOW track_commit_timestamp')" = on ]; then
		origin_ms=$(psql_q -c "SELECT floor(extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000)::bigint
			FROM audit_events WHERE action = 'deployment_jobs_created' AND resource_id = 'mc-rollout'
			ORDER BY occurred_at DESC LIMIT 1")
	else
		origin_ms=$exited_ms
	fi
}

# wait_completed SECONDS: until every job of the round has finished.
wait_completed() {
	local deadline=$(( $(now_us) + $1 * 1000000 ))
	until [ "$(psql_q -v jobs="$round_jobs" <<<"SELECT count(*) FROM jobs WHERE id = ANY (:'jobs'::text[])
		AND status IN ('Pending', 'Running')")" = 0 ]; do
		if [ "$(now_us)" -gt "$deadline" ]; then
			echo "bench/rollout.sh: jobs still unfinished after $1 s" >&2
			return 1
		fi
		sleep 0.2
	done
}

# report LABEL OUTPUTS...: one line: the round's jobs, how many completed
# exactly once (Completed, attempts 1, one "Completed" line in the deployers'
# OUTPUTS), distinct targets, and the latency percentiles in milliseconds.
report() {
	local label=$1 once_in_output
	shift
	once_in_output=$(cat "$@" | jq -r 'select(.status == "Completed") | .job_id' |
		sort | uniq -u | jq -R . | jq -sc .)
	psql_q -v jobs="$round_jobs" -v origin="$origin_ms" -v out="$once_in_output" -v label="$label" <<-'SQL'
	SELECT format('%s: jobs %s, completed once %s, targets %s; p50 %s ms, p99 %s ms, max %s ms', :'label',
	       count(*),
	       count(*) FILTER (WHERE status = 'Completed' AND attempts = 1
	                        AND (:'out'::jsonb) ? id),
	       count(DISTINCT target_id),
	       percentile_disc(0.5) WITHIN GROUP (ORDER BY ms),
	       percentile_disc(0.99) WITHIN GROUP (ORDER BY ms), max(ms))
	       || E'\n' || format('  of which: claimed (started_at) p50 %s ms, p99 %s ms after the commit;'
	              ' claim to completed_at p50 %s ms, p99 %s ms',
	       percentile_disc(0.5) WITHIN GROUP (ORDER BY claimed_ms),
	       percentile_disc(0.99) WITHIN GROUP (ORDER BY claimed_ms),
	       percentile_disc(0.5) WITHIN GROUP (ORDER BY ms - claimed_ms),
	       percentile_disc(0.99) WITHIN GROUP (ORDER BY ms - claimed_ms))
	FROM (SELECT id, status, attempts, target_id,
	             round(extract(epoch FROM completed_at) * 1000 - :'origin'::bigint)::bigint AS ms,
	             round(extract(epoch FROM started_at) * 1000 - :'origin'::bigint)::bigint AS claimed_ms
	      FROM jobs WHERE id = ANY (:'jobs'::text[])) j
	SQL
}

# wait_connected COUNT: until COUNT claimers and deployers are connected (60 s at most).
wait_connected() {
	local deadline=$(( $(now_us) + 60000000 ))
	until [ "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name IN ('certctl-claim', 'certctl-deploy')")" -ge "$1" ]; do
		if [ "$(now_us)" -gt "$deadline" ]; then
			echo "bench/rollout.sh: fewer than $1 followers' connections after 60 s" >&2
			cat "$work"/claim.*.err "$work"/deploy.*.err | sort | uniq -c >&2
			return 1
		fi
		sleep 0.1
	done
}

# start_followers: every agent's follower connected and waiting. They stay
# for every follower round, as an agent's pipeline does: their backends are
# warm after the first.
start_followers() {
	local n
	for_each_agent heartbeat
	pids=()
	for n in $(seq 1 "$AGENTS"); do
		# The claimer's pid, to stop it: the deployer then ends at the end of
		# its input. The status waited for is the deployer's (the claimer exits 75).
		{
			set +e
			# shellcheck disable=SC2016 # expanded by sh -c
			as_agent "$n" sh -c 'echo $$ >"$1"; exec certctl-claim --agent "agent-$2" --follow --worker "follower-$2"' \
				sh "$work/claim.$n.pid" "$n" 2>>"$work/claim.$n.err" |
				as_agent "$n" certctl-deploy >"$work/follow.$n.out" 2>>"$work/deploy.$n.err"
			exit "${PIPESTATUS[1]}"
		} &
		pids+=("$!")
		# In batches, as a fleet's agents start: 200 SCRAM logins at once on
		# a small host outlast libpq's connect timeout.
		if [ $((n % 10)) -eq 0 ] || [ "$n" -eq "$AGENTS" ]; then wait_connected $((n * 2)); fi
	done
}

stop_followers() {
	local n rc=0
	for n in $(seq 1 "$AGENTS"); do kill -TERM "$(cat "$work/claim.$n.pid")"; done
	for n in "${pids[@]}"; do wait "$n" || rc=$?; done
	pids=()
	rm -f "$work"/claim.*.pid
	[ "$rc" = 0 ] || echo "bench/rollout.sh: a follower's certctl-deploy exited $rc" >&2
}

# follower_round LABEL: one enqueue for the running followers.
follower_round() {
	statements
	enqueue
	wait_completed 120
	report "$1" "$work"/follow.*.out
}

# statements [report]: resets pg_stat_statements (before a round's enqueue), or prints the server's
# planning and execution time of the agents' statements per job of the round
# and the statements that took most of it (in the bench's own cluster only).
statements() {
	[ -n "${statements_login[*]:-}" ] || return 0
	if [ "${1:-}" != report ]; then
		env "${statements_login[@]}" psql -XAtq -v ON_ERROR_STOP=1 -c "SELECT pg_stat_statements_reset()" >/dev/null
		return 0
	fi
	env "${statements_login[@]}" psql -XAtq -v ON_ERROR_STOP=1 -v jobs="$AGENTS" <<-'SQL'
	SELECT format('  agents'' server time per job (pg_stat_statements): %s ms planning + %s ms execution, %s statements',
	       round(sum(total_plan_time)::numeric / :jobs, 1), round(sum(total_exec_time)::numeric / :jobs, 1),
	       round(sum(calls)::numeric / :jobs, 1))
	FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
	      AND userid IN (SELECT oid FROM pg_roles WHERE rolname LIKE '%\_rollout\_agent\_%');
	SELECT format('    %s calls, %s ms planning + %s ms execution each: %s', calls,
	       round(plan / NULLIF(calls, 0), 2), round(exec / NULLIF(calls, 0), 2), left(q, 70))
	FROM (SELECT regexp_replace(query, '\s+', ' ', 'g') AS q, sum(calls) AS calls,
	             sum(total_plan_time)::numeric AS plan, sum(total_exec_time)::numeric AS exec
	      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
	      AND userid IN (SELECT oid FROM pg_roles WHERE rolname LIKE '%\_rollout\_agent\_%')
	      GROUP BY 1) s
	ORDER BY plan + exec DESC LIMIT 6;
	SQL
}

# timer_agent N INTERVAL_US FIRST_US OUT: claim | deploy at FIRST_US and
# every INTERVAL_US after, the deployer's lines appended to OUT.
timer_agent() {
	local n=$1 interval_us=$2 next_us=$3 out=$4 wait_us sleeper=
	trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
	for (( ;; next_us += interval_us )); do
		wait_us=$(( next_us - $(now_us) ))
		if [ "$wait_us" -gt 0 ]; then
			sleep "$((wait_us / 1000000)).$(printf '%06d' $((wait_us % 1000000)))" &
			sleeper=$!
			wait "$sleeper" || :
		fi
		as_agent "$n" certctl-claim --agent "agent-$n" --limit "$TIMER_LIMIT" --worker "timer-$n" |
			as_agent "$n" certctl-deploy >>"$out" || :
	done
}

# timer_round SECONDS: each agent claims once per SECONDS at a random phase.
timer_round() {
	local seconds=$1 interval_us=$(($1 * 1000000)) start n out=$work/timer.$((version + 1))
	for_each_agent heartbeat
	pids=()
	start=$(now_us)
	for n in $(seq 1 "$AGENTS"); do
		timer_agent "$n" "$interval_us" $((start + (RANDOM * 32768 + RANDOM) % interval_us)) \
			"$out.$n.out" 2>>"$work/timer.$n.err" &
		pids+=("$!")
	done
	enqueue
	wait_completed $((seconds + 120))
	for n in "${pids[@]}"; do kill -TERM "$n"; done
	for n in "${pids[@]}"; do wait "$n" || :; done
	pids=()
	report "timer, $seconds s interval" "$out".*.out
}

# Warm-up: the first deploy writes new files and warms PostgreSQL's caches
# and the followers' backends.
start_followers
follower_round "followers, first deploy (warm-up)"
follower_round "followers (certctl-claim --follow | certctl-deploy)"
statements report
stop_followers
for seconds in $TIMER_INTERVALS; do timer_round "$seconds"; done
# The followers' claimers were stopped with SIGTERM: their "interrupted" line is expected.
cat "$work"/*.err | { grep -vx 'certctl-claim: interrupted by signal 15 while waiting for jobs' || :; } >"$work/errors"
if [ -s "$work/errors" ]; then
	echo "stderr of the agents' commands:"
	sort "$work/errors" | uniq -c | sort -rn | head -n 5
fi
echo "machine: nproc $(nproc), $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
