# The fleet's fixtures, shared by bench/fleet.sh and tests/fleet.bats; psql
# runs with the caller's PG* environment.
FLEET_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/net.bash
source "$FLEET_LIB_DIR/../../tests/lib/net.bash"

# fleet_fixture AGENTS PREFIX PASSWORD_FILE: agents, login roles PREFIX_00001 ...
# (password read from the file), targets, certificates (bench/fleet/fixture.sql),
# as the superuser of the PG* environment.
fleet_fixture() {
	PGOPTIONS="-c client_min_messages=warning" psql -XAtq -v ON_ERROR_STOP=1 -v agents="$1" \
		-v prefix="$2" -v password="$(cat "$3")" -f "$FLEET_LIB_DIR/fixture.sql" >/dev/null
}

# fleet_pgbouncer_start DIR DATABASE PG_PORT LISTEN_PORT: pgbouncer on 127.0.0.1,
# transaction pooling, every login looked up by auth_query (what an operator
# sets up, docs/scaling.md): a login role fleet_pgbouncer and a SECURITY
# DEFINER function returning the SCRAM verifier of a role that is not a
# superuser. Run as the superuser; sets FLEET_PGBOUNCER_PID.
fleet_pgbouncer_start() {
	local dir=$1 database=$2 pg_port=$3 port=$4 password
	password=$(openssl rand -hex 16)
	psql -XAtq -v ON_ERROR_STOP=1 -v pw="$password" -d "$database" >/dev/null <<-'SQL'
	SET client_min_messages = warning;
	DO $$ BEGIN
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fleet_pgbouncer') THEN
			CREATE ROLE fleet_pgbouncer LOGIN;
		END IF;
	END $$;
	ALTER ROLE fleet_pgbouncer PASSWORD :'pw';
	CREATE SCHEMA IF NOT EXISTS pgbouncer;
	CREATE OR REPLACE FUNCTION pgbouncer.user_lookup(login text, OUT usename name, OUT passwd text)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS
	$f$ SELECT usename, passwd FROM pg_shadow WHERE usename = login AND NOT usesuper $f$;
	REVOKE ALL ON FUNCTION pgbouncer.user_lookup(text) FROM PUBLIC;
	GRANT USAGE ON SCHEMA pgbouncer TO fleet_pgbouncer;
	GRANT EXECUTE ON FUNCTION pgbouncer.user_lookup(text) TO fleet_pgbouncer;
	SQL
	(umask 077 && printf '"fleet_pgbouncer" "%s"\n' "$password" >"$dir/userlist.txt")
	cat >"$dir/pgbouncer.ini" <<-EOF
	[databases]
	$database = host=127.0.0.1 port=$pg_port dbname=$database auth_user=fleet_pgbouncer
	[pgbouncer]
	listen_addr = 127.0.0.1
	listen_port = $port
	unix_socket_dir =
	auth_type = scram-sha-256
	auth_file = $dir/userlist.txt
	auth_query = SELECT usename, passwd FROM pgbouncer.user_lookup(\$1)
	pool_mode = transaction
	max_client_conn = ${FLEET_PGBOUNCER_CLIENTS:-2000}
	default_pool_size = 2
	max_db_connections = ${FLEET_PGBOUNCER_SERVERS:-20}
	server_login_retry = 1
	logfile = $dir/pgbouncer.log
	log_connections = 0
	log_disconnections = 0
	EOF
	# pgbouncer refuses to run as root.
	local as_user=()
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$dir/userlist.txt" "$dir/pgbouncer.ini"
		touch "$dir/pgbouncer.log" && chown postgres "$dir/pgbouncer.log"
		chmod 755 "$dir"
		as_user=(-u postgres)
	fi
	env -u PGPASSWORD pgbouncer -q "${as_user[@]}" "$dir/pgbouncer.ini" &
	# shellcheck disable=SC2034 # for the caller
	FLEET_PGBOUNCER_PID=$!
	wait_for_port "$port"
}
