/* certctl-enroll: an agent's login role, password file and public key. */
#include <stdio.h>

#include "db.h"
#include "enroll.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-enroll [-d DSN] [-v | -q] AGENT_ID [--db-role ROLE] [--password-file FILE]\n"
	"                      [--public-key KEY]\n"
	"       certctl-enroll --help | --version\n";

enum { OPTION_DB_ROLE = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_PASSWORD_FILE, OPTION_PUBLIC_KEY };

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "db-role", required_argument, NULL, OPTION_DB_ROLE },
		{ "password-file", required_argument, NULL, OPTION_PASSWORD_FILE },
		{ "public-key", required_argument, NULL, OPTION_PUBLIC_KEY },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct enroll_request request = { NULL, NULL, NULL, NULL };
	struct error err = { 0, "" };
	PGconn *conn;
	int option, code;

	log_init("certctl-enroll");
	if ((code = process_protect_secrets(&err)) != 0) {
		log_error("%s", err.message);
		return code;
	}
	common_options_init(&common);
	while ((option = getopt_long(argc, argv, COMMON_SHORT_OPTIONS, long_options, NULL)) != -1) {
		code = common_option(option, optarg, &common, usage_text, argv);
		if (code == COMMON_OPTION_CONTINUE)
			continue;
		if (code != COMMON_OPTION_NOT_MINE)
			return code;
		if (optarg[0] == '\0')
			return usage_error("an option needs a non-empty value");
		if (option == OPTION_DB_ROLE)
			request.db_role = optarg;
		else if (option == OPTION_PASSWORD_FILE)
			request.password_file = optarg;
		else if (option == OPTION_PUBLIC_KEY)
			request.public_key = optarg;
		else
			return usage_error("unexpected option");
	}
	if (optind + 1 != argc || argv[optind][0] == '\0')
		return usage_error("one AGENT_ID is required");
	request.agent_id = argv[optind];
	if (request.db_role == NULL && request.password_file == NULL && request.public_key == NULL)
		return usage_error("nothing to do: give --password-file, --db-role or --public-key");

	signals_install();
	if (standard_streams_check(&err) != 0 || (conn = db_connect(common.dsn, &err)) == NULL) {
		log_error("%s", err.message);
		return err.code;
	}
	code = enroll_agent(conn, &request, stdout, &err);
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
