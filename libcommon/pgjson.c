#include <stdlib.h>

#include "pgjson.h"

void json_add_text_column(json_object *object, const char *key,
			  const PGresult *result, int row, int column)
{
	json_object_object_add(object, key,
			       PQgetisnull(result, row, column)
				       ? NULL
				       : json_object_new_string(PQgetvalue(result, row, column)));
}

void json_add_int_column(json_object *object, const char *key,
			 const PGresult *result, int row, int column)
{
	json_object_object_add(object, key,
			       PQgetisnull(result, row, column)
				       ? NULL
				       : json_object_new_int64(strtoll(PQgetvalue(result, row, column), NULL, 10)));
}
