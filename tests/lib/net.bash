# Loopback ports for test servers (sourced by helpers.bash and the demo).
# A TCP port on 127.0.0.1 nobody listens on right now, below the kernel's
# ephemeral range: a port in that range may be the local end of some
# connection, and a listener could not bind it although nothing listens.
free_port() {
	local port first_ephemeral=32768
	read -r first_ephemeral _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	[ "$first_ephemeral" -gt 21000 ] || first_ephemeral=32768
	for _ in $(seq 1 100); do
		port=$((20000 + RANDOM % (first_ephemeral - 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "free_port: no free port found" >&2
	return 1
}

# Waits up to $2 seconds (default 10) for a TCP listener on 127.0.0.1:$1.
wait_for_port() {
	local deadline=$((SECONDS + ${2:-10}))
	while ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		[ "$SECONDS" -lt "$deadline" ] || { echo "nothing listens on port $1" >&2; return 1; }
		sleep 0.05
	done
}
