/* certctl-verify --all: probe every active target's verify_endpoint and record what it serves. */
#ifndef CERTCTL_VERIFYALL_H
#define CERTCTL_VERIFYALL_H

#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

#define VERIFY_ALL_DEFAULT_PARALLEL 16
#define VERIFY_ALL_MAX_PARALLEL 256

struct verify_all_request {
	const char *agent_id; /* NULL: every agent's targets this role can see */
	const char *ca_file;  /* NULL: the system store (only verified_chain depends on it) */
	int timeout_seconds;  /* per probe, connect and handshake together */
	int parallel;         /* probes at once */
};

/*
 * Probes, at most request->parallel at a time, every active target with a
 * verify_endpoint; records each result in target_probes (one transaction)
 * and prints one line per probe, in target order. A probe that failed is
 * logged; the result is the most serious of: 0, EXIT_FAILED_CLEANLY (serves
 * none of its certificates' current versions), EXIT_UNAVAILABLE (no answer,
 * no handshake), EXIT_CONFIG (a malformed verify_endpoint), EXIT_TEMPORARY (a
 * signal; probes not made are not recorded). err is cleared when the
 * failures were logged. EXIT_NOT_FOUND for an unknown agent, EXIT_FORBIDDEN
 * for an agent's role asking for another agent.
 */
int verify_all_targets(PGconn *conn, const struct verify_all_request *request, FILE *output,
		       struct error *err);

#endif
