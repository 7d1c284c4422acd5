/* deploy_plan_build when strdup fails: an error, never a plan with a NULL field. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "deployplan.h"
#include "exitcode.h"

static const char leaf[] = "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n";
static const char chain[] = "-----BEGIN CERTIFICATE-----\nCHAIN\n-----END CERTIFICATE-----";
static const char key[] = "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n";

static int strdup_calls, strdup_fails_at;

/* Interposes libc's strdup: the strdup_fails_at-th call (from 1) fails as on ENOMEM. */
char *strdup(const char *text)
{
	size_t size = strlen(text) + 1;
	char *copy;

	if (++strdup_calls == strdup_fails_at) {
		errno = ENOMEM;
		return NULL;
	}
	if ((copy = malloc(size)) != NULL)
		memcpy(copy, text, size);
	return copy;
}

static void check_complete(const struct deploy_plan *plan)
{
	CHECK(plan->target_id != NULL);
	CHECK(plan->target_type != NULL);
	CHECK(plan->verify_endpoint != NULL);
	CHECK(plan->verify_sni != NULL);
	CHECK(plan->file_count == 2);
	for (size_t i = 0; i < plan->file_count; i++) {
		CHECK(plan->files[i].path != NULL);
		CHECK(plan->files[i].owner != NULL);
		CHECK(plan->files[i].group != NULL);
	}
}

int main(void)
{
	struct certificate_material material = {
		leaf, chain, (const unsigned char *)key, sizeof(key) - 1,
	};
	/* Parsed before any failure is armed: json-c copies keys with strdup too. */
	json_object *config = json_tokener_parse(
		"{\"cert_path\":\"/c\",\"key_path\":\"/k\",\"owner\":\"root\",\"group\":\"root\","
		"\"verify_endpoint\":\"127.0.0.1:443\",\"verify_sni\":\"shop.example\"}");
	int failures_seen = 0;

	CHECK(config != NULL);
	for (strdup_fails_at = 1;; strdup_fails_at++) {
		struct deploy_plan plan;
		struct error err = { 0, "" };
		int code;

		strdup_calls = 0;
		code = deploy_plan_build("target-t", "nginx", config, &material, &plan, &err);
		if (strdup_calls < strdup_fails_at) {
			/* No call failed: the whole plan must be there. */
			CHECK(code == 0);
			check_complete(&plan);
			deploy_plan_free(&plan);
			break;
		}
		if (code == 0) {
			fprintf(stderr, "strdup call %d failed, yet the plan was built\n", strdup_fails_at);
			check_complete(&plan);
			check_failures++;
		} else {
			CHECK(code == EXIT_INTERNAL);
			CHECK(strstr(err.message, "out of memory") != NULL);
			failures_seen++;
		}
		deploy_plan_free(&plan);
	}
	strdup_fails_at = 0;
	CHECK(failures_seen > 0);
	json_object_put(config);
	return CHECK_DONE();
}
