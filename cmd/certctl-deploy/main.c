/* certctl-deploy: install the certificates of Deployment jobs and finish the jobs. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "deploy.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-deploy [-d DSN] [-v | -q] [--verify | --no-verify | --verify=strict] [--dry-run]\n"
	"           < job lines\n"
	"       certctl-deploy [-d DSN] [--verify | --no-verify | --verify=strict] --job ID [--worker NAME]\n"
	"       certctl-deploy --help | --version\n";

enum { OPTION_VERIFY = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_NO_VERIFY, OPTION_DRY_RUN, OPTION_JOB,
       OPTION_WORKER };

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "verify", optional_argument, NULL, OPTION_VERIFY },
		{ "no-verify", no_argument, NULL, OPTION_NO_VERIFY },
		{ "dry-run", no_argument, NULL, OPTION_DRY_RUN },
		{ "job", required_argument, NULL, OPTION_JOB },
		{ "worker", required_argument, NULL, OPTION_WORKER },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct deploy_options options = { VERIFY_WARN, false, NULL };
	struct error err = { 0, "" };
	char default_worker[HOST_NAME_MAX + 32], host[HOST_NAME_MAX + 1];
	const char *job_id = NULL;
	bool verify_set = false;
	PGconn *conn = NULL;
	int option, code;

	log_init("certctl-deploy");
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
		switch (option) {
		case OPTION_VERIFY:
			if (verify_set)
				return usage_error("give one of --verify, --no-verify, --verify=strict");
			if (optarg != NULL && strcmp(optarg, "strict") != 0)
				return usage_error("--verify takes no value or 'strict', not '%s'", optarg);
			options.verify = optarg != NULL ? VERIFY_STRICT : VERIFY_WARN;
			verify_set = true;
			break;
		case OPTION_NO_VERIFY:
			if (verify_set)
				return usage_error("give one of --verify, --no-verify, --verify=strict");
			options.verify = VERIFY_OFF;
			verify_set = true;
			break;
		case OPTION_DRY_RUN:
			options.dry_run = true;
			break;
		case OPTION_JOB:
			if (optarg[0] == '\0')
				return usage_error("--job takes a job id");
			job_id = optarg;
			break;
		case OPTION_WORKER:
			if (optarg[0] == '\0')
				return usage_error("--worker takes a name, not an empty string");
			options.worker = optarg;
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (job_id != NULL && options.dry_run)
		return usage_error("--dry-run reads job lines; it does not claim with --job");
	if (options.worker != NULL && job_id == NULL)
		return usage_error("--worker goes with --job");
	if (options.worker == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(default_worker, sizeof(default_worker), "%s:%ld", host, (long)getpid());
		options.worker = default_worker;
	}

	signals_install();
	if ((code = standard_streams_check(&err)) != 0)
		goto out;
	if ((conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	if (job_id != NULL)
		code = deploy_job_by_id(conn, &options, job_id, stdout, &err);
	else
		code = deploy_job_lines(conn, &options, stdin, stdout, &err);
out:
	if (err.message[0] != '\0')
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
