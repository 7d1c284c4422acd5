#include <poll.h>
#include <signal.h>
#include <time.h>

#include "agents.h"
#include "db.h"
#include "deadline.h"
#include "exitcode.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"
#include "scope.h"
#include "signals.h"

/* A retired agent matches no row here: retirement wins over a late beat. */
static const char beat_sql[] =
	"UPDATE agents SET last_heartbeat_at = now(), hostname = COALESCE($2, hostname),"
	" version = COALESCE($3, version), updated_at = now()"
	" WHERE id = $1 AND retired_at IS NULL"
	" RETURNING certctl_rfc3339(last_heartbeat_at)";

static const char register_sql[] =
	"INSERT INTO agents (id, hostname, version, last_heartbeat_at) VALUES ($1, $2, $3, now())"
	" ON CONFLICT (id) DO NOTHING"
	" RETURNING certctl_rfc3339(last_heartbeat_at)";

static const char agent_state_sql[] =
	"SELECT retired_at IS NOT NULL, certctl_rfc3339(retired_at) FROM agents WHERE id = $1";

/* Sentinels stand for server-side integrations that never beat: never "offline". */
static const char stale_agents_sql[] =
	"SELECT id, name, hostname, version, certctl_rfc3339(last_heartbeat_at),"
	" certctl_rfc3339(registered_at),"
	" floor(extract(epoch FROM now() - last_heartbeat_at))::bigint"
	" FROM agents"
	" WHERE retired_at IS NULL AND NOT certctl_is_sentinel_agent(id)"
	" AND (last_heartbeat_at IS NULL OR last_heartbeat_at < now() - $1::bigint * interval '1 second')"
	" ORDER BY last_heartbeat_at ASC NULLS FIRST, id";

static int print_beat(const char *agent_id, const PGresult *result, bool registered,
		      FILE *output, struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "agent_id", json_object_new_string(agent_id));
	json_add_text_column(line, "last_heartbeat_at", result, 0, 0);
	json_object_object_add(line, "registered", json_object_new_boolean(registered));
	code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

static int report_retired(const char *agent_id, const PGresult *state, FILE *output,
			  struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "agent_id", json_object_new_string(agent_id));
	json_object_object_add(line, "retired", json_object_new_boolean(true));
	json_add_text_column(line, "retired_at", state, 0, 1);
	code = jsonl_write(output, line, err);
	json_object_put(line);
	if (code != 0)
		return code;
	return error_set(err, EXIT_RETIRED, "%s: agent is retired (at %s); stop, do not retry",
			 agent_id, PQgetvalue(state, 0, 1));
}

/* Runs beat_sql; returns 1 when a row was updated (and printed), 0 when none, or -code. */
static int try_beat(PGconn *conn, const struct heartbeat_request *request, const char *sql,
		    bool registered, FILE *output, struct error *err)
{
	const char *params[3] = { request->agent_id, request->hostname, request->agent_version };
	PGresult *result = db_query(conn, sql, 3, params, err);
	int code;

	if (result == NULL)
		return -err->code;
	if (PQntuples(result) == 0) {
		PQclear(result);
		return 0;
	}
	code = print_beat(request->agent_id, result, registered, output, err);
	PQclear(result);
	return code == 0 ? 1 : -code;
}

int agent_heartbeat(PGconn *conn, const struct heartbeat_request *request,
		    FILE *output, struct error *err)
{
	const char *params[1] = { request->agent_id };
	PGresult *state = NULL;
	int done, code;

	/* Agents are created by operators: an agent's role may not register one. */
	if (request->register_unknown && (code = scope_check_acting_for(conn, NULL, err)) != 0)
		return code;
	done = try_beat(conn, request, beat_sql, false, output, err);
	if (done == 0 && request->register_unknown)
		done = try_beat(conn, request, register_sql, true, output, err);
	if (done != 0)
		return done > 0 ? 0 : -done;

	state = db_query(conn, agent_state_sql, 1, params, err);
	if (state == NULL)
		return err->code;
	if (PQntuples(state) == 0) {
		/* Another agent's row is invisible to an agent's role: that is 77, not 66. */
		if ((code = scope_check_acting_for(conn, request->agent_id, err)) == 0)
			code = error_set(err, EXIT_NOT_FOUND, "%s: no such agent (use --register to create it)",
					 request->agent_id);
	} else if (PQgetvalue(state, 0, 0)[0] == 't') {
		code = report_retired(request->agent_id, state, output, err);
	} else if ((done = try_beat(conn, request, beat_sql, false, output, err)) != 0) {
		/* Created or un-retired by someone else between our statements. */
		code = done > 0 ? 0 : -done;
	} else {
		code = error_set(err, EXIT_TEMPORARY, "%s: agent changed during the heartbeat; retry",
				 request->agent_id);
	}
	PQclear(state);
	return code;
}

/*
 * Sleeps up to seconds with SIGINT/SIGTERM unblocked only inside ppoll(), so a
 * signal that arrived while a beat ran is seen here and never lost. Returns
 * true when a stop was requested.
 */
static bool wait_or_stop(long seconds, const sigset_t *unblocked)
{
	long long deadline = monotonic_milliseconds() + seconds * 1000LL, left;
	struct timespec timeout;

	while (!signals_stop_requested()) {
		if ((left = deadline - monotonic_milliseconds()) < 0)
			break;
		timeout.tv_sec = (time_t)(left / 1000);
		timeout.tv_nsec = (long)(left % 1000) * 1000000L;
		if (ppoll(NULL, 0, &timeout, unblocked) == 0)
			break;
	}
	return signals_stop_requested();
}

static bool is_transient(int code)
{
	return code == EXIT_UNAVAILABLE || code == EXIT_TEMPORARY;
}

int agent_heartbeat_every(const char *dsn, PGconn **conn, const struct heartbeat_request *request,
			  long every, FILE *output, struct error *err)
{
	sigset_t unblocked;
	long backoff = 0, delay;
	bool outage = false;
	int code;

	signals_block_stop(&unblocked);
	for (;;) {
		if (*conn == NULL)
			*conn = db_connect(dsn, err);
		code = *conn != NULL ? agent_heartbeat(*conn, request, output, err) : err->code;
		delay = every;
		if (code == 0) {
			if (outage)
				log_info("database reachable again; heartbeats resumed");
			outage = false;
			backoff = 0;
		} else if (is_transient(code)) {
			/* One line per outage, not per retry: the journal stays readable. */
			if (!outage)
				log_warn("%s; retrying with backoff", err->message);
			else
				log_info("still failing: %s", err->message);
			outage = true;
			backoff = backoff == 0 ? 1 : backoff * 2;
			if (backoff > every)
				backoff = every;
			delay = backoff;
			if (code == EXIT_UNAVAILABLE) {
				db_disconnect(*conn);
				*conn = NULL;
			}
		} else {
			break;
		}
		if (wait_or_stop(delay, &unblocked)) {
			code = 0;
			break;
		}
	}
	sigprocmask(SIG_SETMASK, &unblocked, NULL);
	return code;
}

int agents_list_stale(PGconn *conn, long older_than, FILE *output, struct error *err)
{
	char seconds[32];
	const char *params[1] = { seconds };
	PGresult *result;
	int code = 0;

	snprintf(seconds, sizeof(seconds), "%ld", older_than);
	result = db_query(conn, stale_agents_sql, 1, params, err);
	if (result == NULL)
		return err->code;
	for (int row = 0; row < PQntuples(result) && code == 0; row++) {
		json_object *line = json_object_new_object();

		json_add_text_column(line, "id", result, row, 0);
		json_add_text_column(line, "name", result, row, 1);
		json_add_text_column(line, "hostname", result, row, 2);
		json_add_text_column(line, "version", result, row, 3);
		json_add_text_column(line, "last_heartbeat_at", result, row, 4);
		json_add_text_column(line, "registered_at", result, row, 5);
		json_add_int_column(line, "seconds_since_heartbeat", result, row, 6);
		code = jsonl_write(output, line, err);
		json_object_put(line);
	}
	PQclear(result);
	return code;
}
