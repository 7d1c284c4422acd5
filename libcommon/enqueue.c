#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "db.h"
#include "enqueue.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"

/* FOR UPDATE serializes concurrent enqueues of one certificate, so the
 * "no second Pending job" check below cannot race with itself. */
static const char lock_certificate_sql[] =
	"SELECT EXISTS (SELECT 1 FROM certificate_versions v WHERE v.certificate_id = c.id)"
	" FROM managed_certificates c WHERE c.id = $1 FOR UPDATE OF c";

static const char count_active_targets_sql[] =
	"SELECT count(*) FROM certificate_targets ct"
	" JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL"
	" JOIN agents a ON a.id = t.agent_id AND a.retired_at IS NULL"
	" WHERE ct.certificate_id = $1";

/* Only agents with a public key can open the version's key: no job for the others. */
static const char insert_jobs_sql[] =
	"INSERT INTO jobs AS j (id, type, status, certificate_id, target_id, agent_id)"
	" SELECT 'job-' || gen_random_uuid(), 'Deployment', 'Pending', ct.certificate_id, t.id, t.agent_id"
	" FROM certificate_targets ct"
	" JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL"
	" JOIN agents a ON a.id = t.agent_id AND a.retired_at IS NULL AND a.public_key IS NOT NULL"
	" WHERE ct.certificate_id = $1"
	" AND NOT EXISTS (SELECT 1 FROM jobs p WHERE p.certificate_id = ct.certificate_id"
	"   AND p.target_id = t.id AND p.type = 'Deployment' AND p.status = 'Pending')"
	" ORDER BY t.id"
	" RETURNING " JOB_LINE_COLUMNS;

static const char unenrolled_targets_sql[] =
	"SELECT t.id, t.agent_id FROM certificate_targets ct"
	" JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL"
	" JOIN agents a ON a.id = t.agent_id AND a.retired_at IS NULL AND a.public_key IS NULL"
	" WHERE ct.certificate_id = $1 ORDER BY t.id";

/* One line and one warning per active target whose agent is not enrolled. */
static int report_unenrolled(PGconn *conn, const char *certificate_id, json_object *job_lines,
			     struct enqueue_counts *counts, struct error *err)
{
	const char *params[1] = { certificate_id };
	PGresult *result = db_query(conn, unenrolled_targets_sql, 1, params, err);

	if (result == NULL)
		return err->code;
	counts->unenrolled = PQntuples(result);
	for (int row = 0; row < counts->unenrolled; row++) {
		json_object *line = json_object_new_object();

		json_object_object_add(line, "certificate_id", json_object_new_string(certificate_id));
		json_add_text_column(line, "target_id", result, row, 0);
		json_add_text_column(line, "agent_id", result, row, 1);
		json_object_object_add(line, "error", json_object_new_string("agent not enrolled"));
		json_object_array_add(job_lines, line);
		log_warn("%s: agent %s is not enrolled (no public key): no job for it",
			 PQgetvalue(result, row, 0), PQgetvalue(result, row, 1));
	}
	PQclear(result);
	return 0;
}

int enqueue_deployment_jobs(PGconn *conn, const char *certificate_id, struct sealing_key *sealing_key,
			    json_object *job_lines, struct enqueue_counts *counts, struct error *err)
{
	const char *params[1] = { certificate_id };
	PGresult *result;
	json_object *details;
	struct audit_event event = { NULL, "User", "deployment_jobs_created", "certificate",
				     certificate_id, NULL };
	long sealed;
	int code;

	counts->active_targets = counts->created = counts->already_pending = counts->unenrolled = 0;
	if ((result = db_query(conn, lock_certificate_sql, 1, params, err)) == NULL)
		return err->code;
	if (PQntuples(result) == 0) {
		PQclear(result);
		return error_set(err, EXIT_NOT_FOUND, "%s: no such certificate", certificate_id);
	}
	if (PQgetvalue(result, 0, 0)[0] != 't') {
		PQclear(result);
		return error_set(err, EXIT_NOT_FOUND, "%s: no version imported; nothing to deploy",
				 certificate_id);
	}
	PQclear(result);

	if ((result = db_query(conn, count_active_targets_sql, 1, params, err)) == NULL)
		return err->code;
	counts->active_targets = atoi(PQgetvalue(result, 0, 0));
	PQclear(result);
	if (counts->active_targets == 0)
		return error_set(err, EXIT_NOT_FOUND,
				 "%s: no active target is mapped to this certificate", certificate_id);

	/* Agents added since the import get their sealed key before their job. */
	if ((code = version_keys_fill(conn, certificate_id, NULL, sealing_key, &sealed, err)) != 0)
		return code;
	if ((result = db_query(conn, insert_jobs_sql, 1, params, err)) == NULL)
		return err->code;
	counts->created = PQntuples(result);
	for (int row = 0; row < counts->created; row++)
		json_object_array_add(job_lines, job_line_from_row(result, row, 0));
	PQclear(result);
	if ((code = report_unenrolled(conn, certificate_id, job_lines, counts, err)) != 0)
		return code;
	counts->already_pending = counts->active_targets - counts->unenrolled - counts->created;
	if (counts->created == 0)
		return 0;

	details = json_object_new_object();
	json_object_object_add(details, "active_targets", json_object_new_int(counts->active_targets));
	json_object_object_add(details, "jobs_created", json_object_new_int(counts->created));
	json_object_object_add(details, "already_pending", json_object_new_int(counts->already_pending));
	event.details = details;
	code = audit_record(conn, &event, err);
	json_object_put(details);
	return code;
}

int enqueue_certificate(PGconn *conn, const char *certificate_id, FILE *output, struct error *err)
{
	json_object *job_lines = json_object_new_array();
	struct sealing_key sealing_key = { { 0 }, false };
	struct enqueue_counts counts;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		goto out;
	if ((code = enqueue_deployment_jobs(conn, certificate_id, &sealing_key, job_lines, &counts,
					    err)) != 0) {
		db_rollback(conn);
		goto out;
	}
	if ((code = db_commit(conn, err)) != 0)
		goto out;
	for (size_t i = 0; i < json_object_array_length(job_lines) && code == 0; i++)
		code = jsonl_write(output, json_object_array_get_idx(job_lines, i), err);
	/* Nothing can reach any target until an operator enrolls its agent. */
	if (code == 0 && counts.unenrolled == counts.active_targets)
		code = error_set(err, EXIT_CONFIG, "%s: no active target's agent is enrolled; no job enqueued",
				 certificate_id);
out:
	sealing_key_wipe(&sealing_key);
	json_object_put(job_lines);
	return code;
}
