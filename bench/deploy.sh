#!/usr/bin/env bash
# Deploy throughput: N jobs through `certctl-claim | certctl-deploy` to `file`
# targets (cert, key and chain files; validate/reload ["true"]), against the
# same three-file install done by a plain shell script (install to a temp
# name, sync, mv). Prints figures; asserts nothing. Own throw-away cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.bash
JOBS=${JOBS:-1000}
export JOBS

bench_enter_cluster "$0" "$@"
. tests/lib/pki.bash
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/certctl-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
export PGDATABASE=certctl_bench CERTCTL_KEY_FILE="$work/sealing.key"
createdb "$PGDATABASE"
certctl-migrate -q up >/dev/null
openssl rand -hex 32 > "$CERTCTL_KEY_FILE"
chmod 600 "$CERTCTL_KEY_FILE"
make_pki "$work/pki"
make_leaf "$work/pki" v1 bench.example
make_leaf "$work/pki" v2 bench.example

now() { date +%s.%N; }
# figure LABEL SECONDS: deploys/s and ms per deploy
figure() {
	awk -v l="$1" -v s="$2" -v n="$JOBS" 'BEGIN { printf "%-44s %8.0f deploys/s %8.3f ms/deploy (%.2f s)\n", l, n / s, 1000 * s / n, s }'
}

psql -XAtq -v ON_ERROR_STOP=1 -v n="$JOBS" -v dir="$work/targets" <<'SQL'
INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-bench', now());
INSERT INTO managed_certificates (id) VALUES ('mc-bench');
INSERT INTO deployment_targets (id, type, agent_id, config)
SELECT 'target-' || i, 'file', 'agent-bench', jsonb_build_object(
	'cert_path', :'dir' || '/' || i || '/cert.pem', 'key_path', :'dir' || '/' || i || '/key.pem',
	'chain_path', :'dir' || '/' || i || '/chain.pem',
	'validate_command', '["true"]'::jsonb, 'reload_command', '["true"]'::jsonb)
FROM generate_series(1, :n) i;
INSERT INTO certificate_targets (certificate_id, target_id) SELECT 'mc-bench', id FROM deployment_targets;
SQL
# Since keys are sealed per agent, the bench agent needs a key pair (the deploy
# runs as the cluster's superuser with that agent's key file).
public_key=$(certctl-keygen --key-file "$work/agent.key" | jq -r .public_key)
certctl-enroll agent-bench --db-role certctl_agent_bench --password-file "$work/agent.password" \
	--public-key "$public_key" >/dev/null
export CERTCTL_AGENT_KEY_FILE="$work/agent.key"
for i in $(seq 1 "$JOBS"); do mkdir -p "$work/targets/$i" "$work/shell/$i"; done

# round VERSION: import (unless already), enqueue, then time claim | deploy.
round() {
	local label=$1 start end statuses
	psql -XAtq -c "UPDATE agents SET last_heartbeat_at = now()"
	certctl-enqueue --certificate mc-bench >/dev/null
	start=$(now)
	certctl-claim --agent agent-bench --limit "$JOBS" | certctl-deploy > "$work/out" 2>"$work/err" || :
	end=$(now)
	statuses=$(jq -r .status "$work/out" | sort | uniq -c | tr -s ' ' | paste -sd, -)
	figure "$label [$statuses]" "$(echo "$end - $start" | bc)"
}

certctl-import --certificate mc-bench --cert "$work/pki/v1.pem" --key "$work/pki/v1.key" --chain "$work/pki/chain.pem" >/dev/null
round "claim | deploy, new files"
certctl-import --certificate mc-bench --cert "$work/pki/v2.pem" --key "$work/pki/v2.key" --chain "$work/pki/chain.pem" >/dev/null
round "claim | deploy, replacing files (real)"
round "claim | deploy, unchanged (Skipped)"

# The baseline: the same three files per target, installed by shell.
shell_round() {
	local i d start end
	start=$(now)
	for i in $(seq 1 "$JOBS"); do
		d="$work/shell/$i"
		true
		install -m 0644 "$work/pki/v2.pem" "$d/.cert.pem.tmp"
		install -m 0600 "$work/pki/v2.key" "$d/.key.pem.tmp"
		install -m 0644 "$work/pki/chain.pem" "$d/.chain.pem.tmp"
		sync
		mv "$d/.cert.pem.tmp" "$d/cert.pem"
		mv "$d/.key.pem.tmp" "$d/key.pem"
		mv "$d/.chain.pem.tmp" "$d/chain.pem"
		true
	done
	end=$(now)
	figure "shell baseline (install, sync, mv)" "$(echo "$end - $start" | bc)"
}
shell_round
echo "filesystem: $(df -T "$work" | awk 'NR==2 {print $2}'), jobs: $JOBS"
