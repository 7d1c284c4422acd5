/* Numbered SQL migrations: load, apply, roll back, report, verify. */
#ifndef CERTCTL_MIGRATE_H
#define CERTCTL_MIGRATE_H

#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

struct migration {
	int version;
	char *name;
	char *up_path;
	char *down_path;
	char *up_sql;        /* the up file as read once: checksummed and run */
	size_t up_length;
	char checksum[80];   /* "sha256:<hex>" of up_sql */
};

struct migration_set {
	struct migration *items;   /* sorted by version */
	size_t count;
};

/* --dir, else $CERTCTL_MIGRATIONS_DIR, else the source tree's, else the installed one. */
const char *migrations_default_dir(void);

/* Reads NNNNNN_name.up.sql / .down.sql pairs from dir. Caller frees with migrations_free(). */
int migrations_load(const char *dir, struct migration_set *set, struct error *err);
void migrations_free(struct migration_set *set);

/* Each applies or rolls back one migration per transaction under one advisory lock,
 * printing one status line per migration it changed. to_version < 0 means "all". */
int migrate_up(PGconn *conn, const struct migration_set *set, int to_version,
	       FILE *output, struct error *err);
/* Rolls back applied migrations above to_version (if >= 0), else the last steps ones. */
int migrate_down(PGconn *conn, const struct migration_set *set, int to_version, int steps,
		 FILE *output, struct error *err);
int migrate_status(PGconn *conn, const struct migration_set *set, FILE *output,
		   struct error *err);
/* EXIT_DATA when an applied migration's file is missing or no longer matches. */
int migrate_verify(PGconn *conn, const struct migration_set *set, FILE *output,
		   struct error *err);

#endif
