#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "audit.h"
#include "certversion.h"
#include "db.h"
#include "enqueue.h"
#include "exitcode.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"
#include "versionkeys.h"

/* FOR UPDATE: two imports of one certificate serialize, so the
 * already-imported check and the insert see the same rows. */
static const char lock_certificate_sql[] =
	"SELECT id FROM managed_certificates WHERE id = $1 FOR UPDATE";

static const char existing_version_sql[] =
	"SELECT id, certctl_rfc3339(not_after) FROM certificate_versions"
	" WHERE certificate_id = $1 AND fingerprint_sha256 = $2";

/* $9, the sealed key, is a binary parameter. */
static const char insert_version_sql[] =
	"INSERT INTO certificate_versions (id, certificate_id, serial_number, subject, not_before,"
	" not_after, fingerprint_sha256, cert_pem, chain_pem, key_sealed, key_algorithm)"
	" VALUES ('cv-' || gen_random_uuid(), $1, $2, $3, $4::timestamptz, $5::timestamptz, $6, $7,"
	" $8, $9, $10)"
	" RETURNING id, certctl_rfc3339(not_after)";

static const char set_common_name_sql[] =
	"UPDATE managed_certificates SET common_name = COALESCE($2, common_name), updated_at = now()"
	" WHERE id = $1";

static json_object *version_line(const char *certificate_id, const PGresult *result,
				 const char *fingerprint, bool already_imported)
{
	json_object *line = json_object_new_object();

	json_object_object_add(line, "certificate_id", json_object_new_string(certificate_id));
	json_add_text_column(line, "version_id", result, 0, 0);
	json_object_object_add(line, "fingerprint_sha256", json_object_new_string(fingerprint));
	json_add_text_column(line, "not_after", result, 0, 1);
	if (already_imported)
		json_object_object_add(line, "already_imported", json_object_new_boolean(1));
	return line;
}

static int record_import(PGconn *conn, const char *certificate_id, json_object *line,
			 struct error *err)
{
	static const char *const keys[] = { "version_id", "fingerprint_sha256", "not_after" };
	struct audit_event event = { NULL, "User", "certificate_version_imported", "certificate",
				     certificate_id, NULL };
	json_object *details = json_object_new_object(), *value;
	int code;

	/* Only what identifies the version: never key material. */
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_object_object_get_ex(line, keys[i], &value))
			json_object_object_add(details, keys[i], json_object_get(value));
	event.details = details;
	code = audit_record(conn, &event, err);
	json_object_put(details);
	return code;
}

/*
 * In the open transaction: seal under the control host's key (keyless: no
 * key), insert, name the certificate, seal to every enrolled agent that
 * deploys it, enqueue.
 */
static int store_version(PGconn *conn, const char *certificate_id, const struct pem_bundle *bundle,
			 bool keyless, struct sealing_key *sealing_key, bool enqueue,
			 json_object *lines, struct error *err)
{
	unsigned char *blob = NULL;
	size_t blob_length = 0;
	PGresult *result = NULL;
	struct enqueue_counts counts;
	long sealed;
	int code;

	if (keyless != (bundle->key_pem == NULL))
		return error_set(err, EXIT_INTERNAL, "%s: a version %s a key stored as %s",
				 certificate_id, keyless ? "with" : "without", keyless ? "keyless" : "sealed");
	if (!keyless &&
	    ((code = sealing_key_load(sealing_key, err)) != 0 ||
	     (code = sealed_seal(sealing_key->bytes, certificate_id, bundle->key_pem, bundle->key_length,
				 &blob, &blob_length, err)) != 0))
		goto out;
	{
		const char *params[10] = { certificate_id, bundle->serial_number, bundle->subject,
					   bundle->not_before, bundle->not_after,
					   bundle->fingerprint_sha256, bundle->cert_pem,
					   bundle->chain_pem, (const char *)blob, bundle->key_algorithm };
		const int lengths[10] = { [8] = (int)blob_length };
		const int formats[10] = { [8] = 1 };
		const char *name_params[2] = { certificate_id, bundle->common_name };

		if ((result = db_query_binary(conn, insert_version_sql, 10, params, lengths, formats,
					      err)) == NULL ||
		    (code = db_command(conn, set_common_name_sql, 2, name_params, err)) != 0) {
			code = err->code;
			goto out;
		}
	}
	json_object_array_add(lines, version_line(certificate_id, result, bundle->fingerprint_sha256, false));
	if (!keyless && (code = version_keys_fill(conn, certificate_id, NULL, sealing_key, &sealed, err)) != 0)
		goto out;
	if (enqueue) {
		code = enqueue_deployment_jobs(conn, certificate_id, sealing_key, lines, &counts, err);
		/* A renewed certificate is kept even when it has nowhere to go yet. */
		if (code == EXIT_NOT_FOUND) {
			log_warn("%s; version stored, no job enqueued", err->message);
			error_clear(err);
			code = 0;
		}
	}
out:
	PQclear(result);
	free(blob);
	return code;
}

int certificate_version_store(PGconn *conn, const char *certificate_id, const struct pem_bundle *bundle,
			      struct sealing_key *sealing_key, bool enqueue, json_object *lines,
			      struct error *err)
{
	return store_version(conn, certificate_id, bundle, false, sealing_key, enqueue, lines, err);
}

int certificate_version_store_keyless(PGconn *conn, const char *certificate_id,
				      const struct pem_bundle *bundle, bool enqueue, json_object *lines,
				      struct error *err)
{
	/* Enqueue seals nothing for a keyless current version: this key is never loaded. */
	struct sealing_key unused = { { 0 }, false };

	return store_version(conn, certificate_id, bundle, true, &unused, enqueue, lines, err);
}

int certificate_version_import(PGconn *conn, const char *certificate_id,
			       const struct pem_bundle *bundle, struct sealing_key *sealing_key,
			       bool enqueue, FILE *output, struct error *err)
{
	const char *params[2] = { certificate_id, bundle->fingerprint_sha256 };
	json_object *lines = json_object_new_array();
	PGresult *result = NULL;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		goto out;
	if ((result = db_query(conn, lock_certificate_sql, 1, params, err)) == NULL) {
		code = err->code;
		goto rollback;
	}
	if (PQntuples(result) == 0) {
		code = error_set(err, EXIT_NOT_FOUND, "%s: no such certificate", certificate_id);
		goto rollback;
	}
	PQclear(result);
	if ((result = db_query(conn, existing_version_sql, 2, params, err)) == NULL) {
		code = err->code;
		goto rollback;
	}
	if (PQntuples(result) > 0)
		json_object_array_add(lines, version_line(certificate_id, result,
							  bundle->fingerprint_sha256, true));
	else if ((code = store_version(conn, certificate_id, bundle, false, sealing_key, enqueue,
				       lines, err)) != 0 ||
		 (code = record_import(conn, certificate_id, json_object_array_get_idx(lines, 0),
				       err)) != 0)
		goto rollback;
	if ((code = db_commit(conn, err)) != 0)
		goto out;
	for (size_t i = 0; i < json_object_array_length(lines) && code == 0; i++)
		code = jsonl_write(output, json_object_array_get_idx(lines, i), err);
	goto out;
rollback:
	db_rollback(conn);
out:
	PQclear(result);
	json_object_put(lines);
	return code;
}
