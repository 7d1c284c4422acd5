/*
 * Making a private key and a certificate signing request for it: the key
 * types a certificate may ask for, the names a CSR may carry, and the one
 * public-key digest that ties a staged key, its CSR (job_csrs) and the leaf
 * issued for it together.
 */
#ifndef CERTCTL_CSRMAKE_H
#define CERTCTL_CSRMAKE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "digest.h"
#include "error.h"

#define KEY_TYPE_DEFAULT "ecdsa-p256"
#define COMMON_NAME_MAX_LENGTH 64   /* X.520 ub-common-name */

/* Whether key_type is one certctl makes: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072. */
bool key_type_is_known(const char *key_type);

/*
 * A new private key of key_type (NULL or "": the default, ecdsa-p256); the
 * caller frees it with EVP_PKEY_free(). Unknown type: EXIT_CONFIG.
 */
EVP_PKEY *private_key_generate(const char *key_type, struct error *err);

/*
 * The key as unencrypted PKCS#8 PEM in *pem (malloc'd; secret: the caller
 * cleanses and frees it) of *length bytes, NUL-terminated.
 */
int private_key_pem(EVP_PKEY *key, unsigned char **pem, size_t *length, struct error *err);

/*
 * A name a certificate may carry in subjectAltName: a DNS name per RFC 1123
 * (labels of letters, digits and inner hyphens, 1 to 63 characters each, 253
 * in all, the last not all digits), optionally "*." and then at least two
 * labels, or an IPv4 or IPv6 literal (no brackets, no zone).
 */
bool san_is_valid(const char *name);

/*
 * A PEM CSR (*csr_pem malloc'd, the caller frees it) signed by key with
 * SHA-256: subject CN=common_name, subjectAltName the common name and each of
 * sans (DNS names and IP addresses, duplicates dropped, case-insensitively).
 * A common name or SAN that san_is_valid() refuses, or a common name longer
 * than 64 characters: EXIT_DATA, naming it.
 */
int csr_build(EVP_PKEY *key, const char *common_name, const char *const *sans, size_t san_count,
	      char **csr_pem, struct error *err);

/*
 * Lowercase hex SHA-256 of key's DER SubjectPublicKeyInfo (for a private key,
 * of its public half): what job_csrs.public_key_sha256 holds and what a leaf's
 * X509_get0_pubkey() yields for the same key. Returns 0, or -1 when it cannot
 * be encoded.
 */
int public_key_sha256(EVP_PKEY *key, char hex[SHA256_HEX_SIZE]);

#endif
