#include <ctype.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "exitcode.h"
#include "jsonl.h"
#include "tlsprobe.h"
#include "verify.h"

/* A certificate's current version is its newest row (HACKING.md, schema notes). */
static const char current_fingerprint_sql[] =
	"SELECT (SELECT v.fingerprint_sha256 FROM certificate_versions v"
	"         WHERE v.certificate_id = c.id"
	"         ORDER BY v.created_at DESC, v.id DESC LIMIT 1)"
	"  FROM managed_certificates c WHERE c.id = $1";

bool verify_normalize_fingerprint(const char *text, char hex[SHA256_HEX_SIZE])
{
	size_t digits = 0;

	for (const char *p = text; *p; p++) {
		if (*p == ':' && digits > 0 && digits % 2 == 0 && p[1] != '\0' && p[1] != ':')
			continue;
		if (!isxdigit((unsigned char)*p) || digits == SHA256_HEX_SIZE - 1)
			return false;
		hex[digits++] = (char)tolower((unsigned char)*p);
	}
	hex[digits] = '\0';
	return digits == SHA256_HEX_SIZE - 1;
}

/*
 * The SNI tls_probe() will send: the flag, else the endpoint's host unless it
 * is an IP literal (NULL then). Checks the endpoint's shape before any
 * database work, so a typo is a usage error.
 */
static int effective_sni(const char *endpoint_text, const char *sni, struct tls_endpoint *endpoint,
			 const char **sent, struct error *err)
{
	if (tls_endpoint_parse(endpoint_text, endpoint, err) != 0)
		return err->code;
	if (sni != NULL && sni[0] != '\0')
		*sent = sni;
	else
		*sent = endpoint->host_is_ip ? NULL : endpoint->host;
	return 0;
}

static int current_version_fingerprint(const char *dsn, const char *certificate_id,
				       char hex[SHA256_HEX_SIZE], struct error *err)
{
	const char *params[] = { certificate_id };
	PGresult *result = NULL;
	PGconn *conn;
	int code = 0;

	if ((conn = db_connect(dsn, err)) == NULL)
		return err->code;
	if ((result = db_query(conn, current_fingerprint_sql, 1, params, err)) == NULL)
		code = err->code;
	else if (PQntuples(result) == 0)
		code = error_set(err, EXIT_NOT_FOUND, "%s: no such certificate", certificate_id);
	else if (PQgetisnull(result, 0, 0))
		code = error_set(err, EXIT_NOT_FOUND, "%s: certificate has no version", certificate_id);
	else if (!verify_normalize_fingerprint(PQgetvalue(result, 0, 0), hex))
		code = error_set(err, EXIT_DATA, "%s: stored fingerprint is not SHA-256 hex",
				 certificate_id);
	PQclear(result);
	db_disconnect(conn);
	return code;
}

static json_object *report(const struct verify_request *request, const char *sni,
			   const struct tls_probe_result *probe, const char *expected)
{
	json_object *line = json_object_new_object();

	json_object_object_add(line, "endpoint", json_object_new_string(request->endpoint));
	json_object_object_add(line, "sni", sni ? json_object_new_string(sni) : NULL);
	json_object_object_add(line, "fingerprint_sha256",
			       json_object_new_string(probe->fingerprint_sha256));
	json_object_object_add(line, "not_after", json_object_new_string(probe->not_after));
	json_object_object_add(line, "days_left", json_object_new_int64(probe->days_left));
	json_object_object_add(line, "matches",
			       expected ? json_object_new_boolean(
						  strcmp(expected, probe->fingerprint_sha256) == 0)
					: NULL);
	json_object_object_add(line, "verified_chain",
			       json_object_new_boolean(probe->verified_chain));
	if (!probe->verified_chain)
		json_object_object_add(line, "verify_error",
				       json_object_new_string(probe->verify_error));
	return line;
}

int verify_endpoint(const struct verify_request *request, FILE *output, struct error *err)
{
	struct tls_endpoint endpoint;
	char stored[SHA256_HEX_SIZE];
	const char *sni = NULL, *expected = request->expect_sha256;
	struct tls_probe_result probe;
	json_object *line;
	int code;

	if ((code = effective_sni(request->endpoint, request->sni, &endpoint, &sni, err)) != 0)
		return code;
	if (request->certificate_id != NULL) {
		code = current_version_fingerprint(request->dsn, request->certificate_id, stored, err);
		if (code != 0)
			return code;
		expected = stored;
	}
	code = tls_probe(request->endpoint, sni, request->ca_file, request->timeout_seconds,
			 &probe, err);
	if (code != 0)
		return code;
	line = report(request, sni, &probe, expected);
	code = jsonl_write(output, line, err);
	json_object_put(line);
	if (code == 0 && expected != NULL && strcmp(expected, probe.fingerprint_sha256) != 0)
		code = error_set(err, EXIT_FAILED_CLEANLY, "%s: fingerprint mismatch: serves %s, expected %s",
				 request->endpoint, probe.fingerprint_sha256, expected);
	return code;
}
