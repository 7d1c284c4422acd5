/* Deployment jobs for a certificate: one per active target mapped to it. */
#ifndef CERTCTL_ENQUEUE_H
#define CERTCTL_ENQUEUE_H

#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"
#include "versionkeys.h"

struct enqueue_counts {
	int active_targets;   /* mapped targets whose target and agent are not retired */
	int created;          /* jobs inserted now */
	int already_pending;  /* targets skipped: a Pending Deployment job was there */
	int unenrolled;       /* targets skipped: their agent has no public key */
};

/*
 * In the caller's transaction: locks the certificate, seals its current
 * version to agents that lack it (versionkeys.h; sealing_key read on first
 * need), then inserts one Pending Deployment job per active mapped target
 * whose agent is enrolled and that has no Pending Deployment job for it yet,
 * appends their job lines (jobs.h) to job_lines (a json array,
 * caller-owned), followed by an "agent not enrolled" line per target skipped
 * for that, and records the audit event deployment_jobs_created when any job
 * was created. Unknown certificate, no version imported, or no active
 * target: EXIT_NOT_FOUND and nothing inserted.
 */
int enqueue_deployment_jobs(PGconn *conn, const char *certificate_id, struct sealing_key *sealing_key,
			    json_object *job_lines, struct enqueue_counts *counts, struct error *err);

/*
 * The whole of certctl-enqueue: one transaction, lines printed after COMMIT;
 * EXIT_CONFIG when every active target's agent is unenrolled.
 */
int enqueue_certificate(PGconn *conn, const char *certificate_id, FILE *output, struct error *err);

#endif
