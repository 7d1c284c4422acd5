/* certctl-migrate: apply, roll back, report and verify the SQL schema. */
#include <stdio.h>
#include <string.h>

#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "migrate.h"
#include "options.h"
#include "signals.h"

static const char usage_text[] =
	"usage: certctl-migrate [-d DSN] [--dir DIR] [-v | -q] up [--to N]\n"
	"       certctl-migrate [-d DSN] [--dir DIR] down [--to N | --steps K]\n"
	"       certctl-migrate [-d DSN] [--dir DIR] status | verify\n"
	"       certctl-migrate --help | --version\n";

enum { OPTION_DIR = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_TO, OPTION_STEPS };

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "dir", required_argument, NULL, OPTION_DIR },
		{ "to", required_argument, NULL, OPTION_TO },
		{ "steps", required_argument, NULL, OPTION_STEPS },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct migration_set set = { NULL, 0 };
	struct error err = { 0, "" };
	const char *dir = NULL, *action;
	long to_version = -1, steps = -1;
	PGconn *conn = NULL;
	int option, code;

	log_init("certctl-migrate");
	if ((code = process_protect_secrets(&err)) != 0) {
		log_error("%s", err.message);
		return code;
	}
	common_options_init(&common);
	/* GNU getopt permutes, so the action word may stand before its options. */
	while ((option = getopt_long(argc, argv, COMMON_SHORT_OPTIONS, long_options, NULL)) != -1) {
		code = common_option(option, optarg, &common, usage_text, argv);
		if (code == COMMON_OPTION_CONTINUE)
			continue;
		if (code != COMMON_OPTION_NOT_MINE)
			return code;
		switch (option) {
		case OPTION_DIR:
			dir = optarg;
			break;
		case OPTION_TO:
			if (!parse_seconds(optarg, &to_version))
				return usage_error("--to takes a migration number, not '%s'", optarg);
			break;
		case OPTION_STEPS:
			if (!parse_seconds(optarg, &steps) || steps < 1)
				return usage_error("--steps takes a positive number, not '%s'", optarg);
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc - 1)
		return usage_error("expected one action: up, down, status or verify");
	action = argv[optind];
	if (strcmp(action, "up") != 0 && strcmp(action, "down") != 0 &&
	    strcmp(action, "status") != 0 && strcmp(action, "verify") != 0)
		return usage_error("unknown action '%s'", action);
	if (steps >= 0 && (strcmp(action, "down") != 0 || to_version >= 0))
		return usage_error("--steps goes with down, and not with --to");
	if (to_version >= 0 && strcmp(action, "up") != 0 && strcmp(action, "down") != 0)
		return usage_error("--to goes with up or down");

	signals_install();
	if ((code = standard_streams_check(&err)) != 0)
		goto out;
	if (dir == NULL)
		dir = migrations_default_dir();
	if ((code = migrations_load(dir, &set, &err)) != 0)
		goto out;
	if ((conn = db_connect(common.dsn, &err)) == NULL) {
		code = err.code;
		goto out;
	}
	if (strcmp(action, "up") == 0)
		code = migrate_up(conn, &set, (int)to_version, stdout, &err);
	else if (strcmp(action, "down") == 0)
		code = migrate_down(conn, &set, (int)to_version, steps > 0 ? (int)steps : 1, stdout, &err);
	else if (strcmp(action, "status") == 0)
		code = migrate_status(conn, &set, stdout, &err);
	else
		code = migrate_verify(conn, &set, stdout, &err);
out:
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	migrations_free(&set);
	return code;
}
