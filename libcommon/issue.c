#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "certnames.h"
#include "certversion.h"
#include "claim.h"
#include "csrmake.h"
#include "db.h"
#include "exitcode.h"
#include "issue.h"
#include "issuer.h"
#include "jobs.h"
#include "jsonl.h"
#include "log.h"
#include "pem.h"
#include "signals.h"

#define ISSUE_JOB_TYPES "Issuance,Renewal"
/* Kept in the lease beyond the issuer's timeout, for the checks and the store. */
#define ISSUE_LEASE_MARGIN_SECONDS 120
#define ISSUE_ACTOR "certctl-issue"

static const char load_job_sql[] =
	"SELECT m.id IS NOT NULL, m.common_name, array_to_json(m.sans)::text, m.key_type, m.key_mode,"
	" m.issuer_id, i.type, i.config::text, c.csr_pem, c.public_key_sha256"
	" FROM jobs j LEFT JOIN managed_certificates m ON m.id = j.certificate_id"
	" LEFT JOIN issuers i ON i.id = m.issuer_id LEFT JOIN job_csrs c ON c.job_id = j.id"
	" WHERE j.id = $1";
enum { COL_CERTIFICATE_EXISTS, COL_COMMON_NAME, COL_SANS, COL_KEY_TYPE, COL_KEY_MODE, COL_ISSUER_ID,
       COL_ISSUER_TYPE, COL_ISSUER_CONFIG, COL_CSR_PEM, COL_CSR_PUBLIC_KEY };

/* One claimed job and what it asks for. */
struct job {
	const char *id, *type, *certificate_id, *claimed_by;
	int64_t attempts, max_attempts;
	struct job_claim claim;
	PGresult *row;
	json_object *sans;              /* the certificate's sans, parsed */
	const char **names;             /* the common name, then the other sans */
	size_t name_count;
	bool agent_mode;
	struct issuer issuer;
};

/* How a job ended in this run, for its result line, audit event and notification. */
struct outcome {
	const char *status;             /* "Completed", "Retrying" or "Failed" */
	int code;
	char error[ERROR_MESSAGE_MAX];
	char scheduled_at[JOB_TIME_SIZE];
	json_object *version;           /* the stored version's line, when Completed */
	int deployment_jobs;
};

static const char *column(const struct job *job, int column_number)
{
	return PQgetisnull(job->row, 0, column_number) ? NULL : PQgetvalue(job->row, 0, column_number);
}

static const char *renewal_or_issuance(const struct job *job)
{
	return strcmp(job->type, "Renewal") == 0 ? "renewal" : "issuance";
}

static void job_release(struct job *job)
{
	issuer_free(&job->issuer);
	free(job->names);
	json_object_put(job->sans);
	PQclear(job->row);
}

/* The names asked for: the first SAN, else the common name, then the other SANs. */
static int collect_names(struct job *job, struct error *err)
{
	const char *common_name = column(job, COL_COMMON_NAME);
	size_t count;

	job->sans = json_tokener_parse(column(job, COL_SANS) ? column(job, COL_SANS) : "[]");
	count = job->sans != NULL && json_object_is_type(job->sans, json_type_array)
			? json_object_array_length(job->sans) : 0;
	if (count > 0)
		common_name = json_object_get_string(json_object_array_get_idx(job->sans, 0));
	if (common_name == NULL || common_name[0] == '\0')
		return error_set(err, EXIT_CONFIG, "%s: the certificate has neither sans nor a common name",
				 job->certificate_id);
	if ((job->names = calloc(count + 1, sizeof(*job->names))) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	job->names[job->name_count++] = common_name;
	for (size_t i = 1; i < count; i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(job->sans, i));

		if (strcasecmp(name, common_name) != 0)
			job->names[job->name_count++] = name;
	}
	return 0;
}

/*
 * Reads what the job asks for. A database failure returns its code with
 * *permanent false; a job that can never be issued as it stands (no
 * certificate, no issuer, a bad issuer config, no CSR) returns its code with
 * *permanent true.
 */
static int load_job(PGconn *conn, struct job *job, bool *permanent, struct error *err)
{
	const char *params[1] = { job->id };
	const char *issuer_id;
	int code;

	*permanent = false;
	if ((job->row = db_query(conn, load_job_sql, 1, params, err)) == NULL)
		return err->code;
	*permanent = true;
	if (PQntuples(job->row) != 1 || strcmp(PQgetvalue(job->row, 0, COL_CERTIFICATE_EXISTS), "t") != 0)
		return error_set(err, EXIT_NOT_FOUND, "no such certificate: %s",
				 job->certificate_id ? job->certificate_id : "(none named)");
	if ((issuer_id = column(job, COL_ISSUER_ID)) == NULL)
		return error_set(err, EXIT_CONFIG, "%s: the certificate has no issuer", job->certificate_id);
	if ((code = issuer_parse(issuer_id, column(job, COL_ISSUER_TYPE), column(job, COL_ISSUER_CONFIG),
				 &job->issuer, err)) != 0 ||
	    (code = collect_names(job, err)) != 0)
		return code;
	job->agent_mode = strcmp(column(job, COL_KEY_MODE), "agent") == 0;
	if (job->agent_mode && column(job, COL_CSR_PEM) == NULL)
		return error_set(err, EXIT_NOT_FOUND, "%s: key_mode agent, and no agent submitted a CSR for this job",
				 job->certificate_id);
	return 0;
}

/* The CSR an agent submitted, checked: its signature, its key's digest as recorded, its names. */
static int submitted_csr(const struct job *job, const struct name_request *names, X509_REQ **request,
			 struct error *err)
{
	const char *pem = column(job, COL_CSR_PEM);
	BIO *bio = BIO_new_mem_buf(pem, -1);
	char digest[SHA256_HEX_SIZE];
	EVP_PKEY *public_key;
	int code = 0;

	*request = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (*request == NULL || (public_key = X509_REQ_get0_pubkey(*request)) == NULL)
		code = error_set(err, EXIT_DATA, "the submitted CSR does not parse");
	else if (X509_REQ_verify(*request, public_key) != 1)
		code = error_set(err, EXIT_DATA, "the submitted CSR's signature does not verify");
	else if (public_key_sha256(public_key, digest) != 0 ||
		 strcmp(digest, column(job, COL_CSR_PUBLIC_KEY)) != 0)
		code = error_set(err, EXIT_DATA, "the submitted CSR's public key is not the one recorded with it");
	else
		code = csr_names_check(*request, names, err);
	ERR_clear_error();
	if (code != 0)
		error_prefix(err, "%s", job->certificate_id);
	return code;
}

/*
 * The key (made here, or the CSR's public key) and the CSR PEM the issuer
 * gets: *key is the caller's to free; *csr_pem is malloc'd, or points into
 * the job's row (*csr_owned false). Failures are permanent for the job.
 */
static int make_request(const struct job *job, const struct name_request *names, EVP_PKEY **key,
			char **csr_pem, bool *csr_owned, struct error *err)
{
	X509_REQ *request = NULL;
	int code;

	*key = NULL;
	*csr_pem = NULL;
	*csr_owned = false;
	if (job->agent_mode) {
		if ((code = submitted_csr(job, names, &request, err)) == 0) {
			*key = X509_REQ_get_pubkey(request);
			*csr_pem = (char *)column(job, COL_CSR_PEM);
		}
		X509_REQ_free(request);
		return code;
	}
	if ((*key = private_key_generate(column(job, COL_KEY_TYPE), err)) == NULL)
		return err->code;
	*csr_owned = true;
	if ((code = csr_build(*key, job->names[0], job->names + 1, job->name_count - 1, csr_pem, err)) != 0)
		error_prefix(err, "%s", job->certificate_id);
	return code;
}

static void add_string(json_object *object, const char *key, const char *value)
{
	json_object_object_add(object, key, value ? json_object_new_string(value) : NULL);
}

/* The audit event of the outcome; never key material. */
static int record_audit(PGconn *conn, const struct job *job, const struct outcome *outcome,
			struct error *err)
{
	json_object *details = json_object_new_object(), *value;
	char action[64];
	struct audit_event event = { ISSUE_ACTOR, "System", action, "job", job->id, details };
	int code;

	snprintf(action, sizeof(action), "%s_job_%s", renewal_or_issuance(job),
		 strcmp(outcome->status, "Completed") == 0 ? "completed" : "failed");
	add_string(details, "certificate_id", job->certificate_id);
	add_string(details, "issuer_id", job->row ? column(job, COL_ISSUER_ID) : NULL);
	json_object_object_add(details, "attempt", json_object_new_int64(job->attempts));
	if (outcome->version != NULL) {
		static const char *const keys[] = { "version_id", "serial_number", "fingerprint_sha256",
						    "not_after" };

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (json_object_object_get_ex(outcome->version, keys[i], &value))
				json_object_object_add(details, keys[i], json_object_get(value));
	} else {
		add_string(details, "error", outcome->error);
		add_string(details, "status", outcome->status);
		if (strcmp(outcome->status, "Retrying") == 0)
			add_string(details, "scheduled_at", outcome->scheduled_at);
	}
	code = audit_record(conn, &event, err);
	json_object_put(details);
	return code;
}

static int record_notification(PGconn *conn, const struct job *job, const struct outcome *outcome,
			       struct error *err)
{
	char message[ERROR_MESSAGE_MAX + 256];
	json_object *serial = NULL, *not_after = NULL;

	if (outcome->version != NULL) {
		json_object_object_get_ex(outcome->version, "serial_number", &serial);
		json_object_object_get_ex(outcome->version, "not_after", &not_after);
		snprintf(message, sizeof(message), "%s: certificate issued, serial %s, valid until %s",
			 job->certificate_id, json_object_get_string(serial),
			 json_object_get_string(not_after));
		return notification_record(conn, "renewal_success", job->certificate_id, job->id, message, err);
	}
	if (strcmp(outcome->status, "Retrying") == 0)
		snprintf(message, sizeof(message), "%s: %s failed on attempt %lld of %lld, retrying at %s: %s",
			 job->certificate_id ? job->certificate_id : "?", renewal_or_issuance(job),
			 (long long)job->attempts, (long long)job->max_attempts, outcome->scheduled_at,
			 outcome->error);
	else
		snprintf(message, sizeof(message), "%s: %s failed after %lld attempt%s: %s",
			 job->certificate_id ? job->certificate_id : "?", renewal_or_issuance(job),
			 (long long)job->attempts, job->attempts == 1 ? "" : "s", outcome->error);
	return notification_record(conn, "renewal_failure", job->certificate_id, job->id, message, err);
}

/*
 * In one transaction: the version (sealed, or keyless for agent mode), its
 * deployment jobs, the job Completed under its claim, the events.
 */
static int store_issued(PGconn *conn, const struct job *job, const struct pem_bundle *bundle,
			struct sealing_key *sealing_key, struct outcome *outcome, struct error *err)
{
	json_object *lines = json_object_new_array(), *result;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		goto out;
	code = job->agent_mode
		       ? certificate_version_store_keyless(conn, job->certificate_id, bundle, true, lines, err)
		       : certificate_version_store(conn, job->certificate_id, bundle, sealing_key, true, lines, err);
	if (code != 0)
		goto rollback;
	outcome->version = json_object_get(json_object_array_get_idx(lines, 0));
	json_object_object_add(outcome->version, "serial_number", json_object_new_string(bundle->serial_number));
	for (size_t i = 1; i < json_object_array_length(lines); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(lines, i), "id", NULL))
			outcome->deployment_jobs++;
	result = json_object_new_object();
	json_object_object_add(result, "version_id", json_object_get(json_object_object_get(outcome->version, "version_id")));
	add_string(result, "serial_number", bundle->serial_number);
	add_string(result, "fingerprint_sha256", bundle->fingerprint_sha256);
	add_string(result, "not_after", bundle->not_after);
	code = job_finish_fenced(conn, job->id, &job->claim, "Completed", NULL, result, err);
	json_object_put(result);
	if (code != 0 || (code = record_audit(conn, job, outcome, err)) != 0 ||
	    (code = record_notification(conn, job, outcome, err)) != 0)
		goto rollback;
	code = db_commit(conn, err);
	goto out;
rollback:
	db_rollback(conn);
out:
	if (code != 0) {
		json_object_put(outcome->version);
		outcome->version = NULL;
	}
	json_object_put(lines);
	return code;
}

/*
 * In one transaction: the job back to Pending with backoff (or Failed when
 * it has no attempt left, or when permanent), the events. Nothing else changes.
 */
static int store_failure(PGconn *conn, const struct job *job, bool permanent, struct outcome *outcome,
			 struct error *err)
{
	bool failed = true;
	int code;

	if ((code = db_begin(conn, err)) != 0)
		return code;
	if (permanent)
		code = job_finish_fenced(conn, job->id, &job->claim, "Failed", outcome->error, NULL, err);
	else
		code = job_retry_fenced(conn, job->id, &job->claim, outcome->error, &failed,
					outcome->scheduled_at, err);
	outcome->status = failed ? "Failed" : "Retrying";
	if (code != 0 || (code = record_audit(conn, job, outcome, err)) != 0 ||
	    (code = record_notification(conn, job, outcome, err)) != 0) {
		db_rollback(conn);
		return code;
	}
	return db_commit(conn, err);
}

static int write_outcome(FILE *output, const struct job *job, const struct outcome *outcome,
			 struct error *err)
{
	json_object *line = json_object_new_object(), *value;
	int code;

	add_string(line, "job_id", job->id);
	add_string(line, "certificate_id", job->certificate_id);
	add_string(line, "status", outcome->status);
	if (outcome->version != NULL) {
		static const char *const keys[] = { "version_id", "fingerprint_sha256", "not_after" };

		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (json_object_object_get_ex(outcome->version, keys[i], &value))
				json_object_object_add(line, keys[i], json_object_get(value));
		json_object_object_add(line, "deployment_jobs", json_object_new_int(outcome->deployment_jobs));
	} else {
		add_string(line, "error", outcome->error);
		if (strcmp(outcome->status, "Retrying") == 0)
			add_string(line, "scheduled_at", outcome->scheduled_at);
	}
	code = jsonl_write(output, line, err);
	json_object_put(line);
	return code;
}

/*
 * The issuer's run and its result checked: 0 with bundle filled, or the
 * issuer's failure (EXIT_FAILED_CLEANLY) in err.
 */
static int obtain_certificate(const struct job *job, const struct name_request *names, EVP_PKEY *key,
			      const char *csr_pem, struct pem_bundle *bundle, struct error *err)
{
	struct issuer_request request = { job->certificate_id, job->names, job->name_count, csr_pem };
	char *cert_pem = NULL;
	size_t cert_length = 0;
	int code;

	if ((code = issuer_run(&job->issuer, &request, &cert_pem, &cert_length, err)) == 0)
		code = pem_bundle_check_issued(cert_pem, cert_length, "the issued certificate", key,
					       !job->agent_mode,
					       job->agent_mode ? "the CSR's key" : "the key made for it",
					       names, bundle, err);
	free(cert_pem);
	if (code == EXIT_DATA)
		code = EXIT_FAILED_CLEANLY;
	if (code != 0)
		error_prefix(err, "issuer %s", column(job, COL_ISSUER_ID));
	return code;
}

/* What one claimed job line asks for; false when the line is not one of ours. */
static bool job_from_line(json_object *line, struct job *job)
{
	memset(job, 0, sizeof(*job));
	job->id = json_string_field(line, "id");
	job->type = json_string_field(line, "type");
	job->certificate_id = json_string_field(line, "certificate_id");
	job->claimed_by = json_string_field(line, "claimed_by");
	if (job->id == NULL || job->type == NULL || job->claimed_by == NULL ||
	    !json_int_field(line, "attempts", &job->attempts) ||
	    !json_int_field(line, "max_attempts", &job->max_attempts))
		return false;
	job->claim = (struct job_claim){ job->claimed_by, (int)job->attempts };
	return true;
}

/* One claimed job, start to end. Returns its code; err holds a failure to record it. */
static int issue_one(PGconn *conn, json_object *line, const struct issue_options *options,
		     FILE *output, struct error *err)
{
	struct outcome outcome = { .status = "Completed", .code = 0 };
	struct pem_bundle bundle = { 0 };
	struct error job_err = { 0, "" };
	struct name_request names;
	struct job job;
	EVP_PKEY *key = NULL;
	char *csr_pem = NULL;
	bool permanent = true, csr_owned = false;
	int code;

	if (!job_from_line(line, &job))
		return error_set(err, EXIT_INTERNAL, "a claimed job line without id, type or claim");
	if ((code = load_job(conn, &job, &permanent, &job_err)) != 0 && !permanent) {
		error_set(err, code, "%s: %s", job.id, job_err.message);
		goto out;
	}
	/* A slow issuer must not outlive the lease: the reaper would hand the job to another. */
	if (code == 0 && job.issuer.timeout_seconds + ISSUE_LEASE_MARGIN_SECONDS > DEFAULT_LEASE_SECONDS &&
	    (code = job_extend_lease_fenced(conn, job.id, &job.claim,
					    job.issuer.timeout_seconds + ISSUE_LEASE_MARGIN_SECONDS,
					    &job_err)) != 0) {
		error_set(err, code, "%s: %s", job.id, job_err.message);
		goto out;
	}
	if (code == 0) {
		names = (struct name_request){ job.names[0], job.names, job.name_count };
		if ((code = make_request(&job, &names, &key, &csr_pem, &csr_owned, &job_err)) == 0) {
			permanent = false;
			code = obtain_certificate(&job, &names, key, csr_pem, &bundle, &job_err);
		}
	}
	if (code == 0 && (code = store_issued(conn, &job, &bundle, options->sealing_key, &outcome, &job_err)) != 0) {
		/* Nothing was stored; the job stays Running for the reaper unless the claim is gone. */
		error_set(err, code, "%s: %s: certificate obtained but not stored: %s", job.id,
			  job.certificate_id, job_err.message);
		goto out;
	}
	if (code != 0) {
		outcome.code = code;
		snprintf(outcome.error, sizeof(outcome.error), "%s", job_err.message);
		if ((code = store_failure(conn, &job, permanent, &outcome, err)) != 0) {
			error_prefix(err, "%s: %s; recording that failed", job.id, outcome.error);
			goto out;
		}
		log_error("%s: %s%s%s", job.id, outcome.error,
			  strcmp(outcome.status, "Retrying") == 0 ? "; retrying at " : "; job failed",
			  strcmp(outcome.status, "Retrying") == 0 ? outcome.scheduled_at : "");
	}
	if (outcome.version != NULL)
		log_info("%s: %s: issued serial %s, valid until %s", job.id, job.certificate_id,
			 bundle.serial_number, bundle.not_after);
	if ((code = write_outcome(output, &job, &outcome, err)) == 0)
		code = outcome.code;
out:
	json_object_put(outcome.version);
	pem_bundle_free(&bundle);
	if (csr_owned)
		free(csr_pem);
	EVP_PKEY_free(key);
	job_release(&job);
	return code;
}

int issue_jobs(PGconn *conn, const struct issue_options *options, FILE *output, struct error *err)
{
	const struct claim_request request = {
		.job_type = ISSUE_JOB_TYPES, .worker = options->worker, .limit = 1,
		.lease_seconds = DEFAULT_LEASE_SECONDS,
	};
	int worst = 0, code;
	struct error job_err;

	do {
		for (long handled = 0; handled < options->limit; handled++) {
			json_object *claimed = json_object_new_array();
			long wait = handled > 0 ? 0 : options->follow ? -1 : options->wait_seconds;

			if (signals_stop_requested()) {
				json_object_put(claimed);
				return error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
			}
			if ((code = claim_jobs_collect(conn, &request, wait, claimed, err)) != 0) {
				json_object_put(claimed);
				return code;
			}
			if (json_object_array_length(claimed) == 0) {
				json_object_put(claimed);
				break;
			}
			error_clear(&job_err);
			code = issue_one(conn, json_object_array_get_idx(claimed, 0), options, output, &job_err);
			json_object_put(claimed);
			if (job_err.code != 0) {
				log_error("%s", job_err.message);
				if (PQstatus(conn) != CONNECTION_OK || job_err.code == EXIT_CANT_CREATE)
					return error_set(err, job_err.code, "%s", job_err.message);
			}
			worst = exit_code_most_serious(worst, code);
		}
	} while (options->follow);
	if (signals_stop_requested())
		return error_set(err, EXIT_TEMPORARY, "stopped by signal %d", signals_received());
	/* Each failure has been logged with its job. */
	error_clear(err);
	return worst;
}
