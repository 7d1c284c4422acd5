#!/usr/bin/env bats
# certctl-migrate: the schema can be applied, re-applied, rolled back and verified.
load helpers

# Migrations run as the schema owner, as in production.
setup() {
	empty_database
	export PGUSER=certctl_owner
}

migrations_applied() {
	sql "SELECT count(*) FROM schema_migrations"
}

# How many migrations the tree ships: later issues add numbered pairs.
migrations_shipped() {
	ls "$TESTS_DIR"/../migrations/*.up.sql | wc -l
}

@test "migrate: up on an empty database applies every migration and prints one line each" {
	run --separate-stderr certctl-migrate up
	expect_status 0
	expect_equal "$(migrations_shipped)" "$(printf '%s\n' "$output" | grep -c '"applied":true')" "applied lines"
	expect_equal "$(migrations_shipped)" "$(migrations_applied)" "schema_migrations rows"
	expect_equal 4 "$(sql "SELECT count(*) FROM agents")" "sentinel agents"
}

@test "migrate: a second up changes nothing and prints nothing" {
	certctl-migrate -q up >/dev/null
	before=$(sql "SELECT string_agg(version || applied_at::text, ',') FROM schema_migrations")
	run --separate-stderr certctl-migrate up
	expect_status 0
	expect_equal "" "$output" "stdout"
	expect_equal "$before" "$(sql "SELECT string_agg(version || applied_at::text, ',') FROM schema_migrations")"
}

@test "migrate: status prints one JSON line per migration with the contract's keys" {
	certctl-migrate -q up --to 1 >/dev/null
	run --separate-stderr certctl-migrate status
	expect_status 0
	expect_equal "$(migrations_shipped)" "$(printf '%s\n' "$output" | wc -l)" "status lines"
	first=$(printf '%s\n' "$output" | head -n 1)
	expect_equal "1 initial_schema true" "$(jq -r '"\(.version) \(.name) \(.applied)"' <<<"$first")"
	jq -e '.applied_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")' <<<"$first"
	jq -e '.checksum | test("^sha256:[0-9a-f]{64}$")' <<<"$first"
	second=$(printf '%s\n' "$output" | sed -n 2p)
	expect_equal "2 false null" "$(jq -r '"\(.version) \(.applied) \(.applied_at)"' <<<"$second")"
}

@test "migrate: down to zero and up again round-trips" {
	certctl-migrate -q up >/dev/null
	run --separate-stderr certctl-migrate down --to 0
	expect_status 0
	expect_equal 0 "$(migrations_applied)" "rows after down"
	expect_equal "" "$(sql "SELECT to_regclass('jobs')")" "jobs table after down"
	run --separate-stderr certctl-migrate up
	expect_status 0
	expect_equal "$(migrations_shipped)" "$(migrations_applied)" "rows after second up"
	expect_equal 4 "$(sql "SELECT count(*) FROM agents")" "sentinels after round trip"
}

@test "migrate: down without options rolls back one migration; --steps counts" {
	certctl-migrate -q up >/dev/null
	certctl-migrate -q down --to 2 >/dev/null
	run --separate-stderr certctl-migrate down
	expect_status 0
	expect_equal "1" "$(sql "SELECT string_agg(version::text, ',') FROM schema_migrations")"
	expect_equal "" "$(sql "SELECT column_name FROM information_schema.columns WHERE table_name = 'agents' AND column_name = 'retired_at'")"
	certctl-migrate -q up >/dev/null
	run --separate-stderr certctl-migrate down --steps 2
	expect_status 0
	expect_equal "$(( $(migrations_shipped) - 2 ))" "$(migrations_applied)"
}

@test "migrate: up converges on a database where a migration was half applied by hand" {
	# Someone ran the first half of migration 1 by hand: some tables exist.
	sed -n '1,/^    ON certificate_versions (certificate_id, created_at DESC);/p' \
		"$TESTS_DIR/../migrations/000001_initial_schema.up.sql" > "$BATS_TEST_TMPDIR/half.sql"
	psql -XAtq -v ON_ERROR_STOP=1 -f "$BATS_TEST_TMPDIR/half.sql"
	expect_equal "agents" "$(sql "SELECT to_regclass('agents')")"
	run --separate-stderr certctl-migrate up
	expect_status 0
	expect_equal "$(migrations_shipped)" "$(migrations_applied)"
	expect_equal "jobs" "$(sql "SELECT to_regclass('jobs')")"
	expect_equal "t" "$(sql "SELECT count(*) = 1 FROM pg_constraint WHERE conname = 'deployment_targets_agent_id_fkey' AND confdeltype = 'r'")"
}

@test "migrate: two runs started at the same moment both succeed and apply once" {
	certctl-migrate up > "$BATS_TEST_TMPDIR/a.out" 2> "$BATS_TEST_TMPDIR/a.err" & first=$!
	certctl-migrate up > "$BATS_TEST_TMPDIR/b.out" 2> "$BATS_TEST_TMPDIR/b.err" & second=$!
	wait "$first"; status_first=$?
	wait "$second"; status_second=$?
	expect_equal "0 0" "$status_first $status_second" "exit statuses" || { cat "$BATS_TEST_TMPDIR"/*.err; false; }
	expect_equal "$(migrations_shipped)" "$(cat "$BATS_TEST_TMPDIR/a.out" "$BATS_TEST_TMPDIR/b.out" | grep -c '"applied":true')" "lines printed across both runs"
	expect_equal "$(migrations_shipped)" "$(migrations_applied)"
}

@test "migrate: deleting an agent that still has a target fails" {
	certctl-migrate -q up >/dev/null
	sql "INSERT INTO agents (id) VALUES ('agent-a'); INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-a', 'file', 'agent-a')"
	run psql -XAtq -v ON_ERROR_STOP=1 -c "DELETE FROM agents WHERE id = 'agent-a'"
	[ "$status" -ne 0 ]
	expect_contains "$output" "violates foreign key constraint"
	expect_equal 1 "$(sql "SELECT count(*) FROM deployment_targets WHERE id = 'target-a'")"
}

@test "migrate: audit_events rejects UPDATE and DELETE" {
	certctl-migrate -q up >/dev/null
	sql "INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id) VALUES ('t', 'User', 'x', 'agent', 'a')"
	run psql -XAtq -v ON_ERROR_STOP=1 -c "UPDATE audit_events SET action = 'y'"
	[ "$status" -ne 0 ]
	expect_contains "$output" "append-only"
	run psql -XAtq -v ON_ERROR_STOP=1 -c "DELETE FROM audit_events"
	[ "$status" -ne 0 ]
	expect_equal x "$(sql "SELECT action FROM audit_events")"
}

@test "migrate: sentinel agents exist after up and cannot be retired or deleted by hand" {
	certctl-migrate -q up >/dev/null
	expect_equal "cloud-aws-sm,cloud-azure-kv,cloud-gcp-sm,server-scanner" \
		"$(sql "SELECT string_agg(id, ',' ORDER BY id) FROM agents")"
	run psql -XAtq -v ON_ERROR_STOP=1 -c "UPDATE agents SET retired_at = now() WHERE id = 'server-scanner'"
	[ "$status" -ne 0 ]
	run psql -XAtq -v ON_ERROR_STOP=1 -c "DELETE FROM agents WHERE id = 'cloud-gcp-sm'"
	[ "$status" -ne 0 ]
	expect_equal 0 "$(sql "SELECT count(*) FROM agents WHERE retired_at IS NOT NULL")"
}

@test "migrate: rows need only what identifies them; names default to the id" {
	certctl-migrate -q up >/dev/null
	sql "INSERT INTO agents (id) VALUES ('agent-x');
	     INSERT INTO deployment_targets (id, type, agent_id) VALUES ('target-x', 'nginx', 'agent-x');
	     INSERT INTO managed_certificates (id) VALUES ('mc-x');
	     INSERT INTO jobs (id, type, status) VALUES ('job-x', 'Deployment', 'Pending')"
	expect_equal "agent-x|target-x|{}|mc-x" "$(sql "SELECT a.name, t.name, t.config, c.name FROM agents a, deployment_targets t, managed_certificates c WHERE a.id = 'agent-x'")"
	expect_equal "0|3" "$(sql "SELECT attempts, max_attempts FROM jobs WHERE id = 'job-x'")"
	run psql -XAtq -v ON_ERROR_STOP=1 -c "INSERT INTO jobs (id, type, status) VALUES ('job-y', 'Deployment', 'pending')"
	[ "$status" -ne 0 ]
	run psql -XAtq -v ON_ERROR_STOP=1 -c "INSERT INTO jobs (id, type, status) VALUES ('job-z', 'Reboot', 'Pending')"
	[ "$status" -ne 0 ]
}

@test "migrate: verify passes on an untouched tree and exits 65 after a migration file is edited" {
	cp -r "$TESTS_DIR/../migrations" "$BATS_TEST_TMPDIR/migrations"
	certctl-migrate -q --dir "$BATS_TEST_TMPDIR/migrations" up >/dev/null
	run --separate-stderr certctl-migrate --dir "$BATS_TEST_TMPDIR/migrations" verify
	expect_status 0
	echo "-- edited after it was applied" >> "$BATS_TEST_TMPDIR/migrations/000001_initial_schema.up.sql"
	run --separate-stderr certctl-migrate --dir "$BATS_TEST_TMPDIR/migrations" verify
	expect_status 65
	expect_contains "$stderr" "certctl-migrate: migration 1 (initial_schema): file changed since it was applied"
	expect_equal false "$(printf '%s\n' "$output" | head -n 1 | jq -r .matches)"
}

@test "migrate: a down file that cannot be read is named once, on one clean line, and nothing is rolled back" {
	cp -r "$TESTS_DIR/../migrations" "$BATS_TEST_TMPDIR/migrations"
	certctl-migrate -q --dir "$BATS_TEST_TMPDIR/migrations" up >/dev/null
	local applied newest
	applied=$(migrations_applied)
	newest=$(ls "$BATS_TEST_TMPDIR/migrations"/*.down.sql | sort | tail -n 1)
	rm "$newest"
	run --separate-stderr certctl-migrate --dir "$BATS_TEST_TMPDIR/migrations" down
	expect_status 65
	expect_one_line_error certctl-migrate
	expect_equal "certctl-migrate: $newest: No such file or directory" "$stderr"
	expect_equal "$applied" "$(migrations_applied)" "migrations applied"
}

@test "migrate: an unreachable database exits 69 with a one-line error" {
	run --separate-stderr certctl-migrate --dsn "host=127.0.0.1 port=1 connect_timeout=2" status
	expect_status 69
	expect_one_line_error certctl-migrate
}

@test "migrate: CERTCTL_DSN is honoured when --dsn is absent" {
	CERTCTL_DSN="host=127.0.0.1 port=1 connect_timeout=2" run --separate-stderr certctl-migrate status
	expect_status 69
	expect_contains "$stderr" "port 1"
}

@test "migrate: an unknown flag or action exits 64 before touching the database" {
	run --separate-stderr certctl-migrate --bogus up
	expect_status 64
	expect_one_line_error certctl-migrate
	run --separate-stderr certctl-migrate sideways
	expect_status 64
	run --separate-stderr certctl-migrate up --steps 2
	expect_status 64
}

@test "migrate: --help prints usage on stdout and exits 0; --version names the command" {
	run --separate-stderr certctl-migrate --help
	expect_status 0
	expect_contains "$output" "usage: certctl-migrate"
	run --separate-stderr certctl-migrate --version
	expect_status 0
	expect_contains "$output" "certctl-migrate 0."
}

@test "migrate: connections time out instead of hanging on a host that never answers" {
	# 192.0.2.0/24 is TEST-NET-1 on the loopback interface-less side: no route answers.
	# Instead of an outside address, listen locally and never answer the startup packet.
	port=$(free_port)
	nc -lk 127.0.0.1 "$port" >/dev/null 2>&1 & listener=$!
	wait_for_port "$port"
	start=$SECONDS
	PGCONNECT_TIMEOUT= run --separate-stderr env -u PGCONNECT_TIMEOUT certctl-migrate --dsn "host=127.0.0.1 port=$port" status
	kill "$listener"
	expect_status 69
	[ $((SECONDS - start)) -le 15 ] || { echo "took $((SECONDS - start)) s"; false; }
	expect_contains "$stderr" "timeout"
}

@test "migrate: a closed standard output exits 73 and applies nothing" {
	run --separate-stderr bash -c 'certctl-migrate up >&-'
	expect_status 73
	expect_one_line_error certctl-migrate
	expect_equal "" "$(sql "SELECT to_regclass('schema_migrations')")" "schema_migrations after the refused run"
}

@test "migrate: a NUL byte in an up migration is 65 naming the file, and nothing of it runs" {
	dir="$BATS_TEST_TMPDIR/migrations"
	mkdir "$dir"
	printf 'CREATE TABLE before_nul (a int);\0CREATE TABLE after_nul (a int);\n' > "$dir/000001_nul.up.sql"
	echo 'DROP TABLE IF EXISTS before_nul;' > "$dir/000001_nul.down.sql"
	run --separate-stderr certctl-migrate --dir "$dir" up
	expect_status 65
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "$dir/000001_nul.up.sql: holds a NUL byte at offset 32"
	expect_equal "" "$(sql "SELECT to_regclass('before_nul')")" "table before the NUL"
	expect_equal "" "$(sql "SELECT to_regclass('after_nul')")" "table after the NUL"
}

@test "migrate: a NUL byte in a down migration is 65 naming the file, and the migration stays applied" {
	dir="$BATS_TEST_TMPDIR/migrations"
	mkdir "$dir"
	echo 'CREATE TABLE kept (a int);' > "$dir/000001_kept.up.sql"
	printf 'DROP TABLE kept;\0DROP TABLE schema_migrations;\n' > "$dir/000001_kept.down.sql"
	certctl-migrate -q --dir "$dir" up >/dev/null
	run --separate-stderr certctl-migrate --dir "$dir" down
	expect_status 65
	expect_one_line_error certctl-migrate
	expect_contains "$stderr" "$dir/000001_kept.down.sql: holds a NUL byte"
	expect_equal kept "$(sql "SELECT to_regclass('kept')")" "table of the applied migration"
	expect_equal 1 "$(migrations_applied)" "schema_migrations rows"
}

@test "migrate: a migration file is read once; the recorded checksum is of the SQL that ran" {
	dir="$BATS_TEST_TMPDIR/migrations"
	mkdir "$dir"
	# A FIFO hands out different bytes to each open: a second read would run other SQL.
	# The pause lets the first reader see end of file before the second writer opens.
	mkfifo "$dir/000001_once.up.sql"
	first='CREATE TABLE first_read (a int);'
	second='CREATE TABLE second_read (a int);'
	( printf '%s\n' "$first" > "$dir/000001_once.up.sql"; sleep 1; printf '%s\n' "$second" > "$dir/000001_once.up.sql" ) 3>&- &
	writer=$!
	run --separate-stderr timeout 20 certctl-migrate --dir "$dir" up
	kill "$writer" 2>/dev/null || :
	expect_status 0
	expect_equal first_read "$(sql "SELECT to_regclass('first_read')")" "table of the checksummed bytes"
	expect_equal "" "$(sql "SELECT to_regclass('second_read')")" "table of a second read"
	expect_equal "sha256:$(printf '%s\n' "$first" | sha256sum | cut -d' ' -f1)" \
		"$(sql "SELECT checksum FROM schema_migrations WHERE version = 1")" "recorded checksum"
}
