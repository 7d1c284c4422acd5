/*
 * The one shape of a command's main(): secrets protected, options parsed and
 * checked (usage errors, 64, before anything is opened), standard streams
 * checked, signals installed, the database connected, the work run, its error
 * printed as one line, everything released. A main fills a struct command and
 * calls command_main().
 */
#ifndef CERTCTL_COMMAND_H
#define CERTCTL_COMMAND_H

#include <getopt.h>

#include <libpq-fe.h>

#include "error.h"
#include "options.h"

enum command_database {
	COMMAND_CONNECTS,        /* connected after prepare(), disconnected after run() */
	COMMAND_CONNECTS_ITSELF, /* run() connects when it needs to (conn is NULL) */
	COMMAND_NO_DATABASE,     /* no connection, no signal handlers: nothing to finish or roll back */
};

struct command {
	const char *name;                       /* "certctl-claim": the log prefix and --version */
	const char *usage;                      /* printed by --help */
	const struct option *long_options;      /* COMMON_LONG_OPTIONS, the command's, { NULL } */
	enum command_database database;
	/* One command-specific option: 0 to go on, or an exit code (usage_error()). */
	int (*option)(void *state, int option, char *argument);
	/*
	 * After the options: the operands left and the checks across options,
	 * with --dsn (or NULL). 0, usage_error()'s 64, or a code with err set.
	 */
	int (*check)(void *state, const char *dsn, int operand_count, char *operands[],
		     struct error *err);
	/* Optional: what must be read or refused before the database is touched. */
	int (*prepare)(void *state, struct error *err);
	/*
	 * The work. *conn is the connection (NULL unless COMMAND_CONNECTS); run
	 * may replace it (a reconnect) and command_main() disconnects what is
	 * left. A run that has already reported its failures clears err.
	 */
	int (*run)(void *state, PGconn **conn, struct error *err);
	/* Optional: releases what prepare() or run() left in state, on every path after check(). */
	void (*cleanup)(void *state);
};

/* The whole of main() but the options: returns the exit code. */
int command_main(const struct command *command, void *state, int argc, char *argv[]);

#endif
