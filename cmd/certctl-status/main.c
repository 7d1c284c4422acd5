/* certctl-status: what is deployed where, and is it what should be, from the database alone. */
#include <stdio.h>

#include "command.h"
#include "options.h"
#include "status.h"

static const char usage_text[] =
	"usage: certctl-status [-d DSN] [-v | -q] [--certificate ID] [--agent ID]\n"
	"                      [--table | --prometheus FILE] [--check]\n"
	"       certctl-status --help | --version\n";

enum {
	OPTION_CERTIFICATE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_AGENT,
	OPTION_TABLE,
	OPTION_PROMETHEUS,
	OPTION_CHECK,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ "agent", required_argument, NULL, OPTION_AGENT },
	{ "table", no_argument, NULL, OPTION_TABLE },
	{ "prometheus", required_argument, NULL, OPTION_PROMETHEUS },
	{ "check", no_argument, NULL, OPTION_CHECK },
	{ NULL, 0, NULL, 0 },
};

struct status_command {
	struct status_options options;
	bool table;
};

static int status_option(void *state, int option, char *argument)
{
	struct status_command *status = state;

	switch (option) {
	case OPTION_CERTIFICATE:
		if (argument[0] == '\0')
			return usage_error("--certificate takes a certificate id");
		status->options.certificate_id = argument;
		return 0;
	case OPTION_AGENT:
		if (argument[0] == '\0')
			return usage_error("--agent takes an agent id");
		status->options.agent_id = argument;
		return 0;
	case OPTION_TABLE:
		status->table = true;
		return 0;
	case OPTION_PROMETHEUS:
		if (argument[0] == '\0')
			return usage_error("--prometheus takes a file name");
		status->options.prometheus_file = argument;
		return 0;
	case OPTION_CHECK:
		status->options.check = true;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int status_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct status_command *status = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (status->table && status->options.prometheus_file != NULL)
		return usage_error("--table and --prometheus exclude each other");
	if (status->table)
		status->options.output = STATUS_OUTPUT_TABLE;
	else if (status->options.prometheus_file != NULL)
		status->options.output = STATUS_OUTPUT_PROMETHEUS;
	else if (status->options.check)
		status->options.output = STATUS_OUTPUT_NONE;
	return 0;
}

static int status_run(void *state, PGconn **conn, struct error *err)
{
	return status_report(*conn, &((struct status_command *)state)->options, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-status",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = status_option,
		.check = status_check,
		.run = status_run,
	};
	struct status_command status = { .options = { .output = STATUS_OUTPUT_JSON } };

	return command_main(&command, &status, argc, argv);
}
