/*
 * What the database lets this login see (migration 000005): row-level
 * security hides another agent's rows, so a row an agent's role asked for
 * and did not get may exist all the same. These tell "not yours" (77) from
 * "no such" (the caller's 66).
 */
#ifndef CERTCTL_SCOPE_H
#define CERTCTL_SCOPE_H

#include <libpq-fe.h>

#include "error.h"

/*
 * EXIT_FORBIDDEN when this login is an agent's role that does not stand for
 * agent_id (NULL: asks to act as an operator); else 0.
 */
int scope_check_acting_for(PGconn *conn, const char *agent_id, struct error *err);

/*
 * For a command's --agent ID that only reads: EXIT_FORBIDDEN as above,
 * EXIT_NOT_FOUND when there is no such agent, else 0.
 */
int scope_check_agent_named(PGconn *conn, const char *agent_id, struct error *err);

/* EXIT_FORBIDDEN when this login is an agent's role and job_id is another's job; else 0. */
int scope_check_job(PGconn *conn, const char *job_id, struct error *err);

#endif
