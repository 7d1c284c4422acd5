#include <stdio.h>
#include <string.h>

#include "claim.h"
#include "db.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "pgjson.h"

static const char finish_fenced_sql[] =
	"UPDATE jobs SET status = $4, last_error = $5, result = $6::jsonb,"
	" completed_at = now(), lease_expires_at = NULL, updated_at = now()"
	" WHERE id = $1 AND status = 'Running' AND claimed_by = $2 AND attempts = $3::int"
	" AND $4 IN ('Completed', 'Failed')";

/* $4 backoff base seconds, $5 cap (claim.h). */
static const char retry_fenced_sql[] =
	"UPDATE jobs j SET"
	" status = CASE WHEN j.attempts >= j.max_attempts THEN 'Failed' ELSE 'Pending' END,"
	" scheduled_at = CASE WHEN j.attempts >= j.max_attempts THEN j.scheduled_at"
	"  ELSE now() + " JOB_BACKOFF_SQL("$4", "$5") " END,"
	" completed_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,"
	" last_error = $6, lease_expires_at = NULL, claimed_by = NULL, updated_at = now()"
	" WHERE j.id = $1 AND j.status = 'Running' AND j.claimed_by = $2 AND j.attempts = $3::int"
	" RETURNING j.status, certctl_rfc3339(j.scheduled_at)";

static const char extend_lease_sql[] =
	"UPDATE jobs SET lease_expires_at = now() + make_interval(secs => $4::int), updated_at = now()"
	" WHERE id = $1 AND status = 'Running' AND claimed_by = $2 AND attempts = $3::int";

static const char job_state_sql[] =
	"SELECT status, claimed_by, attempts FROM jobs WHERE id = $1";

/* Why a fenced update changed nothing: no such job, or it is no longer ours. */
static int claim_lost(PGconn *conn, const char *job_id, const struct job_claim *claim,
		      struct error *err)
{
	const char *params[1] = { job_id };
	PGresult *state;
	int code;

	state = db_query(conn, job_state_sql, 1, params, err);
	if (state == NULL)
		return err->code;
	if (PQntuples(state) == 0)
		code = error_set(err, EXIT_NOT_FOUND, "%s: no such job", job_id);
	else
		code = error_set(err, EXIT_TEMPORARY,
				 "%s: claim lost: job is %s under %s/%s, not Running under %s/%d; left alone",
				 job_id, PQgetvalue(state, 0, 0),
				 PQgetisnull(state, 0, 1) ? "nobody" : PQgetvalue(state, 0, 1),
				 PQgetvalue(state, 0, 2), claim->claimed_by, claim->attempts);
	PQclear(state);
	return code;
}

int job_finish_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
		      const char *final_status, const char *last_error,
		      json_object *result, struct error *err)
{
	char attempts[16];
	const char *params[6];
	PGresult *update;
	long changed;

	snprintf(attempts, sizeof(attempts), "%d", claim->attempts);
	params[0] = job_id;
	params[1] = claim->claimed_by;
	params[2] = attempts;
	params[3] = final_status;
	params[4] = last_error;
	params[5] = result ? json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN) : NULL;
	update = db_query(conn, finish_fenced_sql, 6, params, err);
	if (update == NULL)
		return err->code;
	changed = db_affected_rows(update);
	PQclear(update);
	if (changed == 1)
		return 0;
	return claim_lost(conn, job_id, claim, err);
}

json_object *job_line_from_row(const PGresult *result, int row, int first_column)
{
	static const char *const text_keys[] = { "id", "type", "status", "certificate_id",
						  "target_id", "agent_id" };
	json_object *line = json_object_new_object();
	int column = first_column;

	for (size_t i = 0; i < sizeof(text_keys) / sizeof(text_keys[0]); i++)
		json_add_text_column(line, text_keys[i], result, row, column++);
	json_add_int_column(line, "attempts", result, row, column++);
	json_add_int_column(line, "max_attempts", result, row, column++);
	json_add_text_column(line, "lease_expires_at", result, row, column++);
	json_add_text_column(line, "claimed_by", result, row, column++);
	json_add_text_column(line, "scheduled_at", result, row, column++);
	return line;
}

int job_retry_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
		     const char *last_error, bool *failed, char scheduled_at[JOB_TIME_SIZE],
		     struct error *err)
{
	char attempts[16], base[24], cap[24];
	const char *params[6] = { job_id, claim->claimed_by, attempts, base, cap, last_error };
	PGresult *update;

	snprintf(attempts, sizeof(attempts), "%d", claim->attempts);
	snprintf(base, sizeof(base), "%d", REAP_BACKOFF_BASE_SECONDS);
	snprintf(cap, sizeof(cap), "%d", REAP_BACKOFF_CAP_SECONDS);
	if ((update = db_query(conn, retry_fenced_sql, 6, params, err)) == NULL)
		return err->code;
	if (PQntuples(update) != 1) {
		PQclear(update);
		return claim_lost(conn, job_id, claim, err);
	}
	*failed = strcmp(PQgetvalue(update, 0, 0), "Failed") == 0;
	snprintf(scheduled_at, JOB_TIME_SIZE, "%s", PQgetvalue(update, 0, 1));
	PQclear(update);
	return 0;
}

int job_extend_lease_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
			    long seconds, struct error *err)
{
	char attempts[16], lease[24];
	const char *params[4] = { job_id, claim->claimed_by, attempts, lease };
	PGresult *update;
	long changed;

	snprintf(attempts, sizeof(attempts), "%d", claim->attempts);
	snprintf(lease, sizeof(lease), "%ld", seconds);
	if ((update = db_query(conn, extend_lease_sql, 4, params, err)) == NULL)
		return err->code;
	changed = db_affected_rows(update);
	PQclear(update);
	return changed == 1 ? 0 : claim_lost(conn, job_id, claim, err);
}
