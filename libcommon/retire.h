/* Agent retirement: the eight-step contract (CONTRACT certctl-retire) and the retired list. */
#ifndef CERTCTL_RETIRE_H
#define CERTCTL_RETIRE_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

#define RETIRED_LIST_DEFAULT_PER_PAGE 50L

struct retire_request {
	const char *agent_id;
	const char *reason; /* NULL: none; stored verbatim */
	const char *actor;  /* NULL: audit_default_actor() */
	bool force;         /* cascade to active targets and their pending jobs */
};

/* Step 1, before any database contact: EXIT_FORBIDDEN for a sentinel agent, else 0. */
int retire_refuse_sentinel(const char *agent_id, struct error *err);

/*
 * Steps 2-8 in one transaction that holds the agent row FOR UPDATE; prints
 * the result line (or the already_retired or blocked line) on output.
 * Returns 0, EXIT_NOT_FOUND, EXIT_BLOCKED, EXIT_FORBIDDEN or a database
 * error code. The audit events are written inside the transaction, behind
 * a savepoint: they commit with the retirement, and their failure rolls
 * back only to the savepoint, is logged and does not change the result.
 */
int retire_agent(PGconn *conn, const struct retire_request *request, FILE *output,
		 struct error *err);

/* One page of retired agents, newest first; page and per_page are >= 1. */
int retire_list(PGconn *conn, long page, long per_page, FILE *output, struct error *err);

#endif
