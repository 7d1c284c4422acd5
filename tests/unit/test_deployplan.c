/* deploy_plan_build: files, defaults per type and config errors. */
#include <stdlib.h>

#include "check.h"
#include "deployplan.h"
#include "exitcode.h"

static const char leaf[] = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n";
static const char chain[] = "-----BEGIN CERTIFICATE-----\nCHAIN\n-----END CERTIFICATE-----";
static const char key[] = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

static int build(const char *type, const char *config_text, struct deploy_plan *plan,
		 struct error *err)
{
	struct certificate_material material = {
		leaf, chain, (const unsigned char *)key, sizeof(key) - 1,
	};
	json_object *config = json_tokener_parse(config_text);
	int code = deploy_plan_build("target-t", type, config, &material, plan, err);

	json_object_put(config);
	return code;
}

/* Plan bytes are counted, not NUL-terminated. */
static const char *find_in_file(const struct deploy_file *file, const char *text)
{
	return memmem(file->bytes, file->length, text, strlen(text));
}

static char *joined_argv(char **argv)
{
	static char text[256];

	text[0] = '\0';
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++) {
		if (i > 0)
			strcat(text, " ");
		strcat(text, argv[i]);
	}
	return text;
}

static void test_default_commands_per_type(void)
{
	static const struct { const char *type, *validate, *reload; } expected[] = {
		{ "nginx", "nginx -t", "nginx -s reload" },
		{ "apache", "apachectl configtest", "apachectl graceful" },
		{ "postfix", "postfix check", "postfix reload" },
		{ "dovecot", "doveconf -n", "doveadm reload" },
		{ "file", "", "" },
		{ "traefik", "", "" },
		{ "caddy", "", "" },
	};
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		struct deploy_plan plan;
		struct error err;
		CHECK(build(expected[i].type, "{\"cert_path\":\"/c\",\"key_path\":\"/k\"}", &plan, &err) == 0);
		CHECK_STR(expected[i].validate, joined_argv(plan.validate_argv));
		CHECK_STR(expected[i].reload, joined_argv(plan.reload_argv));
		deploy_plan_free(&plan);
	}
}

static void test_haproxy_combined(void)
{
	struct deploy_plan plan;
	struct error err;

	CHECK(build("haproxy", "{\"cert_path\":\"/c\",\"key_path\":\"/k\"}", &plan, &err) == EXIT_CONFIG);
	CHECK(strstr(err.message, "combined_path") != NULL);
	deploy_plan_free(&plan);
	CHECK(build("haproxy", "{\"combined_path\":\"/etc/haproxy/site.pem\"}", &plan, &err) == 0);
	CHECK(plan.file_count == 1);
	CHECK(plan.files[0].role == DEPLOY_FILE_COMBINED && plan.files[0].secret);
	CHECK(plan.files[0].default_mode == 0600);
	CHECK_STR("haproxy -c -f /etc/haproxy/haproxy.cfg", joined_argv(plan.validate_argv));
	CHECK_STR("systemctl reload haproxy", joined_argv(plan.reload_argv));
	/* leaf, chain, key in that order, each ending in a newline */
	CHECK(plan.files[0].length == strlen(leaf) + strlen(chain) + 1 + strlen(key));
	CHECK(find_in_file(&plan.files[0], "LEAF") < find_in_file(&plan.files[0], "CHAIN"));
	CHECK(find_in_file(&plan.files[0], "CHAIN") < find_in_file(&plan.files[0], "PRIVATE KEY"));
	deploy_plan_free(&plan);
}

static void test_files_and_modes(void)
{
	struct deploy_plan plan;
	struct error err;

	/* Without chain_path the cert file carries leaf + chain. */
	CHECK(build("nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"cert_mode\":\"0640\"}", &plan, &err) == 0);
	CHECK(plan.file_count == 2);
	CHECK(plan.files[0].mode == 0640 && plan.files[0].default_mode == 0644);
	CHECK(find_in_file(&plan.files[0], "CHAIN") != NULL);
	CHECK(plan.files[1].secret && plan.files[1].mode == -1 && plan.files[1].default_mode == 0600);
	CHECK(plan.backup_retention == DEFAULT_BACKUP_RETENTION);
	deploy_plan_free(&plan);

	/* With chain_path, the leaf alone, and the chain in its own file. */
	CHECK(build("file", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"chain_path\":\"/ch\","
			    "\"backup_retention\":-1,\"reload_command\":[],\"owner\":\"www-data\"}",
		    &plan, &err) == 0);
	CHECK(plan.file_count == 3);
	CHECK(find_in_file(&plan.files[0], "CHAIN") == NULL);
	CHECK(plan.files[2].role == DEPLOY_FILE_CHAIN);
	CHECK(plan.backup_retention == BACKUPS_DISABLED);
	CHECK(plan.reload_argv == NULL);
	CHECK_STR("www-data", plan.files[1].owner);
	deploy_plan_free(&plan);
}

static void test_config_errors(void)
{
	static const struct { const char *type, *config, *mentions; } bad[] = {
		{ "iis", "{\"cert_path\":\"/c\",\"key_path\":\"/k\"}", "unknown target type" },
		{ "nginx", "{\"key_path\":\"/k\"}", "cert_path" },
		{ "nginx", "{\"cert_path\":\"/c\"}", "key_path" },
		{ "nginx", "{\"cert_path\":\"relative\",\"key_path\":\"/k\"}", "absolute" },
		{ "nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"key_mode\":\"0999\"}", "key_mode" },
		{ "nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"reload_command\":\"nginx -s reload\"}", "argv array" },
		{ "nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"validate_command\":[\"\"]}", "validate_command[0]" },
		{ "nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/c\"}", "two files" },
		{ "nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"backup_retention\":-2}", "backup_retention" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct deploy_plan plan;
		struct error err;
		CHECK(build(bad[i].type, bad[i].config, &plan, &err) == EXIT_CONFIG);
		if (strstr(err.message, bad[i].mentions) == NULL) {
			fprintf(stderr, "case %zu: '%s' does not mention '%s'\n", i, err.message, bad[i].mentions);
			check_failures++;
		}
		deploy_plan_free(&plan);
	}
}

static void test_metadata(void)
{
	struct deploy_plan plan;
	struct deploy_result result;
	struct error err;
	json_object *metadata;

	CHECK(build("nginx", "{\"cert_path\":\"/c\",\"key_path\":\"/k\"}", &plan, &err) == 0);
	deploy_result_init(&result);
	result.backup[0] = BACKUP_SNAPSHOTTED;
	result.backup[1] = BACKUP_NO_PRE_EXISTING;
	metadata = deploy_result_metadata(&plan, &result);
	CHECK_STR("{\"backup_status_cert\":\"snapshotted\",\"backup_status_key\":\"no_pre_existing\","
		  "\"backup_status_chain\":\"n\\/a\"}",
		  json_object_to_json_string_ext(metadata, JSON_C_TO_STRING_PLAIN));
	json_object_put(metadata);
	result.backup[0] = BACKUP_RESTORE_FAILED;
	result.manual_action_required = true;
	metadata = deploy_result_metadata(&plan, &result);
	CHECK(strstr(json_object_to_json_string_ext(metadata, JSON_C_TO_STRING_PLAIN),
		     "\"backup_status_cert\":\"restore_failed\"") != NULL);
	CHECK(strstr(json_object_to_json_string_ext(metadata, JSON_C_TO_STRING_PLAIN),
		     "\"manual_action_required\":true") != NULL);
	json_object_put(metadata);
	deploy_plan_free(&plan);
}

int main(void)
{
	test_default_commands_per_type();
	test_haproxy_combined();
	test_files_and_modes();
	test_config_errors();
	test_metadata();
	return CHECK_DONE();
}
