#!/usr/bin/env bats
# Connection security: off loopback a command asks for sslmode=verify-full
# unless the DSN or PGSSLMODE names a mode. "db.example" is only the name the
# DSN gives (and TLS would verify); hostaddr keeps every packet on loopback.
load helpers
load lib/pki

setup() {
	fresh_database
	# No ~/.postgresql/root.crt: verify-full can only succeed with sslrootcert=.
	export HOME="$BATS_TEST_TMPDIR"
	unset PGSSLMODE PGSSLROOTCERT PGHOSTADDR CERTCTL_DSN
}

teardown() {
	[ -e "$BATS_TEST_TMPDIR/ssl-enabled" ] || return 0
	sql "ALTER SYSTEM RESET ssl" >/dev/null
	sql "ALTER SYSTEM RESET ssl_cert_file" >/dev/null
	sql "ALTER SYSTEM RESET ssl_key_file" >/dev/null
	sql "SELECT pg_reload_conf()" >/dev/null
	rm -f "$(sql "SHOW data_directory")"/certctl-test-db-example.*
}

remote_dsn() {
	printf 'host=db.example hostaddr=127.0.0.1 port=%s dbname=%s %s' "$PGPORT" "$PGDATABASE" "$*"
}

# stderr holds no line at all.
expect_no_stderr() {
	expect_equal "" "$stderr" "stderr"
}

@test "connection: a host off loopback without sslmode needs verify-full; refused here with 69 saying so" {
	run --separate-stderr certctl-migrate --dsn "$(remote_dsn)" status
	expect_status 69
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "TLS verify-full required for db.example; set sslmode explicitly"
	expect_equal "" "$output" "stdout"
}

@test "connection: the rule reads the URI form, CERTCTL_DSN and PGHOST alike" {
	run --separate-stderr certctl-migrate --dsn "postgresql://db.example:$PGPORT/$PGDATABASE?hostaddr=127.0.0.1" status
	expect_status 69
	expect_contains "$stderr" "TLS verify-full required for db.example"
	CERTCTL_DSN="$(remote_dsn)" run --separate-stderr certctl-migrate status
	expect_status 69
	expect_contains "$stderr" "TLS verify-full required for db.example"
	PGHOST=db.example PGHOSTADDR=127.0.0.1 run --separate-stderr certctl-migrate status
	expect_status 69
	expect_contains "$stderr" "TLS verify-full required for db.example"
}

@test "connection: one host off loopback in a list is enough to require TLS for the connection" {
	run --separate-stderr certctl-migrate \
		--dsn "host=localhost,db.example hostaddr=127.0.0.1,127.0.0.1 port=$PGPORT,$PGPORT" status
	expect_status 69
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "TLS verify-full required for db.example"
}

@test "connection: sslmode=disable named in the DSN is honoured, with exactly one warning line" {
	run --separate-stderr certctl-migrate --dsn "$(remote_dsn sslmode=disable)" status
	expect_status 0
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "database: sslmode=disable to db.example: "
	expect_contains "$stderr" "not verified"
	run --separate-stderr certctl-migrate --dsn "postgresql://db.example:$PGPORT/$PGDATABASE?hostaddr=127.0.0.1&sslmode=prefer" status
	expect_status 0
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "database: sslmode=prefer to db.example: "
}

@test "connection: PGSSLMODE=disable is honoured like a mode in the DSN, with one warning line" {
	PGSSLMODE=disable run --separate-stderr certctl-migrate --dsn "$(remote_dsn)" status
	expect_status 0
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "database: sslmode=disable to db.example: "
}

@test "connection: localhost, 127.0.0.0/8 and ::1 need no TLS and print no warning" {
	# The server listens on 127.0.0.1 only; hostaddr lets the other names reach it.
	for host in localhost 127.0.0.1 127.0.0.2 ::1 LOCALHOST; do
		run --separate-stderr certctl-migrate --dsn "host=$host hostaddr=127.0.0.1 port=$PGPORT" status
		expect_status 0
		expect_no_stderr
		run --separate-stderr certctl-migrate --dsn "host=$host hostaddr=127.0.0.1 port=$PGPORT sslmode=disable" status
		expect_status 0
		expect_no_stderr
	done
	run --separate-stderr certctl-migrate --dsn "postgresql://localhost:$PGPORT/$PGDATABASE" status
	expect_status 0
	expect_no_stderr
}

@test "connection: a Unix socket needs no TLS and prints no warning" {
	socket_dir=$(sql "SHOW unix_socket_directories" | cut -d, -f1)
	# Peer authentication maps this OS user to a role of the same name.
	me=$(id -un)
	sql "DO \$\$ BEGIN CREATE ROLE \"$me\" LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$"
	sql "GRANT SELECT ON schema_migrations TO \"$me\""
	PGUSER=$me run --separate-stderr certctl-migrate --dsn "host=$socket_dir port=$PGPORT" status
	expect_status 0
	expect_no_stderr
	PGUSER=$me run --separate-stderr certctl-migrate --dsn "host=$socket_dir port=$PGPORT sslmode=disable" status
	expect_status 0
	expect_no_stderr
	PGUSER=$me PGHOST= run --separate-stderr certctl-migrate --dsn "port=$PGPORT sslmode=disable" status
	expect_status 0
	expect_no_stderr
}

@test "connection: verify-full succeeds against a server certificate for db.example with sslrootcert" {
	pki="$BATS_TEST_TMPDIR/pki"
	make_pki "$pki"
	make_leaf "$pki" server db.example
	data=$(sql "SHOW data_directory")
	# The server reads its key as its own user; the test tree may be closed to it.
	install -o "$(stat -c %U "$data")" -m 0600 "$pki/server.key" "$data/certctl-test-db-example.key"
	cat "$pki/server.pem" "$pki/chain.pem" | install -o "$(stat -c %U "$data")" -m 0644 /dev/stdin \
		"$data/certctl-test-db-example.crt"
	touch "$BATS_TEST_TMPDIR/ssl-enabled"
	sql "ALTER SYSTEM SET ssl_cert_file = '$data/certctl-test-db-example.crt'"
	sql "ALTER SYSTEM SET ssl_key_file = '$data/certctl-test-db-example.key'"
	sql "ALTER SYSTEM SET ssl = on"
	sql "SELECT pg_reload_conf()" >/dev/null
	wait_until "SELECT current_setting('ssl') = 'on'"

	run --separate-stderr certctl-migrate --dsn "$(remote_dsn sslrootcert="$pki/root.pem")" status
	expect_status 0
	expect_no_stderr
	# The same server with no trust anchor for it: still verify-full, still refused.
	run --separate-stderr certctl-migrate --dsn "$(remote_dsn)" status
	expect_status 69
	expect_contains "$stderr" "TLS verify-full required for db.example"
	# A name the certificate does not carry fails verification.
	run --separate-stderr certctl-migrate --dsn "host=db2.example hostaddr=127.0.0.1 port=$PGPORT dbname=$PGDATABASE sslrootcert=$pki/root.pem" status
	expect_status 69
	expect_contains "$stderr" "TLS verify-full required for db2.example"
}
