# Loopback receivers for the notifier adapters (tests/lib/receiver.py).
# start_webhook_receiver DIR -> WEBHOOK_PORT, WEBHOOK_PID; requests recorded in DIR
# start_syslog_receiver DIR  -> SYSLOG_SOCKET, SYSLOG_PID; datagrams in DIR/messages
# requests_received DIR      -> how many requests arrived
# stop_receivers

start_webhook_receiver() {
	local dir=$1
	mkdir -p "$dir"
	WEBHOOK_PORT=$(free_port)
	/usr/bin/python3 "$TESTS_DIR/lib/receiver.py" http "$WEBHOOK_PORT" "$dir" 3>&- &
	WEBHOOK_PID=$!
	wait_for_port "$WEBHOOK_PORT" 10
}

start_syslog_receiver() {
	local dir=$1
	mkdir -p "$dir"
	SYSLOG_SOCKET="$dir/log.sock"
	/usr/bin/python3 "$TESTS_DIR/lib/receiver.py" syslog "$SYSLOG_SOCKET" "$dir" 3>&- &
	SYSLOG_PID=$!
	for _ in $(seq 1 100); do
		[ -e "$dir/ready" ] && return 0
		sleep 0.05
	done
	echo "syslog receiver did not start" >&2
	return 1
}

requests_received() {
	if [ -f "$1/requests" ]; then wc -l < "$1/requests"; else echo 0; fi
}

stop_receivers() {
	[ -z "${WEBHOOK_PID:-}" ] || kill "$WEBHOOK_PID" 2>/dev/null || true
	[ -z "${SYSLOG_PID:-}" ] || kill "$SYSLOG_PID" 2>/dev/null || true
}
