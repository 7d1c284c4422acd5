#include "db.h"
#include "exitcode.h"
#include "scope.h"

/* Both raise insufficient_privilege (42501 → 77) and otherwise return true. */
static const char check_acting_for_sql[] = "SELECT certctl_check_acting_for($1)";
static const char check_job_sql[] = "SELECT certctl_check_job_scope($1)";
static const char agent_exists_sql[] = "SELECT 1 FROM agents WHERE id = $1";

int scope_check_acting_for(PGconn *conn, const char *agent_id, struct error *err)
{
	const char *params[1] = { agent_id };

	return db_command(conn, check_acting_for_sql, 1, params, err);
}

int scope_check_job(PGconn *conn, const char *job_id, struct error *err)
{
	const char *params[1] = { job_id };

	return db_command(conn, check_job_sql, 1, params, err);
}

int scope_check_agent_named(PGconn *conn, const char *agent_id, struct error *err)
{
	const char *params[1] = { agent_id };
	PGresult *agent;
	int code;

	if ((code = scope_check_acting_for(conn, agent_id, err)) != 0)
		return code;
	if ((agent = db_query(conn, agent_exists_sql, 1, params, err)) == NULL)
		return err->code;
	if (PQntuples(agent) == 0)
		code = error_set(err, EXIT_NOT_FOUND, "%s: no such agent", agent_id);
	PQclear(agent);
	return code;
}
