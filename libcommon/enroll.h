/*
 * Enrolling an agent (on the control host): its login role with a random
 * password in a 0600 file, the mapping agents.db_role, and its public key,
 * to which the current versions of its certificates are sealed.
 */
#ifndef CERTCTL_ENROLL_H
#define CERTCTL_ENROLL_H

#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

#define ENROLL_ROLE_PREFIX "certctl_agent_"

struct enroll_request {
	const char *agent_id;
	const char *db_role;       /* NULL: the mapped role, else ENROLL_ROLE_PREFIX + the id */
	const char *password_file; /* NULL: no new password (and no new role) */
	const char *public_key;    /* NULL: keep the key there is */
};

/*
 * The whole of certctl-enroll in one transaction (the password file is
 * created first, with O_EXCL, and removed again when anything fails). An
 * agent's role: EXIT_FORBIDDEN; a sentinel agent: EXIT_FORBIDDEN; a retired
 * agent: EXIT_RETIRED; a role that exists and is not this agent's:
 * EXIT_CONFIG. Prints one line after COMMIT.
 */
int enroll_agent(PGconn *conn, const struct enroll_request *request, FILE *output,
		 struct error *err);

#endif
