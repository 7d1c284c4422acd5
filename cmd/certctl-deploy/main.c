/* certctl-deploy: install the certificates of Deployment jobs and finish the jobs. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "claim.h"
#include "command.h"
#include "deploy.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-deploy [-d DSN] [-v | -q] [--verify | --no-verify | --verify=strict] [--dry-run]\n"
	"           < job lines\n"
	"       certctl-deploy [-d DSN] [--verify | --no-verify | --verify=strict] --job ID [--worker NAME]\n"
	"       certctl-deploy --help | --version\n";

enum { OPTION_VERIFY = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_NO_VERIFY, OPTION_DRY_RUN, OPTION_JOB,
       OPTION_WORKER };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "verify", optional_argument, NULL, OPTION_VERIFY },
	{ "no-verify", no_argument, NULL, OPTION_NO_VERIFY },
	{ "dry-run", no_argument, NULL, OPTION_DRY_RUN },
	{ "job", required_argument, NULL, OPTION_JOB },
	{ "worker", required_argument, NULL, OPTION_WORKER },
	{ NULL, 0, NULL, 0 },
};

struct deploy_command {
	struct deploy_options options;
	const char *job_id;
	bool verify_set;
	char default_worker[WORKER_NAME_SIZE];
};

static int deploy_option(void *state, int option, char *argument)
{
	struct deploy_command *deploy = state;

	switch (option) {
	case OPTION_VERIFY:
		if (deploy->verify_set)
			return usage_error("give one of --verify, --no-verify, --verify=strict");
		if (argument != NULL && strcmp(argument, "strict") != 0)
			return usage_error("--verify takes no value or 'strict', not '%s'", argument);
		deploy->options.verify = argument != NULL ? VERIFY_STRICT : VERIFY_WARN;
		deploy->verify_set = true;
		return 0;
	case OPTION_NO_VERIFY:
		if (deploy->verify_set)
			return usage_error("give one of --verify, --no-verify, --verify=strict");
		deploy->options.verify = VERIFY_OFF;
		deploy->verify_set = true;
		return 0;
	case OPTION_DRY_RUN:
		deploy->options.dry_run = true;
		return 0;
	case OPTION_JOB:
		if (argument[0] == '\0')
			return usage_error("--job takes a job id");
		deploy->job_id = argument;
		return 0;
	case OPTION_WORKER:
		if (argument[0] == '\0')
			return usage_error("--worker takes a name, not an empty string");
		deploy->options.worker = argument;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int deploy_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct deploy_command *deploy = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (deploy->job_id != NULL && deploy->options.dry_run)
		return usage_error("--dry-run reads job lines; it does not claim with --job");
	if (deploy->options.worker != NULL && deploy->job_id == NULL)
		return usage_error("--worker goes with --job");
	if (deploy->options.worker == NULL) {
		default_worker_name(deploy->default_worker);
		deploy->options.worker = deploy->default_worker;
	}
	return 0;
}

/* Each job's failure is logged as it happens; what is left in err is the run's own. */
static int deploy_run(void *state, PGconn **conn, struct error *err)
{
	struct deploy_command *deploy = state;

	if (deploy->job_id != NULL)
		return deploy_job_by_id(*conn, &deploy->options, deploy->job_id, stdout, err);
	return deploy_job_lines(*conn, &deploy->options, stdin, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-deploy",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = deploy_option,
		.check = deploy_check,
		.run = deploy_run,
	};
	struct deploy_command deploy = { .options = { VERIFY_WARN, false, NULL } };

	return command_main(&command, &deploy, argc, argv);
}
