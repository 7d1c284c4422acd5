#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "digest.h"
#include "exitcode.h"
#include "fileio.h"
#include "jsonl.h"
#include "log.h"
#include "migrate.h"
#include "pgjson.h"
#include "signals.h"

#ifndef CERTCTL_DATADIR
#define CERTCTL_DATADIR "/usr/local/share/certctl"
#endif

/* Any fixed key works; it only has to be the same for every certctl-migrate. */
#define MIGRATE_ADVISORY_LOCK_KEY "7263657274637431"
#define MIGRATION_FILE_MAX_BYTES (4 * 1024 * 1024)

static const char create_schema_migrations_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
	" applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";
static const char lock_sql[] = "SELECT pg_advisory_lock(" MIGRATE_ADVISORY_LOCK_KEY ")";
static const char unlock_sql[] = "SELECT pg_advisory_unlock(" MIGRATE_ADVISORY_LOCK_KEY ")";
static const char applied_sql[] =
	"SELECT version, name, checksum,"
	" to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
	" FROM schema_migrations ORDER BY version";
static const char table_exists_sql[] = "SELECT to_regclass('schema_migrations') IS NOT NULL";
static const char record_applied_sql[] =
	"INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)";
static const char forget_applied_sql[] = "DELETE FROM schema_migrations WHERE version = $1::int";

const char *migrations_default_dir(void)
{
	static char tree_dir[PATH_MAX];
	char exe[PATH_MAX], marker[PATH_MAX + 64];
	const char *from_env = getenv("CERTCTL_MIGRATIONS_DIR");
	ssize_t length;
	char *slash;

	if (from_env != NULL && from_env[0] != '\0')
		return from_env;
	/* A binary in <tree>/<build>/bin uses <tree>/migrations, so tests need no install. */
	length = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (length > 0) {
		exe[length] = '\0';
		for (int up = 0; up < 3 && (slash = strrchr(exe, '/')) != NULL; up++)
			*slash = '\0';
		snprintf(tree_dir, sizeof(tree_dir), "%.*s/migrations", PATH_MAX - 16, exe);
		snprintf(marker, sizeof(marker), "%s/000001_initial_schema.up.sql", tree_dir);
		if (access(marker, R_OK) == 0)
			return tree_dir;
	}
	return CERTCTL_DATADIR "/migrations";
}

static int compare_versions(const void *a, const void *b)
{
	const struct migration *left = a, *right = b;

	return (left->version > right->version) - (left->version < right->version);
}

static char *join_path(const char *dir, const char *name)
{
	size_t length = strlen(dir) + strlen(name) + 2;
	char *path = malloc(length);

	if (path != NULL)
		snprintf(path, length, "%s/%s", dir, name);
	return path;
}

/* Parses "NNNNNN_name.up.sql"; returns 0 when the name is not an up file. */
static int parse_up_file_name(const char *file_name, int *version, char **name)
{
	const char *suffix = ".up.sql";
	size_t length = strlen(file_name), suffix_length = strlen(suffix);
	const char *underscore;
	long number;
	char *end;

	if (length <= suffix_length || strcmp(file_name + length - suffix_length, suffix) != 0 ||
	    !isdigit((unsigned char)file_name[0]))
		return 0;
	errno = 0;
	number = strtol(file_name, &end, 10);
	underscore = end;
	if (errno != 0 || *underscore != '_' || number <= 0 || number > INT_MAX)
		return 0;
	*version = (int)number;
	*name = strndup(underscore + 1, (size_t)(file_name + length - suffix_length - underscore - 1));
	return *name != NULL;
}

/*
 * A migration file, read once, NUL-terminated. PQexec takes a C string, so a
 * NUL inside would silently cut what runs: that file is bad input.
 */
static char *read_migration_file(const char *path, size_t *length, struct error *err)
{
	char *content = file_read_all(path, MIGRATION_FILE_MAX_BYTES, length, err);
	const char *nul;

	if (content == NULL)
		return NULL;
	if ((nul = memchr(content, '\0', *length)) != NULL) {
		error_set(err, EXIT_DATA, "%s: holds a NUL byte at offset %zu; a migration is SQL text",
			  path, (size_t)(nul - content));
		free(content);
		return NULL;
	}
	return content;
}

static int load_one(const char *dir, const char *file_name, struct migration *migration,
		    struct error *err)
{
	char *down_name, *stem;
	char hex[SHA256_HEX_SIZE];

	memset(migration, 0, sizeof(*migration));
	if (!parse_up_file_name(file_name, &migration->version, &migration->name))
		return 1;
	migration->up_path = join_path(dir, file_name);
	/* "NNNNNN_name" + ".down.sql": the stem before ".up.sql". */
	stem = strndup(file_name, strlen(file_name) - strlen(".up.sql"));
	down_name = NULL;
	if (stem != NULL && asprintf(&down_name, "%s/%s.down.sql", dir, stem) < 0)
		down_name = NULL;
	free(stem);
	if (migration->up_path == NULL || down_name == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	migration->down_path = down_name;
	migration->up_sql = read_migration_file(migration->up_path, &migration->up_length, err);
	if (migration->up_sql == NULL)
		return err->code;
	sha256_hex(migration->up_sql, migration->up_length, hex);
	snprintf(migration->checksum, sizeof(migration->checksum), "sha256:%s", hex);
	return 0;
}

void migrations_free(struct migration_set *set)
{
	for (size_t i = 0; i < set->count; i++) {
		free(set->items[i].name);
		free(set->items[i].up_path);
		free(set->items[i].down_path);
		free(set->items[i].up_sql);
	}
	free(set->items);
	set->items = NULL;
	set->count = 0;
}

int migrations_load(const char *dir, struct migration_set *set, struct error *err)
{
	DIR *directory = opendir(dir);
	struct dirent *entry;
	size_t capacity = 0;
	int code = 0;

	set->items = NULL;
	set->count = 0;
	if (directory == NULL)
		return error_set(err, EXIT_NOT_FOUND, "migrations directory %s: %s", dir, strerror(errno));
	while ((entry = readdir(directory)) != NULL) {
		struct migration migration;
		int loaded = load_one(dir, entry->d_name, &migration, err);

		if (loaded == 1)
			continue;
		if (loaded != 0) {
			free(migration.name);
			free(migration.up_path);
			free(migration.down_path);
			free(migration.up_sql);
			code = loaded;
			break;
		}
		if (set->count == capacity) {
			struct migration *grown;
			capacity = capacity ? capacity * 2 : 16;
			grown = realloc(set->items, capacity * sizeof(*grown));
			if (grown == NULL) {
				code = error_set(err, EXIT_INTERNAL, "out of memory");
				break;
			}
			set->items = grown;
		}
		set->items[set->count++] = migration;
	}
	closedir(directory);
	if (code != 0) {
		migrations_free(set);
		return code;
	}
	qsort(set->items, set->count, sizeof(*set->items), compare_versions);
	for (size_t i = 1; i < set->count; i++)
		if (set->items[i].version == set->items[i - 1].version) {
			code = error_set(err, EXIT_DATA, "%s: two migrations numbered %d",
					 dir, set->items[i].version);
			migrations_free(set);
			return code;
		}
	return 0;
}

/* Applied rows of schema_migrations, or an empty result when the table is absent. */
static PGresult *load_applied(PGconn *conn, struct error *err)
{
	PGresult *exists = db_query(conn, table_exists_sql, 0, NULL, err);
	int table_exists;

	if (exists == NULL)
		return NULL;
	table_exists = PQgetvalue(exists, 0, 0)[0] == 't';
	PQclear(exists);
	if (!table_exists)
		return db_query(conn, "SELECT NULL::int, NULL, NULL, NULL WHERE false", 0, NULL, err);
	return db_query(conn, applied_sql, 0, NULL, err);
}

static int applied_row(const PGresult *applied, int version)
{
	for (int row = 0; row < PQntuples(applied); row++)
		if (atoi(PQgetvalue(applied, row, 0)) == version)
			return row;
	return -1;
}

static int print_migration_line(FILE *output, const struct migration *migration,
				const PGresult *applied, int row, struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "version", json_object_new_int(migration->version));
	json_object_object_add(line, "name", json_object_new_string(migration->name));
	json_object_object_add(line, "applied", json_object_new_boolean(row >= 0));
	if (row >= 0) {
		json_add_text_column(line, "applied_at", applied, row, 3);
		json_add_text_column(line, "checksum", applied, row, 2);
	} else {
		json_object_object_add(line, "applied_at", NULL);
		json_object_object_add(line, "checksum", json_object_new_string(migration->checksum));
	}
	code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

/* Runs one file's SQL (read by the caller, free of NULs) and its bookkeeping in one transaction. */
static int run_in_transaction(PGconn *conn, const char *path, const char *sql,
			      const char *bookkeeping_sql, int param_count, const char *const *params,
			      struct error *err)
{
	PGresult *result;

	if (db_begin(conn, err) != 0)
		return err->code;
	/* Simple-query protocol: the file may hold many statements and DO blocks. */
	result = PQexec(conn, sql);
	if (PQresultStatus(result) != PGRES_COMMAND_OK && PQresultStatus(result) != PGRES_TUPLES_OK) {
		error_set(err, db_exit_code_for(conn, result), "%s: %s", path,
			  PQresultErrorMessage(result));
		PQclear(result);
		db_rollback(conn);
		return err->code;
	}
	PQclear(result);
	if (db_command(conn, bookkeeping_sql, param_count, params, err) != 0 ||
	    db_commit(conn, err) != 0) {
		db_rollback(conn);
		return err->code;
	}
	return 0;
}

static int lock_and_prepare(PGconn *conn, struct error *err)
{
	if (db_command(conn, lock_sql, 0, NULL, err) != 0)
		return err->code;
	/* Created under the lock, so concurrent first runs cannot race on it. */
	return db_command(conn, create_schema_migrations_sql, 0, NULL, err);
}

static void unlock(PGconn *conn)
{
	PGresult *result = PQexec(conn, unlock_sql);

	PQclear(result);
}

static int stop_if_signalled(struct error *err)
{
	if (signals_stop_requested())
		return error_set(err, EXIT_TEMPORARY, "interrupted by signal %d; finished migrations are kept",
				 signals_received());
	return 0;
}

int migrate_up(PGconn *conn, const struct migration_set *set, int to_version,
	       FILE *output, struct error *err)
{
	PGresult *applied = NULL, *after = NULL;
	int code;

	if ((code = lock_and_prepare(conn, err)) != 0)
		goto out;
	if ((applied = load_applied(conn, err)) == NULL) {
		code = err->code;
		goto out;
	}
	for (size_t i = 0; i < set->count; i++) {
		const struct migration *migration = &set->items[i];
		char version[16];
		const char *params[3] = { version, migration->name, migration->checksum };

		if (to_version >= 0 && migration->version > to_version)
			break;
		if (applied_row(applied, migration->version) >= 0)
			continue;
		if ((code = stop_if_signalled(err)) != 0)
			goto out;
		log_info("applying %d %s", migration->version, migration->name);
		snprintf(version, sizeof(version), "%d", migration->version);
		code = run_in_transaction(conn, migration->up_path, migration->up_sql, record_applied_sql,
					  3, params, err);
		if (code != 0)
			goto out;
		if ((after = load_applied(conn, err)) == NULL) {
			code = err->code;
			goto out;
		}
		code = print_migration_line(output, migration, after, applied_row(after, migration->version), err);
		PQclear(after);
		if (code != 0)
			goto out;
	}
out:
	PQclear(applied);
	unlock(conn);
	return code;
}

int migrate_down(PGconn *conn, const struct migration_set *set, int to_version, int steps,
		 FILE *output, struct error *err)
{
	PGresult *applied = NULL;
	char *down_sql;
	size_t down_length;
	int code, done = 0;

	if ((code = lock_and_prepare(conn, err)) != 0)
		goto out;
	if ((applied = load_applied(conn, err)) == NULL) {
		code = err->code;
		goto out;
	}
	for (int row = PQntuples(applied) - 1; row >= 0; row--) {
		int version = atoi(PQgetvalue(applied, row, 0));
		const struct migration *migration = NULL;
		const char *params[1] = { PQgetvalue(applied, row, 0) };

		if (to_version >= 0 ? version <= to_version : done >= steps)
			break;
		for (size_t i = 0; i < set->count; i++)
			if (set->items[i].version == version)
				migration = &set->items[i];
		if (migration == NULL) {
			code = error_set(err, EXIT_DATA, "migration %d (%s) is applied but has no file to roll it back",
					 version, PQgetvalue(applied, row, 1));
			goto out;
		}
		if ((code = stop_if_signalled(err)) != 0)
			goto out;
		log_info("rolling back %d %s", migration->version, migration->name);
		/* A missing or unreadable down file is bad migration data, not a missing object. */
		if ((down_sql = read_migration_file(migration->down_path, &down_length, err)) == NULL) {
			code = err->code = EXIT_DATA;
			goto out;
		}
		code = run_in_transaction(conn, migration->down_path, down_sql, forget_applied_sql, 1,
					  params, err);
		free(down_sql);
		if (code != 0)
			goto out;
		if ((code = print_migration_line(output, migration, applied, -1, err)) != 0)
			goto out;
		done++;
	}
out:
	PQclear(applied);
	unlock(conn);
	return code;
}

int migrate_status(PGconn *conn, const struct migration_set *set, FILE *output,
		   struct error *err)
{
	PGresult *applied = load_applied(conn, err);
	int code = 0;

	if (applied == NULL)
		return err->code;
	for (size_t i = 0; i < set->count && code == 0; i++)
		code = print_migration_line(output, &set->items[i], applied,
					    applied_row(applied, set->items[i].version), err);
	PQclear(applied);
	return code;
}

int migrate_verify(PGconn *conn, const struct migration_set *set, FILE *output,
		   struct error *err)
{
	PGresult *applied = load_applied(conn, err);
	int mismatches = 0, code = 0;

	if (applied == NULL)
		return err->code;
	for (int row = 0; row < PQntuples(applied) && code == 0; row++) {
		int version = atoi(PQgetvalue(applied, row, 0));
		const char *recorded = PQgetvalue(applied, row, 2);
		const struct migration *migration = NULL;
		json_object *line;
		int matches;

		for (size_t i = 0; i < set->count; i++)
			if (set->items[i].version == version)
				migration = &set->items[i];
		matches = migration != NULL && strcmp(migration->checksum, recorded) == 0;
		if (migration == NULL)
			log_error("migration %d (%s): applied, but its file is missing", version,
				  PQgetvalue(applied, row, 1));
		else if (!matches)
			log_error("migration %d (%s): file changed since it was applied (recorded %s, file %s)",
				  version, migration->name, recorded, migration->checksum);
		mismatches += !matches;
		line = json_object_new_object();
		json_object_object_add(line, "version", json_object_new_int(version));
		json_add_text_column(line, "name", applied, row, 1);
		json_object_object_add(line, "checksum", json_object_new_string(recorded));
		json_object_object_add(line, "matches", json_object_new_boolean(matches));
		code = jsonl_write(output, line, err);
		json_object_put(line);
	}
	PQclear(applied);
	if (code == 0 && mismatches > 0)
		code = error_set(err, EXIT_DATA, "%d applied migration(s) do not match their files", mismatches);
	return code;
}
