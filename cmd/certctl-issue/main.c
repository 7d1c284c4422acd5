/* certctl-issue: get the certificates that Issuance and Renewal jobs ask for from their issuers. */
#include <stdbool.h>
#include <stdio.h>

#include "claim.h"
#include "command.h"
#include "exitcode.h"
#include "issue.h"
#include "options.h"
#include "versionkeys.h"

static const char usage_text[] =
	"usage: certctl-issue [-d DSN] [-v | -q] [--limit N] [--wait SECONDS | --follow]\n"
	"       certctl-issue --help | --version\n";

enum {
	OPTION_LIMIT = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_WAIT,
	OPTION_FOLLOW,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "limit", required_argument, NULL, OPTION_LIMIT },
	{ "wait", required_argument, NULL, OPTION_WAIT },
	{ "follow", no_argument, NULL, OPTION_FOLLOW },
	{ NULL, 0, NULL, 0 },
};

struct issue_command {
	struct issue_options options;
	struct sealing_key sealing_key;
	bool wait_given;
	char worker[WORKER_NAME_SIZE];
};

static int issue_option(void *state, int option, char *argument)
{
	struct issue_command *issue = state;

	switch (option) {
	case OPTION_LIMIT:
		if (!parse_non_negative_long(argument, &issue->options.limit) || issue->options.limit < 1 ||
		    issue->options.limit > 100000)
			return usage_error("--limit takes a number from 1 to 100000, not '%s'", argument);
		return 0;
	case OPTION_WAIT:
		if (!parse_non_negative_long(argument, &issue->options.wait_seconds) ||
		    issue->options.wait_seconds > 86400)
			return usage_error("--wait takes seconds from 0 to 86400, not '%s'", argument);
		issue->wait_given = true;
		return 0;
	case OPTION_FOLLOW:
		issue->options.follow = true;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int issue_check(void *state, const char *dsn, int operand_count, char *operands[],
		       struct error *err)
{
	struct issue_command *issue = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (issue->wait_given && issue->options.follow)
		return usage_error("--wait and --follow do not go together (--follow waits for ever)");
	default_worker_name(issue->worker);
	issue->options.worker = issue->worker;
	return 0;
}

/* Central keys are sealed under $CERTCTL_KEY_FILE: refused (78) before any job is claimed. */
static int issue_prepare(void *state, struct error *err)
{
	struct issue_command *issue = state;

	return sealing_key_load(&issue->sealing_key, err);
}

static int issue_run(void *state, PGconn **conn, struct error *err)
{
	struct issue_command *issue = state;

	return issue_jobs(*conn, &issue->options, stdout, err);
}

static void issue_cleanup(void *state)
{
	struct issue_command *issue = state;

	sealing_key_wipe(&issue->sealing_key);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-issue",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = issue_option,
		.check = issue_check,
		.prepare = issue_prepare,
		.run = issue_run,
		.cleanup = issue_cleanup,
	};
	struct issue_command issue = {
		.options = { .limit = DEFAULT_ISSUE_LIMIT },
		.sealing_key = { { 0 }, false },
	};

	issue.options.sealing_key = &issue.sealing_key;
	return command_main(&command, &issue, argc, argv);
}
