/*
 * Private keys at rest: AES-256-GCM under a 32-byte key read from the file
 * $CERTCTL_KEY_FILE names, so the database alone never yields a usable key.
 * Blob: version byte 0x01 | 12-byte random nonce | ciphertext | 16-byte tag.
 */
#ifndef CERTCTL_SEALED_H
#define CERTCTL_SEALED_H

#include <stddef.h>

#include "error.h"

#define SEALED_KEY_BYTES 32

/*
 * Reads the key file at path (NULL: $CERTCTL_KEY_FILE): 32 raw bytes, or 64
 * hex digits and an optional newline. Unset, unreadable or malformed:
 * EXIT_CONFIG. Caller OPENSSL_cleanse()s key when done.
 */
int sealed_load_key(const char *path, unsigned char key[SEALED_KEY_BYTES], struct error *err);

/*
 * Seals plaintext; context (e.g. the certificate id) is authenticated, so a
 * blob copied to another row does not open. *blob is malloc'd; caller frees.
 */
int sealed_seal(const unsigned char key[SEALED_KEY_BYTES], const char *context,
		const unsigned char *plaintext, size_t length,
		unsigned char **blob, size_t *blob_length, struct error *err);

/*
 * Opens a blob sealed under the same key and context. A wrong key, context
 * or a tampered blob: EXIT_DATA. *plaintext is malloc'd; caller cleanses and frees.
 */
int sealed_open(const unsigned char key[SEALED_KEY_BYTES], const char *context,
		const unsigned char *blob, size_t blob_length,
		unsigned char **plaintext, size_t *length, struct error *err);

#endif
