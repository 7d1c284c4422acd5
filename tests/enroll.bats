#!/usr/bin/env bats
# certctl-enroll: an agent's login role, password file and public key, run as
# an operator's login (not the owner, not a superuser).
load helpers
load lib/pki

setup() {
	fresh_database
	ROLE=$(agent_role agent-web01)
	PW="$BATS_TEST_TMPDIR/web01.password"
	make_sealing_key
}

# Can ROLE log in with the password in FILE?
logs_in() {
	PGUSER=$1 PGPASSWORD=$(head -n 1 "$2") PGPASSFILE=/dev/null psql -XAtq -c "SELECT current_user" 2>/dev/null
}

@test "enroll: creates the agent's login role with a password it writes only to a new 0600 file" {
	run --separate-stderr certctl-enroll agent-web01 --db-role "$ROLE" --password-file "$PW"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "agent-web01|$ROLE|0|$PW" "$(jq -r '"\(.agent_id)|\(.db_role)|\(.sealed_versions)|\(.password_file)"' <<<"$output")"
	expect_equal 600 "$(stat -c %a "$PW")" "password file mode"
	[[ "$(cat "$PW")" =~ ^[0-9a-f]{64}$ ]] || { echo "password file: $(cat "$PW")"; return 1; }
	expect_equal 1 "$(wc -l < "$PW")" "lines in the password file"
	password=$(cat "$PW")
	[[ "$output$stderr" != *"$password"* ]] || { echo "the password was printed"; return 1; }
	expect_equal "$ROLE" "$(logs_in "$ROLE" "$PW")" "login with the password"
	expect_equal "$ROLE" "$(sql "SELECT db_role FROM agents WHERE id = 'agent-web01'")"
	# A member of certctl_agent and of nothing else; the server holds only a SCRAM verifier.
	expect_equal "certctl_agent" "$(sql "SELECT string_agg(g.rolname, ',') FROM pg_auth_members m
	  JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '$ROLE'")"
	expect_equal "false|false|false" "$(sql "SELECT rolsuper::text || '|' || rolcreaterole::text || '|' || rolcreatedb::text
	                            FROM pg_roles WHERE rolname = '$ROLE'")"
	expect_contains "$(sql "SELECT rolpassword FROM pg_authid WHERE rolname = '$ROLE'")" "SCRAM-SHA-256\$"
	[[ "$(sql "SELECT details::text FROM audit_events WHERE action = 'agent_enrolled'")" != *"$password"* ]]
}

@test "enroll: the default role name is certctl_agent_ and the id with [^a-z0-9_] as _" {
	run --separate-stderr certctl-enroll agent-Web.01 --password-file "$PW"
	expect_status 0
	expect_equal certctl_agent_agent__eb_01 "$(jq -r .db_role <<<"$output")"
	sql "DROP ROLE certctl_agent_agent__eb_01; UPDATE agents SET db_role = NULL"
}

@test "enroll: an existing password file is never overwritten (73) and nothing changes" {
	echo keep > "$PW"
	run --separate-stderr certctl-enroll agent-web01 --db-role "$ROLE" --password-file "$PW"
	expect_status 73
	expect_one_line_error certctl-enroll
	expect_equal keep "$(cat "$PW")"
	expect_equal 0 "$(sql "SELECT count(*) FROM pg_roles WHERE rolname = '$ROLE'")" "role"
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE id = 'agent-web01'")" "agent row"
}

@test "enroll: a role that is not this agent's is never touched (78); the new password file is removed" {
	run --separate-stderr certctl-enroll agent-web01 --db-role certctl_test_operator --password-file "$PW"
	expect_status 78
	expect_one_line_error certctl-enroll
	[ ! -e "$PW" ]
	# The operator's own login still works: its password did not change.
	run --separate-stderr certctl-heartbeat --stale
	expect_status 0
	expect_equal "" "$(sql "SELECT db_role FROM agents WHERE id = 'agent-web01'")"

	enroll_agent agent-other --no-key
	run --separate-stderr certctl-enroll agent-web01 --db-role "$(agent_role agent-other)" --password-file "$PW"
	expect_status 78
	expect_contains "$stderr" "agent-other"
	[ ! -e "$PW" ]
}

@test "enroll: run again with a new file, the agent's own role gets a new password" {
	certctl-enroll agent-web01 --db-role "$ROLE" --password-file "$PW" >/dev/null
	cp "$PW" "$BATS_TEST_TMPDIR/old.password"
	run --separate-stderr certctl-enroll agent-web01 --password-file "$BATS_TEST_TMPDIR/new.password"
	expect_status 0
	expect_equal "$ROLE" "$(jq -r .db_role <<<"$output")"
	expect_equal "$ROLE" "$(logs_in "$ROLE" "$BATS_TEST_TMPDIR/new.password")" "new password"
	expect_equal "" "$(logs_in "$ROLE" "$BATS_TEST_TMPDIR/old.password")" "old password"
}

@test "enroll: --public-key seals the current versions, and a second key rotates them" {
	PKI="$BATS_TEST_TMPDIR/pki"
	make_pki "$PKI"
	make_leaf "$PKI" v1 localhost
	jq -cn --arg d "$BATS_TEST_TMPDIR/www" '{kind:"agent", id:"agent-web01"},
		{kind:"target", id:"target-a", type:"file", agent_id:"agent-web01",
		 config:{cert_path:($d+"/cert.pem"), key_path:($d+"/key.pem")}},
		{kind:"certificate", id:"mc-shop", targets:["target-a"]}' | certctl-import >/dev/null
	mkdir -p "$BATS_TEST_TMPDIR/www"
	certctl-import --certificate mc-shop --cert "$PKI/v1.pem" --key "$PKI/v1.key" --chain "$PKI/chain.pem" >/dev/null
	enroll_agent agent-web01
	expect_equal 1 "$(sql "SELECT count(*) FROM version_keys WHERE agent_id = 'agent-web01'")" "sealed at enrollment"
	old=$(sql "SELECT md5(sealed_key) FROM version_keys")

	# A new key pair on the agent host; the old key file can no longer open anything.
	mv "$(agent_dir agent-web01)/agent.key" "$BATS_TEST_TMPDIR/old.key"
	key=$(certctl-keygen --key-file "$(agent_dir agent-web01)/agent.key" | jq -r .public_key)
	run --separate-stderr certctl-enroll agent-web01 --public-key "$key"
	expect_status 0
	expect_equal 1 "$(jq -r .sealed_versions <<<"$output")"
	[ "$old" != "$(sql "SELECT md5(sealed_key) FROM version_keys")" ]
	sql "UPDATE agents SET last_heartbeat_at = now()"
	certctl-enqueue --certificate mc-shop >/dev/null
	lines=$(as_agent agent-web01 certctl-claim --agent agent-web01)
	run --separate-stderr as_agent agent-web01 env CERTCTL_AGENT_KEY_FILE="$BATS_TEST_TMPDIR/old.key" \
		certctl-deploy <<<"$lines"
	expect_status 65
	sql "UPDATE jobs SET status = 'Pending', attempts = 0, claimed_by = NULL"
	run --separate-stderr as_agent agent-web01 bash -c 'certctl-claim --agent agent-web01 | certctl-deploy'
	expect_status 0
	cmp "$PKI/v1.key" "$BATS_TEST_TMPDIR/www/key.pem"
}

@test "enroll: bad input changes nothing: a malformed key (65), a sentinel (77), a retired agent (4)" {
	run --separate-stderr certctl-enroll agent-web01 --public-key not-base64 --password-file "$PW"
	expect_status 65
	expect_one_line_error certctl-enroll
	[ ! -e "$PW" ]
	run --separate-stderr certctl-enroll server-scanner --public-key "$TEST_PUBLIC_KEY"
	expect_status 77
	sql "INSERT INTO agents (id, retired_at) VALUES ('agent-old', now())"
	run --separate-stderr certctl-enroll agent-old --public-key "$TEST_PUBLIC_KEY"
	expect_status 4
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE public_key IS NOT NULL OR db_role IS NOT NULL")"
	expect_equal 0 "$(sql "SELECT count(*) FROM audit_events")"
}

@test "enroll: usage errors exit 64 before touching the database" {
	for args in "" "agent-web01" "--public-key $TEST_PUBLIC_KEY" "a b --public-key $TEST_PUBLIC_KEY" \
		"agent-web01 --db-role" "agent-web01 --password-file="; do
		# shellcheck disable=SC2086
		run --separate-stderr certctl-enroll --dsn "host=/nonexistent" $args
		expect_status 64
		expect_one_line_error certctl-enroll
	done
	run --separate-stderr certctl-enroll --help
	expect_status 0
	expect_contains "$output" "usage: certctl-enroll"
}
