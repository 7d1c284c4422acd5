#!/usr/bin/env bats
# The atomic install primitive on its own (tests/unit/test_atomic_apply.c
# builds a plan with deploy_plan_build() and calls atomic_apply()).
load helpers
load lib/pki

setup() {
	PKI="$BATS_TEST_TMPDIR/pki"
	D="$BATS_TEST_TMPDIR/dest"
	make_pki "$PKI"
	make_leaf "$PKI" v1 v1.test
	make_leaf "$PKI" v2 v2.test
	mkdir -p "$D"
	APPLY="$CERTCTL_UNIT/test_atomic_apply"
	cat "$PKI/v1.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/v1.full"
	cat "$PKI/v2.pem" "$PKI/chain.pem" > "$BATS_TEST_TMPDIR/v2.full"
}

# config [extra JSON members]: cert and key in $D, plus the given keys.
config() {
	jq -cn --arg d "$D" --argjson extra "${1:-{\}}" \
		'{cert_path: ($d+"/cert.pem"), key_path: ($d+"/key.pem")} + $extra'
}

# apply VERSION [extra JSON members]
apply() {
	run --separate-stderr "$APPLY" file "$(config "${2:-{\}}")" "$PKI/$1.pem" "$PKI/$1.key" "$PKI/chain.pem"
}

field() { if [ "$1" = -c ]; then printf "%s\n" "$output" | jq -c "$2"; else printf "%s\n" "$output" | jq -r "$1"; fi; }

expect_installed() {
	cmp -s "$BATS_TEST_TMPDIR/$1.full" "$D/cert.pem" || { echo "cert.pem is not $1"; return 1; }
	cmp -s "$PKI/$1.key" "$D/key.pem" || { echo "key.pem is not $1"; return 1; }
}

expect_no_temps() {
	local left
	left=$(find "$D" -name '*.certctl-tmp.*' | wc -l)
	expect_equal 0 "$left" "temp files left in $D"
}

@test "atomic: new files are installed with the default modes and the reload runs" {
	apply v1 "$(jq -cn --arg m "$BATS_TEST_TMPDIR/reloaded" '{reload_command: ["touch", $m]}')"
	expect_status 0
	expect_equal Completed "$(field .outcome)"
	expect_equal no_pre_existing "$(field .metadata.backup_status_cert)"
	expect_equal no_pre_existing "$(field .metadata.backup_status_key)"
	expect_installed v1
	expect_equal 644 "$(stat -c %a "$D/cert.pem")" "cert mode"
	expect_equal 600 "$(stat -c %a "$D/key.pem")" "key mode"
	[ -e "$BATS_TEST_TMPDIR/reloaded" ]
	expect_no_temps
}

@test "atomic: replacing files snapshots the old ones as <path>.certctl-bak.<timestamp>" {
	apply v1
	apply v2
	expect_status 0
	expect_equal snapshotted "$(field .metadata.backup_status_cert)"
	expect_equal snapshotted "$(field .metadata.backup_status_key)"
	expect_installed v2
	cmp "$BATS_TEST_TMPDIR/v1.full" "$D"/cert.pem.certctl-bak.*
	cmp "$PKI/v1.key" "$D"/key.pem.certctl-bak.*
	expect_equal 600 "$(stat -c %a "$D"/key.pem.certctl-bak.*)" "key backup mode"
}

@test "atomic: a failing validate command changes nothing and names the command, its status and stderr" {
	apply v1
	apply v2 "$(jq -cn --arg m "$BATS_TEST_TMPDIR/reloaded" \
		'{validate_command: ["sh","-c","echo first problem >&2; echo second >&2; exit 3"], reload_command: ["touch", $m]}')"
	expect_status 1
	expect_equal Failed "$(field .outcome)"
	expect_contains "$(field .error)" "validate command failed; nothing changed: sh exited 3: first problem second"
	expect_installed v1
	[ ! -e "$BATS_TEST_TMPDIR/reloaded" ]
	expect_no_temps
	expect_equal 0 "$(find "$D" -name '*.certctl-bak.*' | wc -l)" "backups"
}

@test "atomic: the validate command sees the new files through CERTCTL_NEW_*_PATH while the old are in place" {
	apply v1
	apply v2 "$(jq -cn --arg t "$BATS_TEST_TMPDIR" --arg d "$D" \
		'{validate_command: ["sh","-c","cat \"$CERTCTL_NEW_CERT_PATH\" > \"$1/new\"; cat \"$CERTCTL_NEW_KEY_PATH\" > \"$1/newkey\"; cat \"$2/cert.pem\" > \"$1/old\"", "sh", $t, $d]}')"
	expect_status 0
	cmp "$BATS_TEST_TMPDIR/v2.full" "$BATS_TEST_TMPDIR/new"
	cmp "$PKI/v2.key" "$BATS_TEST_TMPDIR/newkey"
	cmp "$BATS_TEST_TMPDIR/v1.full" "$BATS_TEST_TMPDIR/old"
}

@test "atomic: a failing reload restores every file and runs the reload again (exit 1)" {
	apply v1
	script="$BATS_TEST_TMPDIR/reload-once"
	printf '#!/bin/sh\necho run >> "%s/reloads"\n[ -e "%s/failed" ] && exit 0\ntouch "%s/failed"; echo daemon said no >&2; exit 1\n' \
		"$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR" "$BATS_TEST_TMPDIR" > "$script"
	chmod +x "$script"
	apply v2 "$(jq -cn --arg s "$script" '{reload_command: [$s]}')"
	expect_status 1
	expect_equal Failed "$(field .outcome)"
	expect_contains "$(field .error)" "reload command failed; rolled back to pre-deploy state"
	expect_contains "$(field .error)" "daemon said no"
	expect_equal restored "$(field .metadata.backup_status_cert)"
	expect_equal restored "$(field .metadata.backup_status_key)"
	expect_equal null "$(field .metadata.daemon_state_unknown)"
	expect_equal 2 "$(wc -l < "$BATS_TEST_TMPDIR/reloads")" "reload runs"
	expect_installed v1
	expect_no_temps
}

@test "atomic: a failing reload removes files that did not exist before" {
	apply v1 '{"reload_command":["false"]}'
	expect_status 1
	expect_equal removed "$(field .metadata.backup_status_cert)"
	expect_equal removed "$(field .metadata.backup_status_key)"
	[ ! -e "$D/cert.pem" ] && [ ! -e "$D/key.pem" ]
}

@test "atomic: when the reload after the rollback fails too, daemon_state_unknown is set" {
	apply v1
	apply v2 '{"reload_command":["false"]}'
	expect_status 1
	expect_equal true "$(field .metadata.daemon_state_unknown)"
	expect_equal restored "$(field .metadata.backup_status_cert)"
	expect_contains "$(field .error)" "reload after the rollback failed too"
	expect_installed v1
}

@test "atomic: when the backups are gone the restore fails: exit 2, manual_action_required, both failures named" {
	apply v1
	apply v2 "$(jq -cn --arg d "$D" '{reload_command: ["sh","-c","rm -f \"$1\"/*.certctl-bak.*; echo reload broke >&2; exit 1","sh",$d]}')"
	expect_status 2
	expect_equal ManualAction "$(field .outcome)"
	expect_equal true "$(field .metadata.manual_action_required)"
	expect_equal restore_failed "$(field .metadata.backup_status_cert)"
	expect_contains "$(field .error)" "reload broke"
	expect_contains "$(field .error)" "cannot read backup"
	expect_contains "$(field .error)" "manual action required"
}

@test "atomic: backup_retention -1 keeps no backup, so a failed reload needs manual action" {
	apply v1 '{"backup_retention":-1}'
	apply v2 '{"backup_retention":-1}'
	expect_status 0
	expect_equal 0 "$(find "$D" -name '*.certctl-bak.*' | wc -l)" "backups"
	apply v1 '{"backup_retention":-1,"reload_command":["false"]}'
	expect_status 2
	expect_equal true "$(field .metadata.manual_action_required)"
	expect_contains "$(field .error)" "no backup (backup_retention -1)"
}

@test "atomic: identical bytes everywhere are Skipped: no write, no backup, no reload" {
	apply v1
	touch -d '2001-01-01' "$D/cert.pem" "$D/key.pem"
	apply v1 "$(jq -cn --arg m "$BATS_TEST_TMPDIR/reloaded" '{validate_command: ["touch", $m], reload_command: ["touch", $m]}')"
	expect_status 0
	expect_equal Skipped "$(field .outcome)"
	[ ! -e "$BATS_TEST_TMPDIR/reloaded" ]
	expect_equal 2001 "$(date -r "$D/cert.pem" +%Y)" "cert mtime year"
	expect_equal 0 "$(find "$D" -name '*.certctl-bak.*' | wc -l)" "backups"
}

@test "atomic: one changed file is enough to install (no partial skip)" {
	apply v1
	cp "$PKI/v2.key" "$D/key.pem"
	apply v1
	expect_status 0
	expect_equal Completed "$(field .outcome)"
	expect_installed v1
}

@test "atomic: an existing 0640 file owned by nobody:nogroup keeps its owner, group and mode; a key only when root's" {
	apply v1
	chown nobody:nogroup "$D/cert.pem" "$D/key.pem"
	chmod 0640 "$D/cert.pem" "$D/key.pem"
	apply v2
	expect_status 0
	expect_installed v2
	expect_equal "nobody:nogroup 640" "$(stat -c '%U:%G %a' "$D/cert.pem")" "cert"
	# a key's owner is kept only when it is root or the configured owner (issue 13)
	expect_equal "root:root 600" "$(stat -c '%U:%G %a' "$D/key.pem")" "key"
	chown root:nogroup "$D/key.pem"
	chmod 0640 "$D/key.pem"
	apply v1
	expect_status 0
	expect_equal "root:nogroup 640" "$(stat -c '%U:%G %a' "$D/key.pem")" "key"
}

@test "atomic: explicit owner, group and modes from the config win over the existing file" {
	apply v1
	chown nobody:nogroup "$D/cert.pem" "$D/key.pem"
	apply v2 '{"owner":"root","group":"daemon","cert_mode":"0444","key_mode":"0400"}'
	expect_status 0
	expect_equal "root:daemon 444" "$(stat -c '%U:%G %a' "$D/cert.pem")" "cert"
	expect_equal "root:daemon 400" "$(stat -c '%U:%G %a' "$D/key.pem")" "key"
}

@test "atomic: an unknown owner is a configuration error (78) and nothing is written" {
	apply v1 '{"owner":"no-such-user-certctl"}'
	expect_status 78
	expect_contains "$(field .error)" "no-such-user-certctl"
	[ ! -e "$D/cert.pem" ]
	expect_no_temps
}

@test "atomic: only the newest backup_retention backups remain (default 3)" {
	for v in v1 v2 v1 v2 v1 v2; do apply $v; expect_status 0; done
	expect_equal 3 "$(find "$D" -name 'cert.pem.certctl-bak.*' | wc -l)" "cert backups"
	expect_equal 3 "$(find "$D" -name 'key.pem.certctl-bak.*' | wc -l)" "key backups"
	for v in v1 v2 v1; do apply $v '{"backup_retention":1}'; expect_status 0; done
	expect_equal 1 "$(find "$D" -name 'cert.pem.certctl-bak.*' | wc -l)" "cert backups"
	# the one kept is the newest: the bytes v1 replaced, i.e. v2
	cmp "$BATS_TEST_TMPDIR/v2.full" "$D"/cert.pem.certctl-bak.*
}

@test "atomic: leftovers of a killed run (.<name>.certctl-tmp.*) are removed by the next deploy" {
	apply v1
	echo partial > "$D/.cert.pem.certctl-tmp.0000000000000000001.1.1"
	echo partial > "$D/.key.pem.certctl-tmp.junk"
	apply v1
	expect_status 0
	expect_no_temps
}

@test "atomic: a deploy killed with SIGKILL during validate leaves the old files; the next one cleans up" {
	apply v1
	apply v2 '{"validate_command":["sh","-c","kill -9 $PPID; sleep 5"]}'
	expect_status 137
	expect_installed v1
	[ "$(find "$D" -name '*.certctl-tmp.*' | wc -l)" -gt 0 ]
	apply v2
	expect_status 0
	expect_installed v2
	expect_no_temps
}

@test "atomic: a deploy killed with SIGKILL during reload leaves the complete new files" {
	apply v1
	apply v2 '{"reload_command":["sh","-c","kill -9 $PPID; sleep 5"]}'
	expect_status 137
	expect_installed v2
	expect_no_temps
}

@test "atomic: SIGKILL at random moments never leaves a mix of old and new bytes" {
	apply v1
	for i in $(seq 1 40); do
		if [ $((i % 2)) -eq 0 ]; then v=v1; else v=v2; fi
		"$APPLY" file "$(config)" "$PKI/$v.pem" "$PKI/$v.key" "$PKI/chain.pem" >/dev/null 2>&1 &
		pid=$!
		sleep "0.00$((RANDOM % 9))"
		kill -9 "$pid" 2>/dev/null || :
		wait "$pid" 2>/dev/null || :
		cert=$(sha256sum < "$D/cert.pem")
		key=$(sha256sum < "$D/key.pem")
		case "$cert" in
		"$(sha256sum < "$BATS_TEST_TMPDIR/v1.full")" | "$(sha256sum < "$BATS_TEST_TMPDIR/v2.full")") ;;
		*) echo "iteration $i: torn cert.pem"; return 1 ;;
		esac
		case "$key" in
		"$(sha256sum < "$PKI/v1.key")" | "$(sha256sum < "$PKI/v2.key")") ;;
		*) echo "iteration $i: torn key.pem"; return 1 ;;
		esac
	done
	apply v2
	expect_status 0
	expect_installed v2
	expect_no_temps
}

@test "atomic: a reader looping over the file during 200 deploys sees only the complete old or new file" {
	apply v1
	v1sum=$(sha256sum < "$BATS_TEST_TMPDIR/v1.full")
	v2sum=$(sha256sum < "$BATS_TEST_TMPDIR/v2.full")
	(
		reads=0
		while [ ! -e "$BATS_TEST_TMPDIR/stop" ]; do
			sum=$(sha256sum < "$D/cert.pem")
			[ "$sum" = "$v1sum" ] || [ "$sum" = "$v2sum" ] || echo "torn: $sum" >> "$BATS_TEST_TMPDIR/torn"
			reads=$((reads + 1))
		done
		echo "$reads" > "$BATS_TEST_TMPDIR/reads"
	) &
	reader=$!
	for i in $(seq 1 100); do
		"$APPLY" file "$(config)" "$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem" >/dev/null
		"$APPLY" file "$(config)" "$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem" >/dev/null
	done
	touch "$BATS_TEST_TMPDIR/stop"
	wait "$reader"
	[ ! -e "$BATS_TEST_TMPDIR/torn" ] || { cat "$BATS_TEST_TMPDIR/torn"; return 1; }
	[ "$(cat "$BATS_TEST_TMPDIR/reads")" -gt 50 ]
}

@test "atomic: two processes deploying to the same file serialize on the lock" {
	slow=$(jq -cn --arg l "$BATS_TEST_TMPDIR/log" '{validate_command: ["sh","-c","echo start >> \"$1\"; sleep 0.5; echo end >> \"$1\"","sh",$l]}')
	"$APPLY" file "$(config "$slow")" "$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem" >/dev/null &
	first=$!
	"$APPLY" file "$(config "$slow")" "$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem" >/dev/null &
	second=$!
	wait "$first"
	wait "$second"
	expect_equal "start end start end" "$(tr '\n' ' ' < "$BATS_TEST_TMPDIR/log" | sed 's/ $//')" "validate runs"
}

@test "atomic: commands run as argv, never through a shell, with stdin from /dev/null" {
	cd "$BATS_TEST_TMPDIR"
	apply v1 "$(jq -cn --arg f 'a; touch b' --arg i "$BATS_TEST_TMPDIR/stdin" \
		'{validate_command: ["touch", $f], reload_command: ["sh","-c","cat > \"$1\"","sh",$i]}')"
	expect_status 0
	[ -e "$BATS_TEST_TMPDIR/a; touch b" ]
	[ ! -e "$BATS_TEST_TMPDIR/b" ]
	expect_equal 0 "$(stat -c %s "$BATS_TEST_TMPDIR/stdin")" "bytes on the command's stdin"
}

@test "atomic: a command that runs past CERTCTL_COMMAND_TIMEOUT is killed and the deploy fails cleanly" {
	apply v1
	SECONDS=0
	CERTCTL_COMMAND_TIMEOUT=1 run --separate-stderr "$APPLY" file "$(config '{"validate_command":["sleep","30"]}')" \
		"$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem"
	expect_status 1
	expect_contains "$(field .error)" "sleep timed out after 1 s"
	[ "$SECONDS" -lt 10 ]
	expect_installed v1
	expect_no_temps
}

@test "atomic: a command that cannot be executed fails the deploy with its name" {
	apply v1 '{"validate_command":["certctl-no-such-command"]}'
	expect_status 1
	expect_contains "$(field .error)" "certctl-no-such-command exited 127: cannot execute"
	[ ! -e "$D/cert.pem" ]
}

@test "atomic: haproxy's combined file holds leaf, chain and key, created 0600" {
	run --separate-stderr "$APPLY" haproxy "$(jq -cn --arg d "$D" '{combined_path: ($d+"/site.pem"), validate_command: [], reload_command: []}')" \
		"$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem"
	expect_status 0
	cat "$PKI/v1.pem" "$PKI/chain.pem" "$PKI/v1.key" | cmp - "$D/site.pem"
	expect_equal 600 "$(stat -c %a "$D/site.pem")" "combined mode"
	expect_equal no_pre_existing "$(field .metadata.backup_status_cert)"
}

@test "atomic: a chain_path gets the chain alone and the cert file the leaf alone" {
	run --separate-stderr "$APPLY" file "$(config "$(jq -cn --arg d "$D" '{chain_path: ($d+"/chain.pem")}')")" \
		"$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem"
	expect_status 0
	cmp "$PKI/v1.pem" "$D/cert.pem"
	cmp "$PKI/chain.pem" "$D/chain.pem"
	expect_equal no_pre_existing "$(field .metadata.backup_status_chain)"
}

@test "atomic: the dry run lists the files that differ and writes nothing" {
	apply v1
	cp "$PKI/v2.key" "$BATS_TEST_TMPDIR/other.key"
	run --separate-stderr "$APPLY" --dry-run file "$(config)" "$PKI/v1.pem" "$PKI/v2.key" "$PKI/chain.pem"
	expect_status 0
	expect_equal "[\"$D/key.pem\"]" "$(field -c .would_change)"
	expect_installed v1
	expect_no_temps
}

# Hostile hosts (issue 13): a destination directory another user can write to.

# shared_dir: $D becomes a directory owned by nobody, which nobody can reach.
shared_dir() {
	SHARED_TOP=$(mktemp -d /tmp/certctl-shared.XXXXXX)
	chmod 0755 "$SHARED_TOP"
	D="$SHARED_TOP/dest"
	mkdir "$D"
	chown nobody:nogroup "$D"
}

teardown() {
	[ -z "${SHARED_TOP:-}" ] || rm -rf "$SHARED_TOP"
}

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

expect_private_key() {
	cmp -s "$PKI/$1.key" "$D/key.pem" || { echo "key.pem is not $1"; return 1; }
	[ ! -L "$D/key.pem" ] || { echo "key.pem is still a symbolic link"; return 1; }
	expect_equal "root:root 600" "$(stat -c '%U:%G %a' "$D/key.pem")" "key owner and mode"
	if as_nobody cat "$D/key.pem" >/dev/null 2>&1; then echo "nobody can read key.pem"; return 1; fi
}

@test "atomic: a destination directory writable by nobody is refused with 78 and nothing is written" {
	shared_dir
	apply v1
	expect_status 78
	expect_contains "$(field .error)" "directory $D can be written by other users"
	expect_contains "$(field .error)" "allow_shared_directory"
	expect_equal 0 "$(find "$D" -mindepth 1 | wc -l)" "entries in $D"
	chown root:nogroup "$D"
	chmod 0775 "$D"
	apply v1
	expect_status 78
	chmod 1777 "$D"
	chown root "$D"
	apply v1
	expect_status 0
}

@test "atomic: allow_shared_directory: a 0644 key file nobody swapped in ends as a root 0600 key nobody cannot read" {
	shared_dir
	echo probe > "$D/probe"
	as_nobody cat "$D/probe" >/dev/null  # nobody can reach $D: the refusals below are the key's mode
	apply v1 '{"allow_shared_directory":true}'
	expect_status 0
	expect_private_key v1
	as_nobody sh -c 'rm -f "$1/key.pem" && echo bait > "$1/key.pem" && chmod 0644 "$1/key.pem"' sh "$D"
	expect_equal "nobody 644" "$(stat -c '%U %a' "$D/key.pem")" "swapped-in file"
	apply v2 '{"allow_shared_directory":true}'
	expect_status 0
	expect_private_key v2
	for backup in "$D"/key.pem.certctl-bak.*; do
		expect_equal "root 600" "$(stat -c '%U %a' "$backup")" "key backup $backup"
	done
}

@test "atomic: allow_shared_directory: a symbolic link at the key path is replaced, never written through" {
	shared_dir
	apply v1 '{"allow_shared_directory":true}'
	expect_status 0
	as_nobody sh -c 'echo bait > "$1/bait" && chmod 0666 "$1/bait" && rm -f "$1/key.pem" && ln -s "$1/bait" "$1/key.pem"' sh "$D"
	apply v2 '{"allow_shared_directory":true}'
	expect_status 0
	expect_private_key v2
	expect_equal bait "$(cat "$D/bait")" "the link's target"
	expect_equal "nobody 666" "$(stat -c '%U %a' "$D/bait")" "the link's target"
}

@test "atomic: a parent directory replaced by a symbolic link between two deploys: nothing is written through it" {
	T="$BATS_TEST_TMPDIR/top"
	D="$T/parent/dir"
	mkdir -p "$D" "$BATS_TEST_TMPDIR/elsewhere/dir"
	apply v1
	expect_status 0
	echo old > "$BATS_TEST_TMPDIR/elsewhere/dir/cert.pem"
	mv "$T/parent" "$T/parent.moved"
	ln -s "$BATS_TEST_TMPDIR/elsewhere" "$T/parent"
	apply v2
	expect_status 73
	expect_contains "$(field .error)" "$T/parent is a symbolic link or not a directory"
	expect_equal "cert.pem" "$(ls -A "$BATS_TEST_TMPDIR/elsewhere/dir" | tr '\n' ' ' | sed 's/ $//')" "entries behind the link"
	expect_equal old "$(cat "$BATS_TEST_TMPDIR/elsewhere/dir/cert.pem")" "the file behind the link"
	run --separate-stderr "$APPLY" --dry-run file "$(config)" "$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem"
	expect_status 73
}

# fifo_refused ARGS...: the driver exits 73 within a second naming the FIFO.
fifo_refused() {
	local start end
	start=$(date +%s%N)
	run --separate-stderr timeout 10 "$APPLY" "$@"
	end=$(date +%s%N)
	expect_status 73
	expect_contains "$output$stderr" "$D/cert.pem: exists and is not a regular file"
	[ $(( (end - start) / 1000000 )) -lt 1000 ] || { echo "took $(( (end - start) / 1000000 )) ms"; return 1; }
}

@test "atomic: a FIFO at a destination is 73 within a second for a redeploy, a new version and --dry-run; the lock is free" {
	apply v1
	expect_status 0
	rm "$D/cert.pem"
	mkfifo "$D/cert.pem"
	fifo_refused file "$(config)" "$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem"
	fifo_refused file "$(config)" "$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem"
	fifo_refused --dry-run file "$(config)" "$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem"
	[ -p "$D/cert.pem" ]
	cmp "$PKI/v1.key" "$D/key.pem"
	expect_no_temps
	expect_equal 0 "$(find "$D" -name '*.certctl-bak.*' | wc -l)" "backups"
	flock -n "$D/.cert.pem.certctl-lock" true
	flock -n "$D/.key.pem.certctl-lock" true
}

@test "atomic: a FIFO planted as the lock file is refused with 73, never waited on" {
	mkfifo "$D/.cert.pem.certctl-lock"
	run --separate-stderr timeout 10 "$APPLY" file "$(config)" "$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem"
	expect_status 73
	expect_contains "$(field .error)" "is not a regular file"
	[ ! -e "$D/cert.pem" ]
}

# Run deadline (issue 13): commands end before the unit's TimeoutStartSec would kill the deploy.

@test "atomic: under CERTCTL_RUN_DEADLINE a reload's timeout is cut to the time left minus the rollback reserve" {
	apply v1
	start=$(date +%s%N)
	CERTCTL_RUN_DEADLINE=4 CERTCTL_COMMAND_TIMEOUT=60 \
		run --separate-stderr timeout 30 "$APPLY" file "$(config '{"reload_command":["sleep","30"]}')" \
		"$PKI/v2.pem" "$PKI/v2.key" "$PKI/chain.pem"
	elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
	expect_status 1
	expect_contains "$(field .error)" "sleep timed out after"
	expect_contains "$(field .error)" "cut to fit the run deadline, CERTCTL_RUN_DEADLINE"
	# the first reload got 4 s less the 1 s reserve, the reload after the rollback the rest
	expect_equal true "$(field .metadata.daemon_state_unknown)"
	expect_installed v1
	[ "$elapsed" -ge 3000 ] && [ "$elapsed" -lt 6000 ] || { echo "took $elapsed ms, expected about 4000"; return 1; }
}

@test "atomic: a malformed CERTCTL_RUN_DEADLINE is a usage error (64) and nothing is written" {
	CERTCTL_RUN_DEADLINE=soon run --separate-stderr "$APPLY" file "$(config)" "$PKI/v1.pem" "$PKI/v1.key" "$PKI/chain.pem"
	expect_status 64
	expect_contains "$stderr" "CERTCTL_RUN_DEADLINE: 'soon': must be a number of seconds from 1 to 86400"
	[ ! -e "$D/cert.pem" ]
}
