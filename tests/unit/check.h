/* A minimal checker for unit tests of pure functions: prints what failed. */
#ifndef CERTCTL_TEST_CHECK_H
#define CERTCTL_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(condition)                                                          \
	do {                                                                      \
		if (!(condition)) {                                               \
			fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #condition); \
			check_failures++;                                         \
		}                                                                 \
	} while (0)

#define CHECK_STR(expected, actual)                                               \
	do {                                                                      \
		const char *check_actual = (actual);                              \
		if (check_actual == NULL || strcmp((expected), check_actual) != 0) { \
			fprintf(stderr, "%s:%d: expected \"%s\", got \"%s\"\n", __FILE__, \
				__LINE__, (expected), check_actual ? check_actual : "(null)"); \
			check_failures++;                                         \
		}                                                                 \
	} while (0)

#define CHECK_DONE() (check_failures == 0 ? 0 : 1)

#endif
