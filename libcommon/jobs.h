/* The one fenced way to finish a job, and the job-line printer; claiming and reaping live in claim.h. */
#ifndef CERTCTL_JOBS_H
#define CERTCTL_JOBS_H

#include <stdbool.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"

/* Who holds a Running job: the claim token printed on every claimed job line. */
struct job_claim {
	const char *claimed_by;
	int attempts;
};

/*
 * The columns of a job line, in the order job_line_from_row() reads them.
 * Select them from a table aliased "j": SELECT JOB_LINE_COLUMNS FROM jobs j ...
 */
#define JOB_LINE_COLUMNS                                                        \
	"j.id, j.type, j.status, j.certificate_id, j.target_id, j.agent_id,"    \
	" j.attempts, j.max_attempts, certctl_rfc3339(j.lease_expires_at),"     \
	" j.claimed_by, certctl_rfc3339(j.scheduled_at)"
#define JOB_LINE_COLUMN_COUNT 11

/* The job line of CONTRACT (certctl-claim) from one row; caller json_object_put()s. */
json_object *job_line_from_row(const PGresult *result, int row, int first_column);

/*
 * Moves a job from Running to final_status ("Completed" or "Failed") only
 * while it is still Running under claim, so a worker whose lease was reaped
 * and re-claimed cannot overwrite the new owner's result. last_error and
 * result (metadata, may be NULL) are stored with it. Returns 0; EXIT_NOT_FOUND
 * for an unknown job; EXIT_TEMPORARY when the claim was lost (nothing changed).
 * Runs in the caller's transaction, if any.
 */
int job_finish_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
		      const char *final_status, const char *last_error,
		      json_object *result, struct error *err);

/* Room for an RFC 3339 UTC timestamp ("2026-11-22T10:00:00Z") and a NUL. */
#define JOB_TIME_SIZE 32

/*
 * A failed attempt of a job still Running under claim: back to Pending,
 * scheduled after the reaper's backoff (claim.h), while attempts remain,
 * else Failed; last_error stored. *failed says which, scheduled_at when it
 * runs next. Fenced and coded as job_finish_fenced().
 */
int job_retry_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
		     const char *last_error, bool *failed, char scheduled_at[JOB_TIME_SIZE],
		     struct error *err);

/*
 * The lease of a job still Running under claim, moved to seconds from now:
 * for work that may outlast the lease it was claimed with (a slow issuer).
 * Fenced and coded as job_finish_fenced().
 */
int job_extend_lease_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
			    long seconds, struct error *err);

#endif
