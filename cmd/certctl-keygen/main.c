/* certctl-keygen: create (or show) this agent's X25519 key pair. No database. */
#include <stdio.h>

#include "agentkey.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-keygen [-v | -q] [--key-file FILE]\n"
	"       certctl-keygen --help | --version\n";

enum { OPTION_KEY_FILE = OPTION_FIRST_COMMAND_SPECIFIC };

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "key-file", required_argument, NULL, OPTION_KEY_FILE },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct error err = { 0, "" };
	const char *key_file = NULL;
	int option, code;

	log_init("certctl-keygen");
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
		if (option != OPTION_KEY_FILE)
			return usage_error("unexpected option");
		key_file = optarg;
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	/* Accepting a DSN that is never used would hide a mistake in the caller. */
	if (common.dsn != NULL)
		return usage_error("--dsn: certctl-keygen never connects to a database");
	if (key_file != NULL && key_file[0] == '\0')
		return usage_error("--key-file needs a file name");

	if (standard_streams_check(&err) != 0 ||
	    (code = agent_keygen(key_file, stdout, &err)) != 0) {
		log_error("%s", err.message);
		return err.code;
	}
	return 0;
}
