#include "db.h"
#include "scope.h"

/* Both raise insufficient_privilege (42501 → 77) and otherwise return true. */
static const char check_acting_for_sql[] = "SELECT certctl_check_acting_for($1)";
static const char check_job_sql[] = "SELECT certctl_check_job_scope($1)";

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
