/* Inventory import: agents, targets and certificates upserted by id. */
#ifndef CERTCTL_INVENTORY_H
#define CERTCTL_INVENTORY_H

#include <stdio.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "error.h"

/*
 * Reads inventory JSON lines from input and upserts each in its own
 * transaction, printing {"kind","id","action"} per object stored. A bad line
 * is reported on stderr as "line N: why", changes nothing and the rest goes
 * on. Returns the most serious code met (0 when every line was stored);
 * err holds the last line's error. A stop signal ends the run with EXIT_TEMPORARY.
 */
/* What one inventory line says; strings borrowed from the line, NULL when absent. */
struct inventory_item {
	const char *kind, *id, *name;
	const char *public_key, *db_role;           /* agent */
	const char *type, *agent_id, *config_json;  /* target */
	const char *common_name, *targets_json;     /* certificate */
};

/* Checks one line's kind, id and field types without the database; bad: EXIT_DATA. */
int inventory_line_parse(json_object *line, struct inventory_item *item, struct error *err);

int inventory_import(PGconn *conn, FILE *input, FILE *output, struct error *err);

#endif
