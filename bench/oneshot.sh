#!/usr/bin/env bash
# bench/oneshot.sh: what a one-shot `certctl-claim --limit 1` costs next to
# what a shell script would run instead, `psql -XAtc` with the same claim
# statement, and next to the floor, a minimal libpq client that connects and
# runs SELECT 1 ($BUILD/bench/pq_floor). Over the Unix socket (peer
# authentication) and over TCP with SCRAM, in one run, as ratios. The claim
# statement psql runs is the one certctl-claim sent, taken from the server's
# log (log_statement) with its parameters inlined as literals. Prints figures
# and the statements each certctl-claim run sends (pg_stat_statements);
# asserts nothing. Runs in a throw-away cluster with default durable settings.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

RUNS=${ONESHOT_RUNS:-10}
ROUNDS=${ONESHOT_ROUNDS:-9}
FLOOR=${CERTCTL_BENCH_FLOOR:-$CERTCTL_BIN/../bench/pq_floor}
# Debian's psql is pg_wrapper, a Perl script that picks the cluster's version;
# the binary it runs is measured too.
PSQL_BINARY=$(pg_config --bindir)/psql
[ -x "$FLOOR" ] || { echo "bench/oneshot.sh: no $FLOOR (make builds it)" >&2; exit 69; }
if ! command -v hyperfine >/dev/null; then
	apt-get install -y -qq hyperfine >/dev/null 2>&1 || { echo "bench/oneshot.sh: install the 'hyperfine' package" >&2; exit 69; }
fi

BENCH_CLUSTER_OPTIONS="-o shared_preload_libraries=pg_stat_statements -o pg_stat_statements.track_planning=on -o logging_collector=on
	-o log_directory=log -o log_filename=bench.log" bench_enter_cluster "$0" "$@"

# Inside the cluster: PGHOST=localhost, PGUSER the superuser, its PGPASSWORD.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
superuser=$PGUSER superuser_password=$PGPASSWORD
super() { PGUSER=$superuser PGPASSWORD=$superuser_password "$@"; }
psql_q() { super psql -XAtq -v ON_ERROR_STOP=1 "$@"; }
me=$(id -un)
# Both claimants are operators' logins, neither a superuser: over TCP
# certctl_bench_operator (SCRAM), over the socket a role named like the OS
# user (peer authentication).
bench_database oneshot_bench "$work"
unset PGPASSWORD
psql_q -v me="$me" >/dev/null <<-'SQL'
CREATE ROLE :"me" LOGIN;
CREATE EXTENSION pg_stat_statements;
GRANT certctl_operator TO :"me";
SQL

# Enough Pending, unrouted jobs that no claim finds the queue empty.
jobs=$(( (ROUNDS * 2 * (RUNS + 3) * 3) + 100 ))
psql_q -c "INSERT INTO jobs (id, type, status, scheduled_at)
	SELECT 'job-' || g, 'Renewal', 'Pending', now() - interval '1 minute'
	FROM generate_series(1, $jobs) g" >/dev/null
psql_q -c "VACUUM ANALYZE jobs" >/dev/null

# The statement one certctl-claim --limit 1 sends, and its parameters, from the log.
super env PGOPTIONS="-c log_statement=all" certctl-claim --limit 1 --worker oneshot-probe >/dev/null
log=$(psql_q -c "SELECT pg_read_file(pg_current_logfile())")
statement=$(grep -F 'execute <unnamed>: WITH picked AS' <<<"$log" | tail -n 1 | sed 's/^.*execute <unnamed>: //')
parameters=$(grep -A1 -F 'execute <unnamed>: WITH picked AS' <<<"$log" | tail -n 1 | sed -n 's/^.*DETAIL:  parameters: //p')
if [ -z "$statement" ] || [ -z "$parameters" ]; then
	echo "bench/oneshot.sh: the claim statement is not in the log" >&2
	exit 70
fi
# "$1 = NULL, $2 = '1', $3 = 'oneshot-probe', $4 = '900'": inline each, from the highest number down.
claim_sql=$statement
while IFS= read -r binding; do
	number=${binding%% = *} value=${binding#* = }
	[ "${value}" != "'oneshot-probe'" ] || value="'psql-oneshot'"
	claim_sql=${claim_sql//"$number"/$value}
done < <(sed 's/, \$/\n$/g' <<<"$parameters" | sort -t'$' -k2 -rn)
case $claim_sql in *'$'[0-9]*) echo "bench/oneshot.sh: a parameter was left in: $claim_sql" >&2; exit 70 ;; esac
printf 'claim statement (from the log, parameters %s inlined):\n  %s\n' "$parameters" "$claim_sql"

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# measure TRANSPORT: ROUNDS hyperfine runs of the four commands, their
# mean times to $work/TRANSPORT.{claim,psql,psqlbin,floor}, one line per round.
measure() {
	local transport=$1 round json
	for round in $(seq 1 "$ROUNDS"); do
		json="$work/$transport.$round.json"
		hyperfine -N --style none --warmup 3 --runs "$RUNS" --export-json "$json" \
			"certctl-claim --limit 1 --worker oneshot" \
			"psql -XAtc \"$claim_sql\"" \
			"$PSQL_BINARY -XAtc \"$claim_sql\"" \
			"$FLOOR" >/dev/null 2>>"$work/hyperfine.err"
		jq -r '.results[0].mean * 1000' "$json" >>"$work/$transport.claim"
		jq -r '.results[1].mean * 1000' "$json" >>"$work/$transport.psql"
		jq -r '.results[2].mean * 1000' "$json" >>"$work/$transport.psqlbin"
		jq -r '.results[3].mean * 1000' "$json" >>"$work/$transport.floor"
	done
}

# report TRANSPORT: the medians of the rounds' means and the two ratios.
report() {
	local transport=$1 claim psql psqlbin floor
	claim=$(median <"$work/$transport.claim") psql=$(median <"$work/$transport.psql")
	psqlbin=$(median <"$work/$transport.psqlbin") floor=$(median <"$work/$transport.floor")
	awk -v t="$transport" -v c="$claim" -v p="$psql" -v b="$psqlbin" -v f="$floor" -v r="$ROUNDS" -v n="$RUNS" 'BEGIN {
		printf "%s: certctl-claim --limit 1 %.2f ms, psql -XAtc (same claim) %.2f ms, its binary without pg_wrapper %.2f ms, pq_floor (connect, SELECT 1) %.2f ms (medians of %d means of %d runs)\n", t, c, p, b, f, r, n
		printf "%s: certctl-claim / psql %.2f (goal <= 0.5), / psql binary %.2f, / floor %.2f (goal <= 1.3)\n", t, c / p, c / b, c / f
	}'
	printf '%s: per round, ms (claim psql psql-binary floor):' "$transport"
	paste -d' ' "$work/$transport.claim" "$work/$transport.psql" "$work/$transport.psqlbin" "$work/$transport.floor" |
		awk '{ printf " [%.1f %.1f %.1f %.1f]", $1, $2, $3, $4 } END { print "" }'
}

echo "== one-shot claim: $ROUNDS rounds of hyperfine -N, $RUNS runs (3 warm-up) per command"
psql_q -c "SELECT pg_stat_statements_reset()" >/dev/null
(export PGHOST=/var/run/postgresql PGUSER=$me && measure socket)
(export PGUSER=certctl_bench_operator && measure tcp)
report socket
report tcp

echo "== statements per run of a client, as the server saw them (pg_stat_statements, both transports)"
runs=$(( ROUNDS * (RUNS + 3) * 2 ))
psql_q -v runs="$runs" <<-'SQL'
SELECT format('  %s per run, %s ms planning + %s ms execution (means): %s', round(calls / :runs, 2),
              round(plan, 3), round(exec, 3), left(q, 100))
FROM (SELECT regexp_replace(query, '\s+', ' ', 'g') AS q, sum(calls) AS calls,
             sum(total_plan_time)::numeric / sum(calls) AS plan,
             sum(total_exec_time)::numeric / sum(calls) AS exec
      FROM pg_stat_statements GROUP BY 1) s
WHERE calls >= :runs / 2
ORDER BY calls DESC, q
SQL
echo "machine: nproc $(nproc), $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
