/* Inventory lines as certctl-import reads them, parsed without the database. */
#include <string.h>

#include "exitcode.h"
#include "fuzz.h"
#include "inventory.h"
#include "jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jsonl_reader reader;
	struct inventory_item item;
	struct error err;
	json_object *line;
	FILE *input;
	int status;

	if (size == 0 || (input = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	jsonl_reader_init(&reader, input);
	while ((status = jsonl_read(&reader, &line, &err)) != 0) {
		if (status < 0)
			continue;
		if (inventory_line_parse(line, &item, &err) == 0) {
			FUZZ_ASSERT(item.id != NULL && item.id[0] != '\0');
			FUZZ_ASSERT(strcmp(item.kind, "agent") == 0 || strcmp(item.kind, "target") == 0 ||
				    strcmp(item.kind, "certificate") == 0);
			if (strcmp(item.kind, "target") == 0)
				FUZZ_ASSERT(item.type != NULL && item.agent_id != NULL);
		} else {
			FUZZ_ASSERT(err.code == EXIT_DATA);
		}
		json_object_put(line);
	}
	jsonl_reader_free(&reader);
	fclose(input);
	return 0;
}
