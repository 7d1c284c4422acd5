#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exitcode.h"
#include "jsonl.h"

#define JSONL_FIRST_CAPACITY 4096

_Static_assert(JSONL_LINE_MAX + 1 <= INT_MAX, "json-c takes a line length as int");

void jsonl_reader_init(struct jsonl_reader *reader, FILE *input)
{
	reader->input = input;
	reader->line_number = 0;
	reader->line = NULL;
	reader->length = 0;
	reader->capacity = 0;
}

void jsonl_reader_free(struct jsonl_reader *reader)
{
	free(reader->line);
	reader->line = NULL;
	reader->length = 0;
	reader->capacity = 0;
}

static bool is_blank(const char *text, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r' && text[i] != '\n')
			return false;
	return true;
}

/* Room for one more byte and the NUL, never past one line's limit. */
static bool reserve_byte(struct jsonl_reader *reader)
{
	size_t wanted;
	char *grown;

	if (reader->length + 2 <= reader->capacity)
		return true;
	wanted = reader->capacity ? reader->capacity * 2 : JSONL_FIRST_CAPACITY;
	if (wanted > JSONL_LINE_MAX + 2)
		wanted = JSONL_LINE_MAX + 2;
	if ((grown = realloc(reader->line, wanted)) == NULL)
		return false;
	reader->line = grown;
	reader->capacity = wanted;
	return true;
}

enum line_status { LINE_END_OF_INPUT, LINE_READ, LINE_TOO_LONG, LINE_HAS_NUL, LINE_NO_MEMORY };

/*
 * One line, newline kept, into reader->line. Bytes past the limit are read
 * and dropped, so an overlong line ends where its newline is and the next
 * line starts clean.
 */
static enum line_status read_line(struct jsonl_reader *reader)
{
	bool any = false, too_long = false, has_nul = false, no_memory = false;
	int c;

	reader->length = 0;
	while ((c = getc_unlocked(reader->input)) != EOF) {
		any = true;
		if (c == '\0')
			has_nul = true;
		/* The newline may follow a full line; one byte more is not. */
		if (!too_long && !no_memory && reader->length >= JSONL_LINE_MAX + (c == '\n')) {
			too_long = true;
		} else if (!too_long && !no_memory) {
			if (reserve_byte(reader))
				reader->line[reader->length++] = (char)c;
			else
				no_memory = true;
		}
		if (c == '\n')
			break;
	}
	if (!any)
		return LINE_END_OF_INPUT;
	reader->line_number++;
	if (reader->line != NULL)
		reader->line[reader->length] = '\0';
	if (no_memory)
		return LINE_NO_MEMORY;
	if (too_long)
		return LINE_TOO_LONG;
	return has_nul ? LINE_HAS_NUL : LINE_READ;
}

int jsonl_read(struct jsonl_reader *reader, json_object **object, struct error *err)
{
	json_tokener *tokener;
	json_object *parsed;
	enum json_tokener_error parse_error;
	enum line_status status;
	size_t parse_end;

	*object = NULL;
	do {
		status = read_line(reader);
		if (status == LINE_END_OF_INPUT)
			return 0;
	} while (status == LINE_READ && is_blank(reader->line, reader->length));
	if (status == LINE_TOO_LONG)
		return error_set(err, EXIT_DATA, "line %ld: longer than %zu bytes; skipped",
				 reader->line_number, JSONL_LINE_MAX), -1;
	if (status == LINE_HAS_NUL)
		return error_set(err, EXIT_DATA, "line %ld: holds a NUL byte; skipped",
				 reader->line_number), -1;
	if (status == LINE_NO_MEMORY)
		return error_set(err, EXIT_INTERNAL, "line %ld: out of memory", reader->line_number), -1;

	tokener = json_tokener_new();
	if (tokener == NULL)
		return error_set(err, EXIT_INTERNAL, "line %ld: out of memory", reader->line_number), -1;
	/* json-c takes an int length; a line is at most JSONL_LINE_MAX + 1 bytes. */
	parsed = json_tokener_parse_ex(tokener, reader->line, (int)reader->length);
	parse_error = json_tokener_get_error(tokener);
	parse_end = json_tokener_get_parse_end(tokener);
	if (parsed != NULL && parse_error == json_tokener_success &&
	    (parse_end > reader->length ||
	     !is_blank(reader->line + parse_end, reader->length - parse_end))) {
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

int jsonl_forward(const struct jsonl_reader *reader, FILE *output, struct error *err)
{
	if (fputs(reader->line, output) == EOF || fflush(output) == EOF)
		return error_set(err, EXIT_CANT_CREATE, "stdout: write failed");
	return 0;
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
