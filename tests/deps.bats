#!/usr/bin/env bats
# make deps: installs what is missing as root, or tells a non-root user how.
load helpers

@test "deps: with everything installed it exits 0 and prints nothing" {
	run --separate-stderr "$TESTS_DIR/install-deps"
	expect_status 0
	expect_equal "" "$output$stderr"
}

@test "deps: a non-root user missing a package gets the exact apt-get line and exit 69" {
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups \
		env CERTCTL_EXTRA_PACKAGES=certctl-no-such-package "$TESTS_DIR/install-deps"
	expect_status 69
	expect_contains "$stderr" "apt-get install -y certctl-no-such-package"
}
