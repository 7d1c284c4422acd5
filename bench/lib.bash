# Shared by the bench scripts: `source bench/lib.bash` from the tree's top.
: "${CERTCTL_BIN:?set CERTCTL_BIN to the directory holding the certctl binaries}"
export CERTCTL_BIN
export PATH="$CERTCTL_BIN:$PATH"

# bench_enter_cluster SCRIPT ARGS...: re-runs SCRIPT inside a throw-away
# PostgreSQL cluster (pg_virtualenv, with $BENCH_CLUSTER_OPTIONS) on a free
# port, unless it already runs in one; pg_virtualenv would take 5432 and
# collide with a concurrent run.
bench_enter_cluster() {
	[ -z "${CERTCTL_BENCH_CLUSTER:-}" ] || return 0
	source tests/lib/net.bash
	PGPORT=$(free_port)
	export PGPORT CERTCTL_BENCH_CLUSTER=1
	# shellcheck disable=SC2086
	exec pg_virtualenv -t ${BENCH_CLUSTER_OPTIONS:-} "$@"
}

# bench_owner_database NAME: inside the cluster, a database NAME owned by a
# new login certctl_owner (its password in $work/pgpass) and migrated as it;
# exports PGDATABASE, PGUSER and PGPASSFILE for it, and keeps the
# superuser's password in $superuser_password. Needs $work.
bench_owner_database() {
	local owner_password
	superuser_password=$PGPASSWORD
	owner_password=$(openssl rand -hex 16)
	psql -XAtq -v ON_ERROR_STOP=1 -v pw="$owner_password" -v db="$1" >/dev/null <<-'SQL'
	CREATE ROLE certctl_owner LOGIN CREATEROLE PASSWORD :'pw';
	CREATE DATABASE :"db" OWNER certctl_owner;
	SQL
	(umask 077 && printf '*:*:*:certctl_owner:%s\n' "$owner_password" > "$work/pgpass")
	unset PGPASSWORD
	export PGPASSFILE="$work/pgpass" PGDATABASE=$1 PGUSER=certctl_owner
	certctl-migrate -q up >/dev/null
}
