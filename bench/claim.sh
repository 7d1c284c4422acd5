#!/usr/bin/env bash
# bench/claim.sh: how fast certctl-claim drains the queue (a process per claim,
# and --follow on one connection) next to its own SQL run by pgbench, what one
# claim costs and what a one-shot client pays before it can claim on this host,
# and which plans the claim queries use on a large jobs table. Prints figures;
# asserts nothing. Runs in a throw-away cluster (pg_virtualenv -t) with
# default, durable settings.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

CLAIM_JOBS=${CLAIM_JOBS:-100000}
CLAIMERS=8
BATCH=100
ONE_SHOT_RUNS=${ONE_SHOT_RUNS:-51}
BIG_JOBS=${BIG_JOBS:-1000000}

BENCH_CLUSTER_OPTIONS="-o max_connections=100" bench_enter_cluster "$0" "$@"

# Inside the cluster from here on. The local socket, not TCP, as on a real host:
# peer authentication there needs a role named like the OS user.
me=$(id -un)
psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$me'" | grep -q 1 ||
	psql -XAtq -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE \"$me\" SUPERUSER LOGIN"
PGHOST=/var/run/postgresql PGUSER=$me
export PGHOST PGUSER PGDATABASE=claim_bench
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x /usr/bin/time ]; then
	apt-get install -y -qq time >/dev/null 2>&1 || { echo "bench: install the 'time' package" >&2; exit 69; }
fi

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
millis() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
fmt_ms() { printf '%d.%02d ms' $(($1 / 1000)) $(($1 % 1000 / 10)); } # microseconds in
# mean_us RUNS COMMAND...: mean wall time in microseconds. No fork but the
# command's inside the timed span (no $(...), no seq).
mean_us() {
	local runs=$1 start i
	shift
	start=${EPOCHREALTIME/./}
	for ((i = 0; i < runs; i++)); do "$@" >/dev/null; done
	echo $(( (${EPOCHREALTIME/./} - start) / runs ))
}

createdb claim_bench
certctl-migrate -q up >/dev/null

# load_pending N: a jobs table holding N Pending, unrouted jobs and nothing else.
load_pending() {
	psql_q "TRUNCATE jobs CASCADE"
	psql_q "INSERT INTO jobs (id, type, status, scheduled_at)
		SELECT 'job-' || g, 'Renewal', 'Pending', now() - interval '1 minute'
		FROM generate_series(1, $1) g"
	psql_q "VACUUM ANALYZE jobs"
}

running_count() { psql_q "SELECT count(*) FROM jobs WHERE status = 'Running' AND attempts = 1"; }

echo "== claim throughput: $CLAIM_JOBS Pending jobs, $CLAIMERS claimers, --limit $BATCH"

# The central claim statement of libcommon/claim.c, as pgbench runs it.
cat >"$work/claim.sql" <<EOF
WITH picked AS (SELECT j.id FROM jobs j WHERE j.status = 'Pending' AND j.scheduled_at <= now()
  AND (NULL::text IS NULL OR j.type = NULL) AND j.agent_id IS NULL AND j.target_id IS NULL
  ORDER BY j.scheduled_at LIMIT $BATCH FOR UPDATE SKIP LOCKED),
 claimed AS (UPDATE jobs j SET status = 'Running', attempts = j.attempts + 1, started_at = now(),
  claimed_by = 'pgbench:' || :client_id, lease_expires_at = now() + 900 * interval '1 second',
  updated_at = now() FROM picked WHERE j.id = picked.id RETURNING j.*)
SELECT j.id, j.type, j.status, j.certificate_id, j.target_id, j.agent_id, j.attempts,
  j.max_attempts, certctl_rfc3339(j.lease_expires_at), j.claimed_by, certctl_rfc3339(j.scheduled_at)
FROM claimed j ORDER BY j.scheduled_at, j.id;
EOF
load_pending "$CLAIM_JOBS"
transactions=$((CLAIM_JOBS / BATCH / CLAIMERS))
start=$(millis)
pgbench -n -c "$CLAIMERS" -j 2 -t "$transactions" -f "$work/claim.sql" >"$work/pgbench.out" 2>&1
sql_ms=$(( $(millis) - start ))
sql_claimed=$(running_count)
sql_rate=$(( sql_claimed * 1000 / sql_ms ))
echo "raw SQL (pgbench, $CLAIMERS clients, $transactions tx each): $sql_claimed jobs in $sql_ms ms = $sql_rate jobs/s"

# The same, with a new connection per transaction (pgbench -C), as each
# certctl-claim run has: what the connection alone costs.
load_pending "$CLAIM_JOBS"
start=$(millis)
pgbench -n -C -c "$CLAIMERS" -j 2 -t "$transactions" -f "$work/claim.sql" >"$work/pgbench-C.out" 2>&1
sqlc_ms=$(( $(millis) - start ))
sqlc_claimed=$(running_count)
sqlc_rate=$(( sqlc_claimed * 1000 / sqlc_ms ))
echo "raw SQL, new connection per claim (pgbench -C): $sqlc_claimed jobs in $sqlc_ms ms = $sqlc_rate jobs/s"

load_pending "$CLAIM_JOBS"
start=$(millis)
for w in $(seq 1 "$CLAIMERS"); do
	(
		while out=$(certctl-claim --limit "$BATCH" --worker "bench-$w") && [ -n "$out" ]; do :; done
	) &
done
wait
claim_ms=$(( $(millis) - start ))
claim_claimed=$(running_count)
claim_rate=$(( claim_claimed * 1000 / claim_ms ))
echo "certctl-claim ($CLAIMERS processes, each claim a new process and connection): $claim_claimed jobs in $claim_ms ms = $claim_rate jobs/s"
echo "  / raw SQL: $(( claim_rate * 100 / sql_rate ))%;" \
	"/ raw SQL with a connection per claim: $(( claim_rate * 100 / sqlc_rate ))%"

# A long-running claimer keeps its connection, as pgbench does: --follow,
# each into a pipe (the reader-paced path an agent's pipeline takes), ending
# when a round finds the queue empty (--wait 0).
load_pending "$CLAIM_JOBS"
start=$(millis)
for w in $(seq 1 "$CLAIMERS"); do
	certctl-claim --follow --wait 0 --limit "$BATCH" --worker "bench-$w" | wc -l >"$work/follow.$w" &
done
wait
follow_ms=$(( $(millis) - start ))
follow_claimed=$(running_count)
follow_lines=$(awk '{ lines += $1 } END { print lines }' "$work"/follow.*)
follow_rate=$(( follow_claimed * 1000 / follow_ms ))
echo "certctl-claim --follow ($CLAIMERS processes, one connection each, into pipes): $follow_claimed jobs ($follow_lines lines) in $follow_ms ms = $follow_rate jobs/s"
echo "  / raw SQL: $(( follow_rate * 100 / sql_rate ))% (goal >= 80%)"

echo "== one-shot certctl-claim --limit 1 over the local socket ($ONE_SHOT_RUNS runs)"
load_pending $((ONE_SHOT_RUNS * 2 + 20))
: >"$work/wall"
for _ in $(seq 1 "$ONE_SHOT_RUNS"); do
	mean_us 1 certctl-claim --limit 1 >>"$work/wall"
done
median_us=$(sort -n "$work/wall" | sed -n "$(( (ONE_SHOT_RUNS + 1) / 2 ))p")
min_us=$(sort -n "$work/wall" | head -n 1)
echo "wall time: median $(fmt_ms "$median_us"), fastest $(fmt_ms "$min_us") (goal <= 10 ms)"
: >"$work/rss"
for _ in $(seq 1 11); do
	/usr/bin/time -f %M -o "$work/one" certctl-claim --limit 1 >/dev/null
	cat "$work/one" >>"$work/rss"
done
echo "peak RSS: median $(sort -n "$work/rss" | sed -n 6p) KiB, max $(sort -n "$work/rss" | tail -n 1) KiB (goal <= 8192 KiB)"

# The same claim by a claimer that is already running and connected.
FOLLOW_RUNS=1000
load_pending "$FOLLOW_RUNS"
start=${EPOCHREALTIME/./}
/usr/bin/time -f %M -o "$work/follow-rss" certctl-claim --follow --wait 0 --limit 1 >"$work/follow-one"
per_claim_us=$(( (${EPOCHREALTIME/./} - start) / FOLLOW_RUNS ))
load_pending "$FOLLOW_RUNS"
start=${EPOCHREALTIME/./}
certctl-claim --follow --wait 0 --limit 1 | wc -l >/dev/null
per_claim_piped_us=$(( (${EPOCHREALTIME/./} - start) / FOLLOW_RUNS ))
echo "certctl-claim --follow --limit 1, $FOLLOW_RUNS claims: $(fmt_ms "$per_claim_us") per claim to a file," \
	"$(fmt_ms "$per_claim_piped_us") into a pipe"
echo "peak RSS of that follower after $FOLLOW_RUNS claims: $(cat "$work/follow-rss") KiB"

# What any one-shot client pays on this host before it can claim: a process,
# the shared libraries libpq brings, a new backend.
echo "floor: /bin/true $(fmt_ms "$(mean_us 50 /bin/true)")," \
	"certctl-claim --help $(fmt_ms "$(mean_us 50 certctl-claim --help)") (no database)," \
	"psql -c 'select 1' $(fmt_ms "$(mean_us 20 psql -XAtqc 'select 1')")"
echo 'select 1;' >"$work/select1.sql"
pgbench -n -C -c 1 -t 200 -f "$work/select1.sql" 2>&1 | sed -n 's/^average connection time = /floor: new connection (pgbench -C, 1 client) /p'

echo "== plans with $BIG_JOBS jobs, 1% Pending"
psql_q "TRUNCATE jobs CASCADE"
psql_q "INSERT INTO agents (id) SELECT 'agent-' || g FROM generate_series(1, 100) g"
psql_q "INSERT INTO deployment_targets (id, type, agent_id)
	SELECT 'target-' || g, 'file', 'agent-' || g FROM generate_series(1, 100) g"
psql_q "INSERT INTO managed_certificates (id) SELECT 'mc-' || g FROM generate_series(1, 100) g"
psql_q "INSERT INTO certificate_targets (certificate_id, target_id)
	SELECT 'mc-' || g, 'target-' || g FROM generate_series(1, 100) g"
# Every 100th job is Pending: a third central, a third assigned to an agent,
# a third routed through a target; the rest are finished history.
psql_q "INSERT INTO jobs (id, type, status, agent_id, target_id, certificate_id, scheduled_at, completed_at)
	SELECT 'job-' || g, 'Deployment',
	       CASE WHEN g % 100 = 0 THEN 'Pending' ELSE 'Completed' END,
	       CASE WHEN g % 3 = 1 THEN 'agent-' || (g / 100 % 100 + 1) END,
	       CASE WHEN g % 3 = 2 THEN 'target-' || (g / 100 % 100 + 1) END,
	       'mc-' || (g / 100 % 100 + 1),
	       now() - interval '1 minute',
	       CASE WHEN g % 100 <> 0 THEN now() END
	FROM generate_series(1, $BIG_JOBS) g"
psql_q "VACUUM ANALYZE"
echo "jobs: $(psql_q "SELECT count(*) FROM jobs"), Pending: $(psql_q "SELECT count(*) FROM jobs WHERE status = 'Pending'")"

# auto_explain shows the plans of the statements certctl-claim really runs.
explain_claim() {
	PGOPTIONS="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=0
		-c auto_explain.log_level=warning -c auto_explain.log_analyze=on
		-c auto_explain.log_timing=off" \
		certctl-claim "$@" 2>&1 >/dev/null |
		grep -E 'Scan|Limit|Update on|LockRows|Join|Loop|Sort' | sed 's/^/    /'
}
for args in "--limit 10" "--agent agent-2 --limit 10"; do
	echo "-- certctl-claim $args"
	# shellcheck disable=SC2086
	explain_claim $args | tee "$work/plan"
	if grep -q 'Seq Scan on jobs' "$work/plan"; then
		echo "   => SEQUENTIAL SCAN of jobs"
	else
		echo "   => index scans only on jobs"
	fi
done
