#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"
#include "exitcode.h"
#include "log.h"
#include "options.h"

#ifndef CERTCTL_VERSION
#define CERTCTL_VERSION "0.0.0"
#endif

void common_options_init(struct common_options *options)
{
	options->dsn = NULL;
	opterr = 0;
}

int usage_error(const char *fmt, ...)
{
	char text[ERROR_MESSAGE_MAX];
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	log_error("usage: %s; see --help", text);
	return EXIT_USAGE;
}

int common_option(int option, const char *argument, struct common_options *options,
		  const char *usage_text, char *const argv[])
{
	switch (option) {
	case 'd':
		options->dsn = argument;
		return COMMON_OPTION_CONTINUE;
	case 'v':
		log_set_level(log_get_level() + 1);
		return COMMON_OPTION_CONTINUE;
	case 'q':
		log_set_level(LOG_QUIET);
		return COMMON_OPTION_CONTINUE;
	case OPTION_HELP:
		fputs(usage_text, stdout);
		return EXIT_OK;
	case OPTION_VERSION:
		printf("%s %s\n", log_program_name(), CERTCTL_VERSION);
		return EXIT_OK;
	case '?':
	case ':':
		return usage_error("unknown option or missing value: '%s'", argv[optind - 1]);
	default:
		return COMMON_OPTION_NOT_MINE;
	}
}

int parse_non_negative_long(const char *text, long *value)
{
	char *end;

	errno = 0;
	*value = strtol(text, &end, 10);
	return errno == 0 && end != text && *end == '\0' && *value >= 0;
}

int standard_streams_check(struct error *err)
{
	if (fcntl(STDOUT_FILENO, F_GETFD) == -1)
		return error_set(err, EXIT_CANT_CREATE, "standard output is closed; nothing done");
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd += STDERR_FILENO)
		if (fcntl(fd, F_GETFD) == -1 && open("/dev/null", O_RDWR) != fd)
			return error_set(err, EXIT_CANT_CREATE, "cannot open /dev/null for descriptor %d", fd);
	return 0;
}
