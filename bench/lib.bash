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
