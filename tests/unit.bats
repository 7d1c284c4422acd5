#!/usr/bin/env bats
# Unit tests of pure library functions, beside the end-to-end suites.
load helpers

@test "unit: exit codes rank in the contract's order 2, 77, 78, 69, 66, 65, 1, 0" {
	run "$CERTCTL_UNIT/test_exitcode"
	expect_status 0
}

@test "unit: deploy plans get per-type default commands, file contents, modes and config errors" {
	run "$CERTCTL_UNIT/test_deployplan"
	expect_status 0
}

@test "unit: a deploy plan whose copy of a string fails is out of memory, never a NULL field" {
	run "$CERTCTL_UNIT/test_deployplan_oom"
	expect_status 0
}

@test "unit: sealed keys open only under the same key file and certificate" {
	run "$CERTCTL_UNIT/test_sealed" "$BATS_TEST_TMPDIR"
	expect_status 0
}

@test "unit: version keys open only for their agent, version and fingerprint; agent key files load strictly" {
	run "$CERTCTL_UNIT/test_agentkey" "$BATS_TEST_TMPDIR"
	expect_status 0
}

@test "unit: SAN names, the four key types and a CSR with its common name and SANs" {
	run "$CERTCTL_UNIT/test_csrmake"
	expect_status 0
}

@test "unit: the key store stages, finds by public key, promotes, and survives a promotion cut short" {
	run "$CERTCTL_UNIT/test_keystore" "$BATS_TEST_TMPDIR"
	expect_status 0
}
