# Once per run: the roles of production and a template database with the
# schema, so each test gets a fresh migrated database from `createdb -T` in
# milliseconds.
#
# Roles, as in production: certctl_owner migrates (and owns the schema);
# certctl_test_operator is an operator's login (member of certctl_operator,
# owns nothing). Commands run as the operator unless a test says otherwise
# (as_owner, as_agent in helpers.bash); the `sql` helper inspects and sets up
# fixtures as the cluster's superuser.
setup_suite() {
	export PATH="$CERTCTL_BIN:$PATH"
	export CERTCTL_TEMPLATE_DB=certctl_template
	export CERTCTL_TEST_SUPERUSER="$PGUSER" CERTCTL_TEST_SUPERPASSWORD="$PGPASSWORD"
	export CERTCTL_TEST_ROLES="$BATS_RUN_TMPDIR/roles"
	local owner_password operator_password
	mkdir -p -m 0700 "$CERTCTL_TEST_ROLES"
	owner_password=$(openssl rand -hex 16)
	operator_password=$(openssl rand -hex 16)
	psql -XAtq -v ON_ERROR_STOP=1 -v owner="$owner_password" -v operator="$operator_password" >/dev/null <<-'SQL'
	DROP DATABASE IF EXISTS certctl_template;
	SELECT format('CREATE ROLE certctl_owner LOGIN CREATEROLE PASSWORD %L', :'owner')
	 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_owner') \gexec
	SELECT format('CREATE ROLE certctl_test_operator LOGIN CREATEROLE PASSWORD %L', :'operator')
	 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'certctl_test_operator') \gexec
	ALTER ROLE certctl_owner PASSWORD :'owner';
	ALTER ROLE certctl_test_operator PASSWORD :'operator';
	SQL
	# libpq and psql find the two passwords here; agents get password files.
	(umask 077 && printf '*:*:*:certctl_owner:%s\n*:*:*:certctl_test_operator:%s\n' \
		"$owner_password" "$operator_password" > "$CERTCTL_TEST_ROLES/pgpass")
	export PGPASSFILE="$CERTCTL_TEST_ROLES/pgpass"
	createdb -O certctl_owner "$CERTCTL_TEMPLATE_DB"
	PGUSER=certctl_owner PGPASSWORD= PGDATABASE="$CERTCTL_TEMPLATE_DB" certctl-migrate -q up >/dev/null
	psql -XAtq -v ON_ERROR_STOP=1 -c 'GRANT certctl_operator TO certctl_test_operator' >/dev/null
	export PGUSER=certctl_test_operator
	unset PGPASSWORD
}
