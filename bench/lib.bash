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

# bench_database NAME DIR: inside the cluster (the superuser's PG* and
# PGPASSWORD), database NAME with the production roles: migrated by its owner
# certctl_owner, and an operator's login certctl_bench_operator (CREATEROLE,
# a member of certctl_operator). Their passwords go to DIR/pgpass, which
# PGPASSFILE names from here on; PGDATABASE is NAME; PGUSER is unchanged.
bench_database() {
	local name=$1 dir=$2 owner_password operator_password
	owner_password=$(openssl rand -hex 16) operator_password=$(openssl rand -hex 16)
	psql -XAtq -v ON_ERROR_STOP=1 -v name="$name" -v owner="$owner_password" \
		-v operator="$operator_password" >/dev/null <<-'SQL'
	CREATE ROLE certctl_owner LOGIN CREATEROLE PASSWORD :'owner';
	CREATE ROLE certctl_bench_operator LOGIN CREATEROLE PASSWORD :'operator';
	CREATE DATABASE :"name" OWNER certctl_owner;
	SQL
	(umask 077 && printf '*:*:*:certctl_owner:%s\n*:*:*:certctl_bench_operator:%s\n' \
		"$owner_password" "$operator_password" >"$dir/pgpass")
	export PGPASSFILE="$dir/pgpass" PGDATABASE=$name
	PGUSER=certctl_owner PGPASSWORD='' certctl-migrate -q up >/dev/null
	PGUSER=certctl_owner PGPASSWORD='' psql -XAtq -v ON_ERROR_STOP=1 \
		-c 'GRANT certctl_operator TO certctl_bench_operator' >/dev/null
}

# bench_owner_database NAME: bench_database NAME in $work, then everything
# as the owner: exports PGUSER=certctl_owner, keeps the superuser's password
# in $superuser_password and drops PGPASSWORD.
bench_owner_database() {
	superuser_password=$PGPASSWORD
	bench_database "$1" "$work"
	unset PGPASSWORD
	export PGUSER=certctl_owner
}
