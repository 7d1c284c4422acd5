#!/usr/bin/env bash
# bench/fleet.sh: a fleet of agents on one PostgreSQL (bench/fleet/fleet.c):
# each agent once a minute connects as its own login, heartbeats, claims and
# finishes what it claimed, while an operator enqueues deployments. For each
# fleet size, side by side in one run: through pgbouncer (transaction
# pooling, auth_query) and directly, each with the agents' own logins (row-
# level security applied) and with the schema owner's (policies bypassed).
# Prints each run's report and the top statements from pg_stat_statements;
# asserts nothing. Runs in a throw-away cluster (pg_virtualenv -t), durable
# settings.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

FLEET_SIZES=${FLEET_SIZES:-"1000 10000"}
FLEET_MINUTES=${FLEET_MINUTES:-3}
FLEET_MINUTE_MS=${FLEET_MINUTE_MS:-60000}
FLEET_THREADS=${FLEET_THREADS:-32}
FLEET_RUNS=${FLEET_RUNS:-"pgbouncer-agents pgbouncer-owner direct-agents direct-owner"}
FLEET=${FLEET:-$CERTCTL_BIN/../bench/fleet/fleet}

# pg_stat_statements keeps one entry per statement and role: 10 000 agents' roles need room.
BENCH_CLUSTER_OPTIONS="-o max_connections=200 -o shared_preload_libraries=pg_stat_statements
	-o pg_stat_statements.max=100000 -o pg_stat_statements.track_planning=on" \
	bench_enter_cluster "$0" "$@"

# Inside the cluster (PGHOST=localhost, the superuser's PGPASSWORD).
source bench/fleet/lib.bash
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
cleanup() {
	[ -z "${FLEET_PGBOUNCER_PID:-}" ] || kill "$FLEET_PGBOUNCER_PID" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
owner_password=$(openssl rand -hex 16) operator_password=$(openssl rand -hex 16)
(umask 077 && openssl rand -hex 16 >"$work/agent.password")
psql -XAtq -v ON_ERROR_STOP=1 -v pw="$owner_password" >/dev/null <<-'SQL'
CREATE ROLE certctl_owner LOGIN CREATEROLE PASSWORD :'pw';
CREATE DATABASE fleet_bench OWNER certctl_owner;
SQL
# The agents' roles share one password: the last, catch-all line.
(umask 077 && printf '*:*:*:certctl_owner:%s\n*:*:*:fleet_operator:%s\n*:*:*:*:%s\n' \
	"$owner_password" "$operator_password" "$(cat "$work/agent.password")" >"$work/pgpass")
PGPASSFILE="$work/pgpass" PGUSER=certctl_owner PGPASSWORD='' PGDATABASE=fleet_bench \
	certctl-migrate -q up >/dev/null
psql -XAtq -v ON_ERROR_STOP=1 -v pw="$operator_password" -d fleet_bench >/dev/null <<-'SQL'
CREATE ROLE fleet_operator LOGIN PASSWORD :'pw' IN ROLE certctl_operator;
-- The run's monitor counts every client backend in pg_stat_activity.
GRANT pg_monitor TO fleet_operator;
-- Its own schema: the migration revokes every function in public from PUBLIC.
CREATE SCHEMA stats;
CREATE EXTENSION pg_stat_statements SCHEMA stats;
SQL
bouncer_port=$(free_port)
fleet_pgbouncer_start "$work" fleet_bench "$PGPORT" "$bouncer_port"

direct="host=127.0.0.1 port=$PGPORT dbname=fleet_bench"
bounced="host=127.0.0.1 port=$bouncer_port dbname=fleet_bench"
super_sql() { PGDATABASE=fleet_bench psql -XAtq -v ON_ERROR_STOP=1 <<<"$1"; }

echo "== machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1);" \
	"$(psql -XAtqc 'SHOW server_version'); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); minutes of $FLEET_MINUTE_MS ms, $FLEET_MINUTES each;" \
	"pgbouncer $(pgbouncer --version | head -n 1), max_db_connections ${FLEET_PGBOUNCER_SERVERS:-20}"
agents_made=0
for size in $FLEET_SIZES; do
	if [ "$size" -gt "$agents_made" ]; then
		super_sql "TRUNCATE jobs, version_keys, certificate_targets, certificate_versions,
			managed_certificates, deployment_targets, agents CASCADE" >/dev/null
		start=$SECONDS
		PGDATABASE=fleet_bench fleet_fixture "$size" "fleet_$size" "$work/agent.password"
		echo "== fixture: $size agents, roles and certificates in $((SECONDS - start)) s"
		agents_made=$size
	fi
	for run in $FLEET_RUNS; do
		case $run in
		pgbouncer-*) dsn=$bounced pid=(--pgbouncer-pid "$FLEET_PGBOUNCER_PID") ;;
		*) dsn=$direct pid=() ;;
		esac
		case $run in
		*-owner) dsn="$dsn user=certctl_owner" login=(--shared-login) ;;
		*) login=() ;;
		esac
		super_sql "DELETE FROM jobs; VACUUM ANALYZE jobs; VACUUM ANALYZE agents; CHECKPOINT;
			SELECT stats.pg_stat_statements_reset()" >/dev/null
		echo "== $size agents, $run; load average $(cut -d' ' -f1-3 /proc/loadavg)"
		PGPASSFILE="$work/pgpass" PGPASSWORD='' "$FLEET" -d "$direct user=fleet_operator" \
			--agents "$size" --agent-dsn "$dsn" "${login[@]}" "${pid[@]}" \
			--minutes "$FLEET_MINUTES" --minute-ms "$FLEET_MINUTE_MS" --threads "$FLEET_THREADS" \
			--enqueue-per-minute "${FLEET_ENQUEUE_PER_MINUTE:-$((size / 10))}" | tee "$work/report" ||
			echo "   (the run reported errors)"
		echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "   not finished: $(super_sql "SELECT count(*) FROM jobs WHERE status <> 'Completed'")," \
			"completed more than once or after a retry: $(super_sql "SELECT count(*) FROM jobs WHERE attempts <> 1")"
		echo "   top statements by total time (pg_stat_statements: calls, total ms, mean planning ms, mean execution ms):"
		# One row per statement, summed over the agents' roles.
		super_sql "SELECT sum(calls), round(sum(total_exec_time + total_plan_time)::numeric, 0),
				round((sum(total_plan_time) / nullif(sum(calls), 0))::numeric, 3),
				round((sum(total_exec_time) / nullif(sum(calls), 0))::numeric, 3),
				left(regexp_replace(query, '\s+', ' ', 'g'), 90)
			FROM stats.pg_stat_statements GROUP BY query ORDER BY 2 DESC LIMIT 12" | sed 's/^/     /'
	done
done
