/* certctl-keygen: create (or show) this agent's X25519 key pair. No database. */
#include <stdio.h>

#include "agentkey.h"
#include "command.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-keygen [-v | -q] [--key-file FILE]\n"
	"       certctl-keygen --help | --version\n";

enum { OPTION_KEY_FILE = OPTION_FIRST_COMMAND_SPECIFIC };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "key-file", required_argument, NULL, OPTION_KEY_FILE },
	{ NULL, 0, NULL, 0 },
};

struct keygen_command {
	const char *key_file;
};

static int keygen_option(void *state, int option, char *argument)
{
	struct keygen_command *keygen = state;

	if (option != OPTION_KEY_FILE)
		return usage_error("unexpected option");
	keygen->key_file = argument;
	return 0;
}

static int keygen_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	const struct keygen_command *keygen = state;

	(void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	/* Accepting a DSN that is never used would hide a mistake in the caller. */
	if (dsn != NULL)
		return usage_error("--dsn: certctl-keygen never connects to a database");
	if (keygen->key_file != NULL && keygen->key_file[0] == '\0')
		return usage_error("--key-file needs a file name");
	return 0;
}

static int keygen_run(void *state, PGconn **conn, struct error *err)
{
	const struct keygen_command *keygen = state;

	(void)conn;
	return agent_keygen(keygen->key_file, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-keygen",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_NO_DATABASE,
		.option = keygen_option,
		.check = keygen_check,
		.run = keygen_run,
	};
	struct keygen_command keygen = { NULL };

	return command_main(&command, &keygen, argc, argv);
}
