#!/usr/bin/env bats
# The Debian package: `make deb` builds it, lintian reports nothing, and
# installed by dpkg into a throw-away root it holds the commands, man pages,
# migrations, adapters and units, creates the certctl user, enables no unit,
# and its certctl-migrate applies the migrations from /usr/share/certctl.
load helpers

# A throw-away root: the host's /usr, /etc and /var under overlays whose upper
# layers ($LAYERS) take whatever dpkg and the maintainer scripts write, so the
# host is untouched; /tmp (PGPASSFILE), /proc and /dev are the host's, /run an
# empty tmpfs (adduser's lock). The mounts live in a private mount namespace,
# for "$@" alone; the layers stay.
in_root() {
	unshare --mount --propagation private bash -euc '
		mount --bind /tmp "$ROOT/tmp"
		for dir in usr etc var; do
			mount -t overlay overlay -o "lowerdir=/$dir,upperdir=$LAYERS/$dir,workdir=$LAYERS/work/$dir" "$ROOT/$dir"
		done
		mount --rbind /proc "$ROOT/proc"
		mount --rbind /dev "$ROOT/dev"
		mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"
		exec "$@"' in_root "$@"
}

# The tree's files, but for build directories and git's.
tree_files() {
	(cd "$TESTS_DIR/.." && find . \( -path './build*' -o -path ./.git \) -prune -o -print | sort)
}

# Built once for the file, outside the tree; installed with dpkg --root, which
# runs the maintainer scripts chrooted into $ROOT.
setup_file() {
	local build="$BATS_FILE_TMPDIR/build" dir
	tree_files > "$BATS_FILE_TMPDIR/tree-before"
	if ! DEB_BUILD_OPTIONS='nocheck parallel=2' make -C "$TESTS_DIR/.." BUILD="$build" deb \
		> "$BATS_FILE_TMPDIR/build.log" 2>&1; then
		tail -n 40 "$BATS_FILE_TMPDIR/build.log"
		return 1
	fi
	DEB_DIR="$build/deb"
	DEB=$(echo "$DEB_DIR"/certctl_*_"$(dpkg --print-architecture)".deb)
	ROOT="$BATS_FILE_TMPDIR/root" LAYERS="$BATS_FILE_TMPDIR/layers"
	export DEB_DIR DEB ROOT LAYERS
	for dir in usr etc var; do
		mkdir -p "$ROOT/$dir" "$LAYERS/$dir" "$LAYERS/work/$dir"
	done
	mkdir -p "$ROOT/tmp" "$ROOT/proc" "$ROOT/dev" "$ROOT/run"
	for dir in bin sbin lib lib64; do
		ln -s "usr/$dir" "$ROOT/$dir"
	done
	# man-db's trigger would index every man page of the host again: 6 s, untested.
	in_root rm -f "$ROOT/var/lib/man-db/auto-update"
	if ! in_root dpkg --root="$ROOT" -i "$DEB" > "$BATS_FILE_TMPDIR/dpkg.log" 2>&1; then
		cat "$BATS_FILE_TMPDIR/dpkg.log"
		return 1
	fi
}

@test "deb: make deb builds the package outside the tree, and lintian reports nothing" {
	[ -f "$DEB" ]
	[ -f "$DEB_DIR/certctl_$(dpkg-parsechangelog -l "$TESTS_DIR/../debian/changelog" -S Version)_$(dpkg --print-architecture).changes" ]
	expect_equal "$(cat "$BATS_FILE_TMPDIR/tree-before")" "$(tree_files)" "the tree's files after the build"
	# No error and no warning: lintian's default report is empty.
	run --separate-stderr lintian --fail-on error,warning "$DEB_DIR"/certctl_*.changes
	expect_status 0
	expect_equal "" "$output" "lintian"
}

@test "deb: the build takes dpkg-buildflags (hardening, the build path mapped away)" {
	run readelf -d "$LAYERS/usr/bin/certctl-migrate"
	expect_contains "$output" "BIND_NOW"
	expect_contains "$output" "PIE"
	# -ffile-prefix-map comes from dpkg-buildflags alone: every compilation
	# unit's directory in the debug symbols is ".", not the build directory.
	dbgsym=$(echo "$DEB_DIR"/certctl-dbgsym_*.deb)
	dpkg-deb -x "$dbgsym" "$BATS_TEST_TMPDIR/dbgsym"
	debug=$(find "$BATS_TEST_TMPDIR/dbgsym/usr/lib/debug" -name '*.debug' | head -n 1)
	[ -n "$debug" ]
	expect_equal "." "$(readelf --debug-dump=info "$debug" | sed -n 's/.*DW_AT_comp_dir.*: //p' | sort -u)" "DW_AT_comp_dir"
}

@test "deb: dpkg installs the commands, man pages, migrations, adapters and units" {
	tree="$TESTS_DIR/.."
	for command in "$tree"/cmd/certctl-*; do
		[ -x "$LAYERS/usr/bin/${command##*/}" ] || { echo "missing /usr/bin/${command##*/}"; false; }
	done
	for page in "$tree"/man/*.[1-8]; do
		page=${page##*/}
		[ -f "$LAYERS/usr/share/man/man${page##*.}/$page.gz" ] || { echo "missing man page $page"; false; }
	done
	for migration in "$tree"/migrations/*.sql; do
		cmp "$migration" "$LAYERS/usr/share/certctl/migrations/${migration##*/}"
	done
	for kind in issuers notifiers; do
		for adapter in "$tree/contrib/$kind"/*; do
			[ -e "$adapter" ] || continue
			[ -e "$LAYERS/usr/share/certctl/$kind/${adapter##*/}" ] || { echo "missing $kind/${adapter##*/}"; false; }
		done
	done
	for unit in "$tree"/contrib/systemd/*.service "$tree"/contrib/systemd/*.timer; do
		[ -f "$LAYERS/usr/lib/systemd/system/${unit##*/}" ] || { echo "missing unit ${unit##*/}"; false; }
	done
	[ -f "$LAYERS/usr/share/doc/certctl/examples/env.example" ]
	[ -f "$LAYERS/usr/share/doc/certctl/examples/certctl-agent@.service.d/certificate-paths.conf.example" ]
	run dpkg-deb -c "$DEB"
	expect_status 0
	if grep -F /usr/local <<<"$output"; then false; fi
	depends=$(dpkg-deb -f "$DEB" Depends)
	for library in adduser libpq5 libssl3 libssh2-1 libjson-c5 libsodium23; do
		expect_contains "$depends" "$library"
	done
	# The package's state as dpkg recorded it in the root, not the host's.
	expect_equal "install ok installed" "$(in_root dpkg --root="$ROOT" -s certctl | sed -n 's/^Status: //p')"
	run dpkg-query -W certctl
	[ "$status" -ne 0 ]
}

@test "deb: the installed units name /usr/bin and pass systemd-analyze verify in the root" {
	run grep -h '^ExecStart=' "$LAYERS"/usr/lib/systemd/system/certctl-*.service
	expect_contains "$output" "/usr/bin/certctl-claim"
	if grep -rF /usr/local "$LAYERS"/usr/lib/systemd/system/certctl*; then false; fi
	# verify fails when an ExecStart binary is missing from the root.
	for unit in "$LAYERS"/usr/lib/systemd/system/certctl*; do
		unit=${unit##*/}
		unit=${unit/@./@agent-web01.}
		run --separate-stderr in_root systemd-analyze verify --man=no --generators=no --root="$ROOT" "$unit"
		expect_status 0 || { echo "unit: $unit"; false; }
		expect_equal "" "$stderr" "$unit: systemd-analyze verify diagnostics"
	done
}

@test "deb: postinst creates the certctl system user and group, and enables no unit" {
	IFS=: read -r name _ uid gid _ home shell < <(grep '^certctl:' "$LAYERS/etc/passwd")
	expect_equal "certctl" "$name"
	[ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] || { echo "uid $uid is not a system uid"; false; }
	expect_equal "/nonexistent /usr/sbin/nologin" "$home $shell"
	expect_equal "$gid" "$(grep '^certctl:' "$LAYERS/etc/group" | cut -d: -f3)" "certctl group"
	[ ! -e "$ROOT/nonexistent" ]
	run grep -c '^certctl:' /etc/passwd
	expect_equal 0 "$output" "certctl users on the host"
	# Enabling makes *.wants/ links in /etc/systemd/system (systemctl) and in
	# deb-systemd-helper's state under /var/lib/systemd.
	expect_equal "" "$(find "$LAYERS/etc" "$LAYERS/var" -path '*.wants/certctl*')" "enabled units"
	# configure again (as on an upgrade): the user exists, postinst still succeeds.
	in_root dpkg --root="$ROOT" --force-confnew -i "$DEB" > "$BATS_TEST_TMPDIR/dpkg.log" 2>&1 \
		|| { cat "$BATS_TEST_TMPDIR/dpkg.log"; false; }
	expect_equal 1 "$(grep -c '^certctl:' "$LAYERS/etc/passwd")" "certctl users"
}

@test "deb: the installed certctl-migrate up applies the installed migrations from /usr/share/certctl" {
	empty_database
	run --separate-stderr as_owner in_root chroot "$ROOT" env -u CERTCTL_MIGRATIONS_DIR /usr/bin/certctl-migrate up
	expect_status 0
	shipped=$(ls "$LAYERS"/usr/share/certctl/migrations/*.up.sql | wc -l)
	expect_equal "$(ls "$TESTS_DIR"/../migrations/*.up.sql | wc -l)" "$shipped" "installed migrations"
	expect_equal "$shipped" "$(printf '%s\n' "$output" | grep -c '"applied":true')" "applied lines"
	expect_equal "$shipped" "$(sql "SELECT count(*) FROM schema_migrations")" "schema_migrations rows"
}

# Last: it takes the package out of the root again.
@test "deb: purging the package keeps the certctl user and /etc/certctl" {
	in_root sh -c 'mkdir -p "$ROOT/etc/certctl" && echo "CERTCTL_DSN=dbname=certctl" > "$ROOT/etc/certctl/env"'
	in_root dpkg --root="$ROOT" --purge certctl > "$BATS_TEST_TMPDIR/dpkg.log" 2>&1 \
		|| { cat "$BATS_TEST_TMPDIR/dpkg.log"; false; }
	[ ! -e "$LAYERS/usr/bin/certctl-migrate" ]
	[ ! -e "$LAYERS/usr/share/certctl/migrations" ]
	expect_equal 1 "$(grep -c '^certctl:' "$LAYERS/etc/passwd")" "certctl users"
	[ -f "$LAYERS/etc/certctl/env" ]
}
