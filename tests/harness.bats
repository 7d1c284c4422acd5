#!/usr/bin/env bats
# The test fixtures themselves, where a mistake would make tests flaky.
load helpers

@test "harness: free_port picks only ports below the kernel's ephemeral range" {
	# A port in that range can be the local end of a connection: a listener
	# then fails to bind it although nothing listens (seen: nc on 33160).
	read -r first_ephemeral _ </proc/sys/net/ipv4/ip_local_port_range
	for _ in $(seq 1 200); do
		port=$(free_port)
		[ "$port" -ge 20000 ] && [ "$port" -lt "$first_ephemeral" ] ||
			{ echo "free_port gave $port; ephemeral ports start at $first_ephemeral"; return 1; }
	done
}
