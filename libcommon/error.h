/* Errors travel as values up to main(), which prints and maps them to exits. */
#ifndef CERTCTL_ERROR_H
#define CERTCTL_ERROR_H

#include <stddef.h>

#define ERROR_MESSAGE_MAX 1024

struct error {
	int code;                        /* an enum certctl_exit value */
	char message[ERROR_MESSAGE_MAX]; /* "what: why", one line, no prefix */
};

/* Sets err (may be NULL) and returns code, so callers can `return error_set(...)`;
 * err->message may be one of the arguments. */
int error_set(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to err's message, keeping its code; returns the code. */
int error_prefix(struct error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void error_clear(struct error *err);

#endif
