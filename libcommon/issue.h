/*
 * certctl-issue: claiming Issuance and Renewal jobs, getting each one's
 * certificate from its issuer and storing it as the certificate's next
 * version, or retrying the job with backoff.
 */
#ifndef CERTCTL_ISSUE_H
#define CERTCTL_ISSUE_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"
#include "versionkeys.h"

#define DEFAULT_ISSUE_LIMIT 10

struct issue_options {
	long limit;                     /* jobs per round */
	long wait_seconds;              /* for the round's first job; 0: none */
	bool follow;                    /* rounds for ever, each waiting for its first job */
	const char *worker;             /* claimed_by */
	struct sealing_key *sealing_key;
};

/*
 * Claims one job at a time (central, Issuance and Renewal, lease
 * DEFAULT_LEASE_SECONDS) and handles it: the key and CSR made here
 * (key_mode central) or the CSR the agent submitted (agent), the issuer
 * run (issuer.h), its certificate checked (pem.h) and stored with the
 * deployment jobs, the job's fenced finish and the audit and notification
 * events, all in one transaction; or the job retried with backoff / failed.
 * Writes one result line per job to output and logs each failure. Returns
 * the most serious per-job code (0 when every job was issued, or there was
 * nothing to do), EXIT_TEMPORARY after a stop signal (the job in hand
 * finished first), or a database code that ended the run.
 */
int issue_jobs(PGconn *conn, const struct issue_options *options, FILE *output, struct error *err);

#endif
