#include <stdio.h>

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

static const char job_state_sql[] =
	"SELECT status, claimed_by, attempts FROM jobs WHERE id = $1";

int job_finish_fenced(PGconn *conn, const char *job_id, const struct job_claim *claim,
		      const char *final_status, const char *last_error,
		      json_object *result, struct error *err)
{
	char attempts[16];
	const char *params[6];
	PGresult *update, *state;
	long changed;
	int code;

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
