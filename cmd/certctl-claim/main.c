/* certctl-claim: take jobs off the queue for this worker, or reap expired leases. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "claim.h"
#include "command.h"
#include "exitcode.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-claim [-d DSN] [-v | -q] [--type TYPE] [--limit N] [--lease SECONDS]\n"
	"                     [--worker NAME] [--wait SECONDS] [--follow] [--agent ID | --any]\n"
	"       certctl-claim [-d DSN] [-v | -q] --reap\n"
	"       certctl-claim --help | --version\n";

enum {
	OPTION_TYPE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_LIMIT,
	OPTION_AGENT,
	OPTION_LEASE,
	OPTION_WORKER,
	OPTION_WAIT,
	OPTION_ANY,
	OPTION_REAP,
	OPTION_FOLLOW,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "type", required_argument, NULL, OPTION_TYPE },
	{ "limit", required_argument, NULL, OPTION_LIMIT },
	{ "agent", required_argument, NULL, OPTION_AGENT },
	{ "lease", required_argument, NULL, OPTION_LEASE },
	{ "worker", required_argument, NULL, OPTION_WORKER },
	{ "wait", required_argument, NULL, OPTION_WAIT },
	{ "any", no_argument, NULL, OPTION_ANY },
	{ "reap", no_argument, NULL, OPTION_REAP },
	{ "follow", no_argument, NULL, OPTION_FOLLOW },
	{ NULL, 0, NULL, 0 },
};

struct claim_command {
	struct claim_request request;
	bool reap, follow, claim_option;
	long wait_seconds;      /* -1: no --wait */
	char default_worker[WORKER_NAME_SIZE];
};

static const char *const job_types[] = { "Issuance", "Renewal", "Deployment", "Validation" };

static bool is_job_type(const char *text)
{
	for (size_t i = 0; i < sizeof(job_types) / sizeof(job_types[0]); i++)
		if (strcmp(text, job_types[i]) == 0)
			return true;
	return false;
}

/* A positive whole number no larger than max, for --limit and --lease. */
static bool parse_positive(const char *text, long max, long *value)
{
	return parse_non_negative_long(text, value) && *value >= 1 && *value <= max;
}

static int claim_option(void *state, int option, char *argument)
{
	struct claim_command *claim = state;

	claim->claim_option = claim->claim_option || option != OPTION_REAP;
	switch (option) {
	case OPTION_TYPE:
		if (!is_job_type(argument))
			return usage_error("--type takes Issuance, Renewal, Deployment or Validation, not '%s'", argument);
		claim->request.job_type = argument;
		return 0;
	case OPTION_LIMIT:
		if (!parse_positive(argument, 100000, &claim->request.limit))
			return usage_error("--limit takes a number from 1 to 100000, not '%s'", argument);
		return 0;
	case OPTION_AGENT:
		if (argument[0] == '\0')
			return usage_error("--agent takes an agent id, not an empty string");
		claim->request.agent_id = argument;
		return 0;
	case OPTION_LEASE:
		if (!parse_positive(argument, INT_MAX, &claim->request.lease_seconds))
			return usage_error("--lease takes a positive number of seconds, not '%s'", argument);
		return 0;
	case OPTION_WORKER:
		if (argument[0] == '\0')
			return usage_error("--worker takes a name, not an empty string");
		claim->request.worker = argument;
		return 0;
	case OPTION_WAIT:
		if (!parse_non_negative_long(argument, &claim->wait_seconds) || claim->wait_seconds > 86400)
			return usage_error("--wait takes seconds from 0 to 86400, not '%s'", argument);
		return 0;
	case OPTION_FOLLOW:
		claim->follow = true;
		return 0;
	case OPTION_ANY:
		claim->request.any = true;
		return 0;
	case OPTION_REAP:
		claim->reap = true;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int claim_check(void *state, const char *dsn, int operand_count, char *operands[],
		       struct error *err)
{
	struct claim_command *claim = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (claim->reap && claim->claim_option)
		return usage_error("--reap takes no claim options");
	if (claim->request.any && claim->request.agent_id != NULL)
		return usage_error("--any is for a central claim; it does not go with --agent");
	if (claim->request.worker == NULL) {
		default_worker_name(claim->default_worker);
		claim->request.worker = claim->default_worker;
	}
	return 0;
}

static int claim_run(void *state, PGconn **conn, struct error *err)
{
	struct claim_command *claim = state;
	long count = 0;
	int code;

	if (claim->reap)
		code = reap_jobs(*conn, stdout, &count, err);
	else if (claim->follow)
		/* Without --wait a follower waits for work for ever. */
		code = claim_jobs_following(*conn, &claim->request, claim->wait_seconds, stdout, &count, err);
	else
		code = claim_jobs_waiting(*conn, &claim->request, claim->wait_seconds, stdout, &count, err);
	log_info("%ld job%s %s", count, count == 1 ? "" : "s", claim->reap ? "reaped" : "claimed");
	/* The claim in hand is finished and printed; a stop request still says "stopped". */
	if (code == 0 && signals_stop_requested())
		code = error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	return code;
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-claim",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = claim_option,
		.check = claim_check,
		.run = claim_run,
	};
	struct claim_command claim = {
		.request = { .limit = DEFAULT_CLAIM_LIMIT, .lease_seconds = DEFAULT_LEASE_SECONDS },
		.wait_seconds = -1,
	};

	return command_main(&command, &claim, argc, argv);
}
