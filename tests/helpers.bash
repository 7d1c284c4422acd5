# Shared set-up for every bats file: `load helpers` at the top.
bats_require_minimum_version 1.5.0
export PATH="$CERTCTL_BIN:$PATH"
export CERTCTL_TEMPLATE_DB=certctl_template
TESTS_DIR="$(cd "$(dirname "${BATS_TEST_FILENAME}")" && pwd)"
export TESTS_DIR

# A fresh, fully migrated database for this test; the PG* environment points at it.
fresh_database() {
	PGDATABASE="t$(printf '%s' "$BATS_TEST_FILENAME" | md5sum | cut -c1-8)_${BATS_TEST_NUMBER}_$$"
	export PGDATABASE
	createdb -T "$CERTCTL_TEMPLATE_DB" "$PGDATABASE"
}

# An empty database (no schema), for the migration tests.
empty_database() {
	PGDATABASE="e$(printf '%s' "$BATS_TEST_FILENAME" | md5sum | cut -c1-8)_${BATS_TEST_NUMBER}_$$"
	export PGDATABASE
	createdb "$PGDATABASE"
}

# One value (or rows, '|'-separated) from SQL; fails the test on SQL errors.
sql() {
	psql -XAtq -v ON_ERROR_STOP=1 -c "$1"
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
