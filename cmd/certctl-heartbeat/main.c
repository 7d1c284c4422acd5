/* certctl-heartbeat: record that an agent is alive, or list the silent ones. */
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "agents.h"
#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-heartbeat [-d DSN] [-v | -q] --agent ID [--register] [--hostname H]\n"
	"                         [--agent-version V] [--every SECONDS]\n"
	"       certctl-heartbeat [-d DSN] [-v | -q] --stale [--older-than SECONDS]\n"
	"       certctl-heartbeat --help | --version\n";

enum {
	OPTION_AGENT = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_REGISTER,
	OPTION_HOSTNAME,
	OPTION_AGENT_VERSION,
	OPTION_EVERY,
	OPTION_STALE,
	OPTION_OLDER_THAN,
};

/*
 * A closed descriptor 0-2 would be reused by the database socket, so output
 * or diagnostics would be written into the connection: refuse a closed
 * stdout, and park /dev/null on a closed stdin or stderr.
 */
int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "agent", required_argument, NULL, OPTION_AGENT },
		{ "register", no_argument, NULL, OPTION_REGISTER },
		{ "hostname", required_argument, NULL, OPTION_HOSTNAME },
		{ "agent-version", required_argument, NULL, OPTION_AGENT_VERSION },
		{ "every", required_argument, NULL, OPTION_EVERY },
		{ "stale", no_argument, NULL, OPTION_STALE },
		{ "older-than", required_argument, NULL, OPTION_OLDER_THAN },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct heartbeat_request request = { NULL, NULL, NULL, false };
	struct error err = { 0, "" };
	long every = 0, older_than = -1;
	bool stale = false;
	PGconn *conn = NULL;
	int option, code;

	log_init("certctl-heartbeat");
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
		case OPTION_AGENT:
			request.agent_id = optarg;
			break;
		case OPTION_REGISTER:
			request.register_unknown = true;
			break;
		case OPTION_HOSTNAME:
			request.hostname = optarg;
			break;
		case OPTION_AGENT_VERSION:
			request.agent_version = optarg;
			break;
		case OPTION_EVERY:
			if (!parse_seconds(optarg, &every) || every < 1)
				return usage_error("--every takes a positive number of seconds, not '%s'", optarg);
			break;
		case OPTION_STALE:
			stale = true;
			break;
		case OPTION_OLDER_THAN:
			if (!parse_seconds(optarg, &older_than))
				return usage_error("--older-than takes a number of seconds, not '%s'", optarg);
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (stale == (request.agent_id != NULL))
		return usage_error("give exactly one of --agent ID and --stale");
	if (request.agent_id != NULL && request.agent_id[0] == '\0')
		return usage_error("--agent takes a non-empty agent id");
	if (stale && (request.register_unknown || request.hostname || request.agent_version || every))
		return usage_error("--register, --hostname, --agent-version and --every go with --agent");
	if (!stale && older_than >= 0)
		return usage_error("--older-than goes with --stale");

	if ((code = standard_streams_check(&err)) != 0)
		goto out;
	signals_install();
	if ((conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	if (stale)
		code = agents_list_stale(conn, older_than >= 0 ? older_than : STALE_AFTER_SECONDS,
					 stdout, &err);
	else if (every > 0)
		/* A loop holds no item when stopped: a signal ends it with 0, not 75. */
		code = agent_heartbeat_every(common.dsn, &conn, &request, every, stdout, &err);
	else
		code = agent_heartbeat(conn, &request, stdout, &err);
	if (code == 0 && every == 0 && signals_stop_requested())
		code = error_set(&err, EXIT_TEMPORARY, "stopped by signal %d after finishing",
				 signals_received());
out:
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
