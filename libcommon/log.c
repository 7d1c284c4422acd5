#include <stdarg.h>
#include <stdio.h>

#include "error.h"
#include "log.h"

static const char *program_name = "certctl";
static int current_level = LOG_NORMAL;

void log_init(const char *name)
{
	program_name = name;
}

const char *log_program_name(void)
{
	return program_name;
}

void log_set_level(int level)
{
	current_level = level;
}

int log_get_level(void)
{
	return current_level;
}

static void log_line(int level, const char *fmt, va_list args)
{
	struct error line;

	if (level > current_level)
		return;
	/* Reuse error_set's flattening so every diagnostic stays on one line. */
	char text[ERROR_MESSAGE_MAX];
	vsnprintf(text, sizeof(text), fmt, args);
	error_set(&line, 0, "%s", text);
	fprintf(stderr, "%s: %s\n", program_name, line.message);
	fflush(stderr);
}

void log_error(const char *fmt, ...)
{
	va_list args;
	va_start(args, fmt);
	log_line(LOG_QUIET, fmt, args);
	va_end(args);
}

void log_warn(const char *fmt, ...)
{
	va_list args;
	va_start(args, fmt);
	log_line(LOG_NORMAL, fmt, args);
	va_end(args);
}

void log_info(const char *fmt, ...)
{
	va_list args;
	va_start(args, fmt);
	log_line(LOG_VERBOSE, fmt, args);
	va_end(args);
}
