/*
 * Waiting for work on LISTEN/NOTIFY (certctl-claim --wait/--follow,
 * certctl-notify --follow): sleep until a notification, a due time, a stop
 * signal or the reader of a pipe has gone, whichever comes first.
 */
#ifndef CERTCTL_LISTEN_H
#define CERTCTL_LISTEN_H

#include <signal.h>

#include <libpq-fe.h>

#include "error.h"

/*
 * Reads what the server sent and discards the notifications queued, setting
 * *seen to how many there were: notifications that came in during a query
 * are queued by libpq, where ppoll() does not see them. 0, or
 * EXIT_UNAVAILABLE when the connection is lost.
 */
int listen_drain(PGconn *conn, int *seen, struct error *err);

/*
 * Sleeps in ppoll() for up to timeout_ms with the mask unblocked (from
 * signals_block_stop(), so a stop signal arrives only here), until the
 * connection has input (drained), a signal or the time is up; reader_pipe
 * (-1: none) is watched for its reader going away. 0: try again (the caller
 * checks signals_stop_requested()); EXIT_CANT_CREATE when the reader has
 * gone; EXIT_UNAVAILABLE; EXIT_INTERNAL.
 */
int listen_wait(PGconn *conn, long long timeout_ms, int reader_pipe, const sigset_t *unblocked,
		struct error *err);

/*
 * Runs sql, a query of one row and one bigint: the milliseconds until the
 * next item comes due with no notification to say so, or NULL for none
 * (then *due is -1). 0, or a database code with err.
 */
int listen_next_due(PGconn *conn, const char *sql, long long *due, struct error *err);

/* EXIT_CANT_CREATE, "standard output: the reader has gone away". */
int listen_reader_gone(struct error *err);

#endif
