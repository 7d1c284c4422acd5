#include <string.h>
#include <strings.h>

#include "agentkey.h"
#include "csrmake.h"
#include "db.h"
#include "exitcode.h"
#include "inventory.h"
#include "jsonl.h"
#include "log.h"
#include "signals.h"

/*
 * An absent optional field keeps the stored value on update; retired_at is
 * never written here, so an import never silently un-retires anything.
 * xmax = 0 on the returned row means the row was inserted, not updated.
 */
static const char upsert_agent_sql[] =
	"INSERT INTO agents (id, name, public_key, db_role) VALUES ($1, $2, $3, $4)"
	" ON CONFLICT (id) DO UPDATE SET name = COALESCE($2, agents.name),"
	" public_key = COALESCE($3, agents.public_key), db_role = COALESCE($4, agents.db_role),"
	" updated_at = now()"
	" RETURNING (xmax = 0)";

/*
 * Copies sealed to a key the agent no longer has cannot be opened: a new
 * public key drops them, and the next enqueue seals the current versions again.
 */
static const char drop_stale_sealed_keys_sql[] =
	"DELETE FROM version_keys k USING agents a WHERE a.id = $1 AND k.agent_id = a.id"
	" AND a.public_key IS DISTINCT FROM $2";

/* FOR SHARE: a concurrent retire of the agent waits for this line's commit. */
static const char agent_state_sql[] =
	"SELECT retired_at IS NOT NULL FROM agents WHERE id = $1 FOR SHARE";

static const char upsert_target_sql[] =
	"INSERT INTO deployment_targets (id, name, type, agent_id, config)"
	" VALUES ($1, $2, $3, $4, COALESCE($5::jsonb, '{}'::jsonb))"
	" ON CONFLICT (id) DO UPDATE SET name = COALESCE($2, deployment_targets.name),"
	" type = EXCLUDED.type, agent_id = EXCLUDED.agent_id,"
	" config = COALESCE($5::jsonb, deployment_targets.config), updated_at = now()"
	" RETURNING (xmax = 0)";

/* $4 the names (a JSON array, common name first), $8 renew_before in seconds. */
static const char upsert_certificate_sql[] =
	"INSERT INTO managed_certificates AS m (id, name, common_name, sans, key_type, key_mode,"
	"  issuer_id, renew_before, auto_renew)"
	" VALUES ($1, $2, COALESCE($3, $4::jsonb->>0),"
	"  COALESCE(ARRAY(SELECT jsonb_array_elements_text($4::jsonb)), '{}'),"
	"  COALESCE($5, 'ecdsa-p256'), COALESCE($6, 'central'), $7,"
	"  justify_hours($8::bigint * interval '1 second'), COALESCE($9::boolean, true))"
	" ON CONFLICT (id) DO UPDATE SET name = COALESCE($2, m.name),"
	" common_name = COALESCE($3, $4::jsonb->>0, m.common_name),"
	" sans = CASE WHEN $4::jsonb IS NULL THEN m.sans"
	"        ELSE ARRAY(SELECT jsonb_array_elements_text($4::jsonb)) END,"
	" key_type = COALESCE($5, m.key_type), key_mode = COALESCE($6, m.key_mode),"
	" issuer_id = COALESCE($7, m.issuer_id),"
	" renew_before = COALESCE(justify_hours($8::bigint * interval '1 second'), m.renew_before),"
	" auto_renew = COALESCE($9::boolean, m.auto_renew), updated_at = now()"
	" RETURNING (xmax = 0)";

static const char issuer_exists_sql[] = "SELECT 1 FROM issuers WHERE id = $1";

static const char upsert_issuer_sql[] =
	"INSERT INTO issuers (id, name, type, config) VALUES ($1, $2, $3, $4::jsonb)"
	" ON CONFLICT (id) DO UPDATE SET name = COALESCE($2, issuers.name), type = EXCLUDED.type,"
	" config = EXCLUDED.config, updated_at = now()"
	" RETURNING (xmax = 0)";

#define ISSUER_TIMEOUT_MAX 86400 /* a day: longer is a stuck issuer, not a slow one */

/* One row per listed target: is it unknown, is it retired. */
static const char listed_targets_sql[] =
	"SELECT l.target_id, t.id IS NULL, t.retired_at IS NOT NULL"
	" FROM jsonb_array_elements_text($1::jsonb) AS l(target_id)"
	" LEFT JOIN deployment_targets t ON t.id = l.target_id";

static const char drop_unlisted_mappings_sql[] =
	"DELETE FROM certificate_targets WHERE certificate_id = $1"
	" AND target_id NOT IN (SELECT jsonb_array_elements_text($2::jsonb))";

static const char add_listed_mappings_sql[] =
	"INSERT INTO certificate_targets (certificate_id, target_id)"
	" SELECT $1, jsonb_array_elements_text($2::jsonb) ON CONFLICT DO NOTHING";

/* An optional string field: absent or null is fine (*value NULL), another type is not. */
static int optional_string(json_object *line, const char *key, const char **value,
			   struct error *err)
{
	json_object *field;

	*value = NULL;
	if (!json_object_object_get_ex(line, key, &field) || field == NULL)
		return 0;
	if (!json_object_is_type(field, json_type_string))
		return error_set(err, EXIT_DATA, "\"%s\" must be a string", key);
	*value = json_object_get_string(field);
	return 0;
}

static int required_string(json_object *line, const char *key, const char **value,
			   struct error *err)
{
	if (optional_string(line, key, value, err) != 0)
		return err->code;
	if (*value == NULL || (*value)[0] == '\0')
		return error_set(err, EXIT_DATA, "missing \"%s\"", key);
	return 0;
}

/* Runs an upsert whose one row says whether it inserted. */
static int upsert(PGconn *conn, const char *sql, int count, const char *const *params,
		  int *inserted, struct error *err)
{
	PGresult *result = db_query(conn, sql, count, params, err);

	if (result == NULL)
		return err->code;
	*inserted = PQgetvalue(result, 0, 0)[0] == 't';
	PQclear(result);
	return 0;
}

static bool kind_is(const struct inventory_item *item, const char *kind)
{
	return strcmp(item->kind, kind) == 0;
}

void inventory_item_release(struct inventory_item *item)
{
	json_object_put(item->owned);
	item->owned = NULL;
}

/* {"type":"command","config":{"command":[argv…],"timeout":SECONDS}} */
static int parse_issuer(json_object *line, struct inventory_item *item, struct error *err)
{
	json_object *config, *command, *timeout;
	size_t count;

	if (required_string(line, "type", &item->type, err) != 0)
		return err->code;
	if (strcmp(item->type, "command") != 0)
		return error_set(err, EXIT_CONFIG, "unknown issuer type \"%s\" (command)", item->type);
	if (!json_object_object_get_ex(line, "config", &config) ||
	    !json_object_is_type(config, json_type_object))
		return error_set(err, EXIT_DATA, "\"config\" must be a JSON object");
	if (!json_object_object_get_ex(config, "command", &command) ||
	    !json_object_is_type(command, json_type_array) ||
	    (count = json_object_array_length(command)) == 0)
		return error_set(err, EXIT_CONFIG, "issuer config needs \"command\": [program, arguments…]");
	for (size_t i = 0; i < count; i++) {
		json_object *word = json_object_array_get_idx(command, i);

		if (!json_object_is_type(word, json_type_string) || json_object_get_string_len(word) == 0)
			return error_set(err, EXIT_CONFIG, "issuer \"command\" must hold non-empty strings");
	}
	if (json_object_object_get_ex(config, "timeout", &timeout) &&
	    (!json_object_is_type(timeout, json_type_int) || json_object_get_int64(timeout) < 1 ||
	     json_object_get_int64(timeout) > ISSUER_TIMEOUT_MAX))
		return error_set(err, EXIT_CONFIG, "issuer \"timeout\" must be whole seconds, 1 to %d",
				 ISSUER_TIMEOUT_MAX);
	item->config_json = json_object_to_json_string_ext(config, JSON_C_TO_STRING_PLAIN);
	return 0;
}

static bool optional_field(json_object *line, const char *key, json_object **field)
{
	return json_object_object_get_ex(line, key, field) && *field != NULL;
}

/*
 * sans checked name by name; the common name, when the line has one, first
 * (added, or moved to the front).
 */
static int parse_sans(json_object *sans, struct inventory_item *item, struct error *err)
{
	json_object *ordered;
	size_t count;

	if (!json_object_is_type(sans, json_type_array))
		return error_set(err, EXIT_DATA, "\"sans\" must be an array of names");
	count = json_object_array_length(sans);
	for (size_t i = 0; i < count; i++) {
		json_object *name = json_object_array_get_idx(sans, i);

		if (!json_object_is_type(name, json_type_string))
			return error_set(err, EXIT_DATA, "\"sans\" must be an array of names");
		if (!san_is_valid(json_object_get_string(name)))
			return error_set(err, EXIT_DATA, "\"%s\" in \"sans\" is neither a DNS name nor an IP address",
					 json_object_get_string(name));
	}
	if (item->common_name != NULL && !san_is_valid(item->common_name))
		return error_set(err, EXIT_DATA, "common name \"%s\" is neither a DNS name nor an IP address",
				 item->common_name);
	item->owned = ordered = json_object_new_array();
	if (item->common_name != NULL)
		json_object_array_add(ordered, json_object_new_string(item->common_name));
	for (size_t i = 0; i < count; i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(sans, i));

		if (item->common_name == NULL || strcasecmp(name, item->common_name) != 0)
			json_object_array_add(ordered, json_object_new_string(name));
	}
	item->sans_json = json_object_to_json_string_ext(ordered, JSON_C_TO_STRING_PLAIN);
	return 0;
}

/* sans, key_type, key_mode, issuer_id, renew_before (seconds), auto_renew. */
static int parse_certificate_lifecycle(json_object *line, struct inventory_item *item,
				       struct error *err)
{
	json_object *field;

	if (optional_field(line, "sans", &field) && parse_sans(field, item, err) != 0)
		return err->code;
	if (optional_string(line, "key_type", &item->key_type, err) != 0 ||
	    optional_string(line, "key_mode", &item->key_mode, err) != 0 ||
	    optional_string(line, "issuer_id", &item->issuer_id, err) != 0)
		return err->code;
	if (item->key_type != NULL && !key_type_is_known(item->key_type))
		return error_set(err, EXIT_CONFIG,
				 "unknown key_type \"%s\" (ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072)",
				 item->key_type);
	if (item->key_mode != NULL && strcmp(item->key_mode, "central") != 0 &&
	    strcmp(item->key_mode, "agent") != 0)
		return error_set(err, EXIT_CONFIG, "unknown key_mode \"%s\" (central or agent)", item->key_mode);
	if (item->issuer_id != NULL && item->issuer_id[0] == '\0')
		return error_set(err, EXIT_DATA, "\"issuer_id\" must not be empty");
	if (optional_field(line, "renew_before", &field)) {
		if (!json_object_is_type(field, json_type_int) || json_object_get_int64(field) < 1)
			return error_set(err, EXIT_DATA, "\"renew_before\" must be whole seconds, at least 1");
		item->renew_before = json_object_get_string(field);
	}
	if (optional_field(line, "auto_renew", &field)) {
		if (!json_object_is_type(field, json_type_boolean))
			return error_set(err, EXIT_DATA, "\"auto_renew\" must be true or false");
		item->auto_renew = json_object_get_boolean(field) ? "true" : "false";
	}
	return 0;
}

int inventory_line_parse(json_object *line, struct inventory_item *item, struct error *err)
{
	json_object *field;

	memset(item, 0, sizeof(*item));
	if (required_string(line, "kind", &item->kind, err) != 0 ||
	    required_string(line, "id", &item->id, err) != 0)
		return err->code;
	if (!kind_is(item, "agent") && !kind_is(item, "target") && !kind_is(item, "certificate") &&
	    !kind_is(item, "issuer"))
		return error_set(err, EXIT_DATA, "unknown kind \"%s\" (agent, target, issuer or certificate)",
				 item->kind);
	if (optional_string(line, "name", &item->name, err) != 0)
		goto bad;
	if (kind_is(item, "agent")) {
		unsigned char public_key[AGENT_KEY_BYTES];

		if (optional_string(line, "public_key", &item->public_key, err) != 0 ||
		    optional_string(line, "db_role", &item->db_role, err) != 0 ||
		    (item->public_key != NULL &&
		     agent_public_key_parse(item->public_key, public_key, err) != 0))
			goto bad;
	} else if (kind_is(item, "target")) {
		if (required_string(line, "type", &item->type, err) != 0 ||
		    required_string(line, "agent_id", &item->agent_id, err) != 0)
			goto bad;
		if (json_object_object_get_ex(line, "config", &field) && field != NULL) {
			if (!json_object_is_type(field, json_type_object)) {
				error_set(err, EXIT_DATA, "\"config\" must be a JSON object");
				goto bad;
			}
			item->config_json = json_object_to_json_string_ext(field, JSON_C_TO_STRING_PLAIN);
		}
	} else if (kind_is(item, "issuer")) {
		if (parse_issuer(line, item, err) != 0)
			goto bad;
	} else if (kind_is(item, "certificate")) {
		if (optional_string(line, "common_name", &item->common_name, err) != 0 ||
		    parse_certificate_lifecycle(line, item, err) != 0)
			goto bad;
		if (json_object_object_get_ex(line, "targets", &field) && field != NULL) {
			bool all_strings = json_object_is_type(field, json_type_array);

			for (size_t i = 0; all_strings && i < json_object_array_length(field); i++)
				all_strings = json_object_is_type(json_object_array_get_idx(field, i), json_type_string);
			if (!all_strings) {
				error_set(err, EXIT_DATA, "\"targets\" must be an array of target ids");
				goto bad;
			}
			item->targets_json = json_object_to_json_string_ext(field, JSON_C_TO_STRING_PLAIN);
		}
	}
	return 0;
bad:
	return error_prefix(err, "%s %s", item->kind, item->id);
}

static int store_agent(PGconn *conn, const struct inventory_item *item, int *inserted,
		       struct error *err)
{
	const char *params[4] = { item->id, item->name, item->public_key, item->db_role };
	const char *drop_params[2] = { item->id, item->public_key };
	int code;

	if (item->public_key != NULL &&
	    (code = db_command(conn, drop_stale_sealed_keys_sql, 2, drop_params, err)) != 0)
		return code;
	return upsert(conn, upsert_agent_sql, 4, params, inserted, err);
}

static int store_target(PGconn *conn, const struct inventory_item *item, int *inserted,
			struct error *err)
{
	const char *params[5] = { item->id, item->name, item->type, item->agent_id, item->config_json };
	PGresult *result;
	int retired;

	if ((result = db_query(conn, agent_state_sql, 1, &params[3], err)) == NULL)
		return err->code;
	retired = PQntuples(result) == 1 ? PQgetvalue(result, 0, 0)[0] == 't' : -1;
	PQclear(result);
	if (retired < 0)
		return error_set(err, EXIT_NOT_FOUND, "agent %s: no such agent", params[3]);
	if (retired)
		return error_set(err, EXIT_DATA, "agent %s is retired; a target cannot be assigned to it",
				 params[3]);
	return upsert(conn, upsert_target_sql, 5, params, inserted, err);
}

/* Every listed target must exist and be active before the mappings are replaced. */
static int check_listed_targets(PGconn *conn, const char *targets_json, struct error *err)
{
	PGresult *result = db_query(conn, listed_targets_sql, 1, &targets_json, err);
	int code = 0;

	if (result == NULL)
		return err->code;
	for (int row = 0; row < PQntuples(result) && code == 0; row++) {
		if (PQgetvalue(result, row, 1)[0] == 't')
			code = error_set(err, EXIT_NOT_FOUND, "target %s: no such target",
					 PQgetvalue(result, row, 0));
		else if (PQgetvalue(result, row, 2)[0] == 't')
			code = error_set(err, EXIT_DATA, "target %s is retired; it cannot be mapped",
					 PQgetvalue(result, row, 0));
	}
	PQclear(result);
	return code;
}

static int check_issuer_exists(PGconn *conn, const char *issuer_id, struct error *err)
{
	PGresult *result = db_query(conn, issuer_exists_sql, 1, &issuer_id, err);
	int found;

	if (result == NULL)
		return err->code;
	found = PQntuples(result);
	PQclear(result);
	return found ? 0 : error_set(err, EXIT_NOT_FOUND, "issuer %s: no such issuer", issuer_id);
}

static int store_issuer(PGconn *conn, const struct inventory_item *item, int *inserted,
			struct error *err)
{
	const char *params[4] = { item->id, item->name, item->type, item->config_json };

	return upsert(conn, upsert_issuer_sql, 4, params, inserted, err);
}

static int store_certificate(PGconn *conn, const struct inventory_item *item, int *inserted,
			     struct error *err)
{
	const char *params[9] = { item->id, item->name, item->common_name, item->sans_json,
				  item->key_type, item->key_mode, item->issuer_id,
				  item->renew_before, item->auto_renew };
	int code;

	if (item->targets_json != NULL && (code = check_listed_targets(conn, item->targets_json, err)) != 0)
		return code;
	if (item->issuer_id != NULL && (code = check_issuer_exists(conn, item->issuer_id, err)) != 0)
		return code;
	if ((code = upsert(conn, upsert_certificate_sql, 9, params, inserted, err)) != 0)
		return code;
	if (item->targets_json != NULL) {
		const char *mapping_params[2] = { item->id, item->targets_json };

		if ((code = db_command(conn, drop_unlisted_mappings_sql, 2, mapping_params, err)) != 0 ||
		    (code = db_command(conn, add_listed_mappings_sql, 2, mapping_params, err)) != 0)
			return code;
	}
	return 0;
}

/* One line, one transaction; on any error nothing of the line stays. */
static int import_line(PGconn *conn, json_object *line, FILE *output, struct error *err)
{
	struct inventory_item item;
	json_object *report;
	int inserted = 0, code;

	if ((code = inventory_line_parse(line, &item, err)) != 0) {
		inventory_item_release(&item);
		return code;
	}
	if ((code = db_begin(conn, err)) != 0) {
		inventory_item_release(&item);
		return code;
	}
	if (kind_is(&item, "agent"))
		code = store_agent(conn, &item, &inserted, err);
	else if (kind_is(&item, "target"))
		code = store_target(conn, &item, &inserted, err);
	else if (kind_is(&item, "issuer"))
		code = store_issuer(conn, &item, &inserted, err);
	else
		code = store_certificate(conn, &item, &inserted, err);
	inventory_item_release(&item);
	if (code == 0)
		code = db_commit(conn, err);
	else
		db_rollback(conn);
	if (code != 0)
		return error_prefix(err, "%s %s", item.kind, item.id);
	report = json_object_new_object();
	json_object_object_add(report, "kind", json_object_new_string(item.kind));
	json_object_object_add(report, "id", json_object_new_string(item.id));
	json_object_object_add(report, "action", json_object_new_string(inserted ? "inserted" : "updated"));
	code = jsonl_write(output, report, err);
	json_object_put(report);
	return code;
}

int inventory_import(PGconn *conn, FILE *input, FILE *output, struct error *err)
{
	struct jsonl_reader reader;
	json_object *line;
	int status = 0, read, code, refused = 0;

	jsonl_reader_init(&reader, input);
	while (!signals_stop_requested() && (read = jsonl_read(&reader, &line, err)) != 0) {
		if (read < 0) {
			log_error("%s", err->message);
			status = exit_code_most_serious(status, err->code);
			refused++;
			continue;
		}
		code = import_line(conn, line, output, err);
		json_object_put(line);
		/* No later line can succeed without stdout or the database. */
		if (code == EXIT_CANT_CREATE || code == EXIT_UNAVAILABLE) {
			jsonl_reader_free(&reader);
			return code;
		}
		if (code != 0) {
			error_prefix(err, "line %ld", reader.line_number);
			log_error("%s", err->message);
			status = exit_code_most_serious(status, code);
			refused++;
		}
	}
	jsonl_reader_free(&reader);
	if (signals_stop_requested())
		return error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	if (status != 0)
		error_set(err, status, "%d line%s not stored", refused, refused == 1 ? "" : "s");
	return status;
}
