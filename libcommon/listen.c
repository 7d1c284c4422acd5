#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "exitcode.h"
#include "listen.h"

int listen_reader_gone(struct error *err)
{
	return error_set(err, EXIT_CANT_CREATE, "standard output: the reader has gone away");
}

int listen_drain(PGconn *conn, int *seen, struct error *err)
{
	PGnotify *notification;

	*seen = 0;
	if (!PQconsumeInput(conn))
		return error_set(err, EXIT_UNAVAILABLE, "database: %s", PQerrorMessage(conn));
	while ((notification = PQnotifies(conn)) != NULL) {
		PQfreemem(notification);
		(*seen)++;
	}
	return 0;
}

int listen_wait(PGconn *conn, long long timeout_ms, int reader_pipe, const sigset_t *unblocked,
		struct error *err)
{
	struct pollfd watched[2] = {
		{ .fd = PQsocket(conn), .events = POLLIN },
		/* No events asked: a pipe's write end reports POLLERR once its reader is gone. */
		{ .fd = reader_pipe, .events = 0 },
	};
	struct timespec timeout = { .tv_sec = timeout_ms / 1000,
				    .tv_nsec = (timeout_ms % 1000) * 1000000L };
	int ready, seen;

	ready = ppoll(watched, reader_pipe >= 0 ? 2 : 1, &timeout, unblocked);
	if (ready < 0 && errno != EINTR)
		return error_set(err, EXIT_INTERNAL, "waiting for a notification: %s", strerror(errno));
	if (ready > 0 && (watched[1].revents & (POLLERR | POLLHUP)) != 0)
		return listen_reader_gone(err);
	if (ready > 0)
		return listen_drain(conn, &seen, err);
	return 0;
}

int listen_next_due(PGconn *conn, const char *sql, long long *due, struct error *err)
{
	PGresult *result = db_query(conn, sql, 0, NULL, err);

	if (result == NULL)
		return err->code;
	*due = PQgetisnull(result, 0, 0) ? -1 : strtoll(PQgetvalue(result, 0, 0), NULL, 10);
	PQclear(result);
	return 0;
}
