/*
 * The agent's store of keys it made itself (key_mode agent), one directory
 * per certificate under $CERTCTL_KEY_DIR (default /var/lib/certctl/keys):
 *
 *   <certificate_id>/staged-<sha256>.key    made by certctl-csr, its CSR submitted
 *   <certificate_id>/current-<sha256>.key   the key of the leaf last deployed
 *   <certificate_id>/previous-<sha256>.key  the one before it
 *
 * <sha256> is csrmake.h's public_key_sha256() of the key, the file PKCS#8
 * PEM, 0600; every directory 0700. A key is looked up by the public key of
 * the leaf it is to serve, and the name is never trusted alone: the file's
 * key must have that public key.
 */
#ifndef CERTCTL_KEYSTORE_H
#define CERTCTL_KEYSTORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "digest.h"
#include "error.h"

#define KEY_DIR_ENV "CERTCTL_KEY_DIR"
#define KEY_DIR_DEFAULT "/var/lib/certctl/keys"
#define KEY_STORE_FILE_MAX_BYTES 16384

struct key_store {
	char path[PATH_MAX];
	int fd;             /* the directory; -1 when it does not exist (nothing stored) */
};

/*
 * Opens the store at path (NULL: $KEY_DIR_ENV, empty counts as unset, else
 * KEY_DIR_DEFAULT). create: missing directories are made 0700 (EXIT_CANT_CREATE
 * when that fails); else a missing store is empty. Not a directory, or open
 * to group or others: EXIT_CONFIG.
 */
int key_store_open(const char *path, bool create, struct key_store *store, struct error *err);
void key_store_close(struct key_store *store);

/*
 * Writes key as staged-<hash>.key of certificate_id, whole or not at all
 * (a temp file, fsync'd, linked under its name, the directory fsync'd), and
 * sets hash. Never touches the current or previous key. A certificate id that
 * is no plain file name (empty, "/", a leading "."): EXIT_DATA.
 */
int key_store_stage(struct key_store *store, const char *certificate_id, EVP_PKEY *key,
		    char hash[SHA256_HEX_SIZE], struct error *err);

/* Removes staged-<hash>.key again (its CSR was not submitted); best effort. */
void key_store_unstage(struct key_store *store, const char *certificate_id,
		       const char hash[SHA256_HEX_SIZE]);

/*
 * The key of certificate_id whose public key has hash (staged, current or
 * previous), as PEM in *pem (secret: release with secret_free(*pem, *length)).
 * None: EXIT_NOT_FOUND; a file under that name holding another key or none:
 * EXIT_DATA.
 */
int key_store_find(struct key_store *store, const char *certificate_id,
		   const char hash[SHA256_HEX_SIZE], char **pem, size_t *length, struct error *err);

/*
 * After the key with hash was deployed: it becomes current-<hash>.key, the
 * current one (if another) previous-, the previous one is removed, and so is
 * every staged key made before it (those made later wait for their own
 * certificate). Already current: only the older staged keys go.
 */
int key_store_promote(struct key_store *store, const char *certificate_id,
		      const char hash[SHA256_HEX_SIZE], struct error *err);

#endif
