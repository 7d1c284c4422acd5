/* Certificate versions: a checked bundle stored with its key sealed. */
#ifndef CERTCTL_CERTVERSION_H
#define CERTCTL_CERTVERSION_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"
#include "pem.h"
#include "versionkeys.h"

/*
 * Stores bundle as a new version of certificate_id in one transaction: the
 * key sealed under sealing_key (loaded on first need) with the certificate id
 * as context, the certificate's common_name set from the leaf, the audit
 * event certificate_version_imported, the key sealed to every enrolled agent
 * that deploys the certificate (versionkeys.h) and, when enqueue is set, the
 * deployment jobs of enqueue.h. Prints the version line, then the job lines, after COMMIT.
 * The same leaf imported again for the same certificate stores nothing and
 * prints the existing version with "already_imported":true. Unknown
 * certificate: EXIT_NOT_FOUND.
 */
int certificate_version_import(PGconn *conn, const char *certificate_id,
			       const struct pem_bundle *bundle, struct sealing_key *sealing_key,
			       bool enqueue, FILE *output, struct error *err);

/*
 * The storing part of an import, in the caller's transaction (certctl-issue
 * stores a version together with its job's finish): the version row with
 * its key sealed under sealing_key, the certificate's common_name from the
 * leaf, the key sealed to every enrolled agent that deploys the certificate
 * and, when enqueue is set, the deployment jobs (none for a certificate
 * with no active target: a warning). Appends the version line
 * (certificate_id, version_id, fingerprint_sha256, not_after), then the
 * job lines, to lines (a json array). No audit event: the caller's.
 */
int certificate_version_store(PGconn *conn, const char *certificate_id, const struct pem_bundle *bundle,
			      struct sealing_key *sealing_key, bool enqueue, json_object *lines,
			      struct error *err);

/*
 * certificate_version_store() for a version whose key was made on the
 * agent (key_mode agent; bundle->key_pem NULL): key_sealed stays NULL and
 * nothing is sealed to any agent, which deploys it with its staged key.
 */
int certificate_version_store_keyless(PGconn *conn, const char *certificate_id,
				      const struct pem_bundle *bundle, bool enqueue, json_object *lines,
				      struct error *err);

#endif
