#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "log.h"
#include "renew.h"

#define UNFINISHED_RENEWAL                                                      \
	" type IN ('Issuance', 'Renewal')"                                      \
	" AND status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running')"

/*
 * $1 the time to judge by (NULL: now), $2 one certificate (NULL: all).
 * renewal_due_at is kept by the schema's triggers, so this reads the index
 * of the few due certificates, never every version. An agent-mode
 * certificate can be renewed only when its active targets are on one agent.
 */
#define DUE_CERTIFICATES                                                                        \
	" due AS (SELECT m.id, m.key_mode, m.renewal_due_at,"                                   \
	"   CASE WHEN m.current_version_id IS NULL THEN 'Issuance' ELSE 'Renewal' END AS type,"  \
	"   a.agents, a.first_agent,"                                                           \
	"   m.key_mode = 'central' OR a.agents = 1 AS renewable"                                \
	" FROM managed_certificates m"                                                          \
	" CROSS JOIN LATERAL (SELECT count(DISTINCT t.agent_id) AS agents,"                     \
	"   min(t.agent_id) AS first_agent"                                                     \
	"   FROM certificate_targets ct JOIN deployment_targets t ON t.id = ct.target_id"       \
	"  WHERE ct.certificate_id = m.id AND t.retired_at IS NULL) a"                          \
	" WHERE m.auto_renew AND m.issuer_id IS NOT NULL"                                       \
	" AND m.renewal_due_at <= COALESCE($1::timestamptz, now())"                             \
	" AND ($2::text IS NULL OR m.id = $2)"                                                  \
	" AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.certificate_id = m.id AND" UNFINISHED_RENEWAL "))"

/*
 * Every due certificate's job and its audit event in one statement ($3 the
 * actor). The unique index makes a concurrent renew's job win quietly.
 */
static const char create_jobs_sql[] =
	"WITH" DUE_CERTIFICATES ","
	" created AS (INSERT INTO jobs AS j (id, type, status, certificate_id, agent_id)"
	"  SELECT 'job-' || gen_random_uuid(), d.type,"
	"   CASE d.key_mode WHEN 'agent' THEN 'AwaitingCSR' ELSE 'Pending' END, d.id,"
	"   CASE d.key_mode WHEN 'agent' THEN d.first_agent END"
	"  FROM due d WHERE d.renewable ORDER BY d.renewal_due_at, d.id"
	"  ON CONFLICT (certificate_id) WHERE" UNFINISHED_RENEWAL " DO NOTHING"
	"  RETURNING j.*),"
	" audited AS (INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details)"
	"  SELECT $3, 'System', lower(j.type) || '_job_created', 'job', j.id,"
	"   jsonb_build_object('certificate_id', j.certificate_id,"
	"    'key_mode', CASE WHEN j.status = 'AwaitingCSR' THEN 'agent' ELSE 'central' END)"
	"  FROM created j)"
	" SELECT " JOB_LINE_COLUMNS " FROM created j ORDER BY j.certificate_id";

/* What could not be renewed, to be named. */
static const char refused_certificates_sql[] =
	"WITH" DUE_CERTIFICATES " SELECT d.id, d.agents FROM due d WHERE NOT d.renewable ORDER BY d.id";

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

static int end_transaction(PGconn *conn, bool dry_run, struct error *err)
{
	if (dry_run) {
		db_rollback(conn);
		return 0;
	}
	return db_commit(conn, err);
}

/* Names each agent-mode certificate that is due and cannot be renewed; EXIT_CONFIG if any. */
static int report_refused(PGconn *conn, const char *const *params, struct error *err)
{
	PGresult *result = db_query(conn, refused_certificates_sql, 2, params, err);
	int refused;

	if (result == NULL)
		return err->code;
	refused = PQntuples(result);
	for (int row = 0; row < refused; row++)
		log_error("certificate %s: key_mode agent needs its active targets on one agent,"
			  " they are on %s", PQgetvalue(result, row, 0), PQgetvalue(result, row, 1));
	PQclear(result);
	return refused ? EXIT_CONFIG : 0;
}

/* All due certificates' jobs in one transaction; the lines printed after it ends. */
static int create_jobs(PGconn *conn, const struct renew_request *request, FILE *output,
		       struct error *err)
{
	const char *params[3] = { request->now, request->certificate_id, audit_default_actor() };
	json_object *lines;
	PGresult *result;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((result = db_query(conn, create_jobs_sql, 3, params, err)) == NULL) {
		db_rollback(conn);
		return err->code;
	}
	lines = json_object_new_array();
	for (int row = 0; row < PQntuples(result); row++)
		json_object_array_add(lines, job_line_from_row(result, row, 0));
	PQclear(result);
	if ((code = end_transaction(conn, request->dry_run, err)) == 0) {
		for (size_t i = 0; i < json_object_array_length(lines) && code == 0; i++)
			code = jsonl_put(output, json_object_array_get_idx(lines, i), err);
		if (code == 0)
			code = jsonl_flush(output, err);
	}
	json_object_put(lines);
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
	int refused, code;

	if (request->certificate_id != NULL &&
	    (code = check_certificate_exists(conn, request->certificate_id, err)) != 0)
		return code;
	if ((refused = report_refused(conn, params, err)) != 0 && refused != EXIT_CONFIG)
		return refused;
	if ((code = create_jobs(conn, request, output, err)) != 0 ||
	    (code = record_expiry_events(conn, request, err)) != 0)
		return code;
	/* Each refusal has had its line. */
	error_clear(err);
	return refused;
}
