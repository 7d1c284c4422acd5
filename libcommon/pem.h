/*
 * Certificate bundles checked with OpenSSL before they are stored: the PEMs
 * parse, the key belongs to the leaf, each certificate is issued by the next,
 * nothing has expired. The private key is handled as bytes and cleansed.
 */
#ifndef CERTCTL_PEM_H
#define CERTCTL_PEM_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "certnames.h"

#include "digest.h"
#include "error.h"

#define PEM_TIME_SIZE 32            /* "2026-11-22T10:00:00Z" and a NUL */
#define PEM_MAX_FILE_BYTES (1 << 20)

/* What a checked bundle yields; strings are malloc'd and freed by pem_bundle_free(). */
struct pem_bundle {
	char *cert_pem;                 /* the leaf alone, re-encoded */
	char *chain_pem;                /* intermediates in order, "" when none */
	unsigned char *key_pem;         /* PKCS#8 PEM of the private key: secret; NULL when made on an agent */
	size_t key_length;
	char fingerprint_sha256[SHA256_HEX_SIZE];  /* lowercase hex of the leaf DER */
	char *serial_number;            /* lowercase hex */
	char *subject;                  /* RFC 2253 */
	char *common_name;              /* the leaf's CN, NULL when it has none */
	char *key_algorithm;            /* "RSA-2048", "EC-P-256", "ED25519", ... */
	char not_before[PEM_TIME_SIZE]; /* RFC 3339 UTC */
	char not_after[PEM_TIME_SIZE];
};

/*
 * Checks and splits a bundle. cert_text holds the leaf first, optionally
 * followed by its chain (a fullchain); chain_text (may be NULL) adds more
 * intermediates, those already in cert_text being skipped. key_text is the
 * private key PEM (not kept; the caller cleanses it). Anything wrong:
 * EXIT_DATA, naming the file through the given labels, and *bundle empty.
 */
int pem_bundle_check(const char *cert_text, size_t cert_length, const char *cert_label,
		     const char *chain_text, size_t chain_length, const char *chain_label,
		     const unsigned char *key_text, size_t key_length, const char *key_label,
		     struct pem_bundle *bundle, struct error *err);

/*
 * An issuer's result, checked as pem_bundle_check() checks an import:
 * cert_text holds the leaf followed by its chain; the leaf carries exactly
 * the names asked for (certnames.h) and is for key: a private key made
 * here, whose PKCS#8 PEM goes into bundle->key_pem, or (key_is_private
 * false) the public key of a CSR made on an agent, leaving key_pem NULL.
 */
int pem_bundle_check_issued(const char *cert_text, size_t cert_length, const char *cert_label,
			    EVP_PKEY *key, bool key_is_private, const char *key_label,
			    const struct name_request *names, struct pem_bundle *bundle,
			    struct error *err);

/*
 * pem_bundle_check() on files: cert_path (leaf or fullchain), chain_path (may
 * be NULL), key_path. The key bytes read are cleansed before returning. A file
 * that cannot be read: EXIT_NOT_FOUND.
 */
int pem_bundle_load(const char *cert_path, const char *chain_path, const char *key_path,
		    struct pem_bundle *bundle, struct error *err);

/* Frees every field, cleansing the key first; safe on a zeroed bundle. */
void pem_bundle_free(struct pem_bundle *bundle);

#endif
