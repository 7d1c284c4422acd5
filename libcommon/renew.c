#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "log.h"
#include "renew.h"
#include "signals.h"

#define UNFINISHED_RENEWAL                                                      \
	" type IN ('Issuance', 'Renewal')"                                      \
	" AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running')"

/*
 * $1 the time to judge by (NULL: now), $2 one certificate (NULL: all).
 * renewal_due_at is kept by the schema's triggers, so this reads the index
 * of the few due certificates, never every version.
 */
static const char due_certificates_sql[] =
	"SELECT m.id, m.key_mode, m.current_version_id IS NULL, a.agents, a.first_agent"
	" FROM managed_certificates m"
	" CROSS JOIN LATERAL (SELECT count(DISTINCT t.agent_id) AS agents, min(t.agent_id) AS first_agent"
	"   FROM certificate_targets ct JOIN deployment_targets t ON t.id = ct.target_id"
	"  WHERE ct.certificate_id = m.id AND t.retired_at IS NULL) a"
	" WHERE m.auto_renew AND m.issuer_id IS NOT NULL"
	" AND m.renewal_due_at <= COALESCE($1::timestamptz, now())"
	" AND ($2::text IS NULL OR m.id = $2)"
	" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = m.id AND" UNFINISHED_RENEWAL ")"
	" ORDER BY m.renewal_due_at, m.id";

/* The unique index makes a concurrent renew's job win quietly: no row back. */
static const char insert_job_sql[] =
	"INSERT INTO jobs AS j (id, type, status, certificate_id, agent_id)"
	" VALUES ('job-' || gen_random_uuid(), $1, $2, $3, $4)"
	" ON CONFLICT (certificate_id) WHERE" UNFINISHED_RENEWAL " DO NOTHING"
	" RETURNING " JOB_LINE_COLUMNS;

/* Once per version and kind, by the partial unique index. */
static const char expiry_events_sql[] =
	"INSERT INTO notification_events (type, certificate_id, version_id, message)"
	" SELECT CASE WHEN v.not_after <= n.now THEN 'expired' ELSE 'expiry_warning' END, m.id, v.id,"
	"  CASE WHEN v.not_after <= n.now"
	"   THEN format('certificate %s expired at %s', m.id, certctl_rfc3339(v.not_after))"
	"   ELSE format('certificate %s expires at %s, in %s days', m.id, certctl_rfc3339(v.not_after),"
	"        floor(extract(epoch FROM v.not_after - n.now) / 86400)) END"
	" FROM (SELECT COALESCE($1::timestamptz, now()) AS now) n"
	" JOIN managed_certificates m ON m.expiry_warning_at <= n.now"
	" JOIN certificate_versions v ON v.id = m.current_version_id"
	" WHERE ($2::text IS NULL OR m.id = $2)"
	" ON CONFLICT (version_id, type)"
	"  WHERE version_id IS NOT NULL AND type IN ('expiry_warning', 'expired') DO NOTHING"
	" RETURNING type, certificate_id, version_id";

static const char certificate_exists_sql[] = "SELECT 1 FROM managed_certificates WHERE id = $1";

struct due_certificate {
	const char *id;
	const char *key_mode;
	bool has_no_version;
	long agent_count;
	const char *agent_id; /* the one agent of an agent-mode certificate */
};

static int end_transaction(PGconn *conn, bool dry_run, struct error *err)
{
	if (dry_run) {
		db_rollback(conn);
		return 0;
	}
	return db_commit(conn, err);
}

/* The job for one due certificate and its audit event, in one transaction. */
static int create_job(PGconn *conn, const struct due_certificate *due, bool dry_run, FILE *output,
		      struct error *err)
{
	bool agent_mode = strcmp(due->key_mode, "agent") == 0;
	const char *type = due->has_no_version ? "Issuance" : "Renewal";
	const char *params[4] = { type, agent_mode ? "AwaitingCSR" : "Pending", due->id,
				  agent_mode ? due->agent_id : NULL };
	struct audit_event event = {
		.actor_type = "System",
		.action = due->has_no_version ? "issuance_job_created" : "renewal_job_created",
		.resource_type = "job",
	};
	json_object *line = NULL;
	PGresult *result;
	int code;

	if (agent_mode && due->agent_count != 1)
		return error_set(err, EXIT_CONFIG,
				 "certificate %s: key_mode agent needs its active targets on one agent,"
				 " they are on %ld", due->id, due->agent_count);
	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((result = db_query(conn, insert_job_sql, 4, params, err)) == NULL) {
		db_rollback(conn);
		return err->code;
	}
	if (PQntuples(result) == 1) {
		line = job_line_from_row(result, 0, 0);
		event.resource_id = PQgetvalue(result, 0, 0);
		event.details = json_object_new_object();
		json_object_object_add(event.details, "certificate_id", json_object_new_string(due->id));
		json_object_object_add(event.details, "key_mode", json_object_new_string(due->key_mode));
		code = audit_record(conn, &event, err);
		json_object_put(event.details);
	}
	PQclear(result);
	if (code == 0)
		code = end_transaction(conn, dry_run, err);
	else
		db_rollback(conn);
	if (code == 0 && line != NULL)
		code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

static int record_expiry_events(PGconn *conn, const struct renew_request *request, struct error *err)
{
	const char *params[2] = { request->now, request->certificate_id };
	PGresult *result;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((result = db_query(conn, expiry_events_sql, 2, params, err)) == NULL) {
		db_rollback(conn);
		return err->code;
	}
	for (int row = 0; row < PQntuples(result); row++)
		log_info("%s%s: certificate %s, version %s", request->dry_run ? "would write " : "",
			 PQgetvalue(result, row, 0), PQgetvalue(result, row, 1), PQgetvalue(result, row, 2));
	PQclear(result);
	return end_transaction(conn, request->dry_run, err);
}

static int check_certificate_exists(PGconn *conn, const char *certificate_id, struct error *err)
{
	PGresult *result = db_query(conn, certificate_exists_sql, 1, &certificate_id, err);
	int found;

	if (result == NULL)
		return err->code;
	found = PQntuples(result);
	PQclear(result);
	if (!found)
		return error_set(err, EXIT_NOT_FOUND, "certificate %s: no such certificate", certificate_id);
	return 0;
}

int renew_due_certificates(PGconn *conn, const struct renew_request *request, FILE *output,
			   struct error *err)
{
	const char *params[2] = { request->now, request->certificate_id };
	PGresult *result;
	int status = 0, code;

	if (request->certificate_id != NULL &&
	    (code = check_certificate_exists(conn, request->certificate_id, err)) != 0)
		return code;
	if ((result = db_query(conn, due_certificates_sql, 2, params, err)) == NULL)
		return err->code;
	for (int row = 0; row < PQntuples(result) && !signals_stop_requested(); row++) {
		struct due_certificate due = {
			.id = PQgetvalue(result, row, 0),
			.key_mode = PQgetvalue(result, row, 1),
			.has_no_version = PQgetvalue(result, row, 2)[0] == 't',
			.agent_count = strtol(PQgetvalue(result, row, 3), NULL, 10),
			.agent_id = PQgetisnull(result, row, 4) ? NULL : PQgetvalue(result, row, 4),
		};

		code = create_job(conn, &due, request->dry_run, output, err);
		if (code == EXIT_CANT_CREATE || code == EXIT_UNAVAILABLE) {
			PQclear(result);
			return code;
		}
		if (code != 0) {
			log_error("%s", err->message);
			status = exit_code_most_serious(status, code);
		}
	}
	PQclear(result);
	if (signals_stop_requested())
		return error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	if ((code = record_expiry_events(conn, request, err)) != 0)
		return code;
	/* Each refusal has had its line. */
	error_clear(err);
	return status;
}
