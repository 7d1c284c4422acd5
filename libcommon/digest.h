/* Hex text, and SHA-256 as lowercase hex for checksums and certificate fingerprints. */
#ifndef CERTCTL_DIGEST_H
#define CERTCTL_DIGEST_H

#include <stddef.h>

#include <openssl/x509.h>

#define SHA256_HEX_SIZE 65

/* Writes 2 * length lowercase hex digits and a NUL into hex. */
void hex_encode(const unsigned char *bytes, size_t length, char *hex);
/* Reads 2 * length hex digits (either case) into length bytes; -1 at a non-digit (bytes then partly written). */
int hex_decode(const char *hex, size_t length, unsigned char *bytes);

/* Writes 64 hex digits and a NUL into hex. */
void sha256_hex(const void *data, size_t length, char hex[SHA256_HEX_SIZE]);

/*
 * A certificate's fingerprint as certctl stores and compares it: SHA-256 of
 * its DER encoding, lowercase hex. Returns 0, or -1 when it cannot be encoded.
 */
int certificate_fingerprint(X509 *certificate, char hex[SHA256_HEX_SIZE]);

#endif
