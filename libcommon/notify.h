/* certctl-notify: delivering the notification_events outbox through an operator's command. */
#ifndef CERTCTL_NOTIFY_H
#define CERTCTL_NOTIFY_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/* Events one run (or one round of --follow) delivers at most. */
#define DEFAULT_NOTIFY_LIMIT 100
/* The failure that makes an event dead. */
#define NOTIFY_MAX_FAILURES 5
/* A failed event waits min(2^retry_count, CAP) backoff units: units are minutes, the cap an hour. */
#define NOTIFY_BACKOFF_CAP_UNITS 60
#define NOTIFY_BACKOFF_UNIT_SECONDS 60
/* Seconds in one backoff unit instead of 60, 1 to 60: shortens the schedule for tests. */
#define NOTIFY_RETRY_UNIT_ENV "CERTCTL_NOTIFY_RETRY_UNIT"

struct notify_request {
	char *const *argv;      /* the command run per event, NULL-terminated */
	long limit;             /* events per run, or per round with follow */
	bool follow;            /* deliver for ever, woken by NOTIFY certctl_notifications */
	long retry_unit_seconds;
};

/*
 * $NOTIFY_RETRY_UNIT_ENV or NOTIFY_BACKOFF_UNIT_SECONDS into *seconds; EXIT_USAGE
 * with err when the variable is not a number from 1 to 60.
 */
int notify_retry_unit(long *seconds, struct error *err);

/*
 * Whether the command can be run: an executable file at a path with a
 * slash, else one found in $PATH (the PATH the command gets). Refused
 * before anything is claimed, so a typo in a unit file does not use up
 * every event's five tries. 0, or EXIT_CONFIG with err.
 */
int notify_command_check(const char *name, struct error *err);

/*
 * Delivers due events, each in its own transaction that holds its row
 * (FOR UPDATE SKIP LOCKED, so concurrent notifiers never take one event
 * twice) while the command runs, then marks it sent, failed or dead and
 * writes one line to output (*count lines). Without follow: up to limit
 * events, 0 when every one was sent (none included), EXIT_FAILED_CLEANLY
 * when one failed. With follow: round after round, waiting on LISTEN and
 * for the next retry time, until a stop signal (EXIT_TEMPORARY) or a
 * database error.
 */
int notify_deliver(PGconn *conn, const struct notify_request *request, FILE *output,
		   long *count, struct error *err);

/*
 * Makes events pending again with no failures counted: the ids given
 * (all or none: an unknown id is EXIT_NOT_FOUND and changes nothing), or
 * with ids NULL every dead event. One line each to output after the commit.
 */
int notify_requeue(PGconn *conn, char *const ids[], int id_count, FILE *output, long *count,
		   struct error *err);

#endif
