/* Agent liveness: heartbeats, registration on first beat, the stale list. */
#ifndef CERTCTL_AGENTS_H
#define CERTCTL_AGENTS_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/* An agent that has not beaten for this long is offline: --stale lists it, certctl-deploy refuses it. */
#define STALE_AFTER_SECONDS 300L

struct heartbeat_request {
	const char *agent_id;
	const char *hostname;      /* NULL: keep the stored one */
	const char *agent_version; /* NULL: keep the stored one */
	bool register_unknown;     /* create the agent (name = id) when it does not exist */
};

/*
 * Records one heartbeat and prints its line on output. Returns 0;
 * EXIT_RETIRED after printing the retired line; EXIT_NOT_FOUND for an unknown
 * agent without register_unknown; or a database error code.
 */
int agent_heartbeat(PGconn *conn, const struct heartbeat_request *request,
		    FILE *output, struct error *err);

/*
 * Beats every `every` seconds on *conn, reconnecting with dsn after an
 * outage (logged once, retried with backoff). Returns 0 when SIGINT/SIGTERM
 * asks to stop, EXIT_RETIRED when the agent is retired, or the code of an
 * error that waiting cannot cure. *conn may be replaced or NULL on return.
 */
int agent_heartbeat_every(const char *dsn, PGconn **conn, const struct heartbeat_request *request,
			  long every, FILE *output, struct error *err);

/* Prints one line per active, non-sentinel agent silent for longer than older_than seconds. */
int agents_list_stale(PGconn *conn, long older_than, FILE *output, struct error *err);

#endif
