#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "db.h"
#include "exitcode.h"
#include "jsonl.h"
#include "listen.h"
#include "notify.h"
#include "pgjson.h"
#include "runcmd.h"
#include "signals.h"

/* When an event comes due: the index notification_events_due_idx (000007) is on it. */
#define NOTIFICATION_DUE_AT "(CASE WHEN n.status = 'failed' THEN n.next_retry_at ELSE n.created_at END)"

/* The event line the command reads, by column: see event_line(). */
static const char claim_event_sql[] =
	"SELECT n.id, n.type, n.certificate_id, n.job_id, n.channel, n.recipient, n.message,"
	" certctl_rfc3339(n.created_at), n.retry_count FROM notification_events n"
	" WHERE n.status IN ('pending', 'failed') AND " NOTIFICATION_DUE_AT " <= now()"
	" ORDER BY " NOTIFICATION_DUE_AT ", n.id LIMIT 1 FOR UPDATE SKIP LOCKED";
enum { EVENT_ID, EVENT_TYPE, EVENT_CERTIFICATE_ID, EVENT_JOB_ID, EVENT_CHANNEL, EVENT_RECIPIENT,
       EVENT_MESSAGE, EVENT_CREATED_AT, EVENT_RETRY_COUNT };

/* The result line's columns after the id and type, as every marking returns them. */
#define MARKED_COLUMNS                                                                  \
	" RETURNING id, type, status, retry_count, certctl_rfc3339(next_retry_at),"    \
	" certctl_rfc3339(sent_at), last_error"

/* statement_timestamp(): the time of the result, not of the claim before the command ran. */
static const char mark_sent_sql[] =
	"UPDATE notification_events SET status = 'sent', sent_at = statement_timestamp(),"
	" next_retry_at = NULL WHERE id = $1" MARKED_COLUMNS;

/*
 * $1 id, $2 error, $3 seconds per backoff unit, $4 cap in units, $5 the
 * failure that makes it dead. On the right, retry_count is the count before
 * this failure: the waits are 1, 2, 4, 8 units.
 */
static const char mark_failed_sql[] =
	"UPDATE notification_events SET retry_count = retry_count + 1, last_error = $2,"
	" status = CASE WHEN retry_count + 1 >= $5::int THEN 'dead' ELSE 'failed' END,"
	" next_retry_at = CASE WHEN retry_count + 1 >= $5::int THEN NULL"
	"  ELSE statement_timestamp() + LEAST(power(2::float8, LEAST(retry_count, 30)), $4::float8)"
	"       * $3::int * interval '1 second' END"
	" WHERE id = $1" MARKED_COLUMNS;
enum { MARKED_ID, MARKED_TYPE, MARKED_STATUS, MARKED_RETRY_COUNT, MARKED_NEXT_RETRY_AT,
       MARKED_SENT_AT, MARKED_LAST_ERROR };

static const char listen_sql[] = "LISTEN certctl_notifications";

/* Whole milliseconds, rounded up, so the round after the wait finds the event due. */
static const char next_retry_sql[] =
	"SELECT ceil(EXTRACT(EPOCH FROM min(next_retry_at) - now()) * 1000)::bigint"
	" FROM notification_events WHERE status = 'failed' AND next_retry_at > now()";

#define REQUEUE(picked)                                                                   \
	"WITH picked AS (SELECT id, status FROM notification_events WHERE " picked         \
	" FOR UPDATE), requeued AS (UPDATE notification_events n SET status = 'pending',"  \
	" retry_count = 0, next_retry_at = NULL FROM picked WHERE n.id = picked.id"        \
	" RETURNING n.id, n.type, picked.status AS previous_status)"                        \
	" SELECT id, type, previous_status FROM requeued ORDER BY id"
static const char requeue_id_sql[] = REQUEUE("id = $1");
static const char requeue_dead_sql[] = REQUEUE("status = 'dead'");

/* With follow and no retry due, a wait ends after this long anyway (a NOTIFY ends it sooner). */
#define IDLE_WAIT_MS (3600 * 1000LL)

int notify_retry_unit(long *seconds, struct error *err)
{
	const char *text = getenv(NOTIFY_RETRY_UNIT_ENV);
	char *end;

	*seconds = NOTIFY_BACKOFF_UNIT_SECONDS;
	if (text == NULL || text[0] == '\0')
		return 0;
	*seconds = strtol(text, &end, 10);
	if (*end != '\0' || *seconds < 1 || *seconds > NOTIFY_BACKOFF_UNIT_SECONDS)
		return error_set(err, EXIT_USAGE, "%s: '%s': must be a number of seconds from 1 to %d",
				 NOTIFY_RETRY_UNIT_ENV, text, NOTIFY_BACKOFF_UNIT_SECONDS);
	return 0;
}

int notify_command_check(const char *name, struct error *err)
{
	const char *path = getenv("PATH");
	char candidate[PATH_MAX];

	if (strchr(name, '/') != NULL) {
		if (access(name, X_OK) == 0)
			return 0;
		return error_set(err, EXIT_CONFIG, "%s: cannot run the command: %s", name, strerror(errno));
	}
	/* run_command()'s PATH when there is none to inherit. */
	if (path == NULL || path[0] == '\0')
		path = "/usr/sbin:/usr/bin:/sbin:/bin";
	for (const char *start = path;; start++) {
		size_t length = strcspn(start, ":");

		snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)length, length ? start : ".", name);
		if (access(candidate, X_OK) == 0)
			return 0;
		start += length;
		if (*start == '\0')
			break;
	}
	return error_set(err, EXIT_CONFIG, "%s: command not found in PATH", name);
}

/* The event as the command reads it on stdin: one JSON object. Caller puts. */
static json_object *event_line(const PGresult *event)
{
	static const struct { const char *key; int column; } texts[] = {
		{ "id", EVENT_ID }, { "type", EVENT_TYPE },
		{ "certificate_id", EVENT_CERTIFICATE_ID }, { "job_id", EVENT_JOB_ID },
		{ "channel", EVENT_CHANNEL }, { "recipient", EVENT_RECIPIENT },
		{ "message", EVENT_MESSAGE }, { "created_at", EVENT_CREATED_AT },
	};
	json_object *line = json_object_new_object();

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		json_add_text_column(line, texts[i].key, event, 0, texts[i].column);
	json_add_int_column(line, "retry_count", event, 0, EVENT_RETRY_COUNT);
	return line;
}

/* The result line of a marked event; error is the failure, or NULL. Caller puts. */
static json_object *result_line(const PGresult *marked, const char *error)
{
	json_object *line = json_object_new_object();

	json_add_text_column(line, "id", marked, 0, MARKED_ID);
	json_add_text_column(line, "type", marked, 0, MARKED_TYPE);
	json_add_text_column(line, "status", marked, 0, MARKED_STATUS);
	json_add_int_column(line, "retry_count", marked, 0, MARKED_RETRY_COUNT);
	json_add_text_column(line, "next_retry_at", marked, 0, MARKED_NEXT_RETRY_AT);
	json_add_text_column(line, "sent_at", marked, 0, MARKED_SENT_AT);
	json_object_object_add(line, "error", error != NULL ? json_object_new_string(error) : NULL);
	return line;
}

/*
 * Runs the command with the event on stdin. 0 when it exited 0; otherwise
 * EXIT_FAILED_CLEANLY with failure set to its last stderr line when it
 * exited with a status and said why, else to how it failed (exited N,
 * killed, timed out: then what it said comes after).
 */
static int run_for_event(const struct notify_request *request, const PGresult *event,
			 char failure[ERROR_MESSAGE_MAX])
{
	json_object *line = event_line(event);
	const char *text = json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN);
	char type[ERROR_MESSAGE_MAX], id[ERROR_MESSAGE_MAX];
	const char *assignments[] = { type, id, NULL };
	struct command_env env = { .assignments = assignments };
	struct command_io io = { .input = NULL };
	struct error run_err = { 0, "" };
	char *input;
	int code;

	snprintf(type, sizeof(type), "CERTCTL_NOTIFICATION_TYPE=%s", PQgetvalue(event, 0, EVENT_TYPE));
	snprintf(id, sizeof(id), "CERTCTL_NOTIFICATION_ID=%s", PQgetvalue(event, 0, EVENT_ID));
	if (asprintf(&input, "%s\n", text) < 0) {
		json_object_put(line);
		snprintf(failure, ERROR_MESSAGE_MAX, "out of memory");
		return EXIT_FAILED_CLEANLY;
	}
	json_object_put(line);
	io.input = input;
	io.input_length = strlen(input);
	code = run_command_io(request->argv, &env, &io, &run_err);
	free(input);
	if (code != 0)
		snprintf(failure, ERROR_MESSAGE_MAX, "%s",
			 io.exit_status > 0 && io.last_line[0] ? io.last_line : run_err.message);
	return code;
}

/*
 * Delivers the next due event, if any, in one transaction: *handled says
 * whether there was one, *delivered whether it was sent. Its line is
 * written after the commit.
 */
static int deliver_one(PGconn *conn, const struct notify_request *request, FILE *output,
		       bool *handled, bool *delivered, struct error *err)
{
	char failure[ERROR_MESSAGE_MAX] = "", unit[24], cap[24], last[24];
	PGresult *event = NULL, *marked = NULL;
	json_object *line;
	int code;

	*handled = *delivered = false;
	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((event = db_query(conn, claim_event_sql, 0, NULL, err)) == NULL)
		goto fail;
	if (PQntuples(event) == 0) {
		PQclear(event);
		return db_commit(conn, err);
	}
	*delivered = run_for_event(request, event, failure) == 0;
	if (*delivered) {
		const char *params[1] = { PQgetvalue(event, 0, EVENT_ID) };
		marked = db_query(conn, mark_sent_sql, 1, params, err);
	} else {
		const char *params[5] = { PQgetvalue(event, 0, EVENT_ID), failure, unit, cap, last };
		snprintf(unit, sizeof(unit), "%ld", request->retry_unit_seconds);
		snprintf(cap, sizeof(cap), "%d", NOTIFY_BACKOFF_CAP_UNITS);
		snprintf(last, sizeof(last), "%d", NOTIFY_MAX_FAILURES);
		marked = db_query(conn, mark_failed_sql, 5, params, err);
	}
	if (marked == NULL || (code = db_commit(conn, err)) != 0)
		goto fail;
	*handled = true;
	line = result_line(marked, *delivered ? NULL : failure);
	code = jsonl_write(output, line, err);
	json_object_put(line);
	PQclear(event);
	PQclear(marked);
	return code;
fail:
	code = err->code;
	db_rollback(conn);
	PQclear(event);
	PQclear(marked);
	return code;
}

/* Up to request->limit events; *handled of them, *failed not sent. */
static int deliver_round(PGconn *conn, const struct notify_request *request, FILE *output,
			 long *handled, long *failed, struct error *err)
{
	*handled = *failed = 0;
	while (*handled < request->limit) {
		bool one, delivered;
		int code;

		if (signals_stop_requested())
			return error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
		if ((code = deliver_one(conn, request, output, &one, &delivered, err)) != 0)
			return code;
		if (!one)
			return 0;
		(*handled)++;
		*failed += !delivered;
	}
	return 0;
}

/* Until a NOTIFY, the next retry time or a stop signal; stop signals get in only while waiting. */
static int wait_for_events(PGconn *conn, struct error *err)
{
	sigset_t unblocked;
	long long due = -1;
	int notified, code;

	/* A failed event's retry time comes without a notification. */
	if ((code = listen_next_due(conn, next_retry_sql, &due, err)) != 0)
		return code;
	/* Notifications that came in during the round may be for events it missed. */
	if ((code = listen_drain(conn, &notified, err)) != 0 || notified > 0)
		return code;
	signals_block_stop(&unblocked);
	if (!signals_stop_requested())
		code = listen_wait(conn, due >= 0 && due < IDLE_WAIT_MS ? due : IDLE_WAIT_MS, -1,
				   &unblocked, err);
	sigprocmask(SIG_SETMASK, &unblocked, NULL);
	return code;
}

int notify_deliver(PGconn *conn, const struct notify_request *request, FILE *output,
		   long *count, struct error *err)
{
	long handled, failed, failed_in_all = 0;
	int code;

	*count = 0;
	/* Listen before the first round, so an event queued right after it still wakes us. */
	if (request->follow && (code = db_command(conn, listen_sql, 0, NULL, err)) != 0)
		return code;
	for (;;) {
		code = deliver_round(conn, request, output, &handled, &failed, err);
		*count += handled;
		failed_in_all += failed;
		if (code != 0 || !request->follow)
			break;
		/* A full round may have left more due events behind. */
		if (handled < request->limit && (code = wait_for_events(conn, err)) != 0)
			break;
	}
	if (code == 0 && failed_in_all > 0) {
		/* Each failure is on its line; the exit status says there was one. */
		err->message[0] = '\0';
		code = EXIT_FAILED_CLEANLY;
	}
	return code;
}

/* One line per requeued event of result. */
static int write_requeued(FILE *output, PGresult *const *results, int result_count, long *count,
			  struct error *err)
{
	for (int r = 0; r < result_count; r++) {
		for (int row = 0; row < PQntuples(results[r]); row++) {
			json_object *line = json_object_new_object();
			int code;

			json_add_text_column(line, "id", results[r], row, 0);
			json_add_text_column(line, "type", results[r], row, 1);
			json_object_object_add(line, "status", json_object_new_string("pending"));
			json_add_text_column(line, "previous_status", results[r], row, 2);
			code = jsonl_put(output, line, err);
			json_object_put(line);
			if (code != 0)
				return code;
			(*count)++;
		}
	}
	return jsonl_flush(output, err);
}

int notify_requeue(PGconn *conn, char *const ids[], int id_count, FILE *output, long *count,
		   struct error *err)
{
	int result_count = ids == NULL ? 1 : id_count, done = 0, code;
	PGresult **results = calloc((size_t)result_count, sizeof(*results));

	*count = 0;
	if (results == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if ((code = db_begin(conn, err)) != 0)
		goto out;
	for (; done < result_count; done++) {
		const char *params[1] = { ids != NULL ? ids[done] : NULL };

		results[done] = db_query(conn, ids != NULL ? requeue_id_sql : requeue_dead_sql,
					 ids != NULL ? 1 : 0, params, err);
		if (results[done] == NULL) {
			code = err->code;
			break;
		}
		if (ids != NULL && PQntuples(results[done]) == 0) {
			done++;
			code = error_set(err, EXIT_NOT_FOUND, "%s: no such notification event; nothing requeued",
					 ids[done - 1]);
			break;
		}
	}
	if (code != 0)
		db_rollback(conn);
	else if ((code = db_commit(conn, err)) == 0)
		code = write_requeued(output, results, done, count, err);
out:
	for (int r = 0; r < result_count; r++)
		PQclear(results[r]);
	free(results);
	return code;
}
