/* Taking work off the job queue: claim, wait for work, reap expired leases. */
#ifndef CERTCTL_CLAIM_H
#define CERTCTL_CLAIM_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"

#define DEFAULT_LEASE_SECONDS 900
#define DEFAULT_CLAIM_LIMIT 1
/* A reaped job waits BASE * 2^(attempts-1) seconds, at most CAP, before its next claim. */
#define REAP_BACKOFF_BASE_SECONDS 30
#define REAP_BACKOFF_CAP_SECONDS 3600
/*
 * That backoff in SQL, for the job row aliased j, its base and cap given as
 * parameters ("$1"): the reaper's and a failed issuance's (jobs.h).
 */
#define JOB_BACKOFF_SQL(base, cap)                                                      \
	"LEAST(" base "::float8 * power(2::float8, LEAST(GREATEST(j.attempts - 1, 0), 30)),"  \
	" " cap "::float8) * interval '1 second'"

/* Room for a default worker name: the host name, ':' and a pid. */
#define WORKER_NAME_SIZE (HOST_NAME_MAX + 32)

/* The worker a claim records when none is named: "hostname:pid" (claim and deploy --job). */
void default_worker_name(char name[WORKER_NAME_SIZE]);

struct claim_request {
	const char *agent_id;   /* NULL: a central claim */
	const char *job_type;   /* NULL: every type; else one, or several comma-separated */
	const char *worker;     /* stored as claimed_by, the claim token with attempts */
	long limit;             /* jobs flipped to Running (and AwaitingCSR jobs listed) */
	long lease_seconds;
	bool any;               /* central claim takes agent-routed jobs too */
};

/*
 * Claims up to request->limit jobs in one transaction (FOR UPDATE SKIP LOCKED,
 * so concurrent claimants get disjoint sets) and writes one job line each to
 * output (*count lines; an agent's AwaitingCSR jobs are listed, not claimed).
 * While it finds nothing, waits up to wait_seconds for NOTIFY certctl_jobs on
 * the connection socket, or for the earliest future scheduled_at of a Pending
 * job, and tries again. Returns 0 when jobs were claimed or the time ran out
 * (nothing to do included), EXIT_TEMPORARY when SIGINT or SIGTERM arrived
 * (signals_install() first), EXIT_CANT_CREATE when output is a pipe whose
 * reader has gone away, EXIT_NOT_FOUND (unknown agent), EXIT_RETIRED, or a
 * database code.
 */
int claim_jobs_waiting(PGconn *conn, const struct claim_request *request, long wait_seconds,
		       FILE *output, long *count, struct error *err);

/*
 * claim_jobs_waiting() for a claimer that runs what it claims itself
 * (certctl-issue): the job lines are appended to job_lines (a json array,
 * caller-owned) instead of written. wait_seconds 0: no wait; negative: for ever.
 */
int claim_jobs_collect(PGconn *conn, const struct claim_request *request, long wait_seconds,
		       json_object *job_lines, struct error *err);

/*
 * Claims round after round on one connection: as soon as a round has been
 * written (and, when output is a pipe, read: at most one round waits in the
 * pipe), the next; while there is nothing to claim (a round that only lists
 * AwaitingCSR jobs claims nothing), waits as claim_jobs_waiting() does, up
 * to idle_seconds (negative: for ever). *count is the number of
 * lines written in all. Returns 0 when idle_seconds passed with nothing to
 * claim, EXIT_TEMPORARY on SIGINT or SIGTERM, EXIT_CANT_CREATE when the
 * reader of the pipe has gone away, or claim_jobs_waiting()'s codes.
 */
int claim_jobs_following(PGconn *conn, const struct claim_request *request, long idle_seconds,
			 FILE *output, long *count, struct error *err);

/*
 * Claims the one Pending job job_id, which must be of job_type, for worker
 * with a lease (certctl-deploy --job). Returns its job line (caller puts), or
 * NULL with err: EXIT_NOT_FOUND for an unknown job, EXIT_TEMPORARY when it is
 * not a Pending job of that type (it is left alone).
 */
json_object *claim_job_by_id(PGconn *conn, const char *job_id, const char *job_type,
			     const char *worker, long lease_seconds, struct error *err);

/*
 * In one transaction: fails Pending (and lease-expired Running) jobs routed to
 * a retired agent or target, with audit and notification events; returns
 * expired-lease Running jobs to Pending after a backoff, or fails them once
 * attempts reach max_attempts. Writes one line per job after the commit.
 */
int reap_jobs(PGconn *conn, FILE *output, long *count, struct error *err);

#endif
