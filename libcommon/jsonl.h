/* JSON lines: one object per line in, one object per line out (json-c). */
#ifndef CERTCTL_JSONL_H
#define CERTCTL_JSONL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "error.h"

/* Longest line accepted, newline excluded (CONTRACT: input limits). */
#define JSONL_LINE_MAX ((size_t)1 << 20)

struct jsonl_reader {
	FILE *input;
	long line_number;   /* of the line last read, 1-based */
	char *line;         /* the last line read with its newline, NUL-terminated */
	size_t length;      /* of line, newline included; never over JSONL_LINE_MAX + 1 */
	size_t capacity;    /* grows up to JSONL_LINE_MAX + 2, never beyond */
};

void jsonl_reader_init(struct jsonl_reader *reader, FILE *input);
void jsonl_reader_free(struct jsonl_reader *reader);

/*
 * Reads the next non-blank line. Returns 1 with *object set (caller
 * json_object_put()s), 0 at end of input, or -1 when the line is not a JSON
 * object, is longer than JSONL_LINE_MAX or holds a NUL byte: err (coded
 * EXIT_DATA) then says "line N: why" and reading may go on. An overlong line
 * is skipped without being stored, so the reader never holds more than one
 * line's limit. On 1, line holds the very bytes read (no NUL among them).
 */
int jsonl_read(struct jsonl_reader *reader, json_object **object, struct error *err);

/*
 * Copies the line last read, its very bytes, to output and flushes: how a
 * command in a pipeline passes on what is not for it. A closed stdout is
 * EXIT_CANT_CREATE.
 */
int jsonl_forward(const struct jsonl_reader *reader, FILE *output, struct error *err);

/* Writes object as one line and flushes; a closed stdout is EXIT_CANT_CREATE. */
int jsonl_write(FILE *output, json_object *object, struct error *err);
/* jsonl_write() without the flush, for a batch of lines that jsonl_flush() ends. */
int jsonl_put(FILE *output, json_object *object, struct error *err);
int jsonl_flush(FILE *output, struct error *err);

/* The string at key, or NULL when missing or not a string. */
const char *json_string_field(json_object *object, const char *key);
/* Sets *value from an integer (or integer string) at key; false when absent or bad. */
bool json_int_field(json_object *object, const char *key, int64_t *value);

#endif
