#!/usr/bin/env bats
# certctl-keygen: the agent's X25519 key file, created once and never replaced.
load helpers

setup() {
	KEYS="$BATS_TEST_TMPDIR/keys"
	mkdir -p "$KEYS"
	KEY="$KEYS/agent.key"
	unset CERTCTL_AGENT_KEY_FILE CERTCTL_DSN
}

# The file's mode as four octal digits.
mode_of() {
	stat -c %04a "$1"
}

# X25519 public key of a key file, computed by OpenSSL rather than certctl:
# the secret wrapped in a PKCS#8 DER header, the last 32 bytes of the SPKI.
openssl_public_key() {
	{
		printf '302e020100300506032b656e04220420' | xxd -r -p
		base64 -d <"$1"
	} >"$BATS_TEST_TMPDIR/x25519.der"
	openssl pkey -inform DER -in "$BATS_TEST_TMPDIR/x25519.der" -pubout -outform DER | tail -c 32 | base64
}

@test "keygen: creates a 0600 key file and prints its 44-character base64 public key" {
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal 1 "$(printf '%s\n' "$output" | wc -l)" "stdout lines"
	expect_equal "true" "$(jq -r .created <<<"$output")" "created"
	expect_equal "$KEY" "$(jq -r .key_file <<<"$output")" "key_file"
	public_key=$(jq -r .public_key <<<"$output")
	expect_equal 44 "${#public_key}" "public key length"
	expect_equal 32 "$(base64 -d <<<"$public_key" | wc -c)" "decoded public key bytes"
	expect_equal 0600 "$(mode_of "$KEY")" "key file mode"
	expect_equal 45 "$(wc -c <"$KEY")" "key file size"
	expect_equal 32 "$(base64 -d <"$KEY" | wc -c)" "decoded secret key bytes"
}

@test "keygen: the key file is 0600 whatever the umask" {
	run --separate-stderr bash -c 'umask 0377 && exec certctl-keygen --key-file "$1"' keygen "$KEY"
	expect_status 0
	expect_equal 0600 "$(mode_of "$KEY")" "key file mode"
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "false" "$(jq -r .created <<<"$output")" "created"
}

@test "keygen: the printed public key is the one OpenSSL derives from the secret key" {
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "$(openssl_public_key "$KEY")" "$(jq -r .public_key <<<"$output")" "public key"
}

@test "keygen: a second run prints the same public key and leaves the file byte-identical" {
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	first=$(jq -r .public_key <<<"$output")
	checksum=$(sha256sum <"$KEY")
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "" "$stderr" "stderr"
	expect_equal "$first" "$(jq -r .public_key <<<"$output")" "public key"
	expect_equal "false" "$(jq -r .created <<<"$output")" "created"
	expect_equal "$checksum" "$(sha256sum <"$KEY")" "key file checksum"
}

@test "keygen: an existing key made elsewhere is read, not replaced" {
	openssl rand 32 | base64 >"$KEY"
	chmod 600 "$KEY"
	checksum=$(sha256sum <"$KEY")
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "false" "$(jq -r .created <<<"$output")" "created"
	expect_equal "$(openssl_public_key "$KEY")" "$(jq -r .public_key <<<"$output")" "public key"
	expect_equal "$checksum" "$(sha256sum <"$KEY")" "key file checksum"
}

@test "keygen: \$CERTCTL_AGENT_KEY_FILE names the key file when --key-file is absent" {
	export CERTCTL_AGENT_KEY_FILE="$KEYS/from-environment.key"
	run --separate-stderr certctl-keygen
	expect_status 0
	expect_equal "$CERTCTL_AGENT_KEY_FILE" "$(jq -r .key_file <<<"$output")" "key_file"
	expect_equal 0600 "$(mode_of "$CERTCTL_AGENT_KEY_FILE")" "key file mode"
	expect_equal "$(openssl_public_key "$CERTCTL_AGENT_KEY_FILE")" "$(jq -r .public_key <<<"$output")" "public key"
}

@test "keygen: --key-file wins over \$CERTCTL_AGENT_KEY_FILE" {
	export CERTCTL_AGENT_KEY_FILE="$KEYS/from-environment.key"
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 0
	expect_equal "$KEY" "$(jq -r .key_file <<<"$output")" "key_file"
	[ -f "$KEY" ] || { echo "expected $KEY to exist"; return 1; }
	[ ! -e "$CERTCTL_AGENT_KEY_FILE" ] || { echo "did not expect $CERTCTL_AGENT_KEY_FILE"; return 1; }
}

@test "keygen: the process is non-dumpable with no core file before it opens the key" {
	command -v strace >/dev/null || skip "strace is not installed"
	trace="$BATS_TEST_TMPDIR/strace.out"
	# LeakSanitizer cannot run under ptrace; the other tests cover leaks.
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		run --separate-stderr strace -o "$trace" -e trace=prctl,prlimit64,setrlimit,openat \
		certctl-keygen --key-file "$KEY"
	expect_status 0
	dumpable=$(grep -nE 'prctl\(PR_SET_DUMPABLE, (0|SUID_DUMP_DISABLE)\)' "$trace" | cut -d: -f1)
	no_core=$(grep -n 'RLIMIT_CORE, {rlim_cur=0, rlim_max=0}' "$trace" | cut -d: -f1)
	key_open=$(grep -n "openat(.*\"$KEY\"" "$trace" | head -n1 | cut -d: -f1)
	[ -n "$dumpable" ] && [ -n "$no_core" ] && [ -n "$key_open" ] &&
		[ "$dumpable" -lt "$key_open" ] && [ "$no_core" -lt "$key_open" ] ||
		{ echo "expected PR_SET_DUMPABLE 0 and RLIMIT_CORE 0 before the key is opened:"; cat "$trace"; return 1; }
}

@test "keygen: a directory that does not exist is 73 and nothing is created" {
	run --separate-stderr certctl-keygen --key-file "$KEYS/missing/agent.key"
	expect_status 73
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-keygen
	expect_contains "$stderr" "$KEYS/missing/agent.key"
	[ ! -e "$KEYS/missing" ] || { echo "did not expect $KEYS/missing to exist"; return 1; }
}

@test "keygen: a key file that cannot be written completely is removed (73)" {
	# A file size limit of 0 makes write(2) fail with EFBIG once SIGXFSZ is
	# ignored; all output goes through a pipe to an unlimited cat, on stderr.
	run --separate-stderr bash -c 'trap "" XFSZ
		prlimit --fsize=0:0 certctl-keygen --key-file "$1" 2>&1 | cat >&2
		exit "${PIPESTATUS[0]}"' keygen "$KEY"
	expect_status 73
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-keygen
	expect_contains "$stderr" "removed"
	[ ! -e "$KEY" ] || { echo "a partly written $KEY was left behind"; return 1; }
}

@test "keygen: an existing malformed key file is 78 with one line, and is left unchanged" {
	printf 'not a key\n' >"$KEY"
	chmod 600 "$KEY"
	checksum=$(sha256sum <"$KEY")
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 78
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-keygen
	expect_contains "$stderr" "$KEY"
	expect_equal "$checksum" "$(sha256sum <"$KEY")" "key file checksum"
}

@test "keygen: a key file with a second line, or a 31-byte key, is malformed (78)" {
	{ openssl rand 32 | base64; echo extra; } >"$KEY"
	chmod 600 "$KEY"
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 78
	expect_one_line_error certctl-keygen
	openssl rand 31 | base64 >"$KEY"
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 78
	expect_one_line_error certctl-keygen
}

@test "keygen: an existing key file readable by others (0644) is 78 and is left unchanged" {
	openssl rand 32 | base64 >"$KEY"
	chmod 644 "$KEY"
	checksum=$(sha256sum <"$KEY")
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 78
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-keygen
	expect_contains "$stderr" "0644"
	expect_equal "$checksum" "$(sha256sum <"$KEY")" "key file checksum"
	expect_equal 0644 "$(mode_of "$KEY")" "key file mode"
}

@test "keygen: a symbolic link at the path is not followed to create a key" {
	ln -s "$KEYS/elsewhere.key" "$KEY"
	run --separate-stderr certctl-keygen --key-file "$KEY"
	expect_status 78
	expect_equal "" "$output" "stdout"
	expect_one_line_error certctl-keygen
	[ ! -e "$KEYS/elsewhere.key" ] || { echo "the link's target was created"; return 1; }
	[ -L "$KEY" ] || { echo "the link was replaced"; return 1; }
}

@test "keygen: an unknown flag is a usage error (64) and creates nothing" {
	run --separate-stderr certctl-keygen --key-file "$KEY" --bogus
	expect_status 64
	expect_one_line_error certctl-keygen
	[ ! -e "$KEY" ] || { echo "did not expect $KEY to exist"; return 1; }
}

@test "keygen: --dsn is refused (64): keygen never connects to a database" {
	run --separate-stderr certctl-keygen --dsn "dbname=x" --key-file "$KEY"
	expect_status 64
	expect_one_line_error certctl-keygen
	expect_contains "$stderr" "database"
	[ ! -e "$KEY" ] || { echo "did not expect $KEY to exist"; return 1; }
}

@test "keygen: --help prints the usage on stdout and exits 0" {
	run --separate-stderr certctl-keygen --help
	expect_status 0
	expect_contains "$output" "usage: certctl-keygen"
	expect_contains "$output" "--key-file FILE"
	expect_equal "" "$stderr" "stderr"
}

@test "keygen: --version prints the name and version" {
	run --separate-stderr certctl-keygen --version
	expect_status 0
	expect_contains "$output" "certctl-keygen "
}
