/* Inventory import: agents, targets, issuers and certificates upserted by id. */
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
	const char *type, *agent_id, *config_json;  /* target; issuer: type and config */
	const char *common_name, *targets_json;     /* certificate */
	const char *sans_json;                      /* certificate: the names, common name first */
	const char *key_type, *key_mode, *issuer_id;
	const char *renew_before;                   /* seconds, as text */
	const char *auto_renew;                     /* "true", "false" */
	json_object *owned;                         /* what the strings above may point into; put it */
};

/*
 * Checks one line's kind, id and fields without the database: bad JSON types
 * or names, EXIT_DATA; an unknown issuer type, key type or key mode, or an
 * issuer config without a command, EXIT_CONFIG. Release the item with
 * inventory_item_release(), also after an error.
 */
int inventory_line_parse(json_object *line, struct inventory_item *item, struct error *err);
void inventory_item_release(struct inventory_item *item);

int inventory_import(PGconn *conn, FILE *input, FILE *output, struct error *err);

#endif
