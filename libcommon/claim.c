#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "claim.h"
#include "db.h"
#include "deadline.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "listen.h"
#include "pgjson.h"
#include "scope.h"
#include "signals.h"

/*
 * Parameters of every claim statement: $1 type (NULL: any), $2 limit,
 * $3 worker, $4 lease seconds, $5 agent. PostgreSQL refuses FOR UPDATE on a
 * UNION, so each way a job reaches a claimant is its own statement, run in
 * one transaction, each locking exactly the rows it flips.
 */
#define CLAIM_FLIP                                                                       \
	" claimed AS ("                                                                  \
	" UPDATE jobs j SET status = 'Running', attempts = j.attempts + 1,"              \
	" started_at = now(), claimed_by = $3,"                                          \
	" lease_expires_at = now() + $4::int * interval '1 second', updated_at = now()"  \
	" FROM picked WHERE j.id = picked.id RETURNING j.*)"                             \
	" SELECT " JOB_LINE_COLUMNS " FROM claimed j ORDER BY j.scheduled_at, j.id"

#define CLAIM_PENDING_NOW                                                       \
	" j.status = 'Pending' AND j.scheduled_at <= now()"                     \
	" AND ($1::text IS NULL OR j.type = ANY (string_to_array($1, ',')))"

/* A central claimer never takes a job that an agent is meant to run. */
static const char claim_central_sql[] =
	"WITH picked AS (SELECT j.id FROM jobs j WHERE" CLAIM_PENDING_NOW
	" AND j.agent_id IS NULL AND j.target_id IS NULL"
	" ORDER BY j.scheduled_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
	CLAIM_FLIP;

/* --any: every job, except those routed to a retired agent or target. */
static const char claim_any_sql[] =
	"WITH picked AS (SELECT j.id FROM jobs j WHERE" CLAIM_PENDING_NOW
	" AND (j.agent_id IS NULL OR EXISTS (SELECT 1 FROM agents a"
	"      WHERE a.id = j.agent_id AND a.retired_at IS NULL))"
	" AND (j.target_id IS NULL OR EXISTS (SELECT 1 FROM deployment_targets t"
	"      JOIN agents ta ON ta.id = t.agent_id"
	"      WHERE t.id = j.target_id AND t.retired_at IS NULL AND ta.retired_at IS NULL))"
	" ORDER BY j.scheduled_at LIMIT $2::int FOR UPDATE SKIP LOCKED),"
	CLAIM_FLIP;

/*
 * Held until commit: certctl-retire takes FOR UPDATE on the agent row, so a
 * retirement either commits before this read (we see retired_at) or waits
 * for our claim to finish.
 */
static const char claim_lock_agent_sql[] =
	"SELECT retired_at IS NOT NULL, certctl_rfc3339(retired_at) FROM agents"
	" WHERE id = $1 FOR SHARE";

/* The agent's own jobs. */
static const char claim_agent_assigned_sql[] =
	"WITH picked AS (SELECT j.id FROM jobs j WHERE" CLAIM_PENDING_NOW
	" AND j.agent_id = $5"
	" AND (j.target_id IS NULL OR EXISTS (SELECT 1 FROM deployment_targets t"
	"      WHERE t.id = j.target_id AND t.retired_at IS NULL))"
	" ORDER BY j.scheduled_at LIMIT $2::int FOR UPDATE OF j SKIP LOCKED),"
	CLAIM_FLIP;

/* Jobs with no agent, routed through one of the agent's active targets. */
static const char claim_agent_targeted_sql[] =
	"WITH picked AS (SELECT j.id FROM deployment_targets t JOIN jobs j ON j.target_id = t.id"
	" WHERE t.agent_id = $5 AND t.retired_at IS NULL AND j.agent_id IS NULL AND"
	CLAIM_PENDING_NOW
	" ORDER BY j.scheduled_at LIMIT $2::int FOR UPDATE OF j SKIP LOCKED),"
	CLAIM_FLIP;

/*
 * AwaitingCSR jobs are handed to the agent unchanged: they move on when the
 * CSR arrives, not when they are read. Parameters: $1 type, $2 limit, $3 agent.
 */
static const char list_agent_awaiting_csr_sql[] =
	"SELECT " JOB_LINE_COLUMNS " FROM jobs j"
	" WHERE j.status = 'AwaitingCSR' AND ($1::text IS NULL OR j.type = ANY (string_to_array($1, ',')))"
	" AND (j.agent_id IS NULL OR j.agent_id = $3)"
	" AND (j.target_id IS NULL OR EXISTS (SELECT 1 FROM deployment_targets t"
	"      WHERE t.id = j.target_id AND t.retired_at IS NULL))"
	" AND EXISTS (SELECT 1 FROM certificate_targets ct"
	"      JOIN deployment_targets t ON t.id = ct.target_id"
	"      WHERE ct.certificate_id = j.certificate_id AND t.agent_id = $3"
	"      AND t.retired_at IS NULL)"
	" ORDER BY j.scheduled_at, j.id LIMIT $2::int";

static const char claim_by_id_sql[] =
	"UPDATE jobs j SET status = 'Running', attempts = attempts + 1, started_at = now(),"
	" claimed_by = $3, lease_expires_at = now() + make_interval(secs => $4::int), updated_at = now()"
	" WHERE id = $1 AND status = 'Pending' AND type = $2"
	" RETURNING " JOB_LINE_COLUMNS;

static const char job_status_sql[] = "SELECT status, type FROM jobs WHERE id = $1";

static const char listen_sql[] = "LISTEN certctl_jobs";

/* Whole milliseconds, rounded up, so the claim after the wait finds the job due. */
static const char next_due_sql[] =
	"SELECT ceil(EXTRACT(EPOCH FROM min(scheduled_at) - now()) * 1000)::bigint FROM jobs"
	" WHERE status = 'Pending' AND scheduled_at > now()";

/*
 * Pending jobs, and Running ones whose lease ran out, that are routed to a
 * retired agent or target (or a target of a retired agent) can never run.
 */
static const char reap_retired_sql[] =
	"WITH routed AS ("
	" SELECT j.id FROM agents a JOIN jobs j ON j.agent_id = a.id"
	"  WHERE a.retired_at IS NOT NULL AND j.status IN ('Pending', 'Running')"
	" UNION"
	" SELECT j.id FROM deployment_targets t JOIN agents a ON a.id = t.agent_id"
	"  JOIN jobs j ON j.target_id = t.id"
	"  WHERE (t.retired_at IS NOT NULL OR a.retired_at IS NOT NULL)"
	"  AND j.status IN ('Pending', 'Running')),"
	" doomed AS (SELECT j.id FROM jobs j WHERE j.id IN (SELECT id FROM routed)"
	"  AND (j.status = 'Pending' OR (j.status = 'Running' AND j.lease_expires_at < now()))"
	"  FOR UPDATE OF j SKIP LOCKED),"
	" failed AS ("
	" UPDATE jobs j SET status = 'Failed', last_error = 'assigned agent is retired',"
	"  completed_at = now(), lease_expires_at = NULL, claimed_by = NULL, updated_at = now()"
	" FROM doomed WHERE j.id = doomed.id RETURNING j.*)"
	" SELECT " JOB_LINE_COLUMNS ", 'failed', j.last_error FROM failed j ORDER BY j.id";

/* $1 backoff base seconds, $2 cap. */
static const char reap_expired_sql[] =
	"WITH expired AS (SELECT j.id FROM jobs j"
	"  WHERE j.status = 'Running' AND j.lease_expires_at < now()"
	"  FOR UPDATE SKIP LOCKED),"
	" reaped AS ("
	" UPDATE jobs j SET"
	"  status = CASE WHEN j.attempts >= j.max_attempts THEN 'Failed' ELSE 'Pending' END,"
	"  scheduled_at = CASE WHEN j.attempts >= j.max_attempts THEN j.scheduled_at"
	"   ELSE now() + " JOB_BACKOFF_SQL("$1", "$2") " END,"
	"  last_error = CASE WHEN j.attempts >= j.max_attempts"
	"   THEN 'lease expired after ' || j.attempts || ' attempts'"
	"   ELSE 'lease expired on attempt ' || j.attempts END,"
	"  completed_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,"
	"  lease_expires_at = NULL, claimed_by = NULL, updated_at = now()"
	" FROM expired WHERE j.id = expired.id RETURNING j.*)"
	" SELECT " JOB_LINE_COLUMNS ","
	"  CASE WHEN j.status = 'Failed' THEN 'failed' ELSE 'requeued' END, j.last_error"
	" FROM reaped j ORDER BY j.id";

/* Columns of a job line by position, as JOB_LINE_COLUMNS lists them. */
enum { COLUMN_ID = 0, COLUMN_CERTIFICATE_ID = 3, COLUMN_TARGET_ID = 4, COLUMN_AGENT_ID = 5 };
#define MAX_CLAIM_RESULTS 3

static const char *column_or_null(const PGresult *result, int row, int column)
{
	return PQgetisnull(result, row, column) ? NULL : PQgetvalue(result, row, column);
}

/* Where job lines go: a stream, or (stream NULL) an array for a claimer that runs the jobs itself. */
struct claim_output {
	FILE *stream;
	json_object *lines;
};

/* Writes every row of each result as a job line; extra columns "reaped", "last_error". */
static int write_job_lines(const struct claim_output *output, PGresult *const *results,
			   int result_count, bool reap_columns, long *count, struct error *err)
{
	for (int r = 0; r < result_count; r++) {
		for (int row = 0; row < PQntuples(results[r]); row++) {
			json_object *line = job_line_from_row(results[r], row, 0);
			int code;

			if (reap_columns) {
				json_add_text_column(line, "reaped", results[r], row,
						     JOB_LINE_COLUMN_COUNT);
				json_add_text_column(line, "last_error", results[r], row,
						     JOB_LINE_COLUMN_COUNT + 1);
			}
			(*count)++;
			if (output->stream == NULL) {
				json_object_array_add(output->lines, line);
				continue;
			}
			code = jsonl_put(output->stream, line, err);
			json_object_put(line);
			if (code != 0)
				return code;
		}
	}
	/* One flush per claim: the reader gets the batch whole, in few writes. */
	return output->stream == NULL ? 0 : jsonl_flush(output->stream, err);
}

/* Locks the agent row for the claim; 0 when it exists and is active. */
static int lock_active_agent(PGconn *conn, const char *agent_id, struct error *err)
{
	const char *params[1] = { agent_id };
	PGresult *agent = db_query(conn, claim_lock_agent_sql, 1, params, err);
	int code = 0;

	if (agent == NULL)
		return err->code;
	if (PQntuples(agent) == 0) {
		/* Another agent's row is invisible to an agent's role: that is 77, not 66. */
		if ((code = scope_check_acting_for(conn, agent_id, err)) == 0)
			code = error_set(err, EXIT_NOT_FOUND, "%s: no such agent", agent_id);
	} else if (strcmp(PQgetvalue(agent, 0, 0), "t") == 0)
		code = error_set(err, EXIT_RETIRED, "%s: agent is retired (since %s); no jobs claimed",
				 agent_id, PQgetvalue(agent, 0, 1));
	PQclear(agent);
	return code;
}

/*
 * Claims up to request->limit jobs in one transaction (FOR UPDATE SKIP LOCKED,
 * so concurrent claimants get disjoint sets), then writes one job line each
 * to output. *count is the number of lines written, *claimed the number of
 * jobs flipped to Running (an agent's AwaitingCSR jobs are listed, not
 * claimed). Returns 0 (nothing to do included), EXIT_NOT_FOUND (unknown
 * agent), EXIT_RETIRED, or a database code.
 */
static int claim_jobs(PGconn *conn, const struct claim_request *request,
		      const struct claim_output *output, long *count, long *claimed, struct error *err)
{
	PGresult *results[MAX_CLAIM_RESULTS] = { NULL };
	int result_count = 0, code;
	char limit[24], lease[24], remaining[24];
	const char *params[5] = { request->job_type, limit, request->worker, lease,
				  request->agent_id };
	const char *csr_params[3] = { request->job_type, limit, request->agent_id };
	long flipped;

	*count = 0;
	*claimed = 0;
	snprintf(limit, sizeof(limit), "%ld", request->limit);
	snprintf(lease, sizeof(lease), "%ld", request->lease_seconds);
	if (request->agent_id == NULL) {
		/* One statement is its own transaction: no BEGIN/COMMIT round trips. */
		results[0] = db_query(conn, request->any ? claim_any_sql : claim_central_sql,
				      4, params, err);
		if (results[result_count++] == NULL)
			return err->code;
		flipped = PQntuples(results[0]);
		goto print;
	}
	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((code = lock_active_agent(conn, request->agent_id, err)) != 0)
		goto fail;
	results[0] = db_query(conn, claim_agent_assigned_sql, 5, params, err);
	if (results[result_count++] == NULL)
		goto fail;
	flipped = PQntuples(results[0]);
	if (flipped < request->limit) {
		snprintf(remaining, sizeof(remaining), "%ld", request->limit - flipped);
		params[1] = remaining;
		results[result_count] = db_query(conn, claim_agent_targeted_sql, 5, params, err);
		if (results[result_count++] == NULL)
			goto fail;
		flipped += PQntuples(results[result_count - 1]);
	}
	results[result_count] = db_query(conn, list_agent_awaiting_csr_sql, 3, csr_params, err);
	if (results[result_count++] == NULL)
		goto fail;
	if ((code = db_commit(conn, err)) != 0)
		goto out;
print:
	*claimed = flipped;
	/* Printed only once committed: a line on stdout is a job this worker owns. */
	code = write_job_lines(output, results, result_count, false, count, err);
	goto out;
fail:
	code = err->code;
	db_rollback(conn);
out:
	for (int r = 0; r < result_count; r++)
		PQclear(results[r]);
	return code;
}

/* What a claimer with nothing to claim waits on, besides the database socket. */
struct claim_wait {
	long long deadline;     /* monotonic milliseconds; LLONG_MAX: no end */
	int reader_pipe;        /* standard output when it is a pipe, else -1 */
	sigset_t unblocked;     /* the mask ppoll() runs with: stop signals let in */
};

/* The descriptor behind output when it is a pipe whose reader we can watch, else -1. */
static int output_pipe(FILE *output)
{
	struct stat status;
	int fd = output == NULL ? -1 : fileno(output);

	return fd >= 0 && fstat(fd, &status) == 0 && S_ISFIFO(status.st_mode) ? fd : -1;
}

static int stopped_while(const char *doing, struct error *err)
{
	return error_set(err, EXIT_TEMPORARY, "interrupted by signal %d while %s",
			 signals_received(), doing);
}

/*
 * Claims until a claim prints something (with until_claimed: until one
 * claims a job, since an agent's AwaitingCSR jobs are listed by every claim
 * and would keep a follower spinning), the deadline passes, a stop signal
 * arrives or the reader of a pipe on output goes away. Between tries it
 * sleeps in ppoll() until a NOTIFY, the next due job or the deadline.
 * *count adds up the lines of every try, *claimed the jobs flipped to Running.
 */
static int claim_when_ready(PGconn *conn, const struct claim_request *request,
			    const struct claim_wait *wait, bool until_claimed,
			    const struct claim_output *output, long *count, long *claimed,
			    struct error *err)
{
	*count = 0;
	*claimed = 0;
	for (;;) {
		long long left, due = -1;
		long printed;
		int notified, code;

		if (signals_stop_requested())
			return stopped_while("waiting for jobs", err);
		code = claim_jobs(conn, request, output, &printed, claimed, err);
		*count += printed;
		if (code != 0 || *claimed > 0 || (printed > 0 && !until_claimed))
			return code;
		/*
		 * A Pending job whose scheduled_at is still to come comes due without
		 * a notification. It may be another claimant's; waking for it costs
		 * one empty claim.
		 */
		if ((code = listen_next_due(conn, next_due_sql, &due, err)) != 0)
			return code;
		/*
		 * Notifications that came in during these queries are for jobs the
		 * claim may have missed; libpq has queued them, ppoll() would not see them.
		 */
		if ((code = listen_drain(conn, &notified, err)) != 0)
			return code;
		if (notified > 0)
			continue;
		if ((left = wait->deadline - monotonic_milliseconds()) <= 0)
			return 0;
		if (due >= 0 && due < left)
			left = due;
		if ((code = listen_wait(conn, left, wait->reader_pipe, &wait->unblocked, err)) != 0)
			return code;
	}
}

/*
 * Returns once the reader of the pipe has taken every byte written so far,
 * so a following claimer keeps at most one round waiting in the pipe while
 * its reader works. Linux has no wake-up for an emptied pipe: FIONREAD is
 * asked again after 0.1, 0.2, 0.4 ... ms, at most READER_CHECK_MAX_US apart.
 */
#define READER_CHECK_FIRST_US 100L
#define READER_CHECK_MAX_US 100000L
static int wait_for_reader(const struct claim_wait *wait, struct error *err)
{
	long delay_us = READER_CHECK_FIRST_US;

	if (wait->reader_pipe < 0)
		return 0;
	for (;;) {
		struct pollfd pipe_end = { .fd = wait->reader_pipe, .events = 0 };
		struct timespec timeout = { .tv_sec = 0, .tv_nsec = delay_us * 1000L };
		int unread = 0;

		/* Unanswerable: do not hold the claimer up. */
		if (ioctl(wait->reader_pipe, FIONREAD, &unread) != 0 || unread == 0)
			return 0;
		if (signals_stop_requested())
			return stopped_while("waiting for the reader", err);
		if (ppoll(&pipe_end, 1, &timeout, &wait->unblocked) > 0 &&
		    (pipe_end.revents & (POLLERR | POLLHUP)) != 0)
			return listen_reader_gone(err);
		delay_us = delay_us * 2 < READER_CHECK_MAX_US ? delay_us * 2 : READER_CHECK_MAX_US;
	}
}

/* The monotonic time seconds from now; LLONG_MAX for negative seconds (no end). */
static long long deadline_after(long seconds)
{
	return seconds < 0 ? LLONG_MAX : monotonic_milliseconds() + seconds * 1000LL;
}

/*
 * LISTEN, then block the stop signals; the mask to restore is in
 * wait->unblocked. The caller sets wait->deadline.
 */
static int start_waiting(PGconn *conn, FILE *output, struct claim_wait *wait, struct error *err)
{
	int code;

	/* Listen before the first try, so a job enqueued right after it still wakes us. */
	if ((code = db_command(conn, listen_sql, 0, NULL, err)) != 0)
		return code;
	wait->reader_pipe = output_pipe(output);
	/* Signals stay blocked except inside ppoll(), so none slips in before a wait. */
	signals_block_stop(&wait->unblocked);
	return 0;
}

/* claim_jobs_waiting() into output; wait_seconds 0: no wait, negative: for ever. */
static int claim_into(PGconn *conn, const struct claim_request *request, long wait_seconds,
		      const struct claim_output *output, long *count, struct error *err)
{
	struct claim_wait wait;
	long claimed;
	int code;

	if (wait_seconds == 0)
		return claim_jobs(conn, request, output, count, &claimed, err);
	if ((code = start_waiting(conn, output->stream, &wait, err)) != 0)
		return code;
	wait.deadline = deadline_after(wait_seconds);
	code = claim_when_ready(conn, request, &wait, false, output, count, &claimed, err);
	sigprocmask(SIG_SETMASK, &wait.unblocked, NULL);
	return code;
}

int claim_jobs_waiting(PGconn *conn, const struct claim_request *request, long wait_seconds,
		       FILE *output, long *count, struct error *err)
{
	const struct claim_output into = { output, NULL };

	return claim_into(conn, request, wait_seconds < 0 ? 0 : wait_seconds, &into, count, err);
}

int claim_jobs_collect(PGconn *conn, const struct claim_request *request, long wait_seconds,
		       json_object *job_lines, struct error *err)
{
	const struct claim_output into = { NULL, job_lines };
	long count;

	return claim_into(conn, request, wait_seconds, &into, &count, err);
}

int claim_jobs_following(PGconn *conn, const struct claim_request *request, long idle_seconds,
			 FILE *output, long *count, struct error *err)
{
	const struct claim_output into = { output, NULL };
	struct claim_wait wait;
	long round, claimed;
	int code;

	*count = 0;
	if ((code = start_waiting(conn, output, &wait, err)) != 0)
		return code;
	for (;;) {
		/* The idle time counts from the end of the last round that claimed. */
		wait.deadline = deadline_after(idle_seconds);
		code = claim_when_ready(conn, request, &wait, true, &into, &round, &claimed, err);
		*count += round;
		/* Without an error it returns having claimed, or having waited out the idle time. */
		if (code != 0 || claimed == 0)
			break;
		if ((code = wait_for_reader(&wait, err)) != 0)
			break;
	}
	sigprocmask(SIG_SETMASK, &wait.unblocked, NULL);
	return code;
}

/* Audit and notification events for each job the reaper failed; actor is the system. */
static int record_failures(PGconn *conn, const PGresult *jobs, struct error *err)
{
	for (int row = 0; row < PQntuples(jobs); row++) {
		const char *job_id = PQgetvalue(jobs, row, COLUMN_ID);
		const char *reason = PQgetvalue(jobs, row, JOB_LINE_COLUMN_COUNT + 1);
		json_object *details;
		struct audit_event event;
		char message[ERROR_MESSAGE_MAX];
		int code;

		if (strcmp(PQgetvalue(jobs, row, JOB_LINE_COLUMN_COUNT), "failed") != 0)
			continue;
		details = json_object_new_object();
		json_object_object_add(details, "reason", json_object_new_string(reason));
		json_add_text_column(details, "agent_id", jobs, row, COLUMN_AGENT_ID);
		json_add_text_column(details, "target_id", jobs, row, COLUMN_TARGET_ID);
		event = (struct audit_event){ .actor = "certctl-claim --reap", .actor_type = "System",
					      .action = "job_failed", .resource_type = "job",
					      .resource_id = job_id, .details = details };
		code = audit_record(conn, &event, err);
		json_object_put(details);
		if (code != 0)
			return code;
		snprintf(message, sizeof(message), "job %s failed: %s", job_id, reason);
		code = notification_record(conn, "job_failed",
					   column_or_null(jobs, row, COLUMN_CERTIFICATE_ID),
					   job_id, message, err);
		if (code != 0)
			return code;
	}
	return 0;
}

int reap_jobs(PGconn *conn, FILE *output, long *count, struct error *err)
{
	const struct claim_output into = { output, NULL };
	PGresult *results[2] = { NULL, NULL };
	char base[24], cap[24];
	const char *params[2] = { base, cap };
	int code;

	*count = 0;
	snprintf(base, sizeof(base), "%d", REAP_BACKOFF_BASE_SECONDS);
	snprintf(cap, sizeof(cap), "%d", REAP_BACKOFF_CAP_SECONDS);
	if ((code = db_begin(conn, err)) != 0)
		return code;
	/* Retired routing first, so such a job is failed once instead of requeued. */
	if ((results[0] = db_query(conn, reap_retired_sql, 0, NULL, err)) == NULL ||
	    (code = record_failures(conn, results[0], err)) != 0 ||
	    (results[1] = db_query(conn, reap_expired_sql, 2, params, err)) == NULL ||
	    (code = record_failures(conn, results[1], err)) != 0) {
		code = err->code;
		db_rollback(conn);
		goto out;
	}
	if ((code = db_commit(conn, err)) != 0)
		goto out;
	code = write_job_lines(&into, results, 2, true, count, err);
out:
	PQclear(results[0]);
	PQclear(results[1]);
	return code;
}

json_object *claim_job_by_id(PGconn *conn, const char *job_id, const char *job_type,
			     const char *worker, long lease_seconds, struct error *err)
{
	char lease[24];
	const char *params[4] = { job_id, job_type, worker, lease };
	PGresult *result;
	json_object *line = NULL;

	snprintf(lease, sizeof(lease), "%ld", lease_seconds);
	if ((result = db_query(conn, claim_by_id_sql, 4, params, err)) == NULL)
		return NULL;
	if (PQntuples(result) == 1) {
		line = job_line_from_row(result, 0, 0);
		PQclear(result);
		return line;
	}
	PQclear(result);
	if ((result = db_query(conn, job_status_sql, 1, params, err)) == NULL)
		return NULL;
	if (PQntuples(result) == 0) {
		if (scope_check_job(conn, job_id, err) == 0)
			error_set(err, EXIT_NOT_FOUND, "%s: no such job", job_id);
	} else
		error_set(err, EXIT_TEMPORARY, "%s: a %s job is %s, not a Pending %s job; left alone",
			  job_id, PQgetvalue(result, 0, 1), PQgetvalue(result, 0, 0), job_type);
	PQclear(result);
	return NULL;
}

void default_worker_name(char name[WORKER_NAME_SIZE])
{
	char host[HOST_NAME_MAX + 1];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(name, WORKER_NAME_SIZE, "%s:%ld", host, (long)getpid());
}
