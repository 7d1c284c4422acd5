#!/usr/bin/env bats
# The libFuzzer harnesses (tests/fuzz/) replayed over their seed corpus and
# every regression input, without fuzzing: `make fuzz` does the fuzzing.
load helpers

FUZZ_DIR="$TESTS_DIR/fuzz"

# replay HARNESS: every corpus and regression file through $CERTCTL_UNIT/fuzz_replay_HARNESS.
replay() {
	local inputs=("$FUZZ_DIR/corpus/$1"/*)
	[ -e "${inputs[0]}" ] || { echo "no corpus in $FUZZ_DIR/corpus/$1"; return 1; }
	[ ! -d "$FUZZ_DIR/regressions/$1" ] || inputs+=("$FUZZ_DIR/regressions/$1"/*)
	# <harness>.lsan.supp names a dependency's known leak (an ASan build reports leaks).
	local suppressions=
	[ ! -f "$FUZZ_DIR/$1.lsan.supp" ] || suppressions="suppressions=$FUZZ_DIR/$1.lsan.supp:print_suppressions=0"
	LSAN_OPTIONS=$suppressions run --separate-stderr "$CERTCTL_UNIT/fuzz_replay_$1" "${inputs[@]}"
	expect_status 0
	expect_equal "replayed ${#inputs[@]} inputs" "$output" "replay summary"
}

@test "fuzz: every harness has a seed corpus and a replay binary" {
	for source in "$FUZZ_DIR"/fuzz_*.c; do
		name=$(basename "$source" .c)
		name=${name#fuzz_}
		[ -d "$FUZZ_DIR/corpus/$name" ] || { echo "no corpus for $name"; return 1; }
		[ -x "$CERTCTL_UNIT/fuzz_replay_$name" ] || { echo "no $CERTCTL_UNIT/fuzz_replay_$name"; return 1; }
	done
}

@test "fuzz: JSON-line reader corpus replays cleanly" {
	replay jsonl
}

@test "fuzz: inventory line parser corpus replays cleanly" {
	replay inventory
}

@test "fuzz: target config to deploy plan corpus replays cleanly" {
	replay deployplan
}

@test "fuzz: PEM bundle check corpus replays cleanly" {
	replay pem
}

@test "fuzz: known_hosts reader corpus and regressions replay cleanly" {
	replay known_hosts
}

@test "fuzz: endpoint parser corpus replays cleanly" {
	replay endpoint
}

@test "fuzz: sealed-blob opener corpus replays cleanly" {
	replay sealed
}

@test "fuzz: certctl-deploy job-line parser corpus replays cleanly" {
	replay jobline
}

@test "fuzz: a replay over an input it cannot read fails" {
	printf '{"kind":"target","id":"t","type":"nginx","agent_id":"a"}\n' > "$BATS_TEST_TMPDIR/good"
	run --separate-stderr "$CERTCTL_UNIT/fuzz_replay_inventory" "$BATS_TEST_TMPDIR/good" "$BATS_TEST_TMPDIR/missing"
	expect_status 1
	expect_contains "$stderr" "missing"
}
