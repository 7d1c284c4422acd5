#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "audit.h"
#include "csrmake.h"
#include "csrsubmit.h"
#include "db.h"
#include "exitcode.h"
#include "jsonl.h"
#include "keystore.h"
#include "log.h"
#include "scope.h"
#include "signals.h"

/* What the agent's role may read of the job and its certificate (row-level security decides). */
static const char load_job_sql[] =
	"SELECT j.status, j.type, j.certificate_id, m.key_mode, m.key_type, m.common_name,"
	" array_to_json(COALESCE(m.sans, '{}'))::text, m.id IS NOT NULL"
	" FROM jobs j LEFT JOIN managed_certificates m ON m.id = j.certificate_id WHERE j.id = $1";
enum { COL_STATUS, COL_TYPE, COL_CERTIFICATE_ID, COL_KEY_MODE, COL_KEY_TYPE, COL_COMMON_NAME, COL_SANS,
       COL_CERTIFICATE_SEEN };

/* A job this agent answered already has left its sight: the CSR is still its own to see. */
static const char submitted_sql[] =
	"SELECT certctl_rfc3339(submitted_at) FROM job_csrs WHERE job_id = $1";

/* The database checks the caller is this job's agent and the job still awaits its CSR. */
static const char submit_sql[] =
	"SELECT certctl_rfc3339(certctl_submit_csr($1, $2, $3)), certctl_session_agent()";

/* A job's names: the common name (else the first SAN) and the SANs, pointing into names. */
struct certificate_names {
	json_object *names;
	const char *common_name;
	const char **sans;
	size_t san_count;
};

static void certificate_names_free(struct certificate_names *names)
{
	json_object_put(names->names);
	free(names->sans);
}

static int certificate_names_read(const PGresult *row, const char *certificate_id,
				  struct certificate_names *names, struct error *err)
{
	size_t count;

	memset(names, 0, sizeof(*names));
	names->names = json_tokener_parse(PQgetvalue(row, 0, COL_SANS));
	if (!json_object_is_type(names->names, json_type_array))
		return error_set(err, EXIT_INTERNAL, "%s: sans did not read as a list", certificate_id);
	count = json_object_array_length(names->names);
	if ((names->sans = calloc(count + 1, sizeof(*names->sans))) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		json_object *san = json_object_array_get_idx(names->names, i);

		names->sans[names->san_count++] = json_object_is_type(san, json_type_string)
							  ? json_object_get_string(san) : "";
	}
	names->common_name = !PQgetisnull(row, 0, COL_COMMON_NAME) ? PQgetvalue(row, 0, COL_COMMON_NAME)
				: count > 0 ? names->sans[0] : NULL;
	if (names->common_name == NULL)
		return error_set(err, EXIT_DATA, "%s: the certificate has neither a common name nor SANs",
				 certificate_id);
	return 0;
}

static int record_submission(PGconn *conn, const char *job_id, const char *certificate_id,
			     const char *agent_id, const char *hash, const char *submitted_at,
			     struct error *err)
{
	json_object *details = json_object_new_object();
	struct audit_event event = { agent_id, "Agent", "csr_submitted", "job", job_id, details };
	int code;

	/* What identifies the key, never the key. */
	json_object_object_add(details, "certificate_id", json_object_new_string(certificate_id));
	json_object_object_add(details, "public_key_sha256", json_object_new_string(hash));
	json_object_object_add(details, "submitted_at", json_object_new_string(submitted_at));
	code = audit_record(conn, &event, err);
	json_object_put(details);
	return code;
}

/* The CSR submitted and audited, or neither. */
static int submit(PGconn *conn, const char *job_id, const char *certificate_id, const char *csr_pem,
		  const char *hash, json_object **result_line, struct error *err)
{
	const char *params[3] = { job_id, csr_pem, hash };
	PGresult *result = NULL;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		return code;
	if ((result = db_query(conn, submit_sql, 3, params, err)) == NULL) {
		code = err->code;
		goto rollback;
	}
	if ((code = record_submission(conn, job_id, certificate_id, PQgetvalue(result, 0, 1), hash,
				      PQgetvalue(result, 0, 0), err)) != 0)
		goto rollback;
	if ((code = db_commit(conn, err)) != 0)
		goto out;
	*result_line = json_object_new_object();
	json_object_object_add(*result_line, "job_id", json_object_new_string(job_id));
	json_object_object_add(*result_line, "certificate_id", json_object_new_string(certificate_id));
	json_object_object_add(*result_line, "status", json_object_new_string("CSRSubmitted"));
	json_object_object_add(*result_line, "public_key_sha256", json_object_new_string(hash));
	goto out;
rollback:
	db_rollback(conn);
out:
	PQclear(result);
	return code;
}

/* Refuses, before any key is made, what no CSR can help: 0 when the job is one to answer. */
static int job_check(PGconn *conn, const char *job_id, const PGresult *row, struct error *err)
{
	const char *params[1] = { job_id };
	PGresult *submitted;
	int code;

	if (PQntuples(row) == 0) {
		if ((submitted = db_query(conn, submitted_sql, 1, params, err)) == NULL)
			return err->code;
		code = PQntuples(submitted) > 0
			       ? error_set(err, EXIT_TEMPORARY, "its CSR was submitted at %s; the job is the issuer's now; left alone",
					   PQgetvalue(submitted, 0, 0))
			       : 0;
		PQclear(submitted);
		if (code != 0)
			return code;
		/* Another agent's job is invisible to an agent's role: that is 77, not 66. */
		if ((code = scope_check_job(conn, job_id, err)) != 0)
			return code;
		return error_set(err, EXIT_NOT_FOUND, "no such job");
	}
	if (strcmp(PQgetvalue(row, 0, COL_STATUS), "AwaitingCSR") != 0 ||
	    (strcmp(PQgetvalue(row, 0, COL_TYPE), "Issuance") != 0 &&
	     strcmp(PQgetvalue(row, 0, COL_TYPE), "Renewal") != 0))
		return error_set(err, EXIT_TEMPORARY, "job is %s %s, not awaiting a CSR; left alone",
				 PQgetvalue(row, 0, COL_TYPE), PQgetvalue(row, 0, COL_STATUS));
	if (PQgetisnull(row, 0, COL_CERTIFICATE_ID))
		return error_set(err, EXIT_NOT_FOUND, "job has no certificate");
	if (strcmp(PQgetvalue(row, 0, COL_CERTIFICATE_SEEN), "t") != 0)
		return error_set(err, EXIT_NOT_FOUND, "%s: no such certificate", PQgetvalue(row, 0, COL_CERTIFICATE_ID));
	if (strcmp(PQgetvalue(row, 0, COL_KEY_MODE), "agent") != 0)
		return error_set(err, EXIT_CONFIG,
				 "%s: key_mode is %s: its keys are made on the control host, not by an agent; left alone",
				 PQgetvalue(row, 0, COL_CERTIFICATE_ID), PQgetvalue(row, 0, COL_KEY_MODE));
	return 0;
}

/* One AwaitingCSR job: key staged, CSR built and submitted; the staged key removed if not. */
static int answer_job(PGconn *conn, struct key_store *store, const char *key_dir, const char *job_id,
		      FILE *output, struct error *err)
{
	const char *params[1] = { job_id };
	struct certificate_names names = { 0 };
	char hash[SHA256_HEX_SIZE] = "", *csr_pem = NULL;
	const char *certificate_id;
	json_object *result_line = NULL;
	PGresult *row;
	EVP_PKEY *key = NULL;
	bool staged = false;
	int code;

	if ((row = db_query(conn, load_job_sql, 1, params, err)) == NULL)
		return err->code;
	if ((code = job_check(conn, job_id, row, err)) != 0)
		goto out;
	certificate_id = PQgetvalue(row, 0, COL_CERTIFICATE_ID);
	if ((code = certificate_names_read(row, certificate_id, &names, err)) != 0)
		goto out;
	if (store->fd < 0 && (code = key_store_open(key_dir, true, store, err)) != 0)
		goto out;
	if ((key = private_key_generate(PQgetvalue(row, 0, COL_KEY_TYPE), err)) == NULL) {
		code = error_prefix(err, "%s", certificate_id);
		goto out;
	}
	if ((code = csr_build(key, names.common_name, names.sans, names.san_count, &csr_pem, err)) != 0) {
		error_prefix(err, "%s", certificate_id);
		goto out;
	}
	/* On disk before the CSR leaves: a submitted CSR always has its key. */
	if ((code = key_store_stage(store, certificate_id, key, hash, err)) != 0)
		goto out;
	staged = true;
	code = submit(conn, job_id, certificate_id, csr_pem, hash, &result_line, err);
	/* A connection lost at COMMIT may have committed: then the key is needed. */
	staged = code != 0 && code != EXIT_UNAVAILABLE;
	if (code != 0)
		goto out;
	code = jsonl_write(output, result_line, err);
out:
	if (staged)
		key_store_unstage(store, certificate_id, hash);
	json_object_put(result_line);
	certificate_names_free(&names);
	EVP_PKEY_free(key);
	free(csr_pem);
	PQclear(row);
	return code;
}

int csr_job_lines(PGconn *conn, const char *key_dir, FILE *input, FILE *output, struct error *err)
{
	struct key_store store = { "", -1 };
	struct jsonl_reader reader;
	json_object *line;
	int status, code = 0;

	jsonl_reader_init(&reader, input);
	while (!signals_stop_requested() && (status = jsonl_read(&reader, &line, err)) != 0) {
		const char *job_status, *job_id;

		if (status < 0) {
			log_error("%s", err->message);
			code = exit_code_most_serious(code, EXIT_DATA);
			continue;
		}
		job_status = json_string_field(line, "status");
		job_id = json_string_field(line, "id");
		if (job_status == NULL || strcmp(job_status, "AwaitingCSR") != 0) {
			if (jsonl_forward(&reader, output, err) != 0) {
				log_error("%s", err->message);
				code = exit_code_most_serious(code, err->code);
				json_object_put(line);
				break;
			}
		} else if (job_id == NULL) {
			log_error("line %ld: an AwaitingCSR job line needs a string id", reader.line_number);
			code = exit_code_most_serious(code, EXIT_DATA);
		} else if (answer_job(conn, &store, key_dir, job_id, output, err) != 0) {
			log_error("%s: %s", job_id, err->message);
			code = exit_code_most_serious(code, err->code);
		}
		json_object_put(line);
	}
	jsonl_reader_free(&reader);
	key_store_close(&store);
	error_clear(err);
	if (signals_stop_requested())
		code = exit_code_most_serious(code, EXIT_TEMPORARY);
	return code;
}
