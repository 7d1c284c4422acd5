/* certctl-retire: retire an agent (soft, audited, opt-in cascade) or list retired agents. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "command.h"
#include "exitcode.h"
#include "options.h"
#include "retire.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-retire [-d DSN] [-v | -q] AGENT_ID [--force --reason TEXT] [--actor NAME]\n"
	"       certctl-retire [-d DSN] [-v | -q] --list [--page N] [--per-page N]\n"
	"       certctl-retire --help | --version\n";

enum {
	OPTION_FORCE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_REASON,
	OPTION_ACTOR,
	OPTION_LIST,
	OPTION_PAGE,
	OPTION_PER_PAGE,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "force", no_argument, NULL, OPTION_FORCE },
	{ "reason", required_argument, NULL, OPTION_REASON },
	{ "actor", required_argument, NULL, OPTION_ACTOR },
	{ "list", no_argument, NULL, OPTION_LIST },
	{ "page", required_argument, NULL, OPTION_PAGE },
	{ "per-page", required_argument, NULL, OPTION_PER_PAGE },
	{ NULL, 0, NULL, 0 },
};

struct retire_command {
	struct retire_request request;
	long page, per_page;
	bool list, paging;
};

/* Any integer is accepted: out-of-range pages are clamped, as the contract says. */
static bool parse_page_number(const char *text, long fallback, long *value)
{
	char *end;

	errno = 0;
	*value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	if (*value < 1)
		*value = fallback;
	return true;
}

static int retire_option(void *state, int option, char *argument)
{
	struct retire_command *retire = state;

	switch (option) {
	case OPTION_FORCE:
		retire->request.force = true;
		return 0;
	case OPTION_REASON:
		retire->request.reason = argument;
		return 0;
	case OPTION_ACTOR:
		if (argument[0] == '\0')
			return usage_error("--actor takes a non-empty name");
		retire->request.actor = argument;
		return 0;
	case OPTION_LIST:
		retire->list = true;
		return 0;
	case OPTION_PAGE:
		retire->paging = true;
		if (!parse_page_number(argument, 1, &retire->page))
			return usage_error("--page takes a number, not '%s'", argument);
		return 0;
	case OPTION_PER_PAGE:
		retire->paging = true;
		if (!parse_page_number(argument, RETIRED_LIST_DEFAULT_PER_PAGE, &retire->per_page))
			return usage_error("--per-page takes a number, not '%s'", argument);
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int retire_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct retire_command *retire = state;
	struct retire_request *request = &retire->request;

	(void)dsn;
	if (retire->list) {
		if (operand_count != 0)
			return usage_error("--list takes no agent id");
		if (request->force || request->reason || request->actor)
			return usage_error("--force, --reason and --actor go with an agent id, not --list");
		return 0;
	}
	if (operand_count != 1)
		return usage_error("expected one agent id, or --list");
	if (retire->paging)
		return usage_error("--page and --per-page go with --list");
	request->agent_id = operands[0];
	if (request->agent_id[0] == '\0')
		return usage_error("the agent id is empty");
	/* Step 5 comes first in practice: a usage error never reaches the database. */
	if (request->force && (request->reason == NULL || request->reason[0] == '\0'))
		return usage_error("--force requires --reason TEXT");
	return retire_refuse_sentinel(request->agent_id, err);
}

static int retire_run(void *state, PGconn **conn, struct error *err)
{
	struct retire_command *retire = state;
	int code;

	if (retire->list)
		code = retire_list(*conn, retire->page, retire->per_page, stdout, err);
	else
		code = retire_agent(*conn, &retire->request, stdout, err);
	/* The item in hand was finished; the signal still asks the caller to stop. */
	if (code == 0 && signals_stop_requested())
		code = error_set(err, EXIT_TEMPORARY, "stopped by signal %d after finishing",
				 signals_received());
	return code;
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-retire",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = retire_option,
		.check = retire_check,
		.run = retire_run,
	};
	struct retire_command retire = {
		.request = { NULL, NULL, NULL, false },
		.page = 1,
		.per_page = RETIRED_LIST_DEFAULT_PER_PAGE,
	};

	return command_main(&command, &retire, argc, argv);
}
