/* certctl-heartbeat: record that an agent is alive, or list the silent ones. */
#include <stdbool.h>
#include <stdio.h>

#include "agents.h"
#include "command.h"
#include "exitcode.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-heartbeat [-d DSN] [-v | -q] --agent ID [--register] [--hostname H]\n"
	"                         [--agent-version V] [--every SECONDS]\n"
	"       certctl-heartbeat [-d DSN] [-v | -q] --stale [--older-than SECONDS]\n"
	"       certctl-heartbeat --help | --version\n";

enum {
	OPTION_AGENT = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_REGISTER,
	OPTION_HOSTNAME,
	OPTION_AGENT_VERSION,
	OPTION_EVERY,
	OPTION_STALE,
	OPTION_OLDER_THAN,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "agent", required_argument, NULL, OPTION_AGENT },
	{ "register", no_argument, NULL, OPTION_REGISTER },
	{ "hostname", required_argument, NULL, OPTION_HOSTNAME },
	{ "agent-version", required_argument, NULL, OPTION_AGENT_VERSION },
	{ "every", required_argument, NULL, OPTION_EVERY },
	{ "stale", no_argument, NULL, OPTION_STALE },
	{ "older-than", required_argument, NULL, OPTION_OLDER_THAN },
	{ NULL, 0, NULL, 0 },
};

struct heartbeat_command {
	struct heartbeat_request request;
	const char *dsn;        /* --every reconnects with it */
	long every, older_than; /* 0: one beat; -1: no --older-than */
	bool stale;
};

static int heartbeat_option(void *state, int option, char *argument)
{
	struct heartbeat_command *heartbeat = state;

	switch (option) {
	case OPTION_AGENT:
		heartbeat->request.agent_id = argument;
		return 0;
	case OPTION_REGISTER:
		heartbeat->request.register_unknown = true;
		return 0;
	case OPTION_HOSTNAME:
		heartbeat->request.hostname = argument;
		return 0;
	case OPTION_AGENT_VERSION:
		heartbeat->request.agent_version = argument;
		return 0;
	case OPTION_EVERY:
		if (!parse_non_negative_long(argument, &heartbeat->every) || heartbeat->every < 1)
			return usage_error("--every takes a positive number of seconds, not '%s'", argument);
		return 0;
	case OPTION_STALE:
		heartbeat->stale = true;
		return 0;
	case OPTION_OLDER_THAN:
		if (!parse_non_negative_long(argument, &heartbeat->older_than))
			return usage_error("--older-than takes a number of seconds, not '%s'", argument);
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int heartbeat_check(void *state, const char *dsn, int operand_count, char *operands[],
			   struct error *err)
{
	struct heartbeat_command *heartbeat = state;
	const struct heartbeat_request *request = &heartbeat->request;

	(void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (heartbeat->stale == (request->agent_id != NULL))
		return usage_error("give exactly one of --agent ID and --stale");
	if (request->agent_id != NULL && request->agent_id[0] == '\0')
		return usage_error("--agent takes a non-empty agent id");
	if (heartbeat->stale && (request->register_unknown || request->hostname || request->agent_version ||
				 heartbeat->every))
		return usage_error("--register, --hostname, --agent-version and --every go with --agent");
	if (!heartbeat->stale && heartbeat->older_than >= 0)
		return usage_error("--older-than goes with --stale");
	heartbeat->dsn = dsn;
	return 0;
}

static int heartbeat_run(void *state, PGconn **conn, struct error *err)
{
	struct heartbeat_command *heartbeat = state;
	int code;

	/* A loop holds no item when stopped: a signal ends it with 0, not 75. */
	if (heartbeat->every > 0)
		return agent_heartbeat_every(heartbeat->dsn, conn, &heartbeat->request, heartbeat->every,
					     stdout, err);
	if (heartbeat->stale)
		code = agents_list_stale(*conn, heartbeat->older_than >= 0 ? heartbeat->older_than
									   : STALE_AFTER_SECONDS,
					 stdout, err);
	else
		code = agent_heartbeat(*conn, &heartbeat->request, stdout, err);
	if (code == 0 && signals_stop_requested())
		code = error_set(err, EXIT_TEMPORARY, "stopped by signal %d after finishing",
				 signals_received());
	return code;
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-heartbeat",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = heartbeat_option,
		.check = heartbeat_check,
		.run = heartbeat_run,
	};
	struct heartbeat_command heartbeat = {
		.request = { NULL, NULL, NULL, false },
		.older_than = -1,
	};

	return command_main(&command, &heartbeat, argc, argv);
}
