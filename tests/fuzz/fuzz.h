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

#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code promises does not hold: abort so both drivers report it. */
#define FUZZ_ASSERT(condition)                                                  \
	do {                                                                    \
		if (!(condition)) {                                             \
			fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #condition); \
			abort();                                                \
		}                                                               \
	} while (0)

/* Reads data as JSON lines, as the commands do, and hands each parsed line to check. */
static inline int fuzz_each_json_line(const uint8_t *data, size_t size, void (*check)(json_object *line))
{
	struct jsonl_reader reader;
	struct error err;
	json_object *line;
	FILE *input;
	int status;

	if (size == 0 || (input = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	jsonl_reader_init(&reader, input);
	while ((status = jsonl_read(&reader, &line, &err)) != 0) {
		if (status < 0)
			continue;
		check(line);
		json_object_put(line);
	}
	jsonl_reader_free(&reader);
	fclose(input);
	return 0;
}

#endif
