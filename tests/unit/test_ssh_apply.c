/*
 * Drives ssh_apply() from a bats test, without a database:
 *   test_ssh_apply CONFIG_JSON CERT_PEM_FILE KEY_PEM_FILE [CHAIN_PEM_FILE]
 * builds the plan of a type "ssh" target from CONFIG_JSON and the files,
 * applies it, prints {"exit_code":N,"outcome":"…","error":"…","metadata":{…}}
 * and exits with ssh_apply()'s code.
 */
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>
#include <libssh2.h>
#include <openssl/crypto.h>

#include "deployplan.h"
#include "exitcode.h"
#include "fileio.h"
#include "log.h"
#include "outcome.h"
#include "sshdeploy.h"

#define PEM_MAX (1024 * 1024)

int main(int argc, char *argv[])
{
	struct error err = { 0, "" };
	struct deploy_plan plan = { 0 };
	struct deploy_result result;
	struct certificate_material material = { 0 };
	json_object *config = NULL, *line;
	char *cert = NULL, *key = NULL, *chain = NULL;
	size_t key_length = 0;
	int code;

	log_init("test_ssh_apply");
	if (argc < 4 || argc > 5) {
		log_error("usage: test_ssh_apply CONFIG_JSON CERT_PEM_FILE KEY_PEM_FILE [CHAIN_PEM_FILE]");
		return EXIT_USAGE;
	}
	deploy_result_init(&result);
	if ((config = json_tokener_parse(argv[1])) == NULL) {
		code = error_set(&err, EXIT_DATA, "CONFIG_JSON does not parse");
		goto out;
	}
	if ((cert = file_read_all(argv[2], PEM_MAX, NULL, &err)) == NULL ||
	    (key = file_read_all(argv[3], PEM_MAX, &key_length, &err)) == NULL ||
	    (argc == 5 && (chain = file_read_all(argv[4], PEM_MAX, NULL, &err)) == NULL)) {
		code = err.code;
		goto out;
	}
	material.cert_pem = cert;
	material.chain_pem = chain ? chain : "";
	material.key_pem = (const unsigned char *)key;
	material.key_length = key_length;
	if ((code = deploy_plan_build("target-ssh-test", "ssh", config, &material, &plan, &err)) != 0)
		goto out;
	code = ssh_apply(&plan, config, &result, &err);
	line = json_object_new_object();
	json_object_object_add(line, "exit_code", json_object_new_int(code));
	json_object_object_add(line, "outcome", json_object_new_string(outcome_name(result.outcome)));
	json_object_object_add(line, "error", json_object_new_string(result.error));
	json_object_object_add(line, "metadata", deploy_result_metadata(&plan, &result));
	printf("%s\n", json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN));
	json_object_put(line);
out:
	if (code != 0)
		log_error("%s", err.message);
	deploy_plan_free(&plan);
	json_object_put(config);
	if (key != NULL) {
		OPENSSL_cleanse(key, key_length);
		free(key);
	}
	free(cert);
	free(chain);
	libssh2_exit();
	return code;
}
