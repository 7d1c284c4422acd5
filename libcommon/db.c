#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "db.h"
#include "exitcode.h"
#include "fileio.h"
#include "log.h"

#define DEFAULT_CONNECT_TIMEOUT_SECONDS "10"
#define PASSWORD_FILE_MAX_BYTES 4096
#define REQUIRED_SSLMODE "verify-full"
#define HOST_NAME_MAX_SHOWN 256

/* What the DSN (or PG*) names about where we connect and how. */
struct connection_target {
	char remote_host[HOST_NAME_MAX_SHOWN]; /* first non-loopback TCP host; "" when none */
	char sslmode[32];                      /* as named by the DSN or PGSSLMODE; "" when neither */
};

/* A Unix socket (the default when empty, a path, or Linux's abstract '@') or a loopback name. */
static bool host_is_local(const char *host, size_t length)
{
	char text[INET6_ADDRSTRLEN + 1];
	struct in_addr ipv4;
	struct in6_addr ipv6;

	if (length == 0 || host[0] == '/' || host[0] == '@')
		return true;
	if (length >= sizeof(text))
		return false;
	memcpy(text, host, length);
	text[length] = '\0';
	if (strcasecmp(text, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, text, &ipv4) == 1)
		return (ntohl(ipv4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, text, &ipv6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&ipv6) ||
		       (IN6_IS_ADDR_V4MAPPED(&ipv6) && ipv6.s6_addr[12] == 127);
	return false;
}

/* Fills target from a comma-separated host list: any TCP host off loopback counts. */
static void find_remote_host(const char *hosts, struct connection_target *target)
{
	const char *cursor = hosts;

	while (cursor != NULL) {
		const char *comma = strchr(cursor, ',');
		size_t length = comma ? (size_t)(comma - cursor) : strlen(cursor);

		if (!host_is_local(cursor, length)) {
			snprintf(target->remote_host, sizeof(target->remote_host), "%.*s", (int)length, cursor);
			return;
		}
		cursor = comma ? comma + 1 : NULL;
	}
}

/*
 * Reads host and sslmode from dsn (key=value or URI) and falls back to
 * PGHOST and PGSSLMODE, as libpq itself will. A dsn that does not parse is
 * a bare database name to libpq (or an error it reports when connecting).
 */
static void connection_target_read(const char *dsn, struct connection_target *target)
{
	PQconninfoOption *options = NULL;
	const char *host = NULL, *sslmode = NULL;

	memset(target, 0, sizeof(*target));
	if (dsn != NULL && dsn[0] != '\0')
		options = PQconninfoParse(dsn, NULL);
	for (PQconninfoOption *option = options; option != NULL && option->keyword != NULL; option++) {
		if (option->val == NULL)
			continue;
		if (strcmp(option->keyword, "host") == 0)
			host = option->val;
		else if (strcmp(option->keyword, "sslmode") == 0)
			sslmode = option->val;
	}
	if (host == NULL)
		host = getenv("PGHOST");
	if (sslmode == NULL || sslmode[0] == '\0')
		sslmode = getenv("PGSSLMODE");
	if (host != NULL)
		find_remote_host(host, target);
	if (sslmode != NULL)
		snprintf(target->sslmode, sizeof(target->sslmode), "%s", sslmode);
	PQconninfoFree(options);
}

/* Why an explicitly weaker sslmode leaves the connection open to a man in the middle. */
static const char *sslmode_weakness(const char *sslmode)
{
	if (strcmp(sslmode, "disable") == 0 || strcmp(sslmode, "allow") == 0 ||
	    strcmp(sslmode, "prefer") == 0)
		return "the connection may be unencrypted and is not verified";
	if (strcmp(sslmode, "require") == 0)
		return "the connection is not verified";
	if (strcmp(sslmode, "verify-ca") == 0)
		return "the server's name is not verified";
	return NULL;
}

/*
 * libpq prints server notices raw on stderr, several lines each. A FATAL one
 * (the server going away while we wait) is said again by the command's own
 * error line; the others become one warning line each.
 */
static void report_notice(void *context, const char *message)
{
	struct error line = { 0, "" };

	(void)context;
	if (strncmp(message, "FATAL:", 6) == 0 || strncmp(message, "PANIC:", 6) == 0)
		return;
	error_set(&line, 0, "database: %s", message);
	log_warn("%s", line.message);
}

PGconn *db_connect(const char *dsn, struct error *err)
{
	/* Entries are read in order: a connect_timeout in the DSN overrides ours. */
	const char *keywords[6] = { "fallback_application_name", NULL, NULL, NULL, NULL, NULL };
	const char *values[6] = { log_program_name(), NULL, NULL, NULL, NULL, NULL };
	const char *password_file = getenv("CERTCTL_PASSWORD_FILE");
	struct connection_target target;
	bool tls_required = false;
	char *password = NULL;
	size_t password_length = 0;
	int count = 1;
	PGconn *conn;
	PGresult *result;

	/* Without a timeout an unanswering host holds a command (and its signals) for minutes. */
	if (getenv("PGCONNECT_TIMEOUT") == NULL) {
		keywords[count] = "connect_timeout";
		values[count++] = DEFAULT_CONNECT_TIMEOUT_SECONDS;
	}
	/*
	 * An agent's password lives in a 0600 file (certctl-enroll writes it), so
	 * it is in neither the DSN nor the environment that children inherit.
	 * Before the DSN: a password the DSN names explicitly wins.
	 */
	if (password_file != NULL && password_file[0] != '\0') {
		struct error read_err = { 0, "" };

		password = secret_file_read_line(password_file, PASSWORD_FILE_MAX_BYTES,
						 &password_length, &read_err);
		if (password == NULL) {
			error_set(err, EXIT_CONFIG, "CERTCTL_PASSWORD_FILE: %s", read_err.message);
			return NULL;
		}
		keywords[count] = "password";
		values[count++] = password;
	}
	if (dsn == NULL || dsn[0] == '\0')
		dsn = getenv("CERTCTL_DSN");
	/*
	 * Off loopback, the password and every row cross a network: libpq's
	 * default (prefer) would fall back to plain text for anyone in between.
	 * The host named is the name TLS verifies, whatever hostaddr says.
	 */
	connection_target_read(dsn, &target);
	if (target.remote_host[0] != '\0') {
		const char *weakness = target.sslmode[0] ? sslmode_weakness(target.sslmode) : NULL;

		if (target.sslmode[0] == '\0') {
			tls_required = true;
			keywords[count] = "sslmode";
			values[count++] = REQUIRED_SSLMODE;
		} else if (weakness != NULL) {
			log_warn("database: sslmode=%s to %s: %s", target.sslmode, target.remote_host, weakness);
		}
	}
	/* With no dbname entry libpq falls back to PG* variables and defaults. */
	if (dsn != NULL && dsn[0] != '\0') {
		keywords[count] = "dbname";
		values[count++] = dsn;
	}

	conn = PQconnectdbParams(keywords, values, 1);
	secret_free(password, password_length);
	if (conn == NULL) {
		error_set(err, EXIT_UNAVAILABLE, "database: out of memory connecting");
		return NULL;
	}
	PQsetNoticeProcessor(conn, report_notice, NULL);
	if (PQstatus(conn) != CONNECTION_OK) {
		if (tls_required)
			error_set(err, EXIT_UNAVAILABLE,
				  "database: %.600s (TLS " REQUIRED_SSLMODE " required for %s; set sslmode explicitly to change that)",
				  PQerrorMessage(conn), target.remote_host);
		else
			error_set(err, EXIT_UNAVAILABLE, "database: %s", PQerrorMessage(conn));
		PQfinish(conn);
		return NULL;
	}
	/*
	 * Timestamps are compared and printed in UTC; notices would pollute stderr.
	 * No JIT: row-level security inflates the planner's cost of an agent's
	 * claim past jit_above_cost, and compiling it took ~1 s for a query that
	 * runs in ~30 ms (docs/benchmarks.md); certctl's statements are all short.
	 */
	result = PQexec(conn, "SET TIME ZONE 'UTC'; SET client_min_messages = warning; SET jit = off");
	if (PQresultStatus(result) != PGRES_COMMAND_OK) {
		error_set(err, EXIT_UNAVAILABLE, "database: %s", PQerrorMessage(conn));
		PQclear(result);
		PQfinish(conn);
		return NULL;
	}
	PQclear(result);
	return conn;
}

void db_disconnect(PGconn *conn)
{
	if (conn != NULL)
		PQfinish(conn);
}

int db_exit_code_for(PGconn *conn, const PGresult *result)
{
	const char *state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(conn) != CONNECTION_OK)
		return EXIT_UNAVAILABLE;
	if (state == NULL)
		return EXIT_INTERNAL;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return EXIT_UNAVAILABLE;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)
		return EXIT_TEMPORARY;
	if (strcmp(state, "42501") == 0)
		return EXIT_FORBIDDEN;
	/*
	 * Raised by certctl's own functions for an object no longer in the state
	 * asked for (a job that stopped awaiting its CSR): it moved on meanwhile.
	 */
	if (strcmp(state, "55000") == 0)
		return EXIT_TEMPORARY;
	/* Raised by certctl's own functions for a named object that does not exist. */
	if (strcmp(state, "P0002") == 0)
		return EXIT_NOT_FOUND;
	if (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0)
		return EXIT_DATA;
	return EXIT_INTERNAL;
}

PGresult *db_query(PGconn *conn, const char *sql, int param_count,
		   const char *const *params, struct error *err)
{
	return db_query_binary(conn, sql, param_count, params, NULL, NULL, err);
}

PGresult *db_query_binary(PGconn *conn, const char *sql, int param_count,
			  const char *const *params, const int *lengths, const int *formats,
			  struct error *err)
{
	PGresult *result = PQexecParams(conn, sql, param_count, NULL, params, lengths, formats, 0);
	ExecStatusType status = PQresultStatus(result);
	const char *primary;

	if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
		return result;
	/* The primary message alone: "ERROR:" and the PL/pgSQL CONTEXT say nothing to an operator. */
	primary = result ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	error_set(err, db_exit_code_for(conn, result), "database: %s",
		  primary ? primary : result ? PQresultErrorMessage(result) : PQerrorMessage(conn));
	PQclear(result);
	return NULL;
}

int db_command(PGconn *conn, const char *sql, int param_count,
	       const char *const *params, struct error *err)
{
	PGresult *result = db_query(conn, sql, param_count, params, err);

	if (result == NULL)
		return err ? err->code : EXIT_INTERNAL;
	PQclear(result);
	return 0;
}

long db_affected_rows(PGresult *result)
{
	const char *count = PQcmdTuples(result);

	return count[0] ? strtol(count, NULL, 10) : 0;
}

int db_begin(PGconn *conn, struct error *err)
{
	return db_command(conn, "BEGIN", 0, NULL, err);
}

int db_commit(PGconn *conn, struct error *err)
{
	return db_command(conn, "COMMIT", 0, NULL, err);
}

void db_rollback(PGconn *conn)
{
	PGresult *result = PQexec(conn, "ROLLBACK");

	PQclear(result);
}
