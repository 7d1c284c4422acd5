#!/usr/bin/env bash
# bench/issue.sh: issuance throughput against pebble. CERTIFICATES (default
# 200) central-mode Issuance jobs issued by PROCESSES (default 4)
# certctl-issue processes through the lego adapter, side by side in one run
# with the same number of shell loops running lego directly on ready-made
# CSRs (what an operator's script would do): the overhead certctl adds per
# issuance. pebble runs on loopback with PEBBLE_VA_ALWAYS_VALID=1 and lego
# answers through a webroot, so that parallel clients need no port each and
# both sides measure the ACME protocol, not HTTP-01 validation. Prints
# figures; asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash

CERTIFICATES=${CERTIFICATES:-200}
PROCESSES=${PROCESSES:-4}

bench_enter_cluster "$0" "$@"

TESTS_DIR=$PWD/tests
source tests/lib/net.bash
source tests/lib/pki.bash
source tests/lib/pebble.bash
work=$(mktemp -d)
trap 'stop_pebble "$work/pebble"; rm -rf "$work"' EXIT
bench_owner_database issue_bench
export CERTCTL_KEY_FILE=$work/sealing.key
(umask 077 && openssl rand -hex 32 > "$CERTCTL_KEY_FILE")

export PEBBLE_VA_ALWAYS_VALID=1
start_pebble "$work/pebble" "$(free_port)" >/dev/null
mkdir -p "$work/webroot" "$work/tmp"
lego_options=(--http --http.webroot "$work/webroot")
jq -cn --arg lego "$PWD/contrib/issuers/lego" --arg url "$PEBBLE_URL" --arg ca "$PEBBLE_CA_BUNDLE" \
	--arg state "$work/issuer-state" --arg tmp "$work/tmp" --arg webroot "$work/webroot" '
	{kind:"issuer", id:"iss-pebble", type:"command",
	 config:{command:["env", ("CERTCTL_ISSUER_STATE=" + $state), ("TMPDIR=" + $tmp), $lego,
	                  "--server", $url, "--email", "bench@example.com", "--ca-bundle", $ca,
	                  "--", "--http", "--http.webroot", $webroot], timeout:300}}' | certctl-import >/dev/null
for n in $(seq 0 "$CERTIFICATES"); do
	printf '{"kind":"certificate","id":"mc-%d","sans":["c%d.example"],"issuer_id":"iss-pebble"}\n' "$n" "$n"
done | certctl-import >/dev/null
psql -XAtq -c "UPDATE managed_certificates SET auto_renew = false WHERE id <> 'mc-0'"
micros() { echo "${EPOCHREALTIME/./}"; }
# CPU time (user + system, in clock ticks) of every child this script has
# waited for: the processes of one side, whatever else the machine runs.
child_ticks() { local stat; read -r stat < /proc/$$/stat; stat=${stat##*) }; set -- $stat; echo $(( ${14} + ${15} )); }

# Warm-up, not timed: the adapter's account is registered by its first run.
certctl-renew >/dev/null && certctl-issue >/dev/null
# The same by hand: lego on ready-made CSRs, PROCESSES loops at once, one
# account registered by a warm-up run.
for n in $(seq 1 "$CERTIFICATES"); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/CN=d$n.example" -addext "subjectAltName=DNS:d$n.example" -out "$work/d$n.csr" 2>/dev/null
done
by_hand() { # CSR...: lego run on each, in its own --path sharing the accounts
	local csr
	for csr; do
		rm -rf "$work/lego-run.$BASHPID" && mkdir -p "$work/lego-run.$BASHPID"
		ln -s "$work/lego-accounts" "$work/lego-run.$BASHPID/accounts"
		LEGO_CA_CERTIFICATES=$PEBBLE_CA_BUNDLE lego --accept-tos --server "$PEBBLE_URL" \
			--email bench@example.com --path "$work/lego-run.$BASHPID" --csr "$csr" \
			"${lego_options[@]}" run >/dev/null 2>&1 || echo "lego failed on $csr" >&2
	done
}
mkdir -p "$work/lego-accounts"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
	-subj "/CN=warm.example" -addext "subjectAltName=DNS:warm.example" -out "$work/warm.csr" 2>/dev/null
by_hand "$work/warm.csr"

# ROUNDS rounds, each a slice of the certificates on both sides in turn, so
# that the machine's load drifts over both alike. Only our own workers are
# waited for: a bare `wait` would wait for pebble too.
ROUNDS=${ROUNDS:-4}
slice=$(( CERTIFICATES / ROUNDS ))
certctl_us=0 hand_us=0 certctl_ticks=0 hand_ticks=0
for round in $(seq 0 $((ROUNDS - 1))); do
	first=$(( round * slice + 1 )) last=$(( (round + 1) * slice ))
	psql -XAtq -c "UPDATE managed_certificates SET auto_renew =
		(id <> 'mc-0' AND substr(id, 4)::int BETWEEN $first AND $last)" >/dev/null
	certctl-renew >/dev/null
	pids=()
	start=$(micros) ticks=$(child_ticks)
	for p in $(seq 1 "$PROCESSES"); do
		certctl-issue --limit $(( (slice + PROCESSES - 1) / PROCESSES )) > "$work/issued.$round.$p" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
	certctl_us=$(( certctl_us + $(micros) - start )) certctl_ticks=$(( certctl_ticks + $(child_ticks) - ticks ))
	pids=()
	start=$(micros) ticks=$(child_ticks)
	for p in $(seq 1 "$PROCESSES"); do
		# shellcheck disable=SC2046
		by_hand $(seq $((first + p - 1)) "$PROCESSES" "$last" | sed "s|.*|$work/d&.csr|") &
		pids+=($!)
	done
	wait "${pids[@]}"
	hand_us=$(( hand_us + $(micros) - start )) hand_ticks=$(( hand_ticks + $(child_ticks) - ticks ))
done
CERTIFICATES=$(( slice * ROUNDS ))
issued=$(cat "$work"/issued.* | grep -c '"status":"Completed"')
twice=$(psql -XAtq -c "SELECT count(*) FROM (SELECT certificate_id FROM certificate_versions
	GROUP BY certificate_id HAVING count(*) > 1) c")

echo "issuance against pebble: $CERTIFICATES certificates, $PROCESSES processes ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
hz=$(getconf CLK_TCK)
row() { # NAME WALL_US TICKS
	printf '%-52s %7.1f s %9.0f ms %8s %9.0f ms %8s\n' "$1" "$(awk -v u="$2" 'BEGIN { print u / 1e6 }')" \
		"$(awk -v u="$2" -v n="$CERTIFICATES" -v p="$PROCESSES" 'BEGIN { print u / 1000 * p / n }')" \
		"$(awk -v a="$2" -v b="$hand_us" 'BEGIN { printf "%.2fx", a / b }')" \
		"$(awk -v t="$3" -v hz="$hz" -v n="$CERTIFICATES" 'BEGIN { print t * 1000 / hz / n }')" \
		"$(awk -v a="$3" -v b="$hand_ticks" 'BEGIN { printf "%.2fx", a / b }')"
}
printf '%-52s %9s %12s %8s %12s %8s\n' "" "wall" "per cert" "vs lego" "CPU/cert" "vs lego"
row "lego by hand on ready CSRs, $PROCESSES shell loops" "$hand_us" "$hand_ticks"
row "certctl-issue x$PROCESSES (key, CSR, lego adapter, checks, store)" "$certctl_us" "$certctl_ticks"
echo "(CPU: user + system of each side's processes, not pebble's or PostgreSQL's)"
echo "certctl-issue: $issued of $CERTIFICATES jobs Completed; certificates issued twice: $twice"
