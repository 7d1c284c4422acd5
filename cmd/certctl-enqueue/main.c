/* certctl-enqueue: one Deployment job per active target of a certificate. */
#include <stdio.h>

#include "command.h"
#include "enqueue.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-enqueue [-d DSN] [-v | -q] --certificate ID\n"
	"       certctl-enqueue --help | --version\n";

enum { OPTION_CERTIFICATE = OPTION_FIRST_COMMAND_SPECIFIC };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ NULL, 0, NULL, 0 },
};

struct enqueue_command {
	const char *certificate_id;
};

static int enqueue_option(void *state, int option, char *argument)
{
	struct enqueue_command *enqueue = state;

	if (option != OPTION_CERTIFICATE)
		return usage_error("unexpected option");
	enqueue->certificate_id = argument;
	return 0;
}

static int enqueue_check(void *state, const char *dsn, int operand_count, char *operands[],
			 struct error *err)
{
	struct enqueue_command *enqueue = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (enqueue->certificate_id == NULL || enqueue->certificate_id[0] == '\0')
		return usage_error("--certificate ID is required");
	return 0;
}

static int enqueue_run(void *state, PGconn **conn, struct error *err)
{
	struct enqueue_command *enqueue = state;

	return enqueue_certificate(*conn, enqueue->certificate_id, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-enqueue",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = enqueue_option,
		.check = enqueue_check,
		.run = enqueue_run,
	};
	struct enqueue_command enqueue = { NULL };

	return command_main(&command, &enqueue, argc, argv);
}
