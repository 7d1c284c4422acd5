/* Query results as JSON: a PGresult column added to a json-c object (SQL NULL is null). */
#ifndef CERTCTL_PGJSON_H
#define CERTCTL_PGJSON_H

#include <json-c/json.h>
#include <libpq-fe.h>

/* Adds the column as a JSON string, or null when SQL NULL. */
void json_add_text_column(json_object *object, const char *key,
			  const PGresult *result, int row, int column);
/* Adds the column as a JSON integer, or null when SQL NULL. */
void json_add_int_column(json_object *object, const char *key,
			 const PGresult *result, int row, int column);

#endif
