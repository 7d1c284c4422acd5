/* certctl-deploy's job lines, read and classified as the deploy loop does, without the database. */
#include <limits.h>
#include <string.h>

#include "deploy.h"
#include "exitcode.h"
#include "fuzz.h"
#include "jsonl.h"

static void check_line(json_object *line)
{
	struct job_line job;
	enum job_line_kind kind;
	struct error err;

	if (deploy_job_line_parse(line, &kind, &job, &err) == 0) {
		const char *type = json_string_field(line, "type");
		/* a line with no type is passed through; one with a type that is no string is refused */
		FUZZ_ASSERT(type != NULL || !json_object_object_get_ex(line, "type", NULL));
		FUZZ_ASSERT((kind == JOB_LINE_DEPLOYMENT) == (type != NULL && strcmp(type, "Deployment") == 0));
		if (kind == JOB_LINE_DEPLOYMENT) {
			int64_t attempts;
			FUZZ_ASSERT(job.id != NULL && job.claimed_by != NULL);
			FUZZ_ASSERT(strcmp(job.id, json_string_field(line, "id")) == 0);
			/* the claim compared is exactly the line's: no truncation */
			FUZZ_ASSERT(json_int_field(line, "attempts", &attempts) && attempts == job.attempts);
			FUZZ_ASSERT(job.attempts >= 0);
		} else {
			FUZZ_ASSERT(job.id == NULL && job.claimed_by == NULL);
		}
	} else {
		FUZZ_ASSERT(err.code == EXIT_DATA);
		FUZZ_ASSERT(strchr(err.message, '\n') == NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_each_json_line(data, size, check_line);
}
