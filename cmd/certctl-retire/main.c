/* certctl-retire: retire an agent (soft, audited, opt-in cascade) or list retired agents. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "retire.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-retire [-d DSN] [-v | -q] AGENT_ID [--force --reason TEXT] [--actor NAME]\n"
	"       certctl-retire [-d DSN] [-v | -q] --list [--page N] [--per-page N]\n"
	"       certctl-retire --help | --version\n";

enum {
	OPTION_FORCE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_REASON,
	OPTION_ACTOR,
	OPTION_LIST,
	OPTION_PAGE,
	OPTION_PER_PAGE,
};

/*
 * A closed descriptor 0-2 would be reused by the database socket, so output
 * or diagnostics would be written into the connection: refuse a closed
 * stdout, and park /dev/null on a closed stdin or stderr.
 */
/* Any integer is accepted: out-of-range pages are clamped, as the contract says. */
static bool parse_page_number(const char *text, long fallback, long *value)
{
	char *end;

	errno = 0;
	*value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return false;
	if (*value < 1)
		*value = fallback;
	return true;
}

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "force", no_argument, NULL, OPTION_FORCE },
		{ "reason", required_argument, NULL, OPTION_REASON },
		{ "actor", required_argument, NULL, OPTION_ACTOR },
		{ "list", no_argument, NULL, OPTION_LIST },
		{ "page", required_argument, NULL, OPTION_PAGE },
		{ "per-page", required_argument, NULL, OPTION_PER_PAGE },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct retire_request request = { NULL, NULL, NULL, false };
	struct error err = { 0, "" };
	long page = 1, per_page = RETIRED_LIST_DEFAULT_PER_PAGE;
	bool list = false, paging = false;
	PGconn *conn = NULL;
	int option, code;

	log_init("certctl-retire");
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
		case OPTION_FORCE:
			request.force = true;
			break;
		case OPTION_REASON:
			request.reason = optarg;
			break;
		case OPTION_ACTOR:
			if (optarg[0] == '\0')
				return usage_error("--actor takes a non-empty name");
			request.actor = optarg;
			break;
		case OPTION_LIST:
			list = true;
			break;
		case OPTION_PAGE:
			paging = true;
			if (!parse_page_number(optarg, 1, &page))
				return usage_error("--page takes a number, not '%s'", optarg);
			break;
		case OPTION_PER_PAGE:
			paging = true;
			if (!parse_page_number(optarg, RETIRED_LIST_DEFAULT_PER_PAGE, &per_page))
				return usage_error("--per-page takes a number, not '%s'", optarg);
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (list) {
		if (optind != argc)
			return usage_error("--list takes no agent id");
		if (request.force || request.reason || request.actor)
			return usage_error("--force, --reason and --actor go with an agent id, not --list");
	} else {
		if (optind != argc - 1)
			return usage_error("expected one agent id, or --list");
		if (paging)
			return usage_error("--page and --per-page go with --list");
		request.agent_id = argv[optind];
		if (request.agent_id[0] == '\0')
			return usage_error("the agent id is empty");
		/* Step 5 comes first in practice: a usage error never reaches the database. */
		if (request.force && (request.reason == NULL || request.reason[0] == '\0'))
			return usage_error("--force requires --reason TEXT");
		if ((code = retire_refuse_sentinel(request.agent_id, &err)) != 0)
			goto out;
	}

	if ((code = standard_streams_check(&err)) != 0)
		goto out;
	signals_install();
	if ((conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	if (list)
		code = retire_list(conn, page, per_page, stdout, &err);
	else
		code = retire_agent(conn, &request, stdout, &err);
	/* The item in hand was finished; the signal still asks the caller to stop. */
	if (code == 0 && signals_stop_requested())
		code = error_set(&err, EXIT_TEMPORARY, "stopped by signal %d after finishing",
				 signals_received());
out:
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
