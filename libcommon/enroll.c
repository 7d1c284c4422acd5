#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agentkey.h"
#include "audit.h"
#include "db.h"
#include "digest.h"
#include "enroll.h"
#include "exitcode.h"
#include "jsonl.h"
#include "scope.h"
#include "versionkeys.h"

#define PASSWORD_RANDOM_BYTES 32
#define ROLE_NAME_MAX 63

static const char create_agent_sql[] =
	"INSERT INTO agents (id) VALUES ($1) ON CONFLICT (id) DO NOTHING";

/* FOR UPDATE: two enrollments of one agent serialize. */
static const char lock_agent_sql[] =
	"SELECT certctl_is_sentinel_agent(id), retired_at IS NOT NULL, db_role FROM agents"
	" WHERE id = $1 FOR UPDATE";

/* Does the role exist; is it an agent's role and no operator's; which agent has it. */
static const char role_state_sql[] =
	"SELECT pg_has_role(r.oid, 'certctl_agent', 'MEMBER')"
	" AND NOT pg_has_role(r.oid, 'certctl_operator', 'MEMBER') AND NOT r.rolsuper,"
	" (SELECT a.id FROM agents a WHERE a.db_role = r.rolname)"
	" FROM pg_roles r WHERE r.rolname = $1";

static const char map_role_sql[] =
	"UPDATE agents SET db_role = $2, updated_at = now() WHERE id = $1";

static const char set_public_key_sql[] =
	"UPDATE agents SET public_key = $2, updated_at = now() WHERE id = $1";

/* Rows sealed to the key being replaced can no longer be opened. */
static const char drop_sealed_keys_sql[] = "DELETE FROM version_keys WHERE agent_id = $1";

/*
 * The default role name for agent_id: ENROLL_ROLE_PREFIX followed by the id
 * with every byte outside [a-z0-9_] replaced by '_'. EXIT_DATA when it would
 * exceed PostgreSQL's 63 bytes.
 */
static int enroll_default_role(const char *agent_id, char role[64], struct error *err)
{
	size_t prefix = strlen(ENROLL_ROLE_PREFIX), length = strlen(agent_id);

	if (prefix + length > ROLE_NAME_MAX)
		return error_set(err, EXIT_DATA,
				 "%s: the role name would be longer than %d bytes; choose one with --db-role",
				 agent_id, ROLE_NAME_MAX);
	memcpy(role, ENROLL_ROLE_PREFIX, prefix);
	for (size_t i = 0; i < length; i++) {
		char c = agent_id[i];
		role[prefix + i] = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ? c : '_';
	}
	role[prefix + length] = '\0';
	return 0;
}

/*
 * A new random password, written alone on the first line of a new 0600 file
 * (O_EXCL: an existing file is never overwritten). password holds it as hex.
 */
static int write_password_file(const char *path, char password[2 * PASSWORD_RANDOM_BYTES + 1],
			       struct error *err)
{
	unsigned char random[PASSWORD_RANDOM_BYTES];
	size_t length = 2 * PASSWORD_RANDOM_BYTES, written = 0;
	int fd, code = 0;

	if (RAND_bytes(random, sizeof(random)) != 1)
		return error_set(err, EXIT_INTERNAL, "no random bytes for the password (OpenSSL)");
	hex_encode(random, sizeof(random), password);
	OPENSSL_cleanse(random, sizeof(random));
	password[length] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		code = error_set(err, EXIT_CANT_CREATE, "password file %s: %s%s", path, strerror(errno),
				 errno == EEXIST ? " (never overwritten; remove it or choose another)" : "");
		goto out;
	}
	while (written <= length) {
		ssize_t got = write(fd, password + written, length + 1 - written);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			code = error_set(err, EXIT_CANT_CREATE, "password file %s: %s", path, strerror(errno));
			break;
		}
		written += (size_t)got;
	}
	if (code == 0 && fsync(fd) != 0)
		code = error_set(err, EXIT_CANT_CREATE, "password file %s: %s", path, strerror(errno));
	if (close(fd) != 0 && code == 0)
		code = error_set(err, EXIT_CANT_CREATE, "password file %s: %s", path, strerror(errno));
	if (code != 0)
		unlink(path);
out:
	password[length] = '\0';
	return code;
}

/*
 * Creates role (or gives the agent's own role a new password) with a SCRAM
 * verifier made here, so the password itself never reaches the server. DDL
 * takes no parameters: the name and the verifier are escaped by libpq.
 */
static int set_role_password(PGconn *conn, const char *role, bool exists, const char *password,
			     struct error *err)
{
	char *verifier = PQencryptPasswordConn(conn, password, role, "scram-sha-256");
	char *identifier = PQescapeIdentifier(conn, role, strlen(role));
	char *literal = verifier ? PQescapeLiteral(conn, verifier, strlen(verifier)) : NULL;
	char statement[1024];
	int code;

	if (verifier == NULL || identifier == NULL || literal == NULL)
		code = error_set(err, EXIT_INTERNAL, "role %s: %s", role, PQerrorMessage(conn));
	else if (snprintf(statement, sizeof(statement),
			  exists ? "ALTER ROLE %s LOGIN PASSWORD %s"
				 : "CREATE ROLE %s LOGIN PASSWORD %s IN ROLE certctl_agent",
			  identifier, literal) >= (int)sizeof(statement))
		code = error_set(err, EXIT_DATA, "role %s: name too long", role);
	else
		code = db_command(conn, statement, 0, NULL, err);
	OPENSSL_cleanse(statement, sizeof(statement));
	PQfreemem(literal);
	PQfreemem(identifier);
	PQfreemem(verifier);
	return code;
}

/* Checks role may become agent_id's and gives it a password when one is asked for. */
static int map_role(PGconn *conn, const char *agent_id, const char *role, const char *password,
		    struct error *err)
{
	const char *params[2] = { agent_id, role };
	PGresult *state = db_query(conn, role_state_sql, 1, params + 1, err);
	bool exists, agent_role, mapped_here, mapped_elsewhere;
	int code;

	if (state == NULL)
		return err->code;
	exists = PQntuples(state) == 1;
	agent_role = exists && PQgetvalue(state, 0, 0)[0] == 't';
	mapped_here = exists && !PQgetisnull(state, 0, 1) && strcmp(PQgetvalue(state, 0, 1), agent_id) == 0;
	mapped_elsewhere = exists && !PQgetisnull(state, 0, 1) && !mapped_here;
	if (mapped_elsewhere)
		code = error_set(err, EXIT_CONFIG, "role %s is the role of agent %s; choose another with --db-role",
				 role, PQgetvalue(state, 0, 1));
	else if (exists && !agent_role)
		code = error_set(err, EXIT_CONFIG, "role %s exists and is not an agent's role (a member of "
				 "certctl_agent and nothing more); choose another with --db-role", role);
	else if (exists && password != NULL && !mapped_here)
		code = error_set(err, EXIT_CONFIG, "role %s exists and is not agent %s's role: its password "
				 "is not changed; map it without --password-file, or choose another", role, agent_id);
	else if (!exists && password == NULL)
		code = error_set(err, EXIT_CONFIG, "role %s does not exist: --password-file creates it", role);
	else
		code = 0;
	PQclear(state);
	if (code == 0 && password != NULL)
		code = set_role_password(conn, role, exists, password, err);
	if (code == 0)
		code = db_command(conn, map_role_sql, 2, params, err);
	return code;
}

/* Locks the agent row, creating it when missing; refuses sentinels and retired agents. */
static int lock_agent(PGconn *conn, const char *agent_id, char **mapped_role, struct error *err)
{
	const char *params[1] = { agent_id };
	PGresult *agent;
	int code = 0;

	*mapped_role = NULL;
	if ((code = db_command(conn, create_agent_sql, 1, params, err)) != 0)
		return code;
	if ((agent = db_query(conn, lock_agent_sql, 1, params, err)) == NULL)
		return err->code;
	if (PQgetvalue(agent, 0, 0)[0] == 't')
		code = error_set(err, EXIT_FORBIDDEN, "%s: a sentinel agent is never enrolled", agent_id);
	else if (PQgetvalue(agent, 0, 1)[0] == 't')
		code = error_set(err, EXIT_RETIRED, "%s: agent is retired", agent_id);
	else if (!PQgetisnull(agent, 0, 2) && (*mapped_role = strdup(PQgetvalue(agent, 0, 2))) == NULL)
		code = error_set(err, EXIT_INTERNAL, "out of memory");
	PQclear(agent);
	return code;
}

static int record_enrollment(PGconn *conn, const struct enroll_request *request, const char *role,
			     long sealed, struct error *err)
{
	json_object *details = json_object_new_object();
	struct audit_event event = { NULL, "User", "agent_enrolled", "agent", request->agent_id, details };
	int code;

	json_object_object_add(details, "db_role", role ? json_object_new_string(role) : NULL);
	json_object_object_add(details, "password_set", json_object_new_boolean(request->password_file != NULL));
	if (request->public_key != NULL)
		json_object_object_add(details, "public_key", json_object_new_string(request->public_key));
	json_object_object_add(details, "sealed_versions", json_object_new_int64(sealed));
	code = audit_record(conn, &event, err);
	json_object_put(details);
	return code;
}

/* The enrollment itself, inside the open transaction. */
static int enroll_in_transaction(PGconn *conn, const struct enroll_request *request,
				 const char *password, char role[64], long *sealed, struct error *err)
{
	struct sealing_key sealing_key = { { 0 }, false };
	const char *params[2] = { request->agent_id, request->public_key };
	char *mapped_role = NULL;
	int code;

	/* An agent's role could not create a role anyway; say so plainly first. */
	if ((code = scope_check_acting_for(conn, NULL, err)) != 0 ||
	    (code = lock_agent(conn, request->agent_id, &mapped_role, err)) != 0)
		goto out;
	if (request->db_role != NULL)
		snprintf(role, 64, "%s", request->db_role);
	else if (mapped_role != NULL)
		snprintf(role, 64, "%s", mapped_role);
	else if ((code = enroll_default_role(request->agent_id, role, err)) != 0)
		goto out;
	if ((request->db_role != NULL || password != NULL) &&
	    (code = map_role(conn, request->agent_id, role, password, err)) != 0)
		goto out;
	if (request->db_role == NULL && password == NULL && mapped_role == NULL)
		role[0] = '\0';
	if (request->public_key != NULL &&
	    ((code = db_command(conn, set_public_key_sql, 2, params, err)) != 0 ||
	     (code = db_command(conn, drop_sealed_keys_sql, 1, params, err)) != 0 ||
	     (code = version_keys_fill(conn, NULL, request->agent_id, &sealing_key, sealed, err)) != 0))
		goto out;
	code = record_enrollment(conn, request, role[0] ? role : NULL, *sealed, err);
out:
	sealing_key_wipe(&sealing_key);
	free(mapped_role);
	return code;
}

static int print_enrollment(FILE *output, const struct enroll_request *request, const char *role,
			    long sealed, struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "agent_id", json_object_new_string(request->agent_id));
	json_object_object_add(line, "db_role", role[0] ? json_object_new_string(role) : NULL);
	json_object_object_add(line, "public_key",
			       request->public_key ? json_object_new_string(request->public_key) : NULL);
	json_object_object_add(line, "sealed_versions", json_object_new_int64(sealed));
	if (request->password_file != NULL)
		json_object_object_add(line, "password_file", json_object_new_string(request->password_file));
	code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

int enroll_agent(PGconn *conn, const struct enroll_request *request, FILE *output,
		 struct error *err)
{
	unsigned char public_key[AGENT_KEY_BYTES];
	char password[2 * PASSWORD_RANDOM_BYTES + 1] = "";
	char role[64] = "";
	long sealed = 0;
	int code;

	if (request->public_key != NULL &&
	    (code = agent_public_key_parse(request->public_key, public_key, err)) != 0)
		return error_prefix(err, "--public-key");
	if (request->password_file != NULL &&
	    (code = write_password_file(request->password_file, password, err)) != 0)
		return code;
	if ((code = db_begin(conn, err)) == 0) {
		code = enroll_in_transaction(conn, request, request->password_file ? password : NULL,
					     role, &sealed, err);
		if (code == 0)
			code = db_commit(conn, err);
		else
			db_rollback(conn);
	}
	OPENSSL_cleanse(password, sizeof(password));
	/* A password the database never took is no use to anyone. */
	if (code != 0 && request->password_file != NULL)
		unlink(request->password_file);
	if (code == 0)
		code = print_enrollment(output, request, role, sealed, err);
	return code;
}
