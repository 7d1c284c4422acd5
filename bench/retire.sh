#!/usr/bin/env bash
# Retirement at scale: 10 000 agents, 50 000 targets, 1 000 000 jobs.
# Prints the median wall time of certctl-retire on the blocked and the force
# path next to a process-start and a connect-and-look-up baseline, the
# in-database time of the same statements (EXPLAIN ANALYZE), and the plans of
# the three count queries; then the same with two candidate partial indexes.
# Figures only: nothing here passes or fails on speed (it exits 1 only when a
# count query stops using an index).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash
RUNS=${RUNS:-20}
export RUNS

BENCH_CLUSTER_OPTIONS="-o shared_buffers=256MB" bench_enter_cluster "$0" "$@"

export PGDATABASE=certctl_bench
createdb "$PGDATABASE"
certctl-migrate -q up >/dev/null
q() { psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

echo "generating 10 000 agents, 50 000 targets, 20 000 certificates, 1 000 000 jobs ..."
start=$(date +%s)
psql -XAtq -v ON_ERROR_STOP=1 <<'SQL'
SET synchronous_commit = off;
INSERT INTO agents (id, last_heartbeat_at)
SELECT format('agent-%s', i), now() FROM generate_series(1, 10000) i;
-- Five targets per agent: target i belongs to agent ceil(i / 5).
INSERT INTO deployment_targets (id, type, agent_id)
SELECT format('target-%s', i), 'nginx', format('agent-%s', (i - 1) / 5 + 1)
FROM generate_series(1, 50000) i;
INSERT INTO managed_certificates (id) SELECT format('mc-%s', i) FROM generate_series(1, 20000) i;
INSERT INTO certificate_targets (certificate_id, target_id)
SELECT format('mc-%s', (i - 1) % 20000 + 1), format('target-%s', i) FROM generate_series(1, 50000) i;
-- Mostly history; about 10 % unfinished. Half the jobs also carry the agent id.
INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, completed_at)
SELECT format('job-%s', i), 'Deployment',
       CASE WHEN i % 100 < 80 THEN 'Completed' WHEN i % 100 < 88 THEN 'Failed'
            WHEN i % 100 < 90 THEN 'Cancelled' WHEN i % 100 < 96 THEN 'Pending'
            WHEN i % 100 < 98 THEN 'Running' WHEN i % 100 < 99 THEN 'AwaitingCSR'
            ELSE 'AwaitingApproval' END,
       format('mc-%s', (t - 1) % 20000 + 1), format('target-%s', t),
       CASE WHEN i % 2 = 0 THEN format('agent-%s', (t - 1) / 5 + 1) END,
       CASE WHEN i % 100 < 90 THEN now() END
FROM generate_series(1, 1000000) i, LATERAL (SELECT (i - 1) % 50000 + 1 AS t) target;
VACUUM ANALYZE;
SQL
echo "generated in $(( $(date +%s) - start )) s"

# Milliseconds of one run of the command, which must exit with $1.
time_run() {
	local expected=$1 rc=0 t0 t1
	shift
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || rc=$?
	t1=$(date +%s%N)
	if [ "$rc" -ne "$expected" ]; then
		echo "bench: '$*' exited $rc, expected $expected" >&2
		exit 1
	fi
	echo "scale=2; ($t1 - $t0) / 1000000" | bc
}

median() {
	sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

report() {
	printf '%-46s median %7s ms  (min %s, max %s, %s runs)\n' "$1" \
		"$(median <"$2")" "$(sort -n "$2" | head -n 1)" "$(sort -n "$2" | tail -n 1)" "$(wc -l <"$2")"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 "$RUNS"); do
	time_run 0 certctl-retire --version >>"$tmp/start"
	time_run 66 certctl-retire "agent-missing-$i" >>"$tmp/baseline"
	time_run 3 certctl-retire "agent-$((100 + i))" >>"$tmp/blocked"
	time_run 0 certctl-retire "agent-$((200 + i))" --force --reason bench >>"$tmp/force"
done

echo
echo "== wall time per process ($RUNS runs each)"
report "process start only (--version)" "$tmp/start"
report "connect + lock look-up (unknown agent, 66)" "$tmp/baseline"
report "blocked path (preflight counts, exit 3)" "$tmp/blocked"
report "force path (counts + cascade + audit, exit 0)" "$tmp/force"
printf 'work beyond connect+look-up: blocked %.2f ms, force %.2f ms\n' \
	"$(echo "$(median <"$tmp/blocked") - $(median <"$tmp/baseline")" | bc)" \
	"$(echo "$(median <"$tmp/force") - $(median <"$tmp/baseline")" | bc)"
q "SELECT 'check: ' || count(*) || ' agents retired, ' ||
          (SELECT count(*) FROM deployment_targets WHERE retired_reason = 'bench') || ' targets, ' ||
          (SELECT count(*) FROM jobs WHERE last_error LIKE 'cancelled: agent % retired: bench') || ' jobs cancelled'
   FROM agents WHERE retired_reason = 'bench'"

# The statements of libcommon/retire.c, for EXPLAIN: keep them in step.
unfinished="('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running')"
counts_sql="SELECT
 (SELECT count(*) FROM deployment_targets WHERE agent_id = 'AGENT' AND retired_at IS NULL),
 (SELECT count(DISTINCT ct.certificate_id) FROM certificate_targets ct
   JOIN deployment_targets t ON t.id = ct.target_id WHERE t.agent_id = 'AGENT' AND t.retired_at IS NULL),
 (SELECT count(*) FROM (
   SELECT id FROM jobs WHERE agent_id = 'AGENT' AND status IN $unfinished
   UNION
   SELECT j.id FROM jobs j JOIN deployment_targets t ON t.id = j.target_id
   WHERE t.agent_id = 'AGENT' AND t.retired_at IS NULL AND j.status IN $unfinished) unfinished)"
cancel_sql="UPDATE jobs SET status = 'Cancelled', completed_at = now(), lease_expires_at = NULL,
 updated_at = now(), last_error = 'cancelled: agent AGENT retired: bench'
 WHERE status IN $unfinished AND id IN (
   SELECT id FROM jobs WHERE agent_id = 'AGENT' AND status IN $unfinished
   UNION ALL
   SELECT j.id FROM jobs j JOIN deployment_targets t ON t.id = j.target_id
   WHERE t.agent_id = 'AGENT' AND t.retired_at IS NULL AND j.status IN $unfinished)"
targets_sql="UPDATE deployment_targets SET retired_at = now(), retired_reason = 'bench', updated_at = now()
 WHERE agent_id = 'AGENT' AND retired_at IS NULL"
lock_sql="SELECT retired_at IS NOT NULL FROM agents WHERE id = 'AGENT' FOR UPDATE"
agent_sql="UPDATE agents SET retired_at = now(), retired_reason = 'bench', updated_at = now()
 WHERE id = 'AGENT' AND retired_at IS NULL"

execution_ms() {
	sed -n 's/^Execution Time: \([0-9.]*\) ms$/\1/p'
}

# In-database time of one retirement's statements, rolled back, for $RUNS
# agents from $2 on; $1 labels the schema measured.
measure_in_database() {
	local i n agent
	rm -f "$tmp"/db-*
	for i in $(seq 1 "$RUNS"); do
		agent="agent-$(($2 + i))"
		{
			echo "BEGIN;"
			for s in "$lock_sql" "$counts_sql" "$agent_sql" "$cancel_sql" "$targets_sql"; do
				echo "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) ${s//AGENT/$agent};"
			done
			echo "ROLLBACK;"
		} | psql -XAtq -v ON_ERROR_STOP=1 | execution_ms >"$tmp/statements"
		for n in 1 2 3 4 5; do
			sed -n "${n}p" "$tmp/statements" >>"$tmp/db-statement-$n"
		done
		awk '{ s += $1 } END { printf "%.3f\n", s }' "$tmp/statements" >>"$tmp/db-force"
		awk 'NR <= 2 { s += $1 } END { printf "%.3f\n", s }' "$tmp/statements" >>"$tmp/db-blocked"
	done
	echo
	echo "== inside the database, $1 (EXPLAIN ANALYZE execution time, $RUNS agents, rolled back)"
	report "blocked path: lock + counts" "$tmp/db-blocked"
	report "force path: lock, counts, agent, jobs, targets" "$tmp/db-force"
	report "  lock the agent row FOR UPDATE" "$tmp/db-statement-1"
	report "  the three counts" "$tmp/db-statement-2"
	report "  retire the agent" "$tmp/db-statement-3"
	report "  cancel unfinished jobs (10 per agent)" "$tmp/db-statement-4"
	report "  retire active targets (5 per agent)" "$tmp/db-statement-5"
}

plan_of_counts() {
	echo
	echo "== plan of the three count queries (agent-5000), $1"
	q "EXPLAIN (COSTS OFF) ${counts_sql//AGENT/agent-5000}" | tee "$tmp/plan"
	if grep -q 'Seq Scan' "$tmp/plan"; then
		echo "bench: a count query scans a table sequentially" >&2
		exit 1
	fi
	echo "index use: every scan in the count queries is an index scan"
}

measure_in_database "schema as migrated (000003 indexes unfinished jobs)" 1000
plan_of_counts "schema as migrated"

# What migration 000003 buys: the same without its partial indexes on
# unfinished jobs, so the counts read every finished job of the agent too.
q "DROP INDEX jobs_unfinished_agent_idx"
q "DROP INDEX jobs_unfinished_target_idx"
q "VACUUM ANALYZE jobs"
measure_in_database "without 000003's partial indexes" 2000
plan_of_counts "without 000003's partial indexes"
