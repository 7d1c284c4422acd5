#include <stdlib.h>

#include "audit.h"
#include "db.h"

static const char insert_audit_event_sql[] =
	"INSERT INTO audit_events (actor, actor_type, action, resource_type, resource_id, details)"
	" VALUES ($1, $2, $3, $4, $5, $6::jsonb)";

static const char insert_notification_event_sql[] =
	"INSERT INTO notification_events (type, certificate_id, job_id, message)"
	" VALUES ($1, $2, $3, $4)";

const char *audit_default_actor(void)
{
	const char *actor = getenv("CERTCTL_ACTOR");

	if (actor == NULL || actor[0] == '\0')
		actor = getenv("USER");
	if (actor == NULL || actor[0] == '\0')
		actor = "system";
	return actor;
}

int audit_record(PGconn *conn, const struct audit_event *event, struct error *err)
{
	const char *params[6] = {
		event->actor ? event->actor : audit_default_actor(),
		event->actor_type,
		event->action,
		event->resource_type,
		event->resource_id,
		event->details ? json_object_to_json_string_ext(event->details, JSON_C_TO_STRING_PLAIN)
			       : NULL,
	};

	return db_command(conn, insert_audit_event_sql, 6, params, err);
}

int notification_record(PGconn *conn, const char *type, const char *certificate_id,
			const char *job_id, const char *message, struct error *err)
{
	const char *params[4] = { type, certificate_id, job_id, message };

	return db_command(conn, insert_notification_event_sql, 4, params, err);
}
