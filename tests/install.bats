#!/usr/bin/env bats
# make install: binaries, man pages, migrations and notifier adapters under PREFIX, inside DESTDIR.
load helpers

@test "install: honours PREFIX and DESTDIR and installs binaries, man pages, migrations and notifiers" {
	dest="$BATS_TEST_TMPDIR/root"
	build=$(dirname "$CERTCTL_BIN")
	run make -s -C "$TESTS_DIR/.." BUILD="$build" PREFIX=/opt/certctl DESTDIR="$dest" install
	expect_status 0
	for command in "$CERTCTL_BIN"/certctl-*; do
		[ -x "$dest/opt/certctl/bin/$(basename "$command")" ] || { echo "missing $(basename "$command")"; false; }
	done
	[ -f "$dest/opt/certctl/share/man/man1/certctl-deploy.1" ]
	[ -f "$dest/opt/certctl/share/man/man7/certctl.7" ]
	expect_equal "$(ls "$TESTS_DIR"/../migrations | wc -l)" "$(ls "$dest/opt/certctl/share/certctl/migrations" | wc -l)" "migration files"
	for adapter in "$TESTS_DIR"/../contrib/notifiers/*; do
		[ -x "$dest/opt/certctl/share/certctl/notifiers/$(basename "$adapter")" ] || { echo "missing notifier $(basename "$adapter")"; false; }
	done
	[ ! -e "$dest/opt/certctl/lib/systemd" ] && [ ! -e "$dest/etc/systemd" ]
}

@test "install: an installed certctl-migrate applies the installed migrations" {
	dest="$BATS_TEST_TMPDIR/root"
	make -s -C "$TESTS_DIR/.." BUILD="$(dirname "$CERTCTL_BIN")" PREFIX=/usr DESTDIR="$dest" install
	empty_database
	CERTCTL_MIGRATIONS_DIR="$dest/usr/share/certctl/migrations" run --separate-stderr as_owner "$dest/usr/bin/certctl-migrate" up
	expect_status 0
	expect_equal "$(ls "$TESTS_DIR"/../migrations/*.up.sql | wc -l)" "$(sql "SELECT count(*) FROM schema_migrations")"
}

@test "install: install-units puts the units under PREFIX/lib/systemd/system, naming PREFIX/bin" {
	dest="$BATS_TEST_TMPDIR/root"
	run make -s -C "$TESTS_DIR/.." PREFIX=/opt/certctl DESTDIR="$dest" install-units
	expect_status 0
	for unit in "$TESTS_DIR"/../contrib/systemd/*.service "$TESTS_DIR"/../contrib/systemd/*.timer; do
		[ -f "$dest/opt/certctl/lib/systemd/system/${unit##*/}" ] || { echo "missing ${unit##*/}"; false; }
	done
	run grep -h '^ExecStart=' "$dest"/opt/certctl/lib/systemd/system/*.service
	expect_contains "$output" "/opt/certctl/bin/certctl-claim --reap"
	# The notifier's adapter too: nothing installed names /usr/local.
	expect_contains "$output" "/opt/certctl/share/certctl/notifiers/journal"
	if grep -rF /usr/local "$dest/opt/certctl/lib/systemd/system"; then false; fi
	# The default PREFIX, /usr/local: systemd reads /usr/local/lib/systemd/system.
	make -s -C "$TESTS_DIR/.." DESTDIR="$dest/default" install-units
	cmp "$TESTS_DIR/../contrib/systemd/certctl-reap.service" "$dest/default/usr/local/lib/systemd/system/certctl-reap.service"
}
