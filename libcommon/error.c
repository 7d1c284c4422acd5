#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

/* Multi-line library messages (libpq's) would break the one-line rule. */
static void flatten_to_one_line(char *text)
{
	size_t length = strlen(text);

	while (length > 0 && (text[length - 1] == '\n' || text[length - 1] == ' '))
		text[--length] = '\0';
	for (char *p = text; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
}

/* Formats into a local buffer first: an argument may be err->message itself. */
int error_set(struct error *err, int code, const char *fmt, ...)
{
	char message[ERROR_MESSAGE_MAX];
	va_list args;

	if (err == NULL)
		return code;
	va_start(args, fmt);
	vsnprintf(message, sizeof(message), fmt, args);
	va_end(args);
	flatten_to_one_line(message);
	err->code = code;
	memcpy(err->message, message, sizeof(err->message));
	return code;
}

int error_prefix(struct error *err, const char *fmt, ...)
{
	char prefix[ERROR_MESSAGE_MAX];
	char joined[ERROR_MESSAGE_MAX];
	va_list args;

	if (err == NULL)
		return 0;
	va_start(args, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, args);
	va_end(args);
	snprintf(joined, sizeof(joined), "%s: %s", prefix, err->message);
	memcpy(err->message, joined, sizeof(err->message));
	return err->code;
}

void error_clear(struct error *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->message[0] = '\0';
}
