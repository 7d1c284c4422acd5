/* certctl-migrate: apply, roll back, report and verify the SQL schema. */
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "migrate.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-migrate [-d DSN] [--dir DIR] [-v | -q] up [--to N]\n"
	"       certctl-migrate [-d DSN] [--dir DIR] down [--to N | --steps K]\n"
	"       certctl-migrate [-d DSN] [--dir DIR] status | verify\n"
	"       certctl-migrate --help | --version\n";

enum { OPTION_DIR = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_TO, OPTION_STEPS };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "dir", required_argument, NULL, OPTION_DIR },
	{ "to", required_argument, NULL, OPTION_TO },
	{ "steps", required_argument, NULL, OPTION_STEPS },
	{ NULL, 0, NULL, 0 },
};

struct migrate_command {
	const char *dir, *action;
	long to_version, steps;     /* -1: not given */
	struct migration_set set;
};

static int migrate_option(void *state, int option, char *argument)
{
	struct migrate_command *migrate = state;

	switch (option) {
	case OPTION_DIR:
		migrate->dir = argument;
		return 0;
	case OPTION_TO:
		if (!parse_non_negative_long(argument, &migrate->to_version))
			return usage_error("--to takes a migration number, not '%s'", argument);
		return 0;
	case OPTION_STEPS:
		if (!parse_non_negative_long(argument, &migrate->steps) || migrate->steps < 1)
			return usage_error("--steps takes a positive number, not '%s'", argument);
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int migrate_check(void *state, const char *dsn, int operand_count, char *operands[],
			 struct error *err)
{
	struct migrate_command *migrate = state;
	const char *action;

	(void)dsn, (void)err;
	if (operand_count != 1)
		return usage_error("expected one action: up, down, status or verify");
	action = migrate->action = operands[0];
	if (strcmp(action, "up") != 0 && strcmp(action, "down") != 0 &&
	    strcmp(action, "status") != 0 && strcmp(action, "verify") != 0)
		return usage_error("unknown action '%s'", action);
	if (migrate->steps >= 0 && (strcmp(action, "down") != 0 || migrate->to_version >= 0))
		return usage_error("--steps goes with down, and not with --to");
	if (migrate->to_version >= 0 && strcmp(action, "up") != 0 && strcmp(action, "down") != 0)
		return usage_error("--to goes with up or down");
	return 0;
}

/* The migrations are read (and a bad directory refused) before the database is touched. */
static int migrate_prepare(void *state, struct error *err)
{
	struct migrate_command *migrate = state;

	return migrations_load(migrate->dir != NULL ? migrate->dir : migrations_default_dir(),
			       &migrate->set, err);
}

static int migrate_run(void *state, PGconn **conn, struct error *err)
{
	struct migrate_command *migrate = state;
	const char *action = migrate->action;

	if (strcmp(action, "up") == 0)
		return migrate_up(*conn, &migrate->set, (int)migrate->to_version, stdout, err);
	if (strcmp(action, "down") == 0)
		return migrate_down(*conn, &migrate->set, (int)migrate->to_version,
				    migrate->steps > 0 ? (int)migrate->steps : 1, stdout, err);
	if (strcmp(action, "status") == 0)
		return migrate_status(*conn, &migrate->set, stdout, err);
	return migrate_verify(*conn, &migrate->set, stdout, err);
}

static void migrate_cleanup(void *state)
{
	struct migrate_command *migrate = state;

	migrations_free(&migrate->set);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-migrate",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = migrate_option,
		.check = migrate_check,
		.prepare = migrate_prepare,
		.run = migrate_run,
		.cleanup = migrate_cleanup,
	};
	struct migrate_command migrate = { .to_version = -1, .steps = -1, .set = { NULL, 0 } };

	return command_main(&command, &migrate, argc, argv);
}
