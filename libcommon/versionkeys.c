#include <stdlib.h>

#include <openssl/crypto.h>

#include "agentkey.h"
#include "db.h"
#include "exitcode.h"
#include "versionkeys.h"

/*
 * $1 certificate (NULL: any of $2's), $2 agent (NULL: any). The current
 * version is the newest; versions made on an agent have no key to seal.
 */
static const char missing_version_keys_sql[] =
	"WITH current AS ("
	" SELECT DISTINCT ON (v.certificate_id) v.id, v.certificate_id, v.fingerprint_sha256, v.key_sealed"
	" FROM certificate_versions v"
	" WHERE ($1::text IS NULL OR v.certificate_id = $1)"
	" AND ($2::text IS NULL OR v.certificate_id IN (SELECT ct.certificate_id FROM certificate_targets ct"
	"      JOIN deployment_targets t ON t.id = ct.target_id WHERE t.agent_id = $2 AND t.retired_at IS NULL))"
	" ORDER BY v.certificate_id, v.created_at DESC, v.id DESC)"
	" SELECT DISTINCT c.id, c.certificate_id, c.fingerprint_sha256, c.key_sealed, a.id, a.public_key"
	" FROM current c"
	" JOIN certificate_targets ct ON ct.certificate_id = c.certificate_id"
	" JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL"
	" JOIN agents a ON a.id = t.agent_id AND a.retired_at IS NULL AND a.public_key IS NOT NULL"
	" WHERE ($2::text IS NULL OR a.id = $2) AND c.key_sealed IS NOT NULL"
	" AND NOT EXISTS (SELECT 1 FROM version_keys k WHERE k.version_id = c.id AND k.agent_id = a.id)"
	" ORDER BY 2, 5";
enum { COL_VERSION, COL_CERTIFICATE, COL_FINGERPRINT, COL_KEY_SEALED, COL_AGENT, COL_PUBLIC_KEY };

static const char insert_version_key_sql[] =
	"INSERT INTO version_keys (version_id, agent_id, sealed_key) VALUES ($1, $2, $3)"
	" ON CONFLICT (version_id, agent_id) DO UPDATE SET sealed_key = EXCLUDED.sealed_key,"
	" created_at = now()";

int sealing_key_load(struct sealing_key *key, struct error *err)
{
	int code;

	if (key->loaded)
		return 0;
	if ((code = sealed_load_key(NULL, key->bytes, err)) != 0)
		return code;
	key->loaded = true;
	return 0;
}

void sealing_key_wipe(struct sealing_key *key)
{
	OPENSSL_cleanse(key->bytes, sizeof(key->bytes));
	key->loaded = false;
}

/* Opens row's control-host copy and seals it to row's agent: one version_keys row. */
static int seal_for_agent(PGconn *conn, const PGresult *rows, int row, const struct sealing_key *key,
			  struct error *err)
{
	struct version_key_binding binding = {
		PQgetvalue(rows, row, COL_VERSION), PQgetvalue(rows, row, COL_AGENT),
		PQgetvalue(rows, row, COL_FINGERPRINT),
	};
	const char *certificate_id = PQgetvalue(rows, row, COL_CERTIFICATE);
	unsigned char public_key[AGENT_KEY_BYTES];
	unsigned char *blob, *key_pem = NULL, *sealed = NULL;
	size_t blob_length = 0, key_length = 0, sealed_length = 0;
	int code;

	if ((code = agent_public_key_parse(PQgetvalue(rows, row, COL_PUBLIC_KEY), public_key, err)) != 0)
		return error_prefix(err, "agent %s: public key", binding.agent_id);
	blob = PQunescapeBytea((const unsigned char *)PQgetvalue(rows, row, COL_KEY_SEALED), &blob_length);
	if (blob == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	code = sealed_open(key->bytes, certificate_id, blob, blob_length, &key_pem, &key_length, err);
	PQfreemem(blob);
	if (code != 0)
		return error_prefix(err, "%s: version %s: private key", certificate_id, binding.version_id);
	code = version_key_seal(public_key, &binding, key_pem, key_length, &sealed, &sealed_length, err);
	OPENSSL_cleanse(key_pem, key_length);
	free(key_pem);
	if (code == 0) {
		const char *params[3] = { binding.version_id, binding.agent_id, (const char *)sealed };
		const int lengths[3] = { 0, 0, (int)sealed_length };
		const int formats[3] = { 0, 0, 1 };
		PGresult *result = db_query_binary(conn, insert_version_key_sql, 3, params, lengths, formats, err);

		code = result ? 0 : err->code;
		PQclear(result);
	}
	free(sealed);
	return code;
}

int version_keys_fill(PGconn *conn, const char *certificate_id, const char *agent_id,
		      struct sealing_key *key, long *sealed, struct error *err)
{
	const char *params[2] = { certificate_id, agent_id };
	PGresult *rows;
	int code = 0;

	*sealed = 0;
	if ((rows = db_query(conn, missing_version_keys_sql, 2, params, err)) == NULL)
		return err->code;
	if (PQntuples(rows) > 0)
		code = sealing_key_load(key, err);
	for (int row = 0; code == 0 && row < PQntuples(rows); row++)
		if ((code = seal_for_agent(conn, rows, row, key, err)) == 0)
			(*sealed)++;
	PQclear(rows);
	return code;
}
