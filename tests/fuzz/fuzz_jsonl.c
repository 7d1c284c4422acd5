/* jsonl_read over arbitrary bytes: no crash, no line past the limit, no NUL in a line it accepts. */
#include <string.h>

#include "fuzz.h"
#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonl_reader reader;
	struct error err;
	json_object *object;
	long last_line = 0;
	FILE *input;
	int status;

	if (size == 0 || (input = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	jsonl_reader_init(&reader, input);
	while ((status = jsonl_read(&reader, &object, &err)) != 0) {
		FUZZ_ASSERT(reader.line_number > last_line);
		last_line = reader.line_number;
		FUZZ_ASSERT(reader.capacity <= JSONL_LINE_MAX + 2);
		if (status > 0) {
			FUZZ_ASSERT(object != NULL && json_object_is_type(object, json_type_object));
			FUZZ_ASSERT(reader.length <= JSONL_LINE_MAX + 1);
			FUZZ_ASSERT(strlen(reader.line) == reader.length);
			json_object_put(object);
		} else {
			FUZZ_ASSERT(object == NULL && err.message[0] != '\0');
		}
	}
	jsonl_reader_free(&reader);
	fclose(input);
	return 0;
}
