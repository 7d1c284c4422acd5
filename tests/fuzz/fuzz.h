/*
 * One libFuzzer entry point per harness (fuzz_<name>.c). Built with clang
 * -fsanitize=fuzzer by `make fuzz`, and with replay.c's main by `make all`
 * so tests/fuzz.bats replays the corpus without fuzzing.
 */
#ifndef CERTCTL_FUZZ_H
#define CERTCTL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code promises does not hold: abort so both drivers report it. */
#define FUZZ_ASSERT(condition)                                                  \
	do {                                                                    \
		if (!(condition)) {                                             \
			fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #condition); \
			abort();                                                \
		}                                                               \
	} while (0)

#endif
