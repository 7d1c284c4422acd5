#!/usr/bin/env bash
# bench/status.sh: certctl-status over a large fleet, against the query an
# operator would write by hand in psql for the same states. TARGETS targets
# (4 per certificate, 100 agents), two versions per certificate, three
# finished deployments per target (every 10th target's last one failed,
# every 20th has one Pending), half the targets probed. Wall time of each
# (median of RUNS, connection included) and the plan certctl-status's
# statement gets. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

TARGETS=${TARGETS:-10000}
RUNS=${RUNS:-5}

bench_enter_cluster "$0" "$@"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_owner_database status_bench

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
certificates=$((TARGETS / 4))
hex() { echo "md5($1) || md5($1 || 'x')"; }
psql_q "INSERT INTO agents (id, last_heartbeat_at) SELECT 'agent-' || g, now() FROM generate_series(1, 100) g"
psql_q "INSERT INTO managed_certificates (id, renew_before)
	SELECT 'mc-' || g, '30 days' FROM generate_series(1, $certificates) g"
psql_q "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
		fingerprint_sha256, cert_pem, created_at)
	SELECT 'v-' || g || '-' || n, 'mc-' || g, n::text, now() - interval '10 days', now() + interval '80 days',
	       $(hex "g::text || '-' || n::text"), 'pem', now() - (3 - n) * interval '1 day'
	  FROM generate_series(1, $certificates) g, generate_series(1, 2) n"
psql_q "INSERT INTO deployment_targets (id, type, agent_id, config)
	SELECT 'target-' || g, 'file', 'agent-' || (g % 100 + 1),
	       jsonb_build_object('verify_endpoint', '127.0.0.1:' || (10000 + g))
	  FROM generate_series(1, $TARGETS) g"
psql_q "INSERT INTO certificate_targets (certificate_id, target_id)
	SELECT 'mc-' || ((g - 1) / 4 + 1), 'target-' || g FROM generate_series(1, $TARGETS) g"
# Three finished deployments per target: the older version twice, then the
# current one (or a failure for every 10th target).
psql_q "INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, completed_at,
		deployed_fingerprint, last_error)
	SELECT 'job-' || g || '-' || n, 'Deployment',
	       CASE WHEN n = 3 AND g % 10 = 0 THEN 'Failed' ELSE 'Completed' END,
	       'mc-' || ((g - 1) / 4 + 1), 'target-' || g, 'agent-' || (g % 100 + 1),
	       now() - (4 - n) * interval '1 hour',
	       CASE WHEN n = 3 AND g % 10 = 0 THEN NULL
	            ELSE $(hex "((g - 1) / 4 + 1)::text || '-' || (CASE WHEN n = 3 THEN 2 ELSE 1 END)::text") END,
	       CASE WHEN n = 3 AND g % 10 = 0 THEN 'reload failed' END
	  FROM generate_series(1, $TARGETS) g, generate_series(1, 3) n"
psql_q "INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id)
	SELECT 'job-' || g || '-p', 'Deployment', 'Pending', 'mc-' || ((g - 1) / 4 + 1), 'target-' || g,
	       'agent-' || (g % 100 + 1)
	  FROM generate_series(20, $TARGETS, 20) g"
psql_q "INSERT INTO target_probes (target_id, endpoint, served_fingerprint, served_at, probed_at)
	SELECT 'target-' || g, '127.0.0.1:' || (10000 + g),
	       $(hex "((g - 1) / 4 + 1)::text || (CASE WHEN g % 14 = 0 THEN '-1' ELSE '-2' END)"), now(), now()
	  FROM generate_series(2, $TARGETS, 2) g"
psql_q "ANALYZE agents, managed_certificates, certificate_versions, deployment_targets,
	certificate_targets, jobs, target_probes"

# The query an operator would write: the last finished and last completed
# deployment by DISTINCT ON, an unfinished one by EXISTS, the newest probe.
cat > "$work/by-hand.sql" <<-'SQL'
WITH cur AS (SELECT DISTINCT ON (certificate_id) certificate_id, fingerprint_sha256, not_after
               FROM certificate_versions ORDER BY certificate_id, created_at DESC, id DESC),
     fin AS (SELECT DISTINCT ON (target_id, certificate_id) target_id, certificate_id, status
               FROM jobs WHERE type = 'Deployment' AND status IN ('Completed', 'Failed')
              ORDER BY target_id, certificate_id, completed_at DESC),
     ok AS (SELECT DISTINCT ON (target_id, certificate_id) target_id, certificate_id,
                   deployed_fingerprint, completed_at
              FROM jobs WHERE type = 'Deployment' AND status = 'Completed'
             ORDER BY target_id, certificate_id, completed_at DESC)
SELECT ct.certificate_id, ct.target_id,
       CASE WHEN EXISTS (SELECT 1 FROM jobs u WHERE u.target_id = ct.target_id
                           AND u.certificate_id = ct.certificate_id AND u.type = 'Deployment'
                           AND u.status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running'))
                 THEN 'pending'
            WHEN fin.status = 'Failed' THEN 'failing'
            WHEN ok.completed_at IS NULL THEN 'never_deployed'
            WHEN ok.deployed_fingerprint <> cur.fingerprint_sha256 THEN 'drifted'
            WHEN p.served_at IS NULL OR p.served_at < ok.completed_at THEN 'unverified'
            WHEN p.served_fingerprint = cur.fingerprint_sha256 THEN 'current'
            ELSE 'drifted' END,
       cur.not_after
  FROM certificate_targets ct
  JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL
  LEFT JOIN cur ON cur.certificate_id = ct.certificate_id
  LEFT JOIN fin ON fin.target_id = ct.target_id AND fin.certificate_id = ct.certificate_id
  LEFT JOIN ok ON ok.target_id = ct.target_id AND ok.certificate_id = ct.certificate_id
  LEFT JOIN target_probes p ON p.target_id = ct.target_id
 ORDER BY 1, 2;
SQL

median_ms() {
	local start
	: > "$work/wall"
	for _ in $(seq 1 "$RUNS"); do
		start=${EPOCHREALTIME/./}
		"$@" > "$work/out" || :  # --check exits 1 on this fleet
		echo $(( (${EPOCHREALTIME/./} - start) / 1000 )) >> "$work/wall"
	done
	sort -n "$work/wall" | sed -n "$(( (RUNS + 1) / 2 ))p"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== $TARGETS targets, $certificates certificates, $(psql_q "SELECT count(*) FROM jobs") jobs; median of $RUNS, connection included"
status_ms=$(median_ms certctl-status)
lines=$(wc -l < "$work/out")
table_ms=$(median_ms certctl-status --table)
prom_ms=$(median_ms certctl-status --prometheus "$work/certctl.prom")
check_ms=$(median_ms certctl-status --check 2>/dev/null)
hand_ms=$(PGOPTIONS="-c jit=off" median_ms psql -XAtq -v ON_ERROR_STOP=1 -f "$work/by-hand.sql")
hand_lines=$(wc -l < "$work/out")
echo "certctl-status (JSON lines): $status_ms ms, $lines lines"
echo "certctl-status --table: $table_ms ms; --prometheus: $prom_ms ms; --check (nothing printed): $check_ms ms"
echo "hand-written psql query: $hand_ms ms, $hand_lines rows; certctl-status / psql $(ratio "$status_ms" "$hand_ms")"
certctl-status | jq -r .state | sort | uniq -c | sed 's/^/    /'

echo "== the plan of certctl-status's statement (EXPLAIN ANALYZE of libcommon/status.c's status_sql)"
sed -n '/^static const char status_sql\[\] =/,/";$/p' libcommon/status.c | sed '1d; s/^[[:space:]]*"//; s/";\{0,1\}$//' \
	> "$work/status.sql"
{
	printf 'PREPARE status(text, text) AS '
	cat "$work/status.sql"
	printf ';\nEXPLAIN (ANALYZE, BUFFERS, TIMING OFF) EXECUTE status(NULL, NULL);\n'
} | PGOPTIONS="-c jit=off" psql -XAtq -v ON_ERROR_STOP=1 | sed 's/^/    /'
echo "== the hand-written query's execution"
{ printf 'EXPLAIN (ANALYZE, TIMING OFF) '; cat "$work/by-hand.sql"; } |
	PGOPTIONS="-c jit=off" psql -XAtq -v ON_ERROR_STOP=1 | grep -E 'Execution Time' | sed 's/^/    /'
