# A real OpenSSH server on a loopback port, for ssh target tests.
# start_sshd DIR   -> DIR/sshd_config, a running sshd; exports SSHD_PORT,
#                     SSHD_CLIENT_KEY (authorized), SSHD_KNOWN_HOSTS
#                     ("[127.0.0.1]:PORT <host key>"), SSHD_HOST_KEY_SHA256
# stop_sshd DIR

start_sshd() {
	local dir=$1
	mkdir -p "$dir" /run/sshd
	chmod 0755 /run/sshd
	ssh-keygen -q -t ed25519 -N '' -C certctl-test-host -f "$dir/host_key" || return 1
	ssh-keygen -q -t ed25519 -N '' -C certctl-test-client -f "$dir/client_key" || return 1
	cp "$dir/client_key.pub" "$dir/authorized_keys"
	SSHD_PORT=$(free_port) || return 1
	# SetEnv SHLVL=1: bash sources ~/.bashrc for commands sshd runs only at
	# shell level 1, and root's here is slow; the commands under test are not.
	cat > "$dir/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
SetEnv SHLVL=1
CONF
	/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log" || { cat "$dir/sshd.log" >&2; return 1; }
	wait_for_port "$SSHD_PORT" 10 || return 1
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" > "$dir/known_hosts"
	SSHD_CLIENT_KEY=$dir/client_key
	SSHD_KNOWN_HOSTS=$dir/known_hosts
	SSHD_HOST_KEY_SHA256=$(ssh-keygen -l -E sha256 -f "$dir/host_key.pub" | cut -d' ' -f2)
	export SSHD_PORT SSHD_CLIENT_KEY SSHD_KNOWN_HOSTS SSHD_HOST_KEY_SHA256
}

stop_sshd() {
	local dir=$1 pid
	[ -f "$dir/sshd.pid" ] || return 0
	pid=$(cat "$dir/sshd.pid")
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
}
