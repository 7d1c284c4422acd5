/*
 * Per-agent X25519 keys (libsodium): the agent's secret key file, its public
 * key as text, and version keys sealed to an agent with crypto_box_seal.
 * Key file: base64 (standard, padded) of the 32-byte secret key, then "\n".
 */
#ifndef CERTCTL_AGENTKEY_H
#define CERTCTL_AGENTKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

#define AGENT_KEY_BYTES 32                 /* X25519 public and secret key size */
#define AGENT_PUBLIC_KEY_TEXT_SIZE 45      /* base64 (with padding) of 32 bytes + NUL */
#define AGENT_KEY_DEFAULT_PATH "/etc/certctl/agent.key"

struct agent_keypair {
	unsigned char public_key[AGENT_KEY_BYTES];
	unsigned char secret_key[AGENT_KEY_BYTES];
};

/*
 * Creates a new key file (O_CREAT|O_EXCL|O_NOFOLLOW, 0600, fsync'd, written
 * completely or removed) and fills pair; an existing file is never replaced:
 * it is loaded instead and *created is false. Directory missing/unwritable:
 * EXIT_CANT_CREATE (73). path NULL: $CERTCTL_AGENT_KEY_FILE (empty counts as
 * unset), else AGENT_KEY_DEFAULT_PATH.
 */
int agent_key_create(const char *path, struct agent_keypair *pair, bool *created, struct error *err);

/*
 * Loads the key file; unset/missing/unreadable/malformed/accessible by group
 * or others: EXIT_CONFIG (78), message names the file and why. path NULL: as
 * agent_key_create(). pair is wiped on failure.
 */
int agent_key_load(const char *path, struct agent_keypair *pair, struct error *err);

void agent_key_wipe(struct agent_keypair *pair);      /* sodium_memzero */

void agent_public_key_format(const unsigned char public_key[AGENT_KEY_BYTES],
			     char text[AGENT_PUBLIC_KEY_TEXT_SIZE]);

/* EXIT_DATA (65) unless exactly 32 bytes of standard, padded, canonical base64 */
int agent_public_key_parse(const char *text, unsigned char public_key[AGENT_KEY_BYTES],
			   struct error *err);

/*
 * certctl-keygen's one call: agent_key_create(path), then one JSON line
 * {"public_key","key_file","created"} on output. The secret never leaves here.
 */
int agent_keygen(const char *path, FILE *output, struct error *err);

/* What a sealed version key is bound to; all three are checked after opening. */
struct version_key_binding {
	const char *version_id, *agent_id, *fingerprint_sha256;
};

/*
 * crypto_box_seal of (a versioned header binding the three fields) + key_pem;
 * *sealed malloc'd, caller frees.
 */
int version_key_seal(const unsigned char public_key[AGENT_KEY_BYTES],
		     const struct version_key_binding *binding,
		     const unsigned char *key_pem, size_t key_length,
		     unsigned char **sealed, size_t *sealed_length, struct error *err);

/*
 * Opens with the agent's pair and checks the binding equals expected. Does not
 * open (another agent's key, tampered): EXIT_DATA "...does not open with this
 * agent's key...". Opens but bound to another version / agent / fingerprint,
 * or a malformed header: EXIT_DATA naming the field and both values.
 * *key_pem malloc'd (NUL-terminated, length excludes it); caller wipes
 * (sodium_memzero or OPENSSL_cleanse) and frees.
 */
int version_key_open(const struct agent_keypair *pair, const struct version_key_binding *expected,
		     const unsigned char *sealed, size_t sealed_length,
		     unsigned char **key_pem, size_t *key_length, struct error *err);

#endif
