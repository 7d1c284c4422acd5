/* The append-only audit trail and the notification outbox. */
#ifndef CERTCTL_AUDIT_H
#define CERTCTL_AUDIT_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"

struct audit_event {
	const char *actor;          /* NULL: audit_default_actor() */
	const char *actor_type;     /* "User", "System" or "Agent" */
	const char *action;         /* e.g. "agent_retired" */
	const char *resource_type;  /* "agent", "target", "certificate", "job" */
	const char *resource_id;
	json_object *details;       /* may be NULL; not consumed; never secrets */
};

/* Appends one audit event in the caller's transaction, if any. */
int audit_record(PGconn *conn, const struct audit_event *event, struct error *err);

/* $CERTCTL_ACTOR, else $USER, else "system". */
const char *audit_default_actor(void);

/* Queues one notification event (status pending) for the outbox. */
int notification_record(PGconn *conn, const char *type, const char *certificate_id,
			const char *job_id, const char *message, struct error *err);

#endif
