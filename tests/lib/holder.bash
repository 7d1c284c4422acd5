# A second session that holds a lock until the test says COMMIT (heartbeat
# and retire race tests).

# A psql session fed through a FIFO, so a test decides when it commits.
holder_start() {
	mkfifo "$BATS_TEST_TMPDIR/holder"
	PGAPPNAME=holder psql -XAtq -v ON_ERROR_STOP=1 <"$BATS_TEST_TMPDIR/holder" >/dev/null 3>&- &
	holder_pid=$!
	exec 4>"$BATS_TEST_TMPDIR/holder"
	printf '%s\n' "$1" >&4
	wait_until "SELECT count(*) = 1 FROM pg_stat_activity WHERE application_name = 'holder'
	            AND datname = current_database() AND state = 'idle in transaction'"
}

holder_commit() {
	printf 'COMMIT;\n' >&4
	exec 4>&-
	wait "$holder_pid"
	holder_pid=
}
