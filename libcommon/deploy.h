/* certctl-deploy: Deployment job lines in, installed certificates and finished jobs out. */
#ifndef CERTCTL_DEPLOY_H
#define CERTCTL_DEPLOY_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "agents.h"
#include "error.h"

/* An agent silent for longer than agents.h's STALE_AFTER_SECONDS is offline and gets no deploy. */
/* The probe retries while the served leaf is still the old one (reloads are asynchronous). */
#define VERIFY_ATTEMPTS 10
#define VERIFY_RETRY_MILLISECONDS 300
#define VERIFY_TIMEOUT_SECONDS 5

enum verify_mode {
	VERIFY_WARN,    /* probe when verify_endpoint is set; a mismatch is a warning (default) */
	VERIFY_OFF,     /* never probe */
	VERIFY_STRICT,  /* probe; a mismatch or failed probe fails the job */
};

struct deploy_options {
	enum verify_mode verify;
	bool dry_run;           /* plan and compare; write nothing, finish nothing */
	const char *worker;     /* claimed_by for --job */
};

/* What a job line read by certctl-deploy asks for. */
enum job_line_kind {
	JOB_LINE_PASS_THROUGH,  /* another job type, or a line with no type (not a job line): forwarded */
	JOB_LINE_DEPLOYMENT,    /* deploy job id under the claim claimed_by + attempts */
};

struct job_line {
	const char *id;         /* both point into the json_object parsed */
	const char *claimed_by;
	int attempts;
};

/*
 * Reads line as a job line: its kind and, for a Deployment, the job and its
 * claim. A type that is no string, or a Deployment without a string id and claimed_by and
 * an integer attempts from 0 to INT_MAX: EXIT_DATA with err saying what
 * (without the line number). Pure: no I/O, no allocation.
 */
int deploy_job_line_parse(json_object *line, enum job_line_kind *kind, struct job_line *job, struct error *err);

/*
 * Deploys every Deployment job line read from input, passing other lines
 * through to output unchanged and writing one result line per job. Per-job
 * problems are logged on stderr and do not stop the run. Returns the most
 * serious exit code met (exitcode.h); EXIT_TEMPORARY when SIGINT/SIGTERM
 * stopped the run after the job in hand. err holds a run-level failure only.
 */
int deploy_job_lines(PGconn *conn, const struct deploy_options *options, FILE *input,
		     FILE *output, struct error *err);

/*
 * Claims the Pending Deployment job job_id for options->worker, then deploys
 * it as above. Unknown job: EXIT_NOT_FOUND; not Pending: EXIT_TEMPORARY.
 */
int deploy_job_by_id(PGconn *conn, const struct deploy_options *options, const char *job_id,
		     FILE *output, struct error *err);

#endif
