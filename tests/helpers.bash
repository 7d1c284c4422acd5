# Shared set-up for every bats file: `load helpers` at the top.
bats_require_minimum_version 1.5.0
export PATH="$CERTCTL_BIN:$PATH"
export CERTCTL_TEMPLATE_DB=certctl_template
TESTS_DIR="$(cd "$(dirname "${BATS_TEST_FILENAME}")" && pwd)"
export TESTS_DIR

# The cluster's superuser, for fixtures and inspection; commands never run as it.
as_superuser() {
	PGUSER="$CERTCTL_TEST_SUPERUSER" PGPASSWORD="$CERTCTL_TEST_SUPERPASSWORD" "$@"
}

# The schema owner: the login certctl-migrate runs as.
as_owner() {
	PGUSER=certctl_owner "$@"
}

# A fresh, fully migrated database for this test, owned by the schema owner;
# the PG* environment points at it.
fresh_database() {
	PGDATABASE="t$(printf '%s' "$BATS_TEST_FILENAME" | md5sum | cut -c1-8)_${BATS_TEST_NUMBER}_$$"
	export PGDATABASE
	as_superuser createdb -O certctl_owner -T "$CERTCTL_TEMPLATE_DB" "$PGDATABASE"
}

# An empty database (no schema), for the migration tests.
empty_database() {
	PGDATABASE="e$(printf '%s' "$BATS_TEST_FILENAME" | md5sum | cut -c1-8)_${BATS_TEST_NUMBER}_$$"
	export PGDATABASE
	as_superuser createdb -O certctl_owner "$PGDATABASE"
}

# One value (or rows, '|'-separated) from SQL, as the superuser; fails the
# test on SQL errors.
sql() {
	as_superuser psql -XAtq -v ON_ERROR_STOP=1 -c "$1"
}

# The control host's sealing key for this test: $CERTCTL_KEY_FILE, 0600.
make_sealing_key() {
	export CERTCTL_KEY_FILE="$BATS_TEST_TMPDIR/sealing.key"
	openssl rand -hex 32 > "$CERTCTL_KEY_FILE"
	chmod 600 "$CERTCTL_KEY_FILE"
}

# The login role of agent ID in this test's database: roles are cluster-wide,
# so each test's agents get names of their own.
agent_role() {
	local role="${PGDATABASE}_${1//[^a-z0-9]/_}"
	printf '%s' "${role:0:63}"
}

agent_dir() {
	printf '%s' "$BATS_TEST_TMPDIR/agents/$1"
}

# Enrolls agent ID as an operator would: its own key pair (certctl-keygen on
# "its host"), login role and password file (certctl-enroll). --no-key: a
# role and no public key.
enroll_agent() {
	local id=$1 dir public_key
	dir=$(agent_dir "$id")
	mkdir -p "$dir"
	if [ "${2:-}" = --no-key ]; then
		certctl-enroll "$id" --db-role "$(agent_role "$id")" --password-file "$dir/password" >/dev/null
		return
	fi
	public_key=$(certctl-keygen --key-file "$dir/agent.key" | jq -r .public_key)
	certctl-enroll "$id" --db-role "$(agent_role "$id")" --password-file "$dir/password" \
		--public-key "$public_key" >/dev/null
}

# Runs a command as agent ID does on its host: its own login role and
# password file over TCP, its own key file, and no control-host key.
as_agent() {
	local id=$1 dir
	shift
	dir=$(agent_dir "$id")
	set -- -u CERTCTL_KEY_FILE -u PGPASSWORD PGUSER="$(agent_role "$id")" PGPASSFILE=/dev/null \
		CERTCTL_PASSWORD_FILE="$dir/password" CERTCTL_AGENT_KEY_FILE="$dir/agent.key" "$@"
	# In a subshell (run, a pipeline, &) the command takes its place, so $!
	# and signals reach the command itself.
	if [ "$BASHPID" != "$$" ]; then
		exec env "$@"
	fi
	env "$@"
}

# Polls an SQL condition (a boolean) for up to 15 s; fails if it never holds.
wait_until() {
	for _ in $(seq 1 150); do
		[ "$(sql "$1")" = t ] && return 0
		sleep 0.1
	done
	echo "timed out waiting for: $1"
	return 1
}

# Fails with what was expected and what was got.
expect_status() {
	if [ "$status" -ne "$1" ]; then
		echo "expected exit status $1, got $status"
		echo "stdout: $output"
		[ -z "${stderr+x}" ] || echo "stderr: $stderr"
		return 1
	fi
}

expect_equal() {
	if [ "$1" != "$2" ]; then
		echo "${3:-value}: expected '$1', got '$2'"
		return 1
	fi
}

# Asserts text contains a fixed substring.
expect_contains() {
	case "$1" in
	*"$2"*) return 0 ;;
	esac
	echo "expected to find '$2' in: $1"
	return 1
}

# Every stderr line looks like "certctl-NAME: ..." and there is exactly one.
expect_one_line_error() {
	local lines
	lines=$(printf '%s\n' "$stderr" | grep -c . || true)
	expect_equal 1 "$lines" "stderr line count" || { echo "stderr: $stderr"; return 1; }
	expect_contains "$stderr" "$1: "
}

# free_port, wait_for_port
source "$TESTS_DIR/lib/net.bash"

# A valid X25519 public key whose secret no test keeps: for agents that are
# enrolled as far as enqueue is concerned and never open what is sealed to them.
TEST_PUBLIC_KEY='puGMtqnvnQBIsISH/b/6I2XgU8WmTx1OqMRUIZ5EJkw='
give_public_key() {
	local id
	for id; do
		sql "UPDATE agents SET public_key = '$TEST_PUBLIC_KEY' WHERE id = '$id'" >/dev/null
	done
}
