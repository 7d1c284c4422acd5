/*
 * Drives atomic_apply() on its own: builds a plan with deploy_plan_build()
 * from a target type, a config (JSON text) and PEM files, applies it, and
 * prints {"outcome","exit_code","error","metadata"}; exits with the code.
 * usage: test_atomic_apply [--dry-run] TYPE CONFIG_JSON CERT KEY [CHAIN]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>

#include "atomic.h"
#include "deployplan.h"
#include "exitcode.h"
#include "fileio.h"
#include "outcome.h"
#include "runcmd.h"
#include "signals.h"

int main(int argc, char *argv[])
{
	struct certificate_material material = { NULL, "", NULL, 0 };
	struct deploy_plan plan;
	struct deploy_result result;
	struct error err = { 0, "" };
	char *cert = NULL, *key = NULL, *chain = NULL;
	size_t key_length = 0;
	json_object *config = NULL, *line;
	bool dry_run = argc > 1 && strcmp(argv[1], "--dry-run") == 0;
	int code, first = dry_run ? 2 : 1;

	memset(&plan, 0, sizeof(plan));
	if (argc - first < 4) {
		fprintf(stderr, "usage: test_atomic_apply [--dry-run] TYPE CONFIG_JSON CERT KEY [CHAIN]\n");
		return EXIT_USAGE;
	}
	signals_install();
	if (run_deadline_start(&err) != 0) {
		fprintf(stderr, "test_atomic_apply: %s\n", err.message);
		return err.code;
	}
	config = json_tokener_parse(argv[first + 1]);
	cert = file_read_all(argv[first + 2], 1 << 20, NULL, &err);
	key = file_read_all(argv[first + 3], 1 << 20, &key_length, &err);
	if (argc - first > 4)
		chain = file_read_all(argv[first + 4], 1 << 20, NULL, &err);
	if (config == NULL || cert == NULL || key == NULL) {
		fprintf(stderr, "test_atomic_apply: bad config or unreadable file: %s\n", err.message);
		code = EXIT_DATA;
		goto out;
	}
	material.cert_pem = cert;
	material.chain_pem = chain ? chain : "";
	material.key_pem = (const unsigned char *)key;
	material.key_length = key_length;
	if ((code = deploy_plan_build("target-test", argv[first], config, &material, &plan, &err)) != 0) {
		fprintf(stderr, "test_atomic_apply: %s\n", err.message);
		goto out;
	}
	line = json_object_new_object();
	if (dry_run) {
		bool differs[DEPLOY_MAX_FILES];
		json_object *paths = json_object_new_array();
		code = atomic_compare(&plan, differs, &err);
		for (size_t i = 0; code == 0 && i < plan.file_count; i++)
			if (differs[i])
				json_object_array_add(paths, json_object_new_string(plan.files[i].path));
		json_object_object_add(line, "would_change", paths);
	} else {
		code = atomic_apply(&plan, &result, &err);
		json_object_object_add(line, "outcome", json_object_new_string(outcome_name(result.outcome)));
		json_object_object_add(line, "exit_code", json_object_new_int(result.exit_code));
		json_object_object_add(line, "error", json_object_new_string(result.error));
		json_object_object_add(line, "metadata", deploy_result_metadata(&plan, &result));
	}
	puts(json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(line);
	if (code != 0)
		fprintf(stderr, "test_atomic_apply: %s\n", err.message);
out:
	deploy_plan_free(&plan);
	if (key != NULL) {
		OPENSSL_cleanse(key, key_length);
		free(key);
	}
	free(cert);
	free(chain);
	json_object_put(config);
	return code;
}
