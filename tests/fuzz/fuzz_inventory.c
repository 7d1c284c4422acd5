/* Inventory lines as certctl-import reads them, parsed without the database. */
#include <string.h>

#include "exitcode.h"
#include "fuzz.h"
#include "inventory.h"
#include "jsonl.h"

static void check_line(json_object *line)
{
	struct inventory_item item;
	struct error err;

	if (inventory_line_parse(line, &item, &err) == 0) {
		FUZZ_ASSERT(item.id != NULL && item.id[0] != '\0');
		FUZZ_ASSERT(strcmp(item.kind, "agent") == 0 || strcmp(item.kind, "target") == 0 ||
			    strcmp(item.kind, "certificate") == 0 || strcmp(item.kind, "issuer") == 0);
		if (strcmp(item.kind, "target") == 0)
			FUZZ_ASSERT(item.type != NULL && item.agent_id != NULL);
		if (strcmp(item.kind, "issuer") == 0)
			FUZZ_ASSERT(item.type != NULL && item.config_json != NULL);
	} else {
		FUZZ_ASSERT(err.code == EXIT_DATA || err.code == EXIT_CONFIG);
	}
	inventory_item_release(&item);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_each_json_line(data, size, check_line);
}
