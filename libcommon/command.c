#include <stdio.h>

#include "command.h"
#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

/* Returned by parse_options() when the command goes on to its work. */
#define OPTIONS_ACCEPTED (-1)

/* OPTIONS_ACCEPTED, or the exit code main() returns now (after --help, a usage error). */
static int parse_options(const struct command *command, void *state, struct common_options *common,
			 int argc, char *argv[], struct error *err)
{
	int option, code;

	common_options_init(common);
	/* GNU getopt permutes, so operands may stand before options. */
	while ((option = getopt_long(argc, argv, COMMON_SHORT_OPTIONS, command->long_options, NULL)) != -1) {
		code = common_option(option, optarg, common, command->usage, argv);
		if (code == COMMON_OPTION_CONTINUE)
			continue;
		if (code != COMMON_OPTION_NOT_MINE)
			return code;
		if ((code = command->option(state, option, optarg)) != 0)
			return code;
	}
	code = command->check(state, common->dsn, argc - optind, argv + optind, err);
	return code == 0 ? OPTIONS_ACCEPTED : code;
}

int command_main(const struct command *command, void *state, int argc, char *argv[])
{
	struct common_options common;
	struct error err = { 0, "" };
	PGconn *conn = NULL;
	int code;

	log_init(command->name);
	if ((code = process_protect_secrets(&err)) != 0)
		goto report;
	if ((code = parse_options(command, state, &common, argc, argv, &err)) != OPTIONS_ACCEPTED)
		goto report;
	if ((code = standard_streams_check(&err)) != 0)
		goto out;
	if (command->database != COMMAND_NO_DATABASE)
		signals_install();
	if (command->prepare != NULL && (code = command->prepare(state, &err)) != 0)
		goto out;
	if (command->database == COMMAND_CONNECTS && (conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	code = command->run(state, &conn, &err);
out:
	db_disconnect(conn);
	if (command->cleanup != NULL)
		command->cleanup(state);
report:
	if (code != 0 && err.message[0] != '\0')
		log_error("%s", err.message);
	return code;
}
