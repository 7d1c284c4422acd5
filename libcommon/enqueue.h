/* Deployment jobs for a certificate: one per active target mapped to it. */
#ifndef CERTCTL_ENQUEUE_H
#define CERTCTL_ENQUEUE_H

#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"

struct enqueue_counts {
	int active_targets;   /* mapped targets whose target and agent are not retired */
	int created;          /* jobs inserted now */
	int already_pending;  /* targets skipped: a Pending Deployment job was there */
};

/*
 * In the caller's transaction: locks the certificate, then inserts one
 * Pending Deployment job per active mapped target that has no Pending
 * Deployment job for it yet, appends their job lines (jobs.h) to job_lines
 * (a json array, caller-owned) and records the audit event
 * deployment_jobs_created when any job was created. Unknown certificate, no
 * version imported, or no active target: EXIT_NOT_FOUND and nothing inserted.
 */
int enqueue_deployment_jobs(PGconn *conn, const char *certificate_id, json_object *job_lines,
			    struct enqueue_counts *counts, struct error *err);

/* The whole of certctl-enqueue: one transaction, job lines printed after COMMIT. */
int enqueue_certificate(PGconn *conn, const char *certificate_id, FILE *output, struct error *err);

#endif
