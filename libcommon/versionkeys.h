/*
 * A version's private key sealed to each agent that deploys it
 * (version_keys): opened from the control host's sealed copy, sealed again
 * to the agent's public key (agentkey.h).
 */
#ifndef CERTCTL_VERSIONKEYS_H
#define CERTCTL_VERSIONKEYS_H

#include <stdbool.h>

#include <libpq-fe.h>

#include "error.h"
#include "sealed.h"

/* The control host's key ($CERTCTL_KEY_FILE), read on first need. */
struct sealing_key {
	unsigned char bytes[SEALED_KEY_BYTES];
	bool loaded;
};

/* Reads $CERTCTL_KEY_FILE into key unless it is loaded already; errors as sealed_load_key(). */
int sealing_key_load(struct sealing_key *key, struct error *err);
void sealing_key_wipe(struct sealing_key *key);

/*
 * In the caller's transaction: seals the current version of certificate_id
 * (NULL: of every certificate agent_id deploys) to each active agent with a
 * public key and an active target of the certificate (agent_id non-NULL:
 * to that agent only) that has no sealed copy of it yet. *sealed counts the
 * rows written. Loads key only when something is to be sealed.
 */
int version_keys_fill(PGconn *conn, const char *certificate_id, const char *agent_id,
		      struct sealing_key *key, long *sealed, struct error *err);

#endif
