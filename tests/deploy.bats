#!/usr/bin/env bats
# certctl-deploy end to end: real PostgreSQL, real nginx, real files.
load helpers
load lib/pki
load lib/nginx

setup() {
	fresh_database
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	for v in v0 v1 v2 v3; do make_leaf "$PKI" "$v" localhost; done
	make_sealing_key
	D="$BATS_TEST_TMPDIR/www"
	mkdir -p "$D"
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web01', now())"
	enroll_agent agent-web01
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-shop')"
}

teardown() {
	[ -z "${NGINX_DIR:-}" ] || stop_nginx "$NGINX_DIR"
}

# add_target ID TYPE CONFIG_JSON: a target of agent-web01 mapped to mc-shop.
add_target() {
	psql -XAtq -v ON_ERROR_STOP=1 -v id="$1" -v type="$2" -v config="$3" <<-'SQL'
	INSERT INTO deployment_targets (id, type, agent_id, config) VALUES (:'id', :'type', 'agent-web01', :'config');
	INSERT INTO certificate_targets (certificate_id, target_id) VALUES ('mc-shop', :'id');
	SQL
}

files_config() {
	jq -cn --arg d "$D" --argjson extra "${1:-{\}}" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")} + $extra'
}

import_version() {
	certctl-import --certificate mc-shop --cert "$PKI/$1.pem" --key "$PKI/$1.key" --chain "$PKI/chain.pem" >/dev/null
}

# Enqueues mc-shop's jobs and claims them as agent-web01: the job lines.
claim_jobs() {
	certctl-enqueue --certificate mc-shop >/dev/null
	as_agent agent-web01 certctl-claim --agent agent-web01 --limit 100
}

deploy_lines() {
	run --separate-stderr as_agent agent-web01 certctl-deploy "$@" <<<"$LINES"
}

job_column() {
	sql "SELECT $1 FROM jobs ORDER BY created_at DESC, id DESC LIMIT 1"
}

pem_body() {
	grep -v -- '-----' "$1" | tr -d '\n'
}

# A running nginx on a free port serving v0 from $D, and a target pointing at it.
nginx_target() {
	NGINX_DIR="$BATS_TEST_TMPDIR/nginx"
	PORT=$(free_port)
	cat "$PKI/v0.pem" "$PKI/chain.pem" > "$D/cert.pem"
	cp "$PKI/v0.key" "$D/key.pem"
	start_nginx "$NGINX_DIR" "$PORT" "$D/cert.pem" "$D/key.pem"
	add_target target-web01-nginx nginx "$(files_config "$(jq -cn \
		--argjson v "$(nginx_validate_argv "$NGINX_DIR")" --argjson r "${1:-$(nginx_reload_argv "$NGINX_DIR")}" \
		--arg e "127.0.0.1:$PORT" '{validate_command: $v, reload_command: $r, verify_endpoint: $e, verify_sni: "localhost"}')")"
}

@test "deploy: claim | deploy puts v1 and then v2 on a running nginx, verified and recorded" {
	nginx_target
	expect_equal "$(fingerprint "$PKI/v0.pem")" "$(served_fingerprint "$PORT")" "served before"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	expect_equal snapshotted "$(jq -r .metadata.backup_status_cert <<<"$output")"
	expect_equal success "$(jq -r .verification.status <<<"$output")"
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v1.pem")"
	expect_equal "Completed|success|$(fingerprint "$PKI/v1.pem")" \
		"$(job_column "status || '|' || verification_status || '|' || verified_fingerprint")"
	expect_equal snapshotted "$(job_column "result->>'backup_status_key'")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'deployment_job_completed'")" "audit events"
	expect_equal 1 "$(sql "SELECT count(*) FROM notification_events WHERE type = 'deployment_completed'")" "notifications"

	import_version v2
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v2.pem")"

	# v3 with v1's key: refused at import, so nothing reaches nginx
	run --separate-stderr certctl-import --certificate mc-shop --cert "$PKI/v3.pem" --key "$PKI/v1.key"
	expect_status 65
	expect_equal "$(fingerprint "$PKI/v2.pem")" "$(served_fingerprint "$PORT")" "served after a refused v3"
}

@test "deploy: certctl-claim --follow | certctl-deploy, left running, deploys each version as it is enqueued" {
	nginx_target
	as_agent agent-web01 certctl-claim --agent agent-web01 --type Deployment --follow --worker follow-pipeline 2>"$BATS_TEST_TMPDIR/claim.err" |
		as_agent agent-web01 certctl-deploy >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/deploy.err" &
	pipeline=$!
	import_version v1
	certctl-enqueue --certificate mc-shop >/dev/null
	wait_until "SELECT count(*) >= 1 FROM jobs WHERE status = 'Completed'"
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v1.pem")"
	import_version v2
	certctl-enqueue --certificate mc-shop >/dev/null
	wait_until "SELECT count(*) >= 2 FROM jobs WHERE status = 'Completed'"
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v2.pem")"
	kill -0 "$pipeline" || { echo "the pipeline stopped on its own"; return 1; }
	# Stopping the claimer ends the deployer at the end of its input.
	pkill -TERM -f -- '--worker follow-pipeline'
	rc=0
	wait "$pipeline" || rc=$?
	expect_equal 0 "$rc" "certctl-deploy's exit status"
	expect_equal "Completed Completed" "$(jq -r .status "$BATS_TEST_TMPDIR/out" | paste -sd' ' -)"
	expect_equal "" "$(cat "$BATS_TEST_TMPDIR/deploy.err")" "certctl-deploy's stderr"
}

@test "deploy: a failing validate command leaves nginx serving v2 and the job Failed (exit 1)" {
	nginx_target
	import_version v2
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v2.pem")"
	# the same nginx -t, against a config that does not exist
	sql "UPDATE deployment_targets SET config = jsonb_set(config, '{validate_command}', '[\"nginx\",\"-t\",\"-c\",\"$BATS_TEST_TMPDIR/missing.conf\"]')"
	import_version v3
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 1
	expect_equal Failed "$(jq -r .status <<<"$output")"
	expect_contains "$(jq -r .error <<<"$output")" "validate command failed; nothing changed: nginx exited 1"
	expect_one_line_error certctl-deploy
	expect_equal Failed "$(job_column status)"
	cmp "$PKI/v2.key" "$D/key.pem"
	nginx -p "$NGINX_DIR" -e "$NGINX_DIR/error.log" -c "$NGINX_DIR/nginx.conf" -s reload
	sleep 0.5
	expect_equal "$(fingerprint "$PKI/v2.pem")" "$(served_fingerprint "$PORT")" "served after failed validate"
}

@test "deploy: a failing reload restores v2, reloads again, and nginx still serves v2" {
	reload="$BATS_TEST_TMPDIR/reload-fails-once"
	cat > "$reload" <<-SCRIPT
	#!/bin/sh
	echo reload >> "$BATS_TEST_TMPDIR/reloads"
	if [ -e "$BATS_TEST_TMPDIR/armed" ] && [ ! -e "$BATS_TEST_TMPDIR/failed" ]; then
		touch "$BATS_TEST_TMPDIR/failed"; echo "reload refused" >&2; exit 1
	fi
	exec nginx -p "$BATS_TEST_TMPDIR/nginx" -e "$BATS_TEST_TMPDIR/nginx/error.log" -c "$BATS_TEST_TMPDIR/nginx/nginx.conf" -s reload
	SCRIPT
	chmod +x "$reload"
	nginx_target "[\"$reload\"]"
	import_version v2
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	wait_served_fingerprint "$PORT" "$(fingerprint "$PKI/v2.pem")"
	touch "$BATS_TEST_TMPDIR/armed"
	: > "$BATS_TEST_TMPDIR/reloads"
	import_version v3
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 1
	expect_contains "$(jq -r .error <<<"$output")" "reload command failed; rolled back to pre-deploy state"
	expect_equal restored "$(jq -r .metadata.backup_status_cert <<<"$output")"
	expect_equal 2 "$(wc -l < "$BATS_TEST_TMPDIR/reloads")" "reloads run"
	expect_equal "Failed" "$(job_column status)"
	expect_contains "$(job_column last_error)" "rolled back to pre-deploy state"
	sleep 0.5
	expect_equal "$(fingerprint "$PKI/v2.pem")" "$(served_fingerprint "$PORT")" "served after the rollback"
	cmp "$PKI/v2.key" "$D/key.pem"
}

@test "deploy: an unchanged redeploy is Skipped and runs no reload" {
	add_target target-files file "$(files_config "$(jq -cn --arg m "$BATS_TEST_TMPDIR/reloaded" '{reload_command: ["touch", $m]}')")"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	rm "$BATS_TEST_TMPDIR/reloaded"
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	expect_equal Skipped "$(jq -r .status <<<"$output")"
	expect_equal Completed "$(job_column status)"
	[ ! -e "$BATS_TEST_TMPDIR/reloaded" ]
}

@test "deploy: a retired agent's job fails with 'assigned agent is retired', audited and notified" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	sql "UPDATE agents SET retired_at = now() WHERE id = 'agent-web01'"
	deploy_lines
	expect_status 1
	expect_equal Failed "$(jq -r .status <<<"$output")"
	expect_equal "assigned agent is retired" "$(jq -r .error <<<"$output")"
	expect_equal "Failed|assigned agent is retired" "$(job_column "status || '|' || last_error")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'deployment_job_failed'")" "audit"
	expect_equal 1 "$(sql "SELECT count(*) FROM notification_events WHERE type = 'deployment_failed'")" "notification"
	[ ! -e "$D/cert.pem" ]
}

@test "deploy: an agent silent for more than 5 minutes gets 'agent is offline'" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	sql "UPDATE agents SET last_heartbeat_at = now() - interval '6 minutes'"
	deploy_lines
	expect_status 1
	expect_equal "Failed|agent is offline" "$(job_column "status || '|' || last_error")"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'deployment_job_failed'")" "audit"
	[ ! -e "$D/cert.pem" ]
}

# default_commands TYPE CONFIG EXPECTED: stubs first in PATH record their argv.
default_commands() {
	local stubs="$BATS_TEST_TMPDIR/stubs" name
	mkdir -p "$stubs"
	for name in nginx apachectl haproxy systemctl postfix doveconf doveadm; do
		printf '#!/bin/sh\necho "%s $*" >> "%s/argv"\n' "$name" "$BATS_TEST_TMPDIR" > "$stubs/$name"
		chmod +x "$stubs/$name"
	done
	add_target "target-$1" "$1" "$2"
	import_version v1
	LINES=$(claim_jobs)
	PATH="$stubs:$PATH" run --separate-stderr as_agent agent-web01 certctl-deploy <<<"$LINES"
	expect_status 0
	expect_equal "$3" "$(paste -sd'|' "$BATS_TEST_TMPDIR/argv")" "commands run"
}

@test "deploy: nginx targets run 'nginx -t' and 'nginx -s reload' by default" {
	default_commands nginx "$(files_config)" "nginx -t|nginx -s reload"
}

@test "deploy: apache targets run 'apachectl configtest' and 'apachectl graceful' by default" {
	default_commands apache "$(files_config)" "apachectl configtest|apachectl graceful"
}

@test "deploy: haproxy targets run 'haproxy -c -f /etc/haproxy/haproxy.cfg' and 'systemctl reload haproxy' by default" {
	default_commands haproxy "$(jq -cn --arg d "$D" '{combined_path: ($d+"/site.pem")}')" \
		"haproxy -c -f /etc/haproxy/haproxy.cfg|systemctl reload haproxy"
	cat "$PKI/v1.pem" "$PKI/chain.pem" "$PKI/v1.key" | cmp - "$D/site.pem"
}

@test "deploy: postfix targets run 'postfix check' and 'postfix reload' by default" {
	default_commands postfix "$(files_config)" "postfix check|postfix reload"
}

@test "deploy: dovecot targets run 'doveconf -n' and 'doveadm reload' by default" {
	default_commands dovecot "$(files_config)" "doveconf -n|doveadm reload"
}

@test "deploy: a malformed line is 65 with its line number; the other lines are still deployed" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(printf '{"id": broken\n%s\n' "$(claim_jobs)")
	deploy_lines
	expect_status 65
	expect_contains "$stderr" "line 1:"
	expect_equal Completed "$(jq -r .status <<<"$output")"
	expect_equal Completed "$(job_column status)"
}

@test "deploy: other job types pass through untouched on stdout" {
	add_target target-files file "$(files_config)"
	import_version v1
	other='{"id":"job-x","type":"Renewal",  "status":"Running","extra":[1, 2]}'
	LINES=$(printf '%s\n%s\n' "$other" "$(claim_jobs)")
	deploy_lines
	expect_status 0
	expect_equal "$other" "$(head -n1 <<<"$output")" "passed-through line"
	expect_equal Completed "$(tail -n1 <<<"$output" | jq -r .status)"
}

@test "deploy: lines with no type, such as certctl-csr's results, pass through untouched, exit 0" {
	add_target target-files file "$(files_config)"
	import_version v1
	csr='{"job_id":"job-c","certificate_id":"mc-shop","status":"CSRSubmitted","public_key_sha256":"00"}'
	other='{ "note" : "no type at all" }'
	LINES=$(printf '%s\n%s\n%s\n' "$csr" "$(claim_jobs)" "$other")
	deploy_lines
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "$csr" "$(sed -n 1p <<<"$output")" "certctl-csr's line"
	expect_equal Completed "$(sed -n 2p <<<"$output" | jq -r .status)"
	expect_equal "$other" "$(sed -n 3p <<<"$output")" "the line with no type"
}

@test "deploy: a type that is not a string is 65 with its line number, and not passed on" {
	LINES='{"id":"job-x","type":["Deployment"]}'
	deploy_lines
	expect_status 65
	expect_equal "" "$output" "stdout"
	expect_contains "$stderr" "line 1: type is not a string"
}

@test "deploy: an unknown target type is 78 and the job Failed with that error" {
	add_target target-odd file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	sql "UPDATE deployment_targets SET type = 'gopher'"
	deploy_lines
	expect_status 78
	expect_contains "$(job_column last_error)" "unknown target type 'gopher'"
	expect_one_line_error certctl-deploy
}

@test "deploy: a certificate without a version is 66" {
	add_target target-files file "$(files_config)"
	sql "INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, attempts, claimed_by, started_at, lease_expires_at)
	     VALUES ('job-1', 'Deployment', 'Running', 'mc-shop', 'target-files', 'agent-web01', 1, 't', now(), now() + interval '15 min')"
	LINES=$(jq -cn '{id:"job-1",type:"Deployment",status:"Running",claimed_by:"t",attempts:1}')
	deploy_lines
	expect_status 66
	expect_contains "$stderr" "mc-shop: certificate has no version to deploy"
	expect_equal Failed "$(job_column status)"
}

@test "deploy: a job no longer Running under the line's claim is refused and left alone" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	sql "UPDATE jobs SET attempts = attempts + 1, claimed_by = 'someone-else'"
	deploy_lines
	expect_status 75
	expect_contains "$stderr" "claim lost"
	expect_equal "" "$output" "stdout"
	expect_equal "Running|someone-else" "$(job_column "status || '|' || claimed_by")"
	[ ! -e "$D/cert.pem" ]
}

@test "deploy: a job is never completed twice" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	completed_at=$(job_column completed_at)
	deploy_lines
	expect_status 75
	expect_equal "$completed_at" "$(job_column completed_at)" "completed_at"
	expect_equal 1 "$(sql "SELECT count(*) FROM audit_events WHERE action = 'deployment_job_completed'")" "audit"
}

@test "deploy: private keys never reach stdout, stderr, jobs.result or audit" {
	add_target target-files file "$(files_config '{"reload_command":["false"]}')"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines -v
	expect_status 1
	body=$(pem_body "$PKI/v1.key")
	for text in "$output" "$stderr" "$(sql "SELECT result::text FROM jobs")" "$(sql "SELECT string_agg(details::text, ' ') FROM audit_events")"; do
		case "$text" in *"${body:10:40}"*) echo "key material leaked: $text"; return 1 ;; esac
	done
}

@test "deploy: --dry-run reports which files would change, writes nothing and leaves the job Running" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines --dry-run
	expect_status 0
	expect_equal "[\"$D/cert.pem\",\"$D/key.pem\"]" "$(jq -c .metadata.would_change <<<"$output")"
	expect_equal true "$(jq -r .dry_run <<<"$output")"
	[ ! -e "$D/cert.pem" ]
	expect_equal Running "$(job_column status)"
}

@test "deploy: --job ID claims that Pending job itself and deploys it" {
	add_target target-files file "$(files_config)"
	import_version v1
	certctl-enqueue --certificate mc-shop >/dev/null
	id=$(job_column id)
	run --separate-stderr as_agent agent-web01 certctl-deploy --job "$id" --worker w1
	expect_status 0
	expect_equal "Completed|w1|1" "$(job_column "status || '|' || claimed_by || '|' || attempts")"
	cmp "$PKI/v1.key" "$D/key.pem"
	run --separate-stderr as_agent agent-web01 certctl-deploy --job "$id"
	expect_status 75
	expect_one_line_error certctl-deploy
	run --separate-stderr as_agent agent-web01 certctl-deploy --job job-nope
	expect_status 66
}

@test "deploy: two certctl-deploy processes on one destination serialize" {
	add_target target-a file "$(files_config "$(jq -cn --arg l "$BATS_TEST_TMPDIR/log" \
		'{validate_command: ["sh","-c","echo start >> \"$1\"; sleep 0.5; echo end >> \"$1\"","sh",$l]}')")"
	sql "INSERT INTO agents (id, last_heartbeat_at) VALUES ('agent-web02', now())"
	enroll_agent agent-web02
	add_target target-b file "$(sql "SELECT config::text FROM deployment_targets")"
	sql "UPDATE deployment_targets SET agent_id = 'agent-web02' WHERE id = 'target-b'"
	sql "INSERT INTO managed_certificates (id) VALUES ('mc-other')"
	sql "UPDATE certificate_targets SET certificate_id = 'mc-other' WHERE target_id = 'target-b'"
	import_version v1
	certctl-import --certificate mc-other --cert "$PKI/v2.pem" --key "$PKI/v2.key" --chain "$PKI/chain.pem" >/dev/null
	certctl-enqueue --certificate mc-shop >/dev/null
	certctl-enqueue --certificate mc-other >/dev/null
	as_agent agent-web01 certctl-claim --agent agent-web01 | as_agent agent-web01 certctl-deploy > "$BATS_TEST_TMPDIR/a.out" &
	first=$!
	as_agent agent-web02 certctl-claim --agent agent-web02 | as_agent agent-web02 certctl-deploy > "$BATS_TEST_TMPDIR/b.out" &
	second=$!
	wait "$first"
	wait "$second"
	expect_equal "start end start end" "$(paste -sd' ' "$BATS_TEST_TMPDIR/log")" "validate runs"
	expect_equal 2 "$(sql "SELECT count(*) FROM jobs WHERE status = 'Completed'")" "completed jobs"
}

@test "deploy: SIGTERM mid-deploy finishes the job in hand, leaves the next alone and exits 75" {
	add_target target-files file "$(files_config '{"reload_command":["sh","-c","kill -TERM $PPID; sleep 0.2"]}')"
	import_version v1
	LINES=$(claim_jobs)
	sql "INSERT INTO jobs (id, type, status, certificate_id, target_id, agent_id, attempts, claimed_by, started_at)
	     VALUES ('job-next', 'Deployment', 'Running', 'mc-shop', 'target-files', 'agent-web01', 1, 't', now())"
	LINES=$(printf '%s\n%s\n' "$LINES" '{"id":"job-next","type":"Deployment","claimed_by":"t","attempts":1}')
	deploy_lines
	expect_status 75
	expect_equal 1 "$(grep -c . <<<"$output")" "result lines"
	expect_equal Completed "$(jq -r .status <<<"$output")"
	cmp "$PKI/v1.key" "$D/key.pem"
	expect_equal Running "$(sql "SELECT status FROM jobs WHERE id = 'job-next'")"
}

@test "deploy: a verification mismatch is a warning by default and a failure with --verify=strict" {
	NGINX_DIR="$BATS_TEST_TMPDIR/nginx"
	PORT=$(free_port)
	start_nginx "$NGINX_DIR" "$PORT" "$PKI/v0.pem" "$PKI/v0.key"
	add_target target-files file "$(files_config "$(jq -cn --arg e "127.0.0.1:$PORT" '{verify_endpoint: $e, verify_sni: "localhost"}')")"
	import_version v1
	LINES=$(claim_jobs)
	deploy_lines
	expect_status 0
	expect_equal "Completed|mismatch|$(fingerprint "$PKI/v0.pem")" \
		"$(job_column "status || '|' || verification_status || '|' || verified_fingerprint")"
	expect_contains "$stderr" "verification mismatch"
	import_version v2
	LINES=$(claim_jobs)
	deploy_lines --verify=strict
	expect_status 1
	expect_equal "Failed|mismatch" "$(job_column "status || '|' || verification_status")"
	import_version v3
	LINES=$(claim_jobs)
	deploy_lines --no-verify
	expect_status 0
	expect_equal "Completed|skipped" "$(job_column "status || '|' || verification_status")"
}

@test "deploy: a closed standard output exits 73 before any job is touched" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	run --separate-stderr as_agent agent-web01 bash -c 'certctl-deploy >&- <<<"$1"' _ "$LINES"
	expect_status 73
	expect_one_line_error certctl-deploy
	expect_equal Running "$(job_column status)"
	[ ! -e "$D/cert.pem" ]
}

@test "deploy: validate and reload commands see no DSN, password or key path, only the new files' paths; certctl-deploy is not dumpable" {
	# As root, /proc shows every process as root's; run as nobody, a process
	# that is not dumpable still shows as root's. So this deploy runs as nobody,
	# in a directory of its own (bats' run directory is 0700: let nobody through).
	chmod o+x "$BATS_RUN_TMPDIR"
	W="$BATS_TEST_TMPDIR/nobody"
	install -d -o nobody -m 0755 "$W" "$W/www"
	install -o nobody -m 0600 "$CERTCTL_KEY_FILE" "$W/sealing.key"
	install -o nobody -m 0600 "$(agent_dir agent-web01)/password" "$W/pgpass"
	install -o nobody -m 0600 "$(agent_dir agent-web01)/agent.key" "$W/agent.key"
	password=$(cat "$W/pgpass")
	add_target target-files file "$(jq -cn --arg w "$W" '{cert_path: ($w+"/www/cert.pem"), key_path: ($w+"/www/key.pem"),
		validate_command: ["sh","-c","env > \"$1/env.txt\"; stat -c %U /proc/$PPID/status > \"$1/owner.txt\"; grep \"Max core file size\" /proc/$PPID/limits > \"$1/limits.txt\"","sh",$w],
		reload_command: ["sh","-c","env > \"$1/reload-env.txt\"","sh",$w]}')"
	import_version v1
	LINES=$(claim_jobs)
	CERTCTL_DSN="host=localhost port=$PGPORT dbname=$PGDATABASE user=$(agent_role agent-web01)" \
		CERTCTL_PASSWORD_FILE="$W/pgpass" PGPASSWORD="other-secret-$$" \
		CERTCTL_KEY_FILE="$W/sealing.key" CERTCTL_AGENT_KEY_FILE="$W/agent.key" \
		run --separate-stderr setpriv --reuid=nobody --regid=nogroup --clear-groups certctl-deploy <<<"$LINES"
	expect_status 0
	expect_equal Completed "$(jq -r .status <<<"$output")"
	for file in env.txt reload-env.txt; do
		for name in CERTCTL_DSN PGPASSWORD PGHOST PGPORT PGUSER PGDATABASE CERTCTL_PASSWORD_FILE CERTCTL_KEY_FILE CERTCTL_AGENT_KEY_FILE; do
			if grep -q "^$name=" "$W/$file"; then
				echo "$file: $name was passed on: $(grep "^$name=" "$W/$file")"
				return 1
			fi
		done
		if grep -qF -e "$password" -e "other-secret-$$" "$W/$file"; then
			echo "$file: a database password was passed on"
			return 1
		fi
		grep -q '^PATH=' "$W/$file"
	done
	expect_contains "$(cat "$W/env.txt")" "CERTCTL_NEW_CERT_PATH=$W/www/.cert.pem.certctl-tmp."
	expect_contains "$(cat "$W/env.txt")" "CERTCTL_NEW_KEY_PATH=$W/www/.key.pem.certctl-tmp."
	expect_equal root "$(cat "$W/owner.txt")" "owner /proc shows for certctl-deploy (root: not dumpable)"
	expect_equal "0 0" "$(awk '{ print $5, $6 }' "$W/limits.txt")" "certctl-deploy's core size limit, soft and hard"
}

@test "deploy: a command run with no PATH in certctl-deploy's environment gets /usr/sbin:/usr/bin:/sbin:/bin" {
	add_target target-files file "$(files_config "$(jq -cn --arg d "$D" \
		'{validate_command: ["sh","-c","env > \"$1/env.txt\"","sh",$d]}')")"
	import_version v1
	LINES=$(claim_jobs)
	run --separate-stderr as_agent agent-web01 env -u PATH LANG=C.UTF-8 LC_TIME=C TZ=UTC \
		"$CERTCTL_BIN/certctl-deploy" <<<"$LINES"
	expect_status 0
	grep -qx 'PATH=/usr/sbin:/usr/bin:/sbin:/bin' "$D/env.txt"
	grep -qx 'LANG=C.UTF-8' "$D/env.txt"
	grep -qx 'LC_TIME=C' "$D/env.txt"
	grep -qx 'TZ=UTC' "$D/env.txt"
}

@test "deploy: a 2 MiB line and a line with a NUL are 65 with their line numbers; pass-through and jobs go on in bounded memory" {
	add_target target-files file "$(files_config)"
	import_version v1
	other='{"id":"job-x","type":"Renewal",  "status":"Running"}'
	input="$BATS_TEST_TMPDIR/lines.jsonl"
	{
		printf '%s\n' "$other"
		printf '{"id":"job-big","type":"Renewal","pad":"%s"}\n' "$(head -c 2097152 /dev/zero | tr '\0' x)"
		printf '{"id":"job-nul","type":"Renewal"}\0{"id":"job-joined","type":"Renewal"}\n'
		claim_jobs
	} > "$input"
	run --separate-stderr as_agent agent-web01 /usr/bin/time -v -o "$BATS_TEST_TMPDIR/time" \
		"$CERTCTL_BIN/certctl-deploy" < "$input"
	expect_status 65
	expect_contains "$stderr" "certctl-deploy: line 2: longer than 1048576 bytes"
	expect_contains "$stderr" "certctl-deploy: line 3: holds a NUL byte"
	expect_equal "$other" "$(head -n1 <<<"$output")" "passed-through line"
	expect_equal 2 "$(wc -l <<<"$output")" "stdout lines"
	expect_equal Completed "$(tail -n1 <<<"$output" | jq -r .status)"
	expect_equal Completed "$(job_column status)"
	rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$BATS_TEST_TMPDIR/time")
	[ -n "$rss" ] || { echo "no peak RSS in: $(cat "$BATS_TEST_TMPDIR/time")"; return 1; }
	[ "$rss" -lt 32768 ] || { echo "peak RSS ${rss} KiB, expected under 32768"; return 1; }
}

# Run deadline (issue 13): no job starts that could outlast the unit's TimeoutStartSec.

@test "deploy: a job that would not fit before CERTCTL_RUN_DEADLINE is not started and stays Running for the reaper (75)" {
	add_target target-a file "$(files_config '{"validate_command":["sleep","2.5"]}')"
	mkdir -p "$D/b"
	add_target target-b file "$(jq -cn --arg d "$D/b" '{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")}')"
	import_version v1
	LINES=$(claim_jobs)
	expect_equal 2 "$(wc -l <<<"$LINES")" "claimed jobs"
	# a worst-case job needs 2 x 3 s + a 2 s reserve = 8 s; after the first
	# job's 2.5 s validate fewer than 8 of the 10 s are left.
	LINES=$(jq -c 'select(.target_id == "target-a")' <<<"$LINES"; jq -c 'select(.target_id == "target-b")' <<<"$LINES")
	CERTCTL_RUN_DEADLINE=10 CERTCTL_COMMAND_TIMEOUT=3 deploy_lines
	expect_status 75
	expect_equal Completed "$(sql "SELECT status FROM jobs WHERE target_id = 'target-a'")" "first job"
	expect_equal Running "$(sql "SELECT status FROM jobs WHERE target_id = 'target-b'")" "second job"
	expect_contains "$stderr" "not started:"
	expect_contains "$stderr" "left before the run deadline (CERTCTL_RUN_DEADLINE), a deploy may need 8.0 s; left Running for the reaper"
	[ ! -e "$D/b/cert.pem" ]
}

@test "deploy: CERTCTL_COMMAND_TIMEOUT above 600 s counts as 600: a 1300 s run deadline still fits a job" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	CERTCTL_RUN_DEADLINE=1300 CERTCTL_COMMAND_TIMEOUT=3600 deploy_lines
	expect_status 0
	expect_equal Completed "$(job_column status)"
}

@test "deploy: a job line whose attempts do not fit an int is 65 and never passes for the claim it truncates to" {
	add_target target-files file "$(files_config)"
	import_version v1
	LINES=$(claim_jobs)
	expect_equal 1 "$(job_column attempts)" "attempts of the claim"
	# 2^32 + 1 truncated to an int is 1, this claim's attempts
	LINES=$(jq -c '.attempts = 4294967297' <<<"$LINES")
	deploy_lines
	expect_status 65
	expect_contains "$stderr" "line 1: attempts 4294967297: must be from 0 to 2147483647"
	expect_equal Running "$(job_column status)"
	[ ! -e "$D/cert.pem" ]
}
