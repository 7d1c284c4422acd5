# Once per run: a template database with the schema, so each test gets a
# fresh migrated database from `createdb -T` in milliseconds.
setup_suite() {
	export PATH="$CERTCTL_BIN:$PATH"
	export CERTCTL_TEMPLATE_DB=certctl_template
	dropdb --if-exists "$CERTCTL_TEMPLATE_DB" >/dev/null 2>&1 || true
	createdb "$CERTCTL_TEMPLATE_DB"
	PGDATABASE="$CERTCTL_TEMPLATE_DB" certctl-migrate -q up >/dev/null
}
