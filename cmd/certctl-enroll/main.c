/* certctl-enroll: an agent's login role, password file and public key. */
#include <stdio.h>

#include "command.h"
#include "enroll.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-enroll [-d DSN] [-v | -q] AGENT_ID [--db-role ROLE] [--password-file FILE]\n"
	"                      [--public-key KEY]\n"
	"       certctl-enroll --help | --version\n";

enum { OPTION_DB_ROLE = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_PASSWORD_FILE, OPTION_PUBLIC_KEY };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "db-role", required_argument, NULL, OPTION_DB_ROLE },
	{ "password-file", required_argument, NULL, OPTION_PASSWORD_FILE },
	{ "public-key", required_argument, NULL, OPTION_PUBLIC_KEY },
	{ NULL, 0, NULL, 0 },
};

static int enroll_option(void *state, int option, char *argument)
{
	struct enroll_request *request = state;

	if (argument[0] == '\0')
		return usage_error("an option needs a non-empty value");
	if (option == OPTION_DB_ROLE)
		request->db_role = argument;
	else if (option == OPTION_PASSWORD_FILE)
		request->password_file = argument;
	else if (option == OPTION_PUBLIC_KEY)
		request->public_key = argument;
	else
		return usage_error("unexpected option");
	return 0;
}

static int enroll_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct enroll_request *request = state;

	(void)dsn, (void)err;
	if (operand_count != 1 || operands[0][0] == '\0')
		return usage_error("one AGENT_ID is required");
	request->agent_id = operands[0];
	if (request->db_role == NULL && request->password_file == NULL && request->public_key == NULL)
		return usage_error("nothing to do: give --password-file, --db-role or --public-key");
	return 0;
}

static int enroll_run(void *state, PGconn **conn, struct error *err)
{
	return enroll_agent(*conn, state, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-enroll",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = enroll_option,
		.check = enroll_check,
		.run = enroll_run,
	};
	struct enroll_request request = { NULL, NULL, NULL, NULL };

	return command_main(&command, &request, argc, argv);
}
