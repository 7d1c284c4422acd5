/* Options every command shares: --dsn, -v, -q, --help, --version. */
#ifndef CERTCTL_OPTIONS_H
#define CERTCTL_OPTIONS_H

#include <getopt.h>

#include "error.h"

enum { OPTION_HELP = 1000, OPTION_VERSION, OPTION_FIRST_COMMAND_SPECIFIC };

#define COMMON_SHORT_OPTIONS "d:vq"
#define COMMON_LONG_OPTIONS                                   \
	{ "dsn", required_argument, NULL, 'd' },               \
	{ "verbose", no_argument, NULL, 'v' },                  \
	{ "quiet", no_argument, NULL, 'q' },                    \
	{ "help", no_argument, NULL, OPTION_HELP },             \
	{ "version", no_argument, NULL, OPTION_VERSION }

struct common_options {
	const char *dsn;
};

/* Returned by common_option() when the option was consumed and parsing goes on. */
#define COMMON_OPTION_CONTINUE (-1)
/* Returned when the option is not a common one: the command handles it. */
#define COMMON_OPTION_NOT_MINE (-2)

/*
 * Handles one getopt_long() result. Returns COMMON_OPTION_CONTINUE,
 * COMMON_OPTION_NOT_MINE, or an exit code main() should return now
 * (0 after --help/--version, 64 after an unknown or incomplete option).
 * usage_text is printed for --help; argv is needed to name a bad option.
 */
int common_option(int option, const char *argument, struct common_options *options,
		  const char *usage_text, char *const argv[]);

/* Call before getopt_long() so that getopt reports nothing itself. */
void common_options_init(struct common_options *options);

/* Prints "certctl-X: usage: <why>; see --help" and returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A closed descriptor 0-2 would be reused by the database socket, and JSON
 * lines would be written into the connection. Parks /dev/null on a closed
 * stdin or stderr; a closed stdout is EXIT_CANT_CREATE (nothing to report to).
 * Call before opening anything.
 */
int standard_streams_check(struct error *err);

/* Parses a whole decimal number >= 0 (seconds, counts, versions); false when malformed. */
int parse_non_negative_long(const char *text, long *value);

#endif
