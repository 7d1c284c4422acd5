#include <stdio.h>

#include <openssl/err.h>

#include "sslerror.h"

const char *openssl_reason(char *buffer, size_t size, const char *fallback)
{
	unsigned long code = ERR_peek_error();

	if (code == 0)
		snprintf(buffer, size, "%s", fallback);
	else
		ERR_error_string_n(code, buffer, size);
	ERR_clear_error();
	return buffer;
}
