/* OpenSSL's error queue as one line of text, for error messages. */
#ifndef CERTCTL_SSLERROR_H
#define CERTCTL_SSLERROR_H

#include <stddef.h>

/*
 * Writes the first error queued by OpenSSL into buffer, or fallback when the
 * queue is empty, clears the queue and returns buffer.
 */
const char *openssl_reason(char *buffer, size_t size, const char *fallback);

#endif
