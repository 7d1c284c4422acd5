/* certctl-enqueue: one Deployment job per active target of a certificate. */
#include <stdio.h>

#include "db.h"
#include "enqueue.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-enqueue [-d DSN] [-v | -q] --certificate ID\n"
	"       certctl-enqueue --help | --version\n";

enum { OPTION_CERTIFICATE = OPTION_FIRST_COMMAND_SPECIFIC };

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct error err = { 0, "" };
	const char *certificate_id = NULL;
	PGconn *conn;
	int option, code;

	log_init("certctl-enqueue");
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
		if (option != OPTION_CERTIFICATE)
			return usage_error("unexpected option");
		certificate_id = optarg;
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (certificate_id == NULL || certificate_id[0] == '\0')
		return usage_error("--certificate ID is required");

	signals_install();
	if (standard_streams_check(&err) != 0 || (conn = db_connect(common.dsn, &err)) == NULL) {
		log_error("%s", err.message);
		return err.code;
	}
	code = enqueue_certificate(conn, certificate_id, stdout, &err);
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
