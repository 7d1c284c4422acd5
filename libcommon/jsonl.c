#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "jsonl.h"

void jsonl_reader_init(struct jsonl_reader *reader, FILE *input)
{
	reader->input = input;
	reader->line_number = 0;
	reader->line = NULL;
	reader->capacity = 0;
}

void jsonl_reader_free(struct jsonl_reader *reader)
{
	free(reader->line);
	reader->line = NULL;
	reader->capacity = 0;
}

static bool is_blank(const char *text)
{
	for (; *text; text++)
		if (*text != ' ' && *text != '\t' && *text != '\r' && *text != '\n')
			return false;
	return true;
}

int jsonl_read(struct jsonl_reader *reader, json_object **object, struct error *err)
{
	ssize_t length;
	json_tokener *tokener;
	json_object *parsed;
	enum json_tokener_error parse_error;

	*object = NULL;
	do {
		length = getline(&reader->line, &reader->capacity, reader->input);
		if (length < 0)
			return 0;
		reader->line_number++;
	} while (is_blank(reader->line));

	tokener = json_tokener_new();
	if (tokener == NULL)
		return error_set(err, EXIT_INTERNAL, "line %ld: out of memory", reader->line_number), -1;
	parsed = json_tokener_parse_ex(tokener, reader->line, (int)length);
	parse_error = json_tokener_get_error(tokener);
	if (parsed != NULL && parse_error == json_tokener_success &&
	    !is_blank(reader->line + json_tokener_get_parse_end(tokener))) {
		json_object_put(parsed);
		json_tokener_free(tokener);
		error_set(err, EXIT_DATA, "line %ld: trailing data after the JSON object",
			  reader->line_number);
		return -1;
	}
	if (parsed == NULL || parse_error != json_tokener_success) {
		json_object_put(parsed);
		error_set(err, EXIT_DATA, "line %ld: not valid JSON: %s", reader->line_number,
			  parse_error == json_tokener_continue ? "unexpected end of line"
							     : json_tokener_error_desc(parse_error));
		json_tokener_free(tokener);
		return -1;
	}
	json_tokener_free(tokener);
	if (!json_object_is_type(parsed, json_type_object)) {
		json_object_put(parsed);
		error_set(err, EXIT_DATA, "line %ld: not a JSON object", reader->line_number);
		return -1;
	}
	*object = parsed;
	return 1;
}

static int output_failed(struct error *err)
{
	return error_set(err, EXIT_CANT_CREATE, "standard output: %s", strerror(errno));
}

int jsonl_put(FILE *output, json_object *object, struct error *err)
{
	const char *text = json_object_to_json_string_ext(
		object, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

	if (fputs(text, output) == EOF || fputc('\n', output) == EOF)
		return output_failed(err);
	return 0;
}

int jsonl_flush(FILE *output, struct error *err)
{
	return fflush(output) == EOF ? output_failed(err) : 0;
}

int jsonl_write(FILE *output, json_object *object, struct error *err)
{
	int code = jsonl_put(output, object, err);

	return code != 0 ? code : jsonl_flush(output, err);
}

const char *json_string_field(json_object *object, const char *key)
{
	json_object *value;

	if (object == NULL || !json_object_object_get_ex(object, key, &value) ||
	    !json_object_is_type(value, json_type_string))
		return NULL;
	return json_object_get_string(value);
}

bool json_int_field(json_object *object, const char *key, int64_t *value)
{
	json_object *field;
	const char *text;
	char *end;

	if (object == NULL || !json_object_object_get_ex(object, key, &field))
		return false;
	if (json_object_is_type(field, json_type_int)) {
		*value = json_object_get_int64(field);
		return true;
	}
	if (!json_object_is_type(field, json_type_string))
		return false;
	text = json_object_get_string(field);
	errno = 0;
	*value = strtoll(text, &end, 10);
	return errno == 0 && end != text && *end == '\0';
}

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

void json_add_bool_column(json_object *object, const char *key,
			  const PGresult *result, int row, int column)
{
	json_object_object_add(object, key,
			       PQgetisnull(result, row, column)
				       ? NULL
				       : json_object_new_boolean(PQgetvalue(result, row, column)[0] == 't'));
}
