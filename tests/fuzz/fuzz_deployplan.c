/* deploy_plan_build: input is "TYPE\nCONFIG-JSON"; every plan it accepts is well formed. */
#include <string.h>

#include "deployplan.h"
#include "exitcode.h"
#include "fuzz.h"

#define TYPE_MAX 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[] = "-----BEGIN PRIVATE KEY-----\nfuzz\n-----END PRIVATE KEY-----\n";
	const struct certificate_material material = {
		"-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n",
		"-----BEGIN CERTIFICATE-----\nchain\n-----END CERTIFICATE-----\n",
		key, sizeof(key) - 1,
	};
	const uint8_t *newline = memchr(data, '\n', size < TYPE_MAX ? size : TYPE_MAX);
	char type[TYPE_MAX + 1];
	struct deploy_plan plan;
	struct error err;
	json_tokener *tokener;
	json_object *config;
	size_t config_size;

	if (newline == NULL || size > (1 << 20))
		return 0;
	memcpy(type, data, (size_t)(newline - data));
	type[newline - data] = '\0';
	config_size = size - (size_t)(newline - data) - 1;
	if ((tokener = json_tokener_new()) == NULL)
		return 0;
	config = json_tokener_parse_ex(tokener, (const char *)newline + 1, (int)config_size);
	json_tokener_free(tokener);
	if (deploy_plan_build("target-fuzz", type, config, &material, &plan, &err) == 0) {
		FUZZ_ASSERT(deploy_type_known(type));
		FUZZ_ASSERT(plan.file_count >= 1 && plan.file_count <= DEPLOY_MAX_FILES);
		for (size_t i = 0; i < plan.file_count; i++) {
			FUZZ_ASSERT(plan.files[i].path != NULL && plan.files[i].path[0] == '/');
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(strcmp(plan.files[i].path, plan.files[j].path) != 0);
		}
		for (char **arg = plan.validate_argv; arg != NULL && *arg != NULL; arg++)
			FUZZ_ASSERT(*arg != NULL);
	} else {
		FUZZ_ASSERT(err.message[0] != '\0');
	}
	deploy_plan_free(&plan);
	json_object_put(config);
	return 0;
}
