#!/usr/bin/env bash
# bench/renew.sh: certctl-renew over CERTIFICATES certificates (default
# 100 000) of which 1% are due, side by side in one run with a psql SELECT of
# the same due set written by hand from the versions (what an operator's
# script would do), and the plan of renew's own query. Prints figures;
# asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

CERTIFICATES=${CERTIFICATES:-100000}
RUNS=${RUNS:-5}
DUE=$((CERTIFICATES / 100))

bench_enter_cluster "$0" "$@"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bench_owner_database renew_bench

psql_q() { PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
micros() { echo "${EPOCHREALTIME/./}"; }

# 90-day versions: DUE of them 70 days old (past the 60-day point), the rest 10 days old.
psql_q "INSERT INTO issuers (id, type, config) VALUES ('iss-bench', 'command', '{\"command\":[\"true\"]}')"
psql_q "INSERT INTO managed_certificates (id, common_name, issuer_id)
	SELECT 'mc-' || g, 'c' || g || '.example', 'iss-bench' FROM generate_series(1, $CERTIFICATES) g"
psql_q "INSERT INTO certificate_versions (id, certificate_id, serial_number, not_before, not_after,
	                                  fingerprint_sha256, cert_pem)
	SELECT 'v-' || g, 'mc-' || g, g::text, now() - age, now() - age + interval '90 days',
	       md5(g::text), 'x'
	FROM generate_series(1, $CERTIFICATES) g,
	     LATERAL (SELECT CASE WHEN g % 100 = 0 THEN interval '70 days' ELSE interval '10 days' END AS age) a"
psql_q "VACUUM ANALYZE managed_certificates, certificate_versions"

# The same set by hand: each certificate's newest version, its lifetime rule.
by_hand="SELECT count(*) FROM (SELECT DISTINCT ON (v.certificate_id) v.certificate_id, v.not_before, v.not_after
	FROM certificate_versions v JOIN managed_certificates m ON m.id = v.certificate_id
	WHERE m.auto_renew AND m.issuer_id IS NOT NULL
	ORDER BY v.certificate_id, v.created_at DESC) c
	WHERE now() >= c.not_after - (c.not_after - c.not_before) / 3"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
time_runs() { # COMMAND...: median wall time of RUNS runs, in microseconds
	local start
	for _ in $(seq 1 "$RUNS"); do
		start=$(micros)
		"$@" >/dev/null
		echo $(( $(micros) - start ))
		psql_q "DELETE FROM jobs" >/dev/null
	done | median
}

echo "certificates: $CERTIFICATES, due: $DUE (median of $RUNS runs; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "by hand, psql SELECT of the due set: $(psql_q "$by_hand") due"
hand=$(time_runs psql_q "$by_hand")
dry=$(time_runs certctl-renew --dry-run)
real=$(time_runs certctl-renew)
psql_q "UPDATE managed_certificates SET auto_renew = false WHERE id IN (SELECT 'mc-' || g * 100 FROM generate_series(1, $DUE) g)"
idle=$(time_runs certctl-renew)
psql_q "UPDATE managed_certificates SET auto_renew = true"
printf '%-48s %10s %8s\n' "" "median" "vs psql"
for row in "psql SELECT by hand (no jobs):$hand" "certctl-renew --dry-run ($DUE jobs, rolled back):$dry" \
	"certctl-renew ($DUE jobs created):$real" "certctl-renew, nothing due (the hourly case):$idle"; do
	name=${row%:*} us=${row##*:}
	printf '%-48s %7d ms %7s\n' "$name" $((us / 1000)) "$(awk -v a="$us" -v b="$hand" 'BEGIN { printf "%.2fx", a / b }')"
done
echo "plan of certctl-renew's due query:"
psql_q "EXPLAIN SELECT m.id FROM managed_certificates m
	WHERE m.auto_renew AND m.issuer_id IS NOT NULL AND m.renewal_due_at <= now()" | sed 's/^/  /'
echo "plan of the query by hand:"
psql_q "EXPLAIN $by_hand" | sed 's/^/  /'
