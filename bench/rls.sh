#!/usr/bin/env bash
# bench/rls.sh: what row-level security costs an agent's claim. The same
# claims, side by side in one run, by the schema owner (policies bypassed) and
# by the agent's own enrolled role (policies applied), both over TCP with
# SCRAM: --follow throughput, one claim by a running follower, one-shot
# latency, and the plans the agent's claim statements get on a large jobs
# table, explained as the agent. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

AGENT_JOBS=${AGENT_JOBS:-50000}
FOLLOWERS=4
BATCH=100
ROUNDS=${ROUNDS:-3}
ONE_SHOT_RUNS=${ONE_SHOT_RUNS:-41}
FOLLOW_RUNS=${FOLLOW_RUNS:-1000}
BIG_JOBS=${BIG_JOBS:-1000000}

BENCH_CLUSTER_OPTIONS="-o max_connections=100" bench_enter_cluster "$0" "$@"

# Inside the cluster (PGHOST=localhost, the superuser's PGPASSWORD).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
owner_password=$(openssl rand -hex 16)
psql -XAtq -v ON_ERROR_STOP=1 -v pw="$owner_password" >/dev/null <<-'SQL'
CREATE ROLE certctl_owner LOGIN CREATEROLE PASSWORD :'pw';
CREATE DATABASE rls_bench OWNER certctl_owner;
SQL
(umask 077 && printf '*:*:*:certctl_owner:%s\n' "$owner_password" > "$work/pgpass")
superuser_password=$PGPASSWORD
unset PGPASSWORD
export PGPASSFILE="$work/pgpass" PGDATABASE=rls_bench PGUSER=certctl_owner
certctl-migrate -q up >/dev/null

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
fmt_ms() { printf '%d.%03d ms' $(($1 / 1000)) $(($1 % 1000)); } # microseconds in
millis() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

psql_q "INSERT INTO agents (id, last_heartbeat_at) SELECT 'agent-' || g, now() FROM generate_series(1, 100) g"
psql_q "INSERT INTO deployment_targets (id, type, agent_id)
	SELECT 'target-' || g, 'file', 'agent-' || g FROM generate_series(1, 100) g"
certctl-enroll agent-1 --password-file "$work/agent-1.password" >/dev/null
agent_role=$(psql_q "SELECT db_role FROM agents WHERE id = 'agent-1'")

# as ROLE COMMAND...: owner (policies bypassed) or agent (its own login).
as() {
	local who=$1
	shift
	if [ "$who" = agent ]; then
		PGUSER=$agent_role PGPASSFILE=/dev/null CERTCTL_PASSWORD_FILE="$work/agent-1.password" "$@"
	else
		"$@"
	fi
}

# load N: N Pending jobs of agent-1, half routed by agent_id, half through its target.
load() {
	psql_q "TRUNCATE jobs CASCADE"
	psql_q "INSERT INTO jobs (id, type, status, agent_id, target_id, scheduled_at)
		SELECT 'job-' || g, 'Deployment', 'Pending',
		       CASE WHEN g % 2 = 0 THEN 'agent-1' END, 'target-1', now() - interval '1 minute'
		FROM generate_series(1, $1) g"
	psql_q "VACUUM ANALYZE jobs"
}
claimed() { psql_q "SELECT count(*) FROM jobs WHERE status = 'Running'"; }

follow_rate() {
	local who=$1 start ms
	load "$AGENT_JOBS"
	start=$(millis)
	for w in $(seq 1 "$FOLLOWERS"); do
		as "$who" certctl-claim --agent agent-1 --follow --wait 0 --limit "$BATCH" --worker "$who-$w" |
			wc -l >/dev/null &
	done
	wait
	ms=$(( $(millis) - start ))
	echo $(( $(claimed) * 1000 / ms ))
}

per_claim_us() {
	local who=$1 start
	load "$FOLLOW_RUNS"
	start=${EPOCHREALTIME/./}
	as "$who" certctl-claim --agent agent-1 --follow --wait 0 --limit 1 >/dev/null
	echo $(( (${EPOCHREALTIME/./} - start) / FOLLOW_RUNS ))
}

one_shot_median_us() {
	local who=$1 start
	load $((ONE_SHOT_RUNS + 10))
	: >"$work/wall.$who"
	for _ in $(seq 1 "$ONE_SHOT_RUNS"); do
		start=${EPOCHREALTIME/./}
		as "$who" certctl-claim --agent agent-1 --limit 1 >/dev/null
		echo $(( ${EPOCHREALTIME/./} - start )) >>"$work/wall.$who"
	done
	sort -n "$work/wall.$who" | sed -n "$(( (ONE_SHOT_RUNS + 1) / 2 ))p"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median3() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }

echo "== agent-1's claims, owner (RLS bypassed) and agent role (RLS applied), TCP + SCRAM, rounds alternate"
owner_rates=() agent_rates=() owner_claims=() agent_claims=()
for _ in $(seq 1 "$ROUNDS"); do
	owner_rates+=("$(follow_rate owner)")
	agent_rates+=("$(follow_rate agent)")
	owner_claims+=("$(per_claim_us owner)")
	agent_claims+=("$(per_claim_us agent)")
done
o=$(median3 "${owner_rates[@]}") a=$(median3 "${agent_rates[@]}")
echo "--follow, $FOLLOWERS followers, --limit $BATCH, $AGENT_JOBS jobs: owner $o jobs/s (${owner_rates[*]}), agent $a jobs/s (${agent_rates[*]}); agent/owner $(ratio "$a" "$o")"
o=$(median3 "${owner_claims[@]}") a=$(median3 "${agent_claims[@]}")
echo "one claim by a running follower (--limit 1, $FOLLOW_RUNS claims): owner $(fmt_ms "$o"), agent $(fmt_ms "$a"); agent/owner $(ratio "$a" "$o")"
o=$(one_shot_median_us owner) a=$(one_shot_median_us agent)
echo "one-shot certctl-claim --agent agent-1 --limit 1 ($ONE_SHOT_RUNS runs, median): owner $(fmt_ms "$o"), agent $(fmt_ms "$a"); agent/owner $(ratio "$a" "$o")"

echo "== plans as the agent role, $BIG_JOBS jobs, 1% Pending, 100 agents"
psql_q "TRUNCATE jobs CASCADE"
psql_q "INSERT INTO managed_certificates (id) SELECT 'mc-' || g FROM generate_series(1, 100) g"
psql_q "INSERT INTO certificate_targets (certificate_id, target_id)
	SELECT 'mc-' || g, 'target-' || g FROM generate_series(1, 100) g"
psql_q "INSERT INTO jobs (id, type, status, agent_id, target_id, certificate_id, scheduled_at, completed_at)
	SELECT 'job-' || g, 'Deployment',
	       CASE WHEN g % 100 = 0 THEN 'Pending' ELSE 'Completed' END,
	       CASE WHEN g % 2 = 1 THEN 'agent-' || (g / 100 % 100 + 1) END,
	       'target-' || (g / 100 % 100 + 1), 'mc-' || (g / 100 % 100 + 1),
	       now() - interval '1 minute', CASE WHEN g % 100 <> 0 THEN now() END
	FROM generate_series(1, $BIG_JOBS) g"
psql_q "VACUUM ANALYZE"
# auto_explain, set for the agent's role by the superuser (the role may not load it itself).
for setting in "session_preload_libraries = 'auto_explain'" "auto_explain.log_min_duration = 0" \
	"auto_explain.log_level = warning" "auto_explain.log_analyze = on" "auto_explain.log_timing = off"; do
	PGUSER=postgres PGPASSWORD=$superuser_password psql_q "ALTER ROLE \"$agent_role\" SET $setting"
done
as agent certctl-claim --agent agent-1 --limit 10 2>&1 >/dev/null |
	grep -E 'Scan|Limit|Update on|LockRows|Join|Loop|Sort|SubPlan|InitPlan' | sed 's/^/    /' | tee "$work/plan"
if grep -q 'Seq Scan on jobs' "$work/plan"; then
	echo "   => SEQUENTIAL SCAN of jobs"
else
	echo "   => index scans only on jobs"
fi
