/* PostgreSQL access: connection, parameterized statements, transactions. */
#ifndef CERTCTL_DB_H
#define CERTCTL_DB_H

#include <libpq-fe.h>

#include "error.h"

/*
 * Connects with dsn, else $CERTCTL_DSN, else libpq's PG* environment and
 * defaults. Returns NULL with err coded EXIT_UNAVAILABLE on failure.
 * The session runs in UTC. Caller frees with db_disconnect().
 */
PGconn *db_connect(const char *dsn, struct error *err);
void db_disconnect(PGconn *conn);

/*
 * Runs one parameterized statement. Returns the result (caller PQclear()s)
 * when it succeeded, or NULL with err set and coded from the SQLSTATE.
 */
PGresult *db_query(PGconn *conn, const char *sql, int param_count,
		   const char *const *params, struct error *err);

/*
 * db_query with binary parameters where formats[i] is 1 (lengths[i] bytes,
 * e.g. a bytea), text where it is 0. Results are text.
 */
PGresult *db_query_binary(PGconn *conn, const char *sql, int param_count,
			  const char *const *params, const int *lengths, const int *formats,
			  struct error *err);

/* db_query for statements whose rows are not needed; returns 0 or err->code. */
int db_command(PGconn *conn, const char *sql, int param_count,
	       const char *const *params, struct error *err);

/* Rows affected by a command result, as PQcmdTuples reports them. */
long db_affected_rows(PGresult *result);

int db_begin(PGconn *conn, struct error *err);
int db_commit(PGconn *conn, struct error *err);
/* Best effort: a failed rollback leaves nothing for the caller to do. */
void db_rollback(PGconn *conn);

/* The exit code a failed result stands for (75 for serialization, 69 for connection, ...). */
int db_exit_code_for(PGconn *conn, const PGresult *result);

#endif
