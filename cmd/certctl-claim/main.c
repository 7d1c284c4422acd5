/* certctl-claim: take jobs off the queue for this worker, or reap expired leases. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-claim [-d DSN] [-v | -q] [--type TYPE] [--limit N] [--lease SECONDS]\n"
	"                     [--worker NAME] [--wait SECONDS] [--follow] [--agent ID | --any]\n"
	"       certctl-claim [-d DSN] [-v | -q] --reap\n"
	"       certctl-claim --help | --version\n";

enum {
	OPTION_TYPE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_LIMIT,
	OPTION_AGENT,
	OPTION_LEASE,
	OPTION_WORKER,
	OPTION_WAIT,
	OPTION_ANY,
	OPTION_REAP,
	OPTION_FOLLOW,
};

static const char *const job_types[] = { "Issuance", "Renewal", "Deployment", "Validation" };

static bool is_job_type(const char *text)
{
	for (size_t i = 0; i < sizeof(job_types) / sizeof(job_types[0]); i++)
		if (strcmp(text, job_types[i]) == 0)
			return true;
	return false;
}

/* A positive whole number no larger than max, for --limit and --lease. */
static bool parse_positive(const char *text, long max, long *value)
{
	return parse_seconds(text, value) && *value >= 1 && *value <= max;
}

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "type", required_argument, NULL, OPTION_TYPE },
		{ "limit", required_argument, NULL, OPTION_LIMIT },
		{ "agent", required_argument, NULL, OPTION_AGENT },
		{ "lease", required_argument, NULL, OPTION_LEASE },
		{ "worker", required_argument, NULL, OPTION_WORKER },
		{ "wait", required_argument, NULL, OPTION_WAIT },
		{ "any", no_argument, NULL, OPTION_ANY },
		{ "reap", no_argument, NULL, OPTION_REAP },
		{ "follow", no_argument, NULL, OPTION_FOLLOW },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct claim_request request = {
		.limit = DEFAULT_CLAIM_LIMIT,
		.lease_seconds = DEFAULT_LEASE_SECONDS,
	};
	struct error err = { 0, "" };
	char default_worker[HOST_NAME_MAX + 32], host[HOST_NAME_MAX + 1];
	bool reap = false, follow = false, claim_option = false;
	long wait_seconds = -1, count = 0;      /* -1: no --wait */
	PGconn *conn = NULL;
	int option, code;

	log_init("certctl-claim");
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
		claim_option = claim_option || option != OPTION_REAP;
		switch (option) {
		case OPTION_TYPE:
			if (!is_job_type(optarg))
				return usage_error("--type takes Issuance, Renewal, Deployment or Validation, not '%s'", optarg);
			request.job_type = optarg;
			break;
		case OPTION_LIMIT:
			if (!parse_positive(optarg, 100000, &request.limit))
				return usage_error("--limit takes a number from 1 to 100000, not '%s'", optarg);
			break;
		case OPTION_AGENT:
			if (optarg[0] == '\0')
				return usage_error("--agent takes an agent id, not an empty string");
			request.agent_id = optarg;
			break;
		case OPTION_LEASE:
			if (!parse_positive(optarg, INT_MAX, &request.lease_seconds))
				return usage_error("--lease takes a positive number of seconds, not '%s'", optarg);
			break;
		case OPTION_WORKER:
			if (optarg[0] == '\0')
				return usage_error("--worker takes a name, not an empty string");
			request.worker = optarg;
			break;
		case OPTION_WAIT:
			if (!parse_seconds(optarg, &wait_seconds) || wait_seconds > 86400)
				return usage_error("--wait takes seconds from 0 to 86400, not '%s'", optarg);
			break;
		case OPTION_FOLLOW:
			follow = true;
			break;
		case OPTION_ANY:
			request.any = true;
			break;
		case OPTION_REAP:
			reap = true;
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (reap && claim_option)
		return usage_error("--reap takes no claim options");
	if (request.any && request.agent_id != NULL)
		return usage_error("--any is for a central claim; it does not go with --agent");
	if (request.worker == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(default_worker, sizeof(default_worker), "%s:%ld", host, (long)getpid());
		request.worker = default_worker;
	}

	if (standard_streams_check(&err) != 0) {
		log_error("%s", err.message);
		return err.code;
	}
	signals_install();
	if ((conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	if (reap)
		code = reap_jobs(conn, stdout, &count, &err);
	else if (follow)
		/* Without --wait a follower waits for work for ever. */
		code = claim_jobs_following(conn, &request, wait_seconds, stdout, &count, &err);
	else
		code = claim_jobs_waiting(conn, &request, wait_seconds, stdout, &count, &err);
	log_info("%ld job%s %s", count, count == 1 ? "" : "s", reap ? "reaped" : "claimed");
	/* The claim in hand is finished and printed; a stop request still says "stopped". */
	if (code == 0 && signals_stop_requested()) {
		code = error_set(&err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	}
out:
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
