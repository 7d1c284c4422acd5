/* certctl-notify: deliver notification events through a command, or requeue them. */
#include <stdbool.h>
#include <stdio.h>

#include "command.h"
#include "exitcode.h"
#include "log.h"
#include "notify.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-notify [-d DSN] [-v | -q] [--limit N] [--follow] -- COMMAND [ARG...]\n"
	"       certctl-notify [-d DSN] [-v | -q] --requeue ID... | --requeue-dead\n"
	"       certctl-notify --help | --version\n";

enum {
	OPTION_LIMIT = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_FOLLOW,
	OPTION_REQUEUE,
	OPTION_REQUEUE_DEAD,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "limit", required_argument, NULL, OPTION_LIMIT },
	{ "follow", no_argument, NULL, OPTION_FOLLOW },
	{ "requeue", no_argument, NULL, OPTION_REQUEUE },
	{ "requeue-dead", no_argument, NULL, OPTION_REQUEUE_DEAD },
	{ NULL, 0, NULL, 0 },
};

struct notify_command {
	struct notify_request request;
	bool limit_given, requeue, requeue_dead;
	char **ids;
	int id_count;
};

static int notify_option(void *state, int option, char *argument)
{
	struct notify_command *notify = state;

	switch (option) {
	case OPTION_LIMIT:
		if (!parse_non_negative_long(argument, &notify->request.limit) ||
		    notify->request.limit < 1 || notify->request.limit > 100000)
			return usage_error("--limit takes a number from 1 to 100000, not '%s'", argument);
		notify->limit_given = true;
		return 0;
	case OPTION_FOLLOW:
		notify->request.follow = true;
		return 0;
	case OPTION_REQUEUE:
		notify->requeue = true;
		return 0;
	case OPTION_REQUEUE_DEAD:
		notify->requeue_dead = true;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int notify_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct notify_command *notify = state;
	int code;

	(void)dsn;
	if (notify->requeue && notify->requeue_dead)
		return usage_error("--requeue and --requeue-dead do not go together");
	if ((notify->requeue || notify->requeue_dead) && (notify->limit_given || notify->request.follow))
		return usage_error("--limit and --follow are for delivering, not requeueing");
	if (notify->requeue_dead && operand_count != 0)
		return usage_error("--requeue-dead takes no argument, not '%s'", operands[0]);
	if (notify->requeue && operand_count == 0)
		return usage_error("--requeue takes one or more event ids");
	if (notify->requeue) {
		notify->ids = operands;
		notify->id_count = operand_count;
		return 0;
	}
	if (notify->requeue_dead)
		return 0;
	if (operand_count == 0)
		return usage_error("no command to run per event (certctl-notify -- COMMAND [ARG...])");
	if (operands[0][0] == '\0')
		return usage_error("the command is an empty string");
	notify->request.argv = operands;
	if ((code = notify_retry_unit(&notify->request.retry_unit_seconds, err)) != 0)
		return code;
	return notify_command_check(operands[0], err);
}

static int notify_run(void *state, PGconn **conn, struct error *err)
{
	struct notify_command *notify = state;
	long count = 0;
	int code;

	if (notify->requeue || notify->requeue_dead) {
		code = notify_requeue(*conn, notify->requeue ? notify->ids : NULL, notify->id_count,
				      stdout, &count, err);
		log_info("%ld event%s requeued", count, count == 1 ? "" : "s");
		return code;
	}
	code = notify_deliver(*conn, &notify->request, stdout, &count, err);
	log_info("%ld event%s handled", count, count == 1 ? "" : "s");
	/* The event in hand is finished and printed; a stop request still says "stopped". */
	if (code == 0 && signals_stop_requested())
		code = error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	return code;
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-notify",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = notify_option,
		.check = notify_check,
		.run = notify_run,
	};
	struct notify_command notify = { .request = { .limit = DEFAULT_NOTIFY_LIMIT } };

	return command_main(&command, &notify, argc, argv);
}
