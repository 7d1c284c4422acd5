#!/usr/bin/env bats
# ssh targets: ssh_apply() against a real OpenSSH server on loopback — strict
# host keys, temp file + rename on the remote, snapshot and rollback.
load helpers
load lib/pki
load lib/sshd

setup_file() {
	export SSHD_DIR="$BATS_FILE_TMPDIR/sshd" PKI="$BATS_FILE_TMPDIR/pki"
	# Key, password and known_hosts fixtures live in the file's and the tests'
	# temporary directories, both under the run's.
	export CERTCTL_SECRETS_DIR="$BATS_RUN_TMPDIR"
	start_sshd "$SSHD_DIR"
	make_pki "$PKI"
	make_leaf "$PKI" v1 shop.example
	make_leaf "$PKI" v2 shop.example
}

teardown_file() {
	stop_sshd "$SSHD_DIR"
}

setup() {
	REMOTE="$BATS_TEST_TMPDIR/remote"
	mkdir -p "$REMOTE"
}

teardown() {
	stop_sshd "$BATS_TEST_TMPDIR/password-sshd"
}

# How many TCP connections the test sshd has accepted so far.
sshd_connections() {
	awk '/Connection from/ { n++ } END { print n + 0 }' "$SSHD_DIR/sshd.log"
}

# A second sshd that accepts root's PASSWORD: it runs in a mount namespace of
# its own where /etc/shadow is a copy with that password, so the system's
# accounts are never touched. Exports PASSWORD_SSHD_PORT and PASSWORD_SSHD_KNOWN_HOSTS.
start_password_sshd() {
	local dir=$1 hash
	mkdir -p "$dir"
	hash=$(openssl passwd -6 "$2") || return 1
	awk -F: -v OFS=: -v hash="$hash" '$1 == "root" { $2 = hash } { print }' /etc/shadow > "$dir/shadow"
	chmod 0600 "$dir/shadow"
	PASSWORD_SSHD_PORT=$(free_port) || return 1
	sed -e "s/^Port .*/Port $PASSWORD_SSHD_PORT/" -e "s|^PidFile .*|PidFile $dir/sshd.pid|" \
		-e 's/^PasswordAuthentication .*/PasswordAuthentication yes/' \
		-e 's/^PermitRootLogin .*/PermitRootLogin yes/' "$SSHD_DIR/sshd_config" > "$dir/sshd_config"
	unshare --mount --propagation private sh -c 'mount --bind "$1" /etc/shadow && exec /usr/sbin/sshd -f "$2" -E "$3"' \
		sh "$dir/shadow" "$dir/sshd_config" "$dir/sshd.log" || { cat "$dir/sshd.log" >&2; return 1; }
	wait_for_port "$PASSWORD_SSHD_PORT" 10 || return 1
	PASSWORD_SSHD_KNOWN_HOSTS=$dir/known_hosts
	printf '[127.0.0.1]:%s %s\n' "$PASSWORD_SSHD_PORT" "$(cut -d' ' -f1,2 "$SSHD_DIR/host_key.pub")" \
		> "$PASSWORD_SSHD_KNOWN_HOSTS"
}

# The config of an ssh target deploying cert.pem/key.pem into $REMOTE, with a
# reload that touches $REMOTE/reloaded. [JQ_ARGS…] FILTER adjust it ($dir is $REMOTE).
target_config() {
	local filter=.
	if [ $# -gt 0 ]; then
		filter=${!#}
		set -- "${@:1:$#-1}"
	fi
	jq -cn --argjson port "$SSHD_PORT" --arg key "$SSHD_CLIENT_KEY" --arg known "$SSHD_KNOWN_HOSTS" \
		--arg dir "$REMOTE" '{host:"127.0.0.1", port:$port, user:"root", private_key_path:$key,
		known_hosts:$known, cert_path:($dir+"/cert.pem"), key_path:($dir+"/key.pem"),
		reload_command:["touch", ($dir+"/reloaded")]}' | jq -c --arg dir "$REMOTE" "$@" "$filter"
}

# deploy CONFIG VERSION: ssh_apply() through the driver, leaf + chain of VERSION.
deploy() {
	run --separate-stderr "$CERTCTL_UNIT/test_ssh_apply" "$1" "$PKI/$2.pem" "$PKI/$2.key" "$PKI/chain.pem"
}

field() {
	printf '%s\n' "$output" | jq -r "$1"
}

# What a directory holds, names with mode and content hash, hidden files included.
listing() {
	(cd "$1" && find . -mindepth 1 -printf '%p %m %u:%g\n' | sort &&
		find . -type f -exec sha256sum {} + | sort)
}

expect_no_temp_files() {
	local left
	left=$(find "$1" -name '*.certctl-tmp.*')
	expect_equal "" "$left" "temp files left in $1"
}

expect_mode() {
	expect_equal "$1" "$(stat -c %a "$2")" "mode of $2"
}

# An existing deployment: v1 in place with modes that differ from the defaults.
preinstall_v1() {
	cat "$PKI/v1.pem" "$PKI/chain.pem" > "$REMOTE/cert.pem"
	cp "$PKI/v1.key" "$REMOTE/key.pem"
	chmod 0640 "$REMOTE/cert.pem"
	chmod 0400 "$REMOTE/key.pem"
}

@test "ssh: first deploy creates the files with the configured modes and runs the reload" {
	deploy "$(target_config '. + {cert_mode:"0640", key_mode:"0600"}')" v1
	expect_status 0
	expect_equal Completed "$(field .outcome)"
	expect_equal no_pre_existing "$(field .metadata.backup_status_cert)"
	expect_equal no_pre_existing "$(field .metadata.backup_status_key)"
	expect_equal "n/a" "$(field .metadata.backup_status_chain)"
	cmp "$REMOTE/cert.pem" <(cat "$PKI/v1.pem" "$PKI/chain.pem")
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
	expect_mode 640 "$REMOTE/cert.pem"
	expect_mode 600 "$REMOTE/key.pem"
	[ -f "$REMOTE/reloaded" ]
	expect_no_temp_files "$REMOTE"
}

@test "ssh: without configured modes a new key gets 0600 and a new certificate 0644" {
	deploy "$(target_config)" v1
	expect_status 0
	expect_mode 644 "$REMOTE/cert.pem"
	expect_mode 600 "$REMOTE/key.pem"
}

@test "ssh: redeploying a new version replaces the files and keeps their modes and owner" {
	preinstall_v1
	chown nobody:nogroup "$REMOTE/cert.pem" "$REMOTE/key.pem"
	deploy "$(target_config)" v2
	expect_status 0
	expect_equal Completed "$(field .outcome)"
	expect_equal snapshotted "$(field .metadata.backup_status_cert)"
	expect_equal snapshotted "$(field .metadata.backup_status_key)"
	cmp "$REMOTE/cert.pem" <(cat "$PKI/v2.pem" "$PKI/chain.pem")
	cmp "$REMOTE/key.pem" "$PKI/v2.key"
	expect_equal "$(fingerprint "$PKI/v2.pem")" "$(fingerprint "$REMOTE/cert.pem")" "leaf on the remote"
	[ "$(fingerprint "$REMOTE/cert.pem")" != "$(fingerprint "$PKI/v1.pem")" ]
	expect_mode 640 "$REMOTE/cert.pem"
	expect_mode 400 "$REMOTE/key.pem"
	expect_equal nobody:nogroup "$(stat -c %U:%G "$REMOTE/cert.pem")" "cert owner"
	expect_equal nobody:nogroup "$(stat -c %U:%G "$REMOTE/key.pem")" "key owner"
	expect_no_temp_files "$REMOTE"
}

@test "ssh: explicit owner, group and modes win over the existing file's" {
	preinstall_v1
	deploy "$(target_config '. + {owner:"nobody", group:"nogroup", cert_mode:"0604", key_mode:"0640"}')" v2
	expect_status 0
	expect_equal nobody:nogroup "$(stat -c %U:%G "$REMOTE/cert.pem")" "cert owner"
	expect_equal nobody:nogroup "$(stat -c %U:%G "$REMOTE/key.pem")" "key owner"
	expect_mode 604 "$REMOTE/cert.pem"
	expect_mode 640 "$REMOTE/key.pem"
}

@test "ssh: identical bytes on the remote are Skipped: no write, no reload" {
	preinstall_v1
	before=$(listing "$REMOTE")
	deploy "$(target_config)" v1
	expect_status 0
	expect_equal Skipped "$(field .outcome)"
	[ ! -e "$REMOTE/reloaded" ]
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory"
}

@test "ssh: a Skipped redeploy touched nothing, so every backup status is n/a, as for a local target" {
	preinstall_v1
	deploy "$(target_config)" v1
	expect_status 0
	expect_equal Skipped "$(field .outcome)"
	expect_equal "n/a" "$(field .metadata.backup_status_cert)"
	expect_equal "n/a" "$(field .metadata.backup_status_key)"
	expect_equal "n/a" "$(field .metadata.backup_status_chain)"
}

@test "ssh: a failed reload restores every file's bytes, mode and owner, removes new files, reloads again, exit 1" {
	preinstall_v1
	chown nobody:nogroup "$REMOTE/cert.pem"
	before=$(listing "$REMOTE")
	# Fails the first time, succeeds the second; counts its runs outside $REMOTE.
	counter="$BATS_TEST_TMPDIR/reloads"
	deploy "$(target_config --arg counter "$counter" '. + {chain_path:($dir+"/chain.pem"),
		reload_command:["sh","-c","n=$(cat \"$1\" 2>/dev/null || echo 0); echo $((n+1)) > \"$1\"; [ \"$n\" -ge 1 ] || { echo reload broke >&2; exit 3; }","reload",$counter]}')" v2
	expect_status 1
	expect_equal Failed "$(field .outcome)"
	expect_contains "$(field .error)" "reload command failed; rolled back to pre-deploy state"
	expect_contains "$(field .error)" "exit 3: reload broke"
	expect_equal restored "$(field .metadata.backup_status_cert)"
	expect_equal restored "$(field .metadata.backup_status_key)"
	expect_equal removed "$(field .metadata.backup_status_chain)"
	expect_equal null "$(field .metadata.daemon_state_unknown)"
	expect_equal 2 "$(cat "$counter")" "reload runs"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory after rollback"
}

@test "ssh: a first deploy whose reload fails removes the files it created" {
	deploy "$(target_config --arg counter "$BATS_TEST_TMPDIR/reloads" '. + {reload_command:
		["sh","-c","n=$(cat \"$1\" 2>/dev/null || echo 0); echo $((n+1)) > \"$1\"; [ \"$n\" -ge 1 ]","reload",$counter]}')" v1
	expect_status 1
	expect_equal removed "$(field .metadata.backup_status_cert)"
	expect_equal removed "$(field .metadata.backup_status_key)"
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: a restore that fails is exit 2, manual_action_required, and names both failures" {
	preinstall_v1
	# The reload breaks the certificate's path so it cannot be put back.
	deploy "$(target_config '. + {reload_command:["sh","-c","rm -f \"$1\" && mkdir \"$1\" && echo reload broke >&2 && exit 1","reload",($dir+"/cert.pem")]}')" v2
	expect_status 2
	expect_equal ManualAction "$(field .outcome)"
	expect_equal true "$(field .metadata.manual_action_required)"
	expect_equal restore_failed "$(field .metadata.backup_status_cert)"
	expect_equal restored "$(field .metadata.backup_status_key)"
	expect_contains "$(field .error)" "reload broke"
	expect_contains "$(field .error)" "restoring the previous files failed ($REMOTE/cert.pem: "
	expect_contains "$(field .error)" "destination is a directory"
	expect_contains "$(field .error)" "manual action required"
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
	expect_mode 400 "$REMOTE/key.pem"
	expect_no_temp_files "$REMOTE"
}

@test "ssh: a reload that fails again after the rollback sets daemon_state_unknown" {
	preinstall_v1
	before=$(listing "$REMOTE")
	deploy "$(target_config '. + {reload_command:["sh","-c","echo still broken >&2; exit 1"]}')" v2
	expect_status 1
	expect_equal true "$(field .metadata.daemon_state_unknown)"
	expect_equal restored "$(field .metadata.backup_status_cert)"
	expect_contains "$(field .error)" "reload after the rollback failed too"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory after rollback"
}

@test "ssh: a reload that outlives command_timeout counts as failed and is rolled back" {
	preinstall_v1
	before=$(listing "$REMOTE")
	SECONDS=0
	deploy "$(target_config --arg counter "$BATS_TEST_TMPDIR/reloads" '. + {command_timeout:4,
		reload_command:["sh","-c","n=$(cat \"$1\" 2>/dev/null || echo 0); echo $((n+1)) > \"$1\"; [ \"$n\" -ge 1 ] || exec sleep 30","reload",$counter]}')" v2
	expect_status 1
	expect_contains "$(field .error)" "timed out after 4 s"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory after rollback"
	[ "$SECONDS" -lt 25 ] || { echo "took $SECONDS s"; return 1; }
}

@test "ssh: a failing validate command changes nothing on the remote and skips the reload" {
	preinstall_v1
	before=$(listing "$REMOTE")
	deploy "$(target_config '. + {validate_command:["sh","-c","echo config test failed >&2; exit 1"]}')" v2
	expect_status 1
	expect_contains "$(field .error)" "validate command failed; nothing changed"
	expect_contains "$(field .error)" "config test failed"
	[ ! -e "$REMOTE/reloaded" ]
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory"
}

@test "ssh: the validate command sees the new files at their temp paths, the key never world-readable" {
	preinstall_v1
	chmod 0644 "$REMOTE/key.pem"
	deploy "$(target_config --arg expected "$PKI/v2.key" '. + {key_mode:"0600", validate_command:["sh","-c",
		"cmp -s \"$CERTCTL_NEW_KEY_PATH\" \"$1\" && [ \"$(stat -c %a \"$CERTCTL_NEW_KEY_PATH\")\" = 600 ] && case \"$CERTCTL_NEW_KEY_PATH\" in */.key.pem.certctl-tmp.*) ;; *) exit 1;; esac",
		"validate", $expected]}')" v2
	expect_status 0
	cmp "$REMOTE/key.pem" "$PKI/v2.key"
	expect_mode 600 "$REMOTE/key.pem"
}

@test "ssh: a changed host key in known_hosts is refused with 77 and nothing is written" {
	preinstall_v1
	before=$(listing "$REMOTE")
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/other_host_key"
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$BATS_TEST_TMPDIR/other_host_key.pub")" \
		> "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" '. + {known_hosts:$known}')" v2
	expect_status 77
	expect_contains "$stderr" "differs from the key known_hosts"
	expect_contains "$stderr" "$SSHD_HOST_KEY_SHA256"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory"
}

@test "ssh: an unknown host (empty known_hosts) is refused with 77" {
	: > "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" '. + {known_hosts:$known}')" v1
	expect_status 77
	expect_contains "$stderr" "is not in known_hosts"
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: a known_hosts entry for another port does not vouch for this one" {
	sed "s/]:$SSHD_PORT /]:22 /" "$SSHD_KNOWN_HOSTS" > "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" '. + {known_hosts:$known}')" v1
	expect_status 77
}

@test "ssh: hashed known_hosts entries are honoured" {
	cp "$SSHD_KNOWN_HOSTS" "$BATS_TEST_TMPDIR/known_hosts"
	ssh-keygen -q -H -f "$BATS_TEST_TMPDIR/known_hosts" 2>/dev/null
	grep -q '^|1|' "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" '. + {known_hosts:$known}')" v1
	expect_status 0
}

@test "ssh: a @revoked host key is refused even when also listed as known" {
	{ cat "$SSHD_KNOWN_HOSTS"; printf '@revoked '; cat "$SSHD_KNOWN_HOSTS"; } > "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" '. + {known_hosts:$known}')" v1
	expect_status 77
	expect_contains "$stderr" "@revoked"
}

@test "ssh: a matching host_key_sha256 pin is trusted without known_hosts, in SHA256: and hex form" {
	deploy "$(target_config --arg pin "$SSHD_HOST_KEY_SHA256" '. + {known_hosts:($dir+"/../none"), host_key_sha256:$pin}')" v1
	expect_status 0
	hex=$(printf '%s=' "${SSHD_HOST_KEY_SHA256#SHA256:}" | base64 -d | od -An -tx1 | tr -d ' \n')
	deploy "$(target_config --arg pin "$hex" '. + {known_hosts:($dir+"/../none"), host_key_sha256:$pin}')" v2
	expect_status 0
	cmp "$REMOTE/key.pem" "$PKI/v2.key"
}

@test "ssh: a host_key_sha256 pin that does not match is refused with 77, even with known_hosts right" {
	wrong=$(head -c 32 /dev/urandom | base64 | tr -d '=')
	deploy "$(target_config --arg pin "SHA256:$wrong" '. + {host_key_sha256:$pin}')" v1
	expect_status 77
	expect_contains "$stderr" "does not match config host_key_sha256"
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: a right pin does not override a known_hosts entry that contradicts it" {
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/other_host_key"
	printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$(cut -d' ' -f1,2 "$BATS_TEST_TMPDIR/other_host_key.pub")" \
		> "$BATS_TEST_TMPDIR/known_hosts"
	deploy "$(target_config --arg known "$BATS_TEST_TMPDIR/known_hosts" --arg pin "$SSHD_HOST_KEY_SHA256" \
		'. + {known_hosts:$known, host_key_sha256:$pin}')" v1
	expect_status 77
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: a refused connection is 69" {
	port=$(free_port)
	deploy "$(target_config --argjson port "$port" '. + {port:$port, connect_timeout:3}')" v1
	expect_status 69
	expect_contains "$stderr" "cannot connect"
}

@test "ssh: a server that never speaks SSH is 69 within connect_timeout" {
	port=$(free_port)
	/usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4)
c = s.accept(); time.sleep(30)' "$port" 3>&- &
	silent=$!
	wait_for_port "$port" 10
	SECONDS=0
	deploy "$(target_config --argjson port "$port" '. + {port:$port, connect_timeout:2}')" v1
	elapsed=$SECONDS
	kill "$silent"
	expect_status 69
	expect_contains "$stderr" "handshake failed"
	[ "$elapsed" -le 4 ] || { echo "took $elapsed s, connect_timeout is 2"; return 1; }
}

@test "ssh: a key the server does not accept is refused with 77" {
	ssh-keygen -q -t ed25519 -N '' -f "$BATS_TEST_TMPDIR/stranger"
	deploy "$(target_config --arg key "$BATS_TEST_TMPDIR/stranger" '. + {private_key_path:$key}')" v1
	expect_status 77
	expect_contains "$stderr" "authentication refused"
}

@test "ssh: an encrypted client key works with passphrase_file, the passphrase never in output" {
	ssh-keygen -q -t ed25519 -N 'correct horse' -f "$BATS_TEST_TMPDIR/locked"
	printf 'correct horse\n' > "$BATS_TEST_TMPDIR/passphrase"
	cat "$BATS_TEST_TMPDIR/locked.pub" >> "$SSHD_DIR/authorized_keys"
	deploy "$(target_config --arg key "$BATS_TEST_TMPDIR/locked" --arg pass "$BATS_TEST_TMPDIR/passphrase" \
		'. + {private_key_path:$key, passphrase_file:$pass}')" v1
	expect_status 0
	printf 'wrong\n' > "$BATS_TEST_TMPDIR/passphrase"
	deploy "$(target_config --arg key "$BATS_TEST_TMPDIR/locked" --arg pass "$BATS_TEST_TMPDIR/passphrase" \
		'. + {private_key_path:$key, passphrase_file:$pass}')" v2
	[ "$status" -ne 0 ]
	case "$output$stderr" in *"correct horse"*|*wrong*) echo "passphrase leaked: $output $stderr"; return 1 ;; esac
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
}

@test "ssh: password_file is sent as a password, refused here with 77, and never echoed" {
	printf 'hunter2-secret\n' > "$BATS_TEST_TMPDIR/password"
	deploy "$(target_config --arg pass "$BATS_TEST_TMPDIR/password" 'del(.private_key_path) + {password_file:$pass}')" v1
	expect_status 77
	expect_contains "$stderr" "authentication refused (password)"
	case "$output$stderr" in *hunter2*) echo "password leaked: $output $stderr"; return 1 ;; esac
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: missing or malformed connection keys are 78 and name the key" {
	deploy "$(target_config 'del(.host)')" v1
	expect_status 78
	expect_contains "$stderr" "config host"
	deploy "$(target_config '. + {port:70000}')" v1
	expect_status 78
	expect_contains "$stderr" "config port"
	deploy "$(target_config 'del(.private_key_path)')" v1
	expect_status 78
	expect_contains "$stderr" "private_key_path or password_file"
	deploy "$(target_config '. + {host_key_sha256:"SHA256:nope"}')" v1
	expect_status 78
	expect_contains "$stderr" "config host_key_sha256"
	deploy "$(target_config '. + {connect_timeout:"10"}')" v1
	expect_status 78
	expect_contains "$stderr" "config connect_timeout"
	deploy "$(target_config '. + {private_key_path:"/nonexistent/key"}')" v1
	expect_status 78
	expect_contains "$stderr" "config private_key_path"
}

@test "ssh: a destination that is not a regular file aborts before anything is written" {
	mkdir "$REMOTE/key.pem"
	deploy "$(target_config)" v1
	expect_status 73
	expect_contains "$stderr" "not a regular file"
	[ ! -e "$REMOTE/cert.pem" ]
	[ ! -e "$REMOTE/reloaded" ]
	expect_no_temp_files "$REMOTE"
}

@test "ssh: a symbolic link at a destination is refused, not replaced" {
	preinstall_v1
	mv "$REMOTE/key.pem" "$REMOTE/real.key"
	ln -s real.key "$REMOTE/key.pem"
	before=$(listing "$REMOTE")
	deploy "$(target_config)" v2
	expect_status 73
	expect_contains "$stderr" "$REMOTE/key.pem: exists and is not a regular file"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory"
}

@test "ssh: a temp file that cannot be created is 73 and leaves every destination as it was" {
	preinstall_v1
	before=$(listing "$REMOTE")
	deploy "$(target_config '. + {chain_path:($dir+"/missing/chain.pem")}')" v2
	expect_status 73
	expect_contains "$stderr" "$REMOTE/missing/chain.pem: temp file"
	expect_contains "$stderr" "nothing changed"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory"
}

@test "ssh: quotes and \$(…) in remote paths and argv reach the remote literally" {
	dir="$REMOTE/it's \$(touch pwned)"
	mkdir -p "$dir"
	deploy "$(target_config --arg d "$dir" '. + {cert_path:($d+"/c'"'"'e\"rt $(id).pem"), key_path:($d+"/key `id`.pem"),
		reload_command:["touch", ($d+"/reloaded '"'"'$(touch pwned2)'"'"'")]}')" v1
	expect_status 0
	cmp "$dir/c'e\"rt \$(id).pem" <(cat "$PKI/v1.pem" "$PKI/chain.pem")
	cmp "$dir/key \`id\`.pem" "$PKI/v1.key"
	[ -f "$dir/reloaded '\$(touch pwned2)'" ]
	# An injected command would run in the remote login's home directory.
	home=$(getent passwd root | cut -d: -f6)
	found=$(find "$home" "$BATS_TEST_TMPDIR" -maxdepth 3 \( -name pwned -o -name pwned2 \) 2>/dev/null)
	expect_equal "" "$found" "files created by injected commands"
}

# The control-host pipeline: import → enqueue → claim | deploy, over SSH.
pipeline_setup() {
	fresh_database
	openssl rand -hex 32 > "$BATS_TEST_TMPDIR/certctl.key"
	chmod 0600 "$BATS_TEST_TMPDIR/certctl.key"
	export CERTCTL_KEY_FILE="$BATS_TEST_TMPDIR/certctl.key"
	jq -cn --argjson config "$(target_config "${@:-.}")" '
		{kind:"agent", id:"agent-control", name:"control"},
		{kind:"target", id:"target-web09-ssh", type:"ssh", agent_id:"agent-control", config:$config},
		{kind:"certificate", id:"mc-shop", name:"shop", targets:["target-web09-ssh"]}' |
		certctl-import >/dev/null
	enroll_agent agent-control
	as_agent agent-control certctl-heartbeat --agent agent-control >/dev/null
}

@test "ssh: claim | deploy on a control host deploys to the ssh target and completes the job" {
	pipeline_setup
	certctl-import --certificate mc-shop --cert "$PKI/v1.pem" --chain "$PKI/chain.pem" \
		--key "$PKI/v1.key" --enqueue >/dev/null
	run --separate-stderr as_agent agent-control bash -c 'certctl-claim --type Deployment --agent agent-control | certctl-deploy --no-verify'
	expect_status 0
	expect_equal Completed "$(field .status)"
	expect_equal no_pre_existing "$(field .metadata.backup_status_key)"
	expect_equal Completed "$(sql "SELECT status FROM jobs WHERE target_id = 'target-web09-ssh'")" "job status"
	cmp "$REMOTE/cert.pem" <(cat "$PKI/v1.pem" "$PKI/chain.pem")
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
	[ -f "$REMOTE/reloaded" ]
}

@test "ssh: claim | deploy fails the job, rolled back, when the remote reload fails" {
	pipeline_setup '. + {reload_command:["sh","-c","echo nginx would not reload >&2; exit 1"]}'
	preinstall_v1
	before=$(listing "$REMOTE")
	certctl-import --certificate mc-shop --cert "$PKI/v2.pem" --chain "$PKI/chain.pem" \
		--key "$PKI/v2.key" --enqueue >/dev/null
	run --separate-stderr as_agent agent-control bash -c 'certctl-claim --type Deployment --agent agent-control | certctl-deploy --no-verify'
	expect_status 1
	expect_equal Failed "$(field .status)"
	expect_equal true "$(field .metadata.daemon_state_unknown)"
	expect_equal Failed "$(sql "SELECT status FROM jobs WHERE target_id = 'target-web09-ssh'")" "job status"
	expect_contains "$(sql "SELECT last_error FROM jobs WHERE target_id = 'target-web09-ssh'")" \
		"reload command failed; rolled back to pre-deploy state"
	expect_equal "$before" "$(listing "$REMOTE")" "remote directory after rollback"
}

@test "ssh: a password_file outside CERTCTL_SECRETS_DIR is 78 naming key and directory, and nothing is sent" {
	secrets="$BATS_TEST_TMPDIR/secrets"
	mkdir -p "$secrets"
	cp "$SSHD_KNOWN_HOSTS" "$secrets/known_hosts"
	printf 'hunter2-secret\n' > "$BATS_TEST_TMPDIR/password"
	ln -s "$BATS_TEST_TMPDIR/password" "$secrets/linked-password"
	before=$(sshd_connections)
	for pass in "$BATS_TEST_TMPDIR/password" "$secrets/../password" "$secrets/linked-password"; do
		CERTCTL_SECRETS_DIR=$secrets deploy "$(target_config --arg pass "$pass" --arg known "$secrets/known_hosts" \
			'del(.private_key_path) + {password_file:$pass, known_hosts:$known}')" v1
		expect_status 78
		expect_contains "$stderr" "config password_file: $pass: not under CERTCTL_SECRETS_DIR $secrets"
		case "$output$stderr" in *hunter2*) echo "password leaked: $output $stderr"; return 1 ;; esac
	done
	expect_equal "$before" "$(sshd_connections)" "connections the sshd accepted"
	expect_equal "" "$(ls -A "$REMOTE")" "remote directory"
}

@test "ssh: known_hosts, private_key_path and passphrase_file outside CERTCTL_SECRETS_DIR are 78 before connecting" {
	secrets="$BATS_TEST_TMPDIR/secrets"
	mkdir -p "$secrets"
	cp "$SSHD_CLIENT_KEY" "$secrets/client_key"
	cp "$SSHD_KNOWN_HOSTS" "$secrets/known_hosts"
	before=$(sshd_connections)
	CERTCTL_SECRETS_DIR=$secrets deploy "$(target_config --arg key "$secrets/client_key" \
		'. + {private_key_path:$key}')" v1
	expect_status 78
	expect_contains "$stderr" "config known_hosts: $SSHD_KNOWN_HOSTS: not under CERTCTL_SECRETS_DIR $secrets"
	CERTCTL_SECRETS_DIR=$secrets deploy "$(target_config --arg known "$secrets/known_hosts" '. + {known_hosts:$known}')" v1
	expect_status 78
	expect_contains "$stderr" "config private_key_path: $SSHD_CLIENT_KEY: not under CERTCTL_SECRETS_DIR $secrets"
	printf 'x\n' > "$BATS_TEST_TMPDIR/passphrase"
	CERTCTL_SECRETS_DIR=$secrets deploy "$(target_config --arg key "$secrets/client_key" --arg known "$secrets/known_hosts" \
		--arg pass "$BATS_TEST_TMPDIR/passphrase" '. + {private_key_path:$key, known_hosts:$known, passphrase_file:$pass}')" v1
	expect_status 78
	expect_contains "$stderr" "config passphrase_file: $BATS_TEST_TMPDIR/passphrase: not under CERTCTL_SECRETS_DIR $secrets"
	expect_equal "$before" "$(sshd_connections)" "connections the sshd accepted"
	# The same files inside the directory are accepted: the refusals were about place alone.
	CERTCTL_SECRETS_DIR=$secrets deploy "$(target_config --arg key "$secrets/client_key" --arg known "$secrets/known_hosts" \
		'. + {private_key_path:$key, known_hosts:$known}')" v1
	expect_status 0
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
}

@test "ssh: a password_file's first line is the password, whatever follows it" {
	start_password_sshd "$BATS_TEST_TMPDIR/password-sshd" 'first-line-secret'
	printf 'first-line-secret\nnot part of it\n' > "$BATS_TEST_TMPDIR/password"
	config=$(target_config --argjson port "$PASSWORD_SSHD_PORT" --arg known "$PASSWORD_SSHD_KNOWN_HOSTS" \
		--arg pass "$BATS_TEST_TMPDIR/password" \
		'del(.private_key_path) + {port:$port, known_hosts:$known, password_file:$pass}')
	deploy "$config" v1
	expect_status 0
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
	# The right password on the second line does not count.
	printf 'not it\nfirst-line-secret\n' > "$BATS_TEST_TMPDIR/password"
	deploy "$config" v2
	expect_status 77
	expect_contains "$stderr" "authentication refused (password)"
	cmp "$REMOTE/key.pem" "$PKI/v1.key"
}

@test "ssh: a server offering only ssh-rsa (SHA-1) host keys is refused with 69 naming the algorithm" {
	dir="$BATS_TEST_TMPDIR/sshd-rsa"
	mkdir -p "$dir"
	ssh-keygen -q -t rsa -b 2048 -N '' -C certctl-test-rsa -f "$dir/host_key"
	port=$(free_port)
	sed -e "s|^Port .*|Port $port|" -e "s|^HostKey .*|HostKey $dir/host_key|" \
		-e "s|^PidFile .*|PidFile $dir/sshd.pid|" "$SSHD_DIR/sshd_config" > "$dir/sshd_config"
	echo 'HostKeyAlgorithms ssh-rsa' >> "$dir/sshd_config"
	/usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
	wait_for_port "$port" 10
	printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$dir/host_key.pub")" > "$dir/known_hosts"
	deploy "$(target_config --argjson port "$port" --arg known "$dir/known_hosts" '. + {port:$port, known_hosts:$known}')" v1
	stop_sshd "$dir"
	expect_status 69
	expect_contains "$stderr" "host key algorithm ssh-rsa"
	expect_contains "$stderr" "only algorithms certctl rejects"
	[ ! -e "$REMOTE/cert.pem" ] || { echo "cert.pem written"; return 1; }
}

# Hostile hosts (issue 13): rollback data lives on the remote, not only in our memory.

@test "ssh: a replaced file is kept on the remote as <path>.certctl-bak.<timestamp> with its mode and owner" {
	preinstall_v1
	chown nobody:nogroup "$REMOTE/cert.pem"
	deploy "$(target_config)" v2
	expect_status 0
	cmp "$REMOTE"/cert.pem.certctl-bak.* <(cat "$PKI/v1.pem" "$PKI/chain.pem")
	cmp "$REMOTE"/key.pem.certctl-bak.* "$PKI/v1.key"
	expect_equal "640 nobody:nogroup" "$(stat -c '%a %U:%G' "$REMOTE"/cert.pem.certctl-bak.*)" "cert backup"
	expect_equal "400 root:root" "$(stat -c '%a %U:%G' "$REMOTE"/key.pem.certctl-bak.*)" "key backup"
	expect_equal "" "$(find "$REMOTE" -name '*.certctl-inflight')" "markers left"
	for v in v1 v2 v1 v2; do deploy "$(target_config)" $v; expect_status 0; done
	expect_equal 3 "$(find "$REMOTE" -name 'cert.pem.certctl-bak.*' | wc -l)" "cert backups kept (backup_retention 3)"
	deploy "$(target_config '. + {backup_retention: 1}')" v1
	expect_status 0
	expect_equal 1 "$(find "$REMOTE" -name 'key.pem.certctl-bak.*' | wc -l)" "key backups kept (backup_retention 1)"
	cmp "$REMOTE"/key.pem.certctl-bak.* "$PKI/v2.key"
}

# killed_during_reload CONFIG VERSION: the driver is SIGKILLed while the remote reload runs.
killed_during_reload() {
	local pid
	"$CERTCTL_UNIT/test_ssh_apply" "$1" "$PKI/$2.pem" "$PKI/$2.key" "$PKI/chain.pem" \
		> "$BATS_TEST_TMPDIR/killed.out" 2>&1 &
	pid=$!
	wait_for_file "$BATS_TEST_TMPDIR/reload-started"
	kill -KILL "$pid"
	wait "$pid" || expect_equal 137 "$?" "status of the killed deploy"
	rm -f "$BATS_TEST_TMPDIR/hold"
}

wait_for_file() {
	local i
	for i in $(seq 1 200); do
		[ ! -e "$1" ] || return 0
		sleep 0.05
	done
	echo "$1 never appeared"
	return 1
}

# A reload that says it started and then waits until the test lets it go.
holding_reload() {
	touch "$BATS_TEST_TMPDIR/hold"
	target_config --arg started "$BATS_TEST_TMPDIR/reload-started" --arg hold "$BATS_TEST_TMPDIR/hold" \
		'. + {reload_command: ["sh","-c","touch \"$1\"; while [ -e \"$2\" ]; do sleep 0.1; done","reload",$started,$hold]}'
}

@test "ssh: SIGKILL after the remote rename and before the reload ends leaves the old bytes in *.certctl-bak.*; the next deploy reports them" {
	preinstall_v1
	killed_during_reload "$(holding_reload)" v2
	cmp "$REMOTE/cert.pem" <(cat "$PKI/v2.pem" "$PKI/chain.pem")
	cmp "$REMOTE"/cert.pem.certctl-bak.* <(cat "$PKI/v1.pem" "$PKI/chain.pem")
	cmp "$REMOTE"/key.pem.certctl-bak.* "$PKI/v1.key"
	expect_mode 400 "$REMOTE"/key.pem.certctl-bak.*
	cert_backup=$(echo "$REMOTE"/cert.pem.certctl-bak.*)
	key_backup=$(echo "$REMOTE"/key.pem.certctl-bak.*)
	deploy "$(target_config)" v2
	expect_status 0
	expect_equal Skipped "$(field .outcome)"
	expect_equal "[\"$cert_backup\",\"$key_backup\"]" "$(printf '%s\n' "$output" | jq -c .metadata.interrupted_run_backups)" \
		"interrupted_run_backups"
	# reported once; the backups themselves stay, as any other backup
	deploy "$(target_config)" v2
	expect_status 0
	expect_equal null "$(field .metadata.interrupted_run_backups)"
	cmp "$cert_backup" <(cat "$PKI/v1.pem" "$PKI/chain.pem")
}

@test "ssh: after a killed run, a deploy whose reload fails restores from the backups on the remote" {
	preinstall_v1
	killed_during_reload "$(holding_reload)" v2
	# v1 again, with a reload that fails once: it reports the killed run's
	# backups and restores v2, the bytes its own backups hold.
	counter="$BATS_TEST_TMPDIR/reloads"
	deploy "$(target_config --arg counter "$counter" '. + {reload_command:["sh","-c","n=$(cat \"$1\" 2>/dev/null || echo 0); echo $((n+1)) > \"$1\"; [ \"$n\" -ge 1 ] || { echo reload broke >&2; exit 3; }","reload",$counter]}')" v1
	expect_status 1
	expect_equal restored "$(field .metadata.backup_status_key)"
	expect_equal 2 "$(printf '%s\n' "$output" | jq '.metadata.interrupted_run_backups | length')" "reported backups"
	cmp "$REMOTE/key.pem" "$PKI/v2.key"
	cmp "$REMOTE/cert.pem" <(cat "$PKI/v2.pem" "$PKI/chain.pem")
	expect_no_temp_files "$REMOTE"
	# the killed run's backups (v1) are still there for a human
	cmp "$REMOTE"/key.pem.certctl-bak.* "$PKI/v1.key"
}

@test "ssh: the restore comes from the backup files on the remote: with them gone it fails (exit 2), bytes named" {
	preinstall_v1
	deploy "$(target_config --arg dir "$REMOTE" '. + {reload_command:["sh","-c","rm -f \"$1\"/*.certctl-bak.*; echo reload broke >&2; exit 1","reload",$dir]}')" v2
	expect_status 2
	expect_equal true "$(field .metadata.manual_action_required)"
	expect_contains "$(field .error)" "cannot read backup $REMOTE/cert.pem.certctl-bak."
	# the marker stays for the next deploy, which reports nothing it cannot find
	[ -e "$REMOTE/.cert.pem.certctl-inflight" ]
}

@test "ssh: command_timeout and connect_timeout above 600 s are 78, inside the units' TimeoutStartSec" {
	for key in command_timeout connect_timeout; do
		deploy "$(target_config --arg key "$key" '. + {($key): 601}')" v1
		expect_status 78
		expect_contains "$stderr" "config $key: must be an integer from 1 to 600"
	done
	deploy "$(target_config '. + {command_timeout: 600}')" v1
	expect_status 0
}
