#!/usr/bin/env bats
# contrib/systemd: the units load cleanly, are hardened, and their pipelines
# pass the instance name as data and report the right exit status.
load helpers

UNITS_DIR="$TESTS_DIR/../contrib/systemd"
SERVICES="certctl-heartbeat@.service certctl-agent@.service certctl-reap.service certctl-deploy-ssh.service certctl-notify.service certctl-issue.service
	certctl-verify-all.service"
TIMERS="certctl-agent@.timer certctl-reap.timer certctl-deploy-ssh.timer"

# No systemd runs in the test container: verify against a throw-away root that
# holds systemd's own units, ours, and stub executables where ExecStart points
# (verify insists the binaries exist). Man pages are not installed there: --man=no.
setup() {
	ROOT="$BATS_TEST_TMPDIR/root"
	mkdir -p "$ROOT/etc/systemd/system" "$ROOT/usr/lib/systemd" "$ROOT/usr/local/bin" "$ROOT/bin"
	cp -a /usr/lib/systemd/system "$ROOT/usr/lib/systemd/"
	cp "$UNITS_DIR"/*.service "$UNITS_DIR"/*.timer "$ROOT/etc/systemd/system/"
	cp /bin/bash "$ROOT/bin/bash"
	for command in "$TESTS_DIR"/../cmd/certctl-*; do
		command=${command##*/}
		printf '#!/bin/sh\nexit 0\n' > "$ROOT/usr/local/bin/$command"
		chmod 0755 "$ROOT/usr/local/bin/$command"
	done
}

# verify a unit name (templates as an instance) in $ROOT: status 0 and nothing on stderr.
verify_unit() {
	run --separate-stderr systemd-analyze verify --man=no --generators=no --root="$ROOT" "$1"
	expect_status 0 || { echo "unit: $1"; return 1; }
	expect_equal "" "$stderr" "$1: systemd-analyze verify diagnostics"
}

instance_of() {
	case "$1" in
	*@.*) echo "${1/@./@agent-web01.}" ;;
	*) echo "$1" ;;
	esac
}

# The key=value line of a unit file, or nothing.
unit_line() {
	grep -x "$2" "$UNITS_DIR/$1"
}

@test "systemd: every service and timer passes systemd-analyze verify without a diagnostic" {
	for unit in $SERVICES $TIMERS; do
		verify_unit "$unit"
		verify_unit "$(instance_of "$unit")"
	done
}

@test "systemd: verify would catch a mistake (a misspelt key, a missing binary)" {
	sed 's/^ProtectSystem=strict/ProtectSystm=strict/' "$UNITS_DIR/certctl-reap.service" \
		> "$ROOT/etc/systemd/system/certctl-reap.service"
	run --separate-stderr systemd-analyze verify --man=no --generators=no --root="$ROOT" certctl-reap.service
	expect_contains "$stderr" "Unknown key 'ProtectSystm'"
	cp "$UNITS_DIR/certctl-reap.service" "$ROOT/etc/systemd/system/"
	rm "$ROOT/usr/local/bin/certctl-claim"
	run --separate-stderr systemd-analyze verify --man=no --generators=no --root="$ROOT" certctl-reap.service
	[ "$status" -ne 0 ] || { echo "verify passed with certctl-claim missing"; return 1; }
}

@test "systemd: the agent unit with the example ReadWritePaths drop-in installed still verifies" {
	mkdir -p "$ROOT/etc/systemd/system/certctl-agent@.service.d"
	cp "$UNITS_DIR/certctl-agent@.service.d/certificate-paths.conf.example" \
		"$ROOT/etc/systemd/system/certctl-agent@.service.d/certificate-paths.conf"
	verify_unit certctl-agent@agent-web01.service
	grep -q '^ReadWritePaths=/' "$ROOT/etc/systemd/system/certctl-agent@.service.d/certificate-paths.conf"
}

@test "systemd: every service carries the hardening keys and reads /etc/certctl/env" {
	for service in $SERVICES; do
		for line in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes \
			"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" ProtectKernelTunables=yes \
			ProtectKernelModules=yes ProtectControlGroups=yes LockPersonality=yes \
			RestrictRealtime=yes RestrictSUIDSGID=yes MemoryDenyWriteExecute=yes \
			SystemCallArchitectures=native SystemCallFilter=@system-service \
			EnvironmentFile=-/etc/certctl/env; do
			unit_line "$service" "$line" >/dev/null || { echo "$service lacks $line"; return 1; }
		done
	done
}

@test "systemd: systemd-analyze security rates every service OK (exposure below 5)" {
	for service in $SERVICES; do
		unit=$(instance_of "$service")
		run --separate-stderr systemd-analyze security --offline=true --root="$ROOT" --threshold=49 "$unit"
		expect_status 0 || { echo "unit: $unit"; return 1; }
		expect_contains "$output" "Overall exposure level for $unit"
	done
}

@test "systemd: only the agent unit runs as root; the others run as the certctl user with no capabilities" {
	for service in certctl-heartbeat@.service certctl-reap.service certctl-deploy-ssh.service certctl-notify.service certctl-issue.service \
		certctl-verify-all.service; do
		unit_line "$service" User=certctl >/dev/null || { echo "$service: no User=certctl"; return 1; }
		unit_line "$service" CapabilityBoundingSet= >/dev/null || { echo "$service keeps capabilities"; return 1; }
	done
	run grep -c '^User=' "$UNITS_DIR/certctl-agent@.service"
	expect_equal 0 "$output" "User= lines in certctl-agent@.service"
}

@test "systemd: the heartbeat unit beats every 60 s, restarts on failure, but not after exit 4 (retired)" {
	unit_line certctl-heartbeat@.service 'ExecStart=/usr/local/bin/certctl-heartbeat --agent %i --every 60'
	unit_line certctl-heartbeat@.service Restart=on-failure
	unit_line certctl-heartbeat@.service RestartPreventExitStatus=4
}

@test "systemd: the reaper runs certctl-claim --reap" {
	unit_line certctl-reap.service 'ExecStart=/usr/local/bin/certctl-claim --reap'
}

@test "systemd: the notifier follows with the installed journal adapter, stops cleanly on SIGTERM (75), restarts after a lost database" {
	unit_line certctl-notify.service 'ExecStart=/usr/local/bin/certctl-notify --follow -- /usr/local/share/certctl/notifiers/journal'
	unit_line certctl-notify.service SuccessExitStatus=75
	unit_line certctl-notify.service Restart=on-failure
	unit_line certctl-notify.service 'RestartPreventExitStatus=64 78'
	[ -x "$TESTS_DIR/../contrib/notifiers/journal" ]
}

@test "systemd: the probe timer starts certctl-verify --all every 15 minutes, delayed at random by up to 5" {
	verify_unit certctl-verify-all.timer
	unit_line certctl-verify-all.service 'ExecStart=/usr/local/bin/certctl-verify --all'
	unit_line certctl-verify-all.timer 'OnCalendar=\*:0/15'
	unit_line certctl-verify-all.timer 'RandomizedDelaySec=5min'
	unit_line certctl-verify-all.timer WantedBy=timers.target
	run --separate-stderr systemd-analyze calendar --iterations=2 '*:0/15'
	expect_status 0
	expect_contains "$output" "*-*-* *:00/15:00"
}

@test "systemd: the issue unit follows the queue, restarts on failure but not after 64 or 78, and stops cleanly (75)" {
	unit_line certctl-issue.service 'ExecStart=/usr/local/bin/certctl-issue --follow'
	unit_line certctl-issue.service Restart=on-failure
	unit_line certctl-issue.service 'RestartPreventExitStatus=64 78'
	unit_line certctl-issue.service SuccessExitStatus=75
}

@test "systemd: each timer fires every minute and starts the service of its own name" {
	for timer in $TIMERS; do
		unit_line "$timer" OnCalendar=minutely >/dev/null || { echo "$timer: not minutely"; return 1; }
		[ -f "$UNITS_DIR/${timer%.timer}.service" ] || { echo "$timer: no ${timer%.timer}.service"; return 1; }
		unit_line "$timer" WantedBy=timers.target >/dev/null || { echo "$timer: not installable"; return 1; }
	done
	run --separate-stderr systemd-analyze calendar minutely
	expect_status 0
	expect_contains "$output" "*-*-* *:*:00"
}

# Runs a unit's ExecStart the way systemd would: %i and $$ expanded, the
# instance passed as one word, our binaries replaced by recording stubs.
run_exec_start() {
	local unit=$1 instance=$2 line word
	local -a argv=()
	line=$(sed -n 's/^ExecStart=//p' "$UNITS_DIR/$unit")
	line=${line//\$\$/\$}
	line=${line//\/usr\/local\/bin\//$STUBS\/}
	eval "set -- $line"
	for word in "$@"; do
		[ "$word" = "%i" ] && word=$instance
		argv+=("$word")
	done
	run --separate-stderr "${argv[@]}"
}

make_stubs() {
	STUBS="$BATS_TEST_TMPDIR/stubs"
	mkdir -p "$STUBS"
	cat > "$STUBS/certctl-claim" <<'STUB'
#!/bin/sh
printf '%s\n' "$@" > "$STUBS/claim.args"
echo '{"id":"job-1","type":"Deployment"}'
exit "${CLAIM_STATUS:-0}"
STUB
	cat > "$STUBS/certctl-csr" <<'STUB'
#!/bin/sh
tee "$STUBS/csr.stdin"
exit "${CSR_STATUS:-0}"
STUB
	cat > "$STUBS/certctl-deploy" <<'STUB'
#!/bin/sh
cat > "$STUBS/deploy.stdin"
exit "${DEPLOY_STATUS:-0}"
STUB
	chmod 0755 "$STUBS/certctl-claim" "$STUBS/certctl-csr" "$STUBS/certctl-deploy"
	export STUBS
}

@test "systemd: the agent pipeline is claim --agent INSTANCE | certctl-csr | certctl-deploy" {
	make_stubs
	run_exec_start certctl-agent@.service agent-web01
	expect_status 0
	# no --type: the agent's AwaitingCSR jobs (Issuance, Renewal) come along for certctl-csr
	expect_equal "--agent agent-web01 --limit 10" "$(tr '\n' ' ' < "$STUBS/claim.args" | sed 's/ $//')"
	expect_equal '{"id":"job-1","type":"Deployment"}' "$(cat "$STUBS/csr.stdin")"
	expect_equal '{"id":"job-1","type":"Deployment"}' "$(cat "$STUBS/deploy.stdin")"
}

@test "systemd: the agent unit keeps its own keys in a 0700 state directory named by CERTCTL_KEY_DIR" {
	unit_line certctl-agent@.service 'StateDirectory=certctl/keys' >/dev/null
	unit_line certctl-agent@.service 'StateDirectoryMode=0700' >/dev/null
	unit_line certctl-agent@.service 'Environment=CERTCTL_KEY_DIR=%S/certctl/keys' >/dev/null
	run --separate-stderr systemd-analyze verify --man=no --generators=no --root="$ROOT" certctl-agent@agent-web01.service
	expect_status 0
}

@test "systemd: the instance name is one argument, never shell text" {
	make_stubs
	run_exec_start certctl-agent@.service "x; touch $BATS_TEST_TMPDIR/pwned"
	expect_status 0
	[ ! -e "$BATS_TEST_TMPDIR/pwned" ] || { echo "the instance name ran as a command"; return 1; }
	expect_equal "x; touch $BATS_TEST_TMPDIR/pwned" "$(sed -n 2p "$STUBS/claim.args")"
}

@test "systemd: the pipeline fails when any part fails (pipefail): a retired agent's exit 4 shows" {
	make_stubs
	CLAIM_STATUS=4 run_exec_start certctl-agent@.service agent-web01
	expect_status 4
	DEPLOY_STATUS=1 run_exec_start certctl-agent@.service agent-web01
	expect_status 1
	CSR_STATUS=77 run_exec_start certctl-agent@.service agent-web01
	expect_status 77
}

@test "systemd: the ssh deploy unit claims as CERTCTL_SSH_AGENT, and refuses to run without it" {
	make_stubs
	CERTCTL_SSH_AGENT=agent-control01 run_exec_start certctl-deploy-ssh.service unused
	expect_status 0
	expect_equal "--agent agent-control01 --type Deployment --limit 10" "$(tr '\n' ' ' < "$STUBS/claim.args" | sed 's/ $//')"
	rm -f "$STUBS/claim.args"
	unset CERTCTL_SSH_AGENT
	run_exec_start certctl-deploy-ssh.service unused
	expect_status 78
	expect_contains "$stderr" "CERTCTL_SSH_AGENT"
	[ ! -e "$STUBS/claim.args" ] || { echo "certctl-claim ran without an agent"; return 1; }
}

@test "systemd: env.example names the two variables the commands read" {
	grep -q '^CERTCTL_DSN=' "$UNITS_DIR/env.example"
	grep -q '^CERTCTL_KEY_FILE=' "$UNITS_DIR/env.example"
}

@test "systemd: agent units get the agent's key and password as credentials, never the control host's key" {
	for unit in certctl-agent@.service certctl-deploy-ssh.service; do
		grep -q '^LoadCredential=agent.key:' "$UNITS_DIR/$unit" || { echo "$unit: no agent key credential"; return 1; }
		grep -q '^Environment=CERTCTL_AGENT_KEY_FILE=%d/agent.key CERTCTL_PASSWORD_FILE=%d/db.password$' \
			"$UNITS_DIR/$unit" || { echo "$unit: key and password paths"; return 1; }
	done
	grep -q '^LoadCredential=db.password:/etc/certctl/db.password$' "$UNITS_DIR/certctl-heartbeat@.service"
	grep -q '^Environment=CERTCTL_PASSWORD_FILE=%d/db.password$' "$UNITS_DIR/certctl-heartbeat@.service"
	run grep -E '^(Environment|LoadCredential).*(CERTCTL_KEY_FILE|/etc/certctl/key)' \
		"$UNITS_DIR/certctl-agent@.service" "$UNITS_DIR/certctl-heartbeat@.service"
	expect_status 1
}

@test "systemd: the control host renews hourly, at a random minute, catching up after downtime" {
	verify_unit certctl-renew.service
	verify_unit certctl-renew.timer
	unit_line certctl-renew.service 'ExecStart=/usr/local/bin/certctl-renew'
	unit_line certctl-renew.timer OnCalendar=hourly
	unit_line certctl-renew.timer RandomizedDelaySec=45min
	unit_line certctl-renew.timer Persistent=yes
}
