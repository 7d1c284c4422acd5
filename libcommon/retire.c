#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "db.h"
#include "exitcode.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"
#include "retire.h"
#include "scope.h"
#include "signals.h"

/* Mirrors certctl_is_sentinel_agent() of migration 2, which stays the backstop. */
static const char *const sentinel_agents[] = {
	"server-scanner", "cloud-aws-sm", "cloud-azure-kv", "cloud-gcp-sm",
};

#define UNFINISHED_STATUSES "('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running')"

/*
 * FOR UPDATE conflicts with the FOR SHARE a claim takes on its agent and with
 * the key-share lock of every insert referencing the agent, so nothing new is
 * claimed or routed to the agent between the counts and the commit.
 */
static const char lock_agent_sql[] =
	"SELECT retired_at IS NOT NULL, certctl_rfc3339(retired_at) FROM agents"
	" WHERE id = $1 FOR UPDATE";

/* Each count walks an index from the agent id (see bench/retire.sh). */
static const char dependency_counts_sql[] =
	"SELECT"
	" (SELECT count(*) FROM deployment_targets"
	"   WHERE agent_id = $1 AND retired_at IS NULL),"
	" (SELECT count(DISTINCT ct.certificate_id) FROM certificate_targets ct"
	"   JOIN deployment_targets t ON t.id = ct.target_id"
	"   WHERE t.agent_id = $1 AND t.retired_at IS NULL),"
	" (SELECT count(*) FROM ("
	"   SELECT id FROM jobs WHERE agent_id = $1 AND status IN " UNFINISHED_STATUSES
	"   UNION"
	"   SELECT j.id FROM jobs j JOIN deployment_targets t ON t.id = j.target_id"
	"   WHERE t.agent_id = $1 AND t.retired_at IS NULL AND j.status IN " UNFINISHED_STATUSES
	" ) unfinished)";

/* retired_at::text keeps microseconds, so the targets get the identical instant. */
static const char retire_agent_sql[] =
	"UPDATE agents SET retired_at = now(), retired_reason = $2, updated_at = now()"
	" WHERE id = $1 AND retired_at IS NULL"
	" RETURNING retired_at::text, certctl_rfc3339(retired_at)";

/* Runs before the targets are retired, while "active target" still names them. */
static const char cancel_jobs_sql[] =
	"UPDATE jobs SET status = 'Cancelled', completed_at = now(), lease_expires_at = NULL,"
	" updated_at = now(),"
	" last_error = 'cancelled: agent ' || $1 || ' retired' || COALESCE(': ' || $2, '')"
	" WHERE status IN " UNFINISHED_STATUSES " AND id IN ("
	"   SELECT id FROM jobs WHERE agent_id = $1 AND status IN " UNFINISHED_STATUSES
	"   UNION ALL"
	"   SELECT j.id FROM jobs j JOIN deployment_targets t ON t.id = j.target_id"
	"   WHERE $3::boolean AND t.agent_id = $1 AND t.retired_at IS NULL"
	"   AND j.status IN " UNFINISHED_STATUSES ")";

static const char retire_targets_sql[] =
	"UPDATE deployment_targets SET retired_at = $2::timestamptz, retired_reason = $3,"
	" updated_at = now()"
	" WHERE agent_id = $1 AND retired_at IS NULL";

static const char retired_page_sql[] =
	"SELECT id, name, certctl_rfc3339(retired_at), retired_reason FROM agents"
	" WHERE retired_at IS NOT NULL"
	" ORDER BY retired_at DESC, id LIMIT $1::bigint OFFSET $2::bigint";

struct dependency_counts {
	long active_targets;
	long active_certificates;
	long pending_jobs;
};

struct retirement {
	struct dependency_counts counts;
	char *retired_at;     /* RFC 3339, malloc'd */
	long cascaded_targets;
	long cancelled_jobs;
};

int retire_refuse_sentinel(const char *agent_id, struct error *err)
{
	for (size_t i = 0; i < sizeof(sentinel_agents) / sizeof(sentinel_agents[0]); i++)
		if (strcmp(agent_id, sentinel_agents[i]) == 0)
			return error_set(err, EXIT_FORBIDDEN,
					 "%s: a sentinel agent cannot be retired, not even with --force",
					 agent_id);
	return 0;
}

static bool has_dependencies(const struct dependency_counts *counts)
{
	return counts->active_targets > 0 || counts->active_certificates > 0 ||
	       counts->pending_jobs > 0;
}

static json_object *counts_object(const struct dependency_counts *counts)
{
	json_object *object = json_object_new_object();

	json_object_object_add(object, "active_targets", json_object_new_int64(counts->active_targets));
	json_object_object_add(object, "active_certificates",
			       json_object_new_int64(counts->active_certificates));
	json_object_object_add(object, "pending_jobs", json_object_new_int64(counts->pending_jobs));
	return object;
}

static int write_and_put(FILE *output, json_object *line, struct error *err)
{
	int code = jsonl_write(output, line, err);

	json_object_put(line);
	return code;
}

static int count_dependencies(PGconn *conn, const char *agent_id, struct dependency_counts *counts,
			      struct error *err)
{
	const char *params[1] = { agent_id };
	PGresult *result = db_query(conn, dependency_counts_sql, 1, params, err);

	if (result == NULL)
		return err->code;
	counts->active_targets = strtol(PQgetvalue(result, 0, 0), NULL, 10);
	counts->active_certificates = strtol(PQgetvalue(result, 0, 1), NULL, 10);
	counts->pending_jobs = strtol(PQgetvalue(result, 0, 2), NULL, 10);
	PQclear(result);
	return 0;
}

/* Step 7: the agent, then (with force) its jobs and targets, at one retired_at. */
static int retire_rows(PGconn *conn, const struct retire_request *request,
		       struct retirement *done, struct error *err)
{
	const char *agent_params[2] = { request->agent_id, request->reason };
	const char *cancel_params[3] = { request->agent_id, request->reason,
					 request->force ? "true" : "false" };
	const char *target_params[3] = { request->agent_id, NULL, request->reason };
	PGresult *agent = NULL, *result = NULL;
	int code = 0;

	agent = db_query(conn, retire_agent_sql, 2, agent_params, err);
	if (agent == NULL)
		return err->code;
	if (PQntuples(agent) != 1) {
		code = error_set(err, EXIT_INTERNAL, "agent row changed under its lock");
		goto out;
	}
	if ((done->retired_at = strdup(PQgetvalue(agent, 0, 1))) == NULL) {
		code = error_set(err, EXIT_INTERNAL, "out of memory");
		goto out;
	}
	if ((result = db_query(conn, cancel_jobs_sql, 3, cancel_params, err)) == NULL) {
		code = err->code;
		goto out;
	}
	done->cancelled_jobs = db_affected_rows(result);
	PQclear(result);
	result = NULL;
	if (request->force) {
		target_params[1] = PQgetvalue(agent, 0, 0);
		if ((result = db_query(conn, retire_targets_sql, 3, target_params, err)) == NULL) {
			code = err->code;
			goto out;
		}
		done->cascaded_targets = db_affected_rows(result);
	}
out:
	PQclear(result);
	PQclear(agent);
	return code;
}

static void add_audit_details(json_object *details, const struct retire_request *request,
			      const struct retirement *done)
{
	json_object_object_add(details, "reason",
			       request->reason ? json_object_new_string(request->reason) : NULL);
	json_object_object_add(details, "force", json_object_new_boolean(request->force));
	json_object_object_add(details, "retired_at", json_object_new_string(done->retired_at));
	json_object_object_add(details, "active_targets",
			       json_object_new_int64(done->counts.active_targets));
	json_object_object_add(details, "active_certificates",
			       json_object_new_int64(done->counts.active_certificates));
	json_object_object_add(details, "pending_jobs", json_object_new_int64(done->counts.pending_jobs));
	json_object_object_add(details, "cascaded_targets", json_object_new_int64(done->cascaded_targets));
	json_object_object_add(details, "cancelled_jobs", json_object_new_int64(done->cancelled_jobs));
}

/*
 * Step 8, inside the retirement's transaction behind a savepoint: the trail
 * normally commits with the retirement, yet an audit insert that fails rolls
 * back only to the savepoint and is logged, never undoing the retirement.
 * Both events go together: the trail shows the cascade fully or not at all.
 */
static void record_audit(PGconn *conn, const struct retire_request *request,
			 const struct retirement *done)
{
	struct audit_event event = { request->actor, "User", "agent_retired", "agent",
				     request->agent_id, json_object_new_object() };
	struct error err = { 0, "" };
	int code;

	add_audit_details(event.details, request, done);
	code = db_command(conn, "SAVEPOINT certctl_audit", 0, NULL, &err);
	if (code == 0)
		code = audit_record(conn, &event, &err);
	if (code == 0 && request->force && has_dependencies(&done->counts)) {
		event.action = "agent_retirement_cascaded";
		code = audit_record(conn, &event, &err);
	}
	if (code != 0) {
		struct error ignored;
		db_command(conn, "ROLLBACK TO SAVEPOINT certctl_audit", 0, NULL, &ignored);
		log_error("%s: audit events not written (%s); the retirement stands",
			  request->agent_id, err.message);
	}
	json_object_put(event.details);
}

static int print_retired(FILE *output, const struct retire_request *request,
			 const struct retirement *done, struct error *err)
{
	json_object *line = json_object_new_object();

	json_object_object_add(line, "agent_id", json_object_new_string(request->agent_id));
	json_object_object_add(line, "retired_at", json_object_new_string(done->retired_at));
	json_object_object_add(line, "cascaded_targets", json_object_new_int64(done->cascaded_targets));
	json_object_object_add(line, "cancelled_jobs", json_object_new_int64(done->cancelled_jobs));
	return write_and_put(output, line, err);
}

static int print_already_retired(FILE *output, const char *agent_id, struct error *err)
{
	json_object *line = json_object_new_object();

	json_object_object_add(line, "agent_id", json_object_new_string(agent_id));
	json_object_object_add(line, "already_retired", json_object_new_boolean(true));
	return write_and_put(output, line, err);
}

static int report_blocked(FILE *output, const char *agent_id,
			  const struct dependency_counts *counts, struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "error", json_object_new_string("blocked by dependencies"));
	json_object_object_add(line, "counts", counts_object(counts));
	if ((code = write_and_put(output, line, err)) != 0)
		return code;
	return error_set(err, EXIT_BLOCKED,
			 "%s: blocked by dependencies (active_targets=%ld, active_certificates=%ld,"
			 " pending_jobs=%ld); retire or reassign them, or use --force --reason TEXT",
			 agent_id, counts->active_targets, counts->active_certificates,
			 counts->pending_jobs);
}

int retire_agent(PGconn *conn, const struct retire_request *request, FILE *output,
		 struct error *err)
{
	const char *params[1] = { request->agent_id };
	struct retirement done = { { 0, 0, 0 }, NULL, 0, 0 };
	PGresult *agent = NULL;
	bool in_transaction = false;
	int code;

	if ((code = retire_refuse_sentinel(request->agent_id, err)) != 0)
		return code;
	if (signals_stop_requested())
		return error_set(err, EXIT_TEMPORARY, "stopped by a signal before retiring");
	if ((code = db_begin(conn, err)) != 0)
		goto out;
	in_transaction = true;
	if ((agent = db_query(conn, lock_agent_sql, 1, params, err)) == NULL) {
		code = err->code;
		goto out;
	}
	if (PQntuples(agent) == 0) {
		/* Retiring is an operator's: an agent's role, which sees only itself, gets 77. */
		if ((code = scope_check_acting_for(conn, NULL, err)) == 0)
			code = error_set(err, EXIT_NOT_FOUND, "no such agent");
		goto out;
	}
	if (PQgetvalue(agent, 0, 0)[0] == 't') {
		/* Idempotent replay: nothing changes and nothing is audited. */
		db_rollback(conn);
		in_transaction = false;
		code = print_already_retired(output, request->agent_id, err);
		goto out;
	}
	if ((code = count_dependencies(conn, request->agent_id, &done.counts, err)) != 0)
		goto out;
	if (has_dependencies(&done.counts) && !request->force) {
		db_rollback(conn);
		in_transaction = false;
		code = report_blocked(output, request->agent_id, &done.counts, err);
		goto out;
	}
	if ((code = retire_rows(conn, request, &done, err)) != 0)
		goto out;
	record_audit(conn, request, &done);
	if ((code = db_commit(conn, err)) != 0)
		goto out;
	in_transaction = false;
	code = print_retired(output, request, &done, err);
out:
	if (in_transaction)
		db_rollback(conn);
	if (code != 0 && code != EXIT_BLOCKED)
		error_prefix(err, "%s", request->agent_id);
	PQclear(agent);
	free(done.retired_at);
	return code;
}

int retire_list(PGconn *conn, long page, long per_page, FILE *output, struct error *err)
{
	char limit[32], offset[32];
	const char *params[2] = { limit, offset };
	PGresult *result;
	long skipped;
	int code = 0;

	/* A page beyond any possible row is empty, not an overflow. */
	if (__builtin_mul_overflow(page - 1, per_page, &skipped))
		return 0;
	snprintf(limit, sizeof(limit), "%ld", per_page);
	snprintf(offset, sizeof(offset), "%ld", skipped);
	if ((result = db_query(conn, retired_page_sql, 2, params, err)) == NULL)
		return err->code;
	for (int row = 0; row < PQntuples(result) && code == 0; row++) {
		json_object *line = json_object_new_object();

		json_add_text_column(line, "id", result, row, 0);
		json_add_text_column(line, "name", result, row, 1);
		json_add_text_column(line, "retired_at", result, row, 2);
		json_add_text_column(line, "retired_reason", result, row, 3);
		code = write_and_put(output, line, err);
	}
	PQclear(result);
	return code;
}
