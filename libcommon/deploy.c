#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agentkey.h"
#include "atomic.h"
#include "audit.h"
#include "claim.h"
#include "csrmake.h"
#include "db.h"
#include "deploy.h"
#include "deployplan.h"
#include "digest.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "keystore.h"
#include "log.h"
#include "runcmd.h"
#include "scope.h"
#include "signals.h"
#include "sshdeploy.h"
#include "sshsession.h"
#include "tlsprobe.h"

static const char load_job_sql[] =
	"SELECT j.type, j.status, j.claimed_by, j.attempts, j.target_id, j.certificate_id,"
	" t.type, t.config::text, t.retired_at IS NOT NULL, a.id, a.retired_at IS NOT NULL,"
	" a.last_heartbeat_at IS NOT NULL AND a.last_heartbeat_at >= now() - make_interval(secs => $2::int)"
	" FROM jobs j LEFT JOIN deployment_targets t ON t.id = j.target_id"
	" LEFT JOIN agents a ON a.id = COALESCE(j.agent_id, t.agent_id)"
	" WHERE j.id = $1";
enum { COL_TYPE, COL_STATUS, COL_CLAIMED_BY, COL_ATTEMPTS, COL_TARGET_ID, COL_CERTIFICATE_ID,
       COL_TARGET_TYPE, COL_CONFIG, COL_TARGET_RETIRED, COL_AGENT_ID, COL_AGENT_RETIRED, COL_AGENT_ONLINE };

/* The current version and its key as sealed to this job's agent ($2), if it was. */
static const char current_version_sql[] =
	"SELECT v.id, v.cert_pem, v.chain_pem, k.sealed_key FROM certificate_versions v"
	" LEFT JOIN version_keys k ON k.version_id = v.id AND k.agent_id = $2"
	" WHERE v.certificate_id = $1 ORDER BY v.created_at DESC, v.id DESC LIMIT 1";

/* $5: the version installed (a Completed or Skipped deploy), else NULL; certctl-status reads it. */
static const char store_verification_sql[] =
	"UPDATE jobs SET verification_status = $2,"
	" verified_at = CASE WHEN $2 = 'skipped' THEN NULL ELSE now() END,"
	" verified_fingerprint = $3, verification_error = $4, updated_at = now(),"
	" deployed_fingerprint = (SELECT v.fingerprint_sha256 FROM certificate_versions v WHERE v.id = $5)"
	" WHERE id = $1";

/* One job in hand: what the line and the database say about it. */
struct job {
	const char *id;
	struct job_claim claim;
	const char *target_id;      /* from the database; may be NULL */
	const char *certificate_id;
	const char *agent_id;
	char *version_id;
	char stored_key[SHA256_HEX_SIZE];   /* the key came from the key store: its public key's digest */
};

struct verification {
	const char *status;         /* success, mismatch, failed, skipped */
	char expected[SHA256_HEX_SIZE];
	char served[SHA256_HEX_SIZE];
	char error[ERROR_MESSAGE_MAX];
};

/* Everything a run shares: the agent's key pair and key store are opened once, on first need. */
struct run {
	PGconn *conn;
	const struct deploy_options *options;
	FILE *output;
	struct agent_keypair agent_key;
	bool key_loaded;
	struct key_store key_store;
	bool key_store_opened;
};

/*
 * The fingerprint of the first certificate in pem, or (public_key) the
 * digest of its public key; false when it does not parse.
 */
static bool leaf_digest(const char *pem, bool public_key, char hex[SHA256_HEX_SIZE])
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bool ok = cert != NULL && (public_key ? public_key_sha256(X509_get0_pubkey(cert), hex)
					      : certificate_fingerprint(cert, hex)) == 0;

	X509_free(cert);
	BIO_free(bio);
	return ok;
}

static bool leaf_fingerprint(const char *pem, char hex[SHA256_HEX_SIZE])
{
	return leaf_digest(pem, false, hex);
}

static void verify_deployment(const struct run *run, const struct deploy_plan *plan,
			      const char *cert_pem, struct verification *verification)
{
	struct tls_probe_result probe;
	struct error err = { 0, "" };

	verification->status = "skipped";
	if (plan->verify_endpoint == NULL || run->options->verify == VERIFY_OFF)
		return;
	if (!leaf_fingerprint(cert_pem, verification->expected)) {
		verification->status = "failed";
		snprintf(verification->error, sizeof(verification->error), "the version's certificate does not parse");
		return;
	}
	for (int attempt = 0; attempt < VERIFY_ATTEMPTS; attempt++) {
		if (attempt > 0)
			nanosleep(&(struct timespec){ 0, VERIFY_RETRY_MILLISECONDS * 1000000L }, NULL);
		memset(&probe, 0, sizeof(probe));
		if (tls_probe(plan->verify_endpoint, plan->verify_sni, NULL, VERIFY_TIMEOUT_SECONDS,
			      &probe, &err) != 0) {
			verification->status = "failed";
			snprintf(verification->error, sizeof(verification->error), "%s", err.message);
			verification->served[0] = '\0';
			continue;
		}
		snprintf(verification->served, sizeof(verification->served), "%s", probe.fingerprint_sha256);
		if (strcmp(probe.fingerprint_sha256, verification->expected) == 0) {
			verification->status = "success";
			verification->error[0] = '\0';
			return;
		}
		verification->status = "mismatch";
		snprintf(verification->error, sizeof(verification->error),
			 "%s serves %s, expected %s", plan->verify_endpoint, probe.fingerprint_sha256,
			 verification->expected);
		if (signals_stop_requested())
			return;
	}
}

static json_object *verification_json(const struct verification *verification)
{
	json_object *object = json_object_new_object();

	json_object_object_add(object, "status", json_object_new_string(verification->status));
	if (verification->expected[0] != '\0')
		json_object_object_add(object, "expected_fingerprint", json_object_new_string(verification->expected));
	if (verification->served[0] != '\0')
		json_object_object_add(object, "served_fingerprint", json_object_new_string(verification->served));
	if (verification->error[0] != '\0')
		json_object_object_add(object, "error", json_object_new_string(verification->error));
	return object;
}

static int write_result_line(const struct run *run, const struct job *job, const char *status,
			     const char *error, json_object *metadata,
			     const struct verification *verification, struct error *err)
{
	json_object *line = json_object_new_object();
	int code;

	json_object_object_add(line, "job_id", json_object_new_string(job->id));
	json_object_object_add(line, "target_id", job->target_id ? json_object_new_string(job->target_id) : NULL);
	json_object_object_add(line, "status", json_object_new_string(status));
	json_object_object_add(line, "error", json_object_new_string(error ? error : ""));
	json_object_object_add(line, "metadata", metadata ? json_object_get(metadata) : json_object_new_object());
	json_object_object_add(line, "verification", verification_json(verification));
	if (run->options->dry_run)
		json_object_object_add(line, "dry_run", json_object_new_boolean(1));
	code = jsonl_write(run->output, line, err);
	json_object_put(line);
	return code;
}

/*
 * Finishes the job (fenced by its claim) with its verification columns, an
 * audit event and a notification, in one transaction.
 */
static int finish_job(const struct run *run, const struct job *job, bool completed,
		      const char *error, json_object *metadata,
		      const struct verification *verification, struct error *err)
{
	const char *params[5] = { job->id, verification->status,
				  verification->served[0] ? verification->served : NULL,
				  verification->error[0] ? verification->error : NULL,
				  completed ? job->version_id : NULL };
	json_object *details = json_object_new_object();
	struct audit_event event = {
		.actor = job->agent_id, .actor_type = job->agent_id ? "Agent" : "System",
		.action = completed ? "deployment_job_completed" : "deployment_job_failed",
		.resource_type = "job", .resource_id = job->id, .details = details,
	};
	char message[ERROR_MESSAGE_MAX];
	int code;

	if (run->options->dry_run) {
		json_object_put(details);
		return 0;
	}
	json_object_object_add(details, "target_id", job->target_id ? json_object_new_string(job->target_id) : NULL);
	json_object_object_add(details, "certificate_id",
			       job->certificate_id ? json_object_new_string(job->certificate_id) : NULL);
	json_object_object_add(details, "version_id", job->version_id ? json_object_new_string(job->version_id) : NULL);
	if (error != NULL && error[0] != '\0')
		json_object_object_add(details, "error", json_object_new_string(error));
	if (metadata != NULL)
		json_object_object_add(details, "metadata", json_object_get(metadata));
	json_object_object_add(details, "verification_status", json_object_new_string(verification->status));
	if (completed)
		snprintf(message, sizeof(message), "deployment to %s completed",
			 job->target_id ? job->target_id : "?");
	else
		snprintf(message, sizeof(message), "deployment to %s failed: %s",
			 job->target_id ? job->target_id : "?", error ? error : "");

	if ((code = db_begin(run->conn, err)) != 0)
		goto out;
	if ((code = db_command(run->conn, store_verification_sql, 5, params, err)) != 0 ||
	    (code = job_finish_fenced(run->conn, job->id, &job->claim, completed ? "Completed" : "Failed",
				      completed ? NULL : error, metadata, err)) != 0 ||
	    (code = audit_record(run->conn, &event, err)) != 0 ||
	    (code = notification_record(run->conn, completed ? "deployment_completed" : "deployment_failed",
					job->certificate_id, job->id, message, err)) != 0) {
		db_rollback(run->conn);
		goto out;
	}
	code = db_commit(run->conn, err);
out:
	json_object_put(details);
	return code;
}

/* A job that fails before any file is touched: finish it Failed and report it. */
static int fail_job(const struct run *run, const struct job *job, int code, const char *error)
{
	struct verification verification = { .status = "skipped" };
	struct error err = { 0, "" };
	int finish_code;

	log_error("%s: %s", job->id, error);
	finish_code = finish_job(run, job, false, error, NULL, &verification, &err);
	if (finish_code != 0) {
		log_error("%s: %s", job->id, err.message);
		return exit_code_most_serious(code, finish_code);
	}
	if (write_result_line(run, job, "Failed", error, NULL, &verification, &err) != 0) {
		log_error("%s", err.message);
		return exit_code_most_serious(code, err.code);
	}
	return code;
}

static const char *text_or_null(const PGresult *result, int column)
{
	return PQgetisnull(result, 0, column) ? NULL : PQgetvalue(result, 0, column);
}

/*
 * A version with no key sealed to this agent: the key this agent made itself
 * (key_mode agent), found in its key store by the leaf's public key.
 */
static int open_stored_key(struct run *run, struct job *job, const PGresult *version,
			   unsigned char **key, size_t *key_length, struct error *err)
{
	char hash[SHA256_HEX_SIZE], *pem;
	int code;

	if (!leaf_digest(PQgetvalue(version, 0, 1), true, hash))
		return error_set(err, EXIT_DATA, "%s: version %s: the certificate does not parse",
				 job->certificate_id, job->version_id);
	if (!run->key_store_opened) {
		if ((code = key_store_open(NULL, false, &run->key_store, err)) != 0)
			return code;
		run->key_store_opened = true;
	}
	code = key_store_find(&run->key_store, job->certificate_id, hash, &pem, key_length, err);
	if (code == EXIT_NOT_FOUND)
		return error_set(err, EXIT_NOT_FOUND, "no key sealed for agent %s (version %s of %s), and %s",
				 job->agent_id, job->version_id, job->certificate_id, err->message);
	if (code != 0)
		return code;
	*key = (unsigned char *)pem;
	memcpy(job->stored_key, hash, sizeof(hash));
	return 0;
}

/*
 * Opens the version's key as sealed to this job's agent, and checks it is
 * bound to this version, this agent and the leaf it is deployed with: a
 * sealed row copied to another version or agent is refused.
 */
static int open_version_key(struct run *run, struct job *job, const PGresult *version,
			    unsigned char **key, size_t *key_length, struct error *err)
{
	struct version_key_binding binding = { job->version_id, job->agent_id, NULL };
	char fingerprint[SHA256_HEX_SIZE];
	unsigned char *blob;
	size_t blob_length = 0;
	int code;

	if (PQgetisnull(version, 0, 3))
		return open_stored_key(run, job, version, key, key_length, err);
	if (!leaf_fingerprint(PQgetvalue(version, 0, 1), fingerprint))
		return error_set(err, EXIT_DATA, "%s: version %s: the certificate does not parse",
				 job->certificate_id, job->version_id);
	binding.fingerprint_sha256 = fingerprint;
	blob = PQunescapeBytea((const unsigned char *)PQgetvalue(version, 0, 3), &blob_length);
	if (blob == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	code = version_key_open(&run->agent_key, &binding, blob, blob_length, key, key_length, err);
	PQfreemem(blob);
	if (code != 0)
		return error_prefix(err, "%s: version %s: private key", job->certificate_id, job->version_id);
	return 0;
}

/* Loads the current version, opens its key and builds the plan; on failure err says why. */
static int prepare_plan(struct run *run, struct job *job, const PGresult *row, PGresult **version,
			struct deploy_plan *plan, json_object **config, struct error *err)
{
	struct certificate_material material = { NULL, "", NULL, 0 };
	const char *params[2] = { job->certificate_id, job->agent_id };
	unsigned char *key = NULL;
	size_t key_length = 0;
	const char *type = text_or_null(row, COL_TARGET_TYPE);
	int code;

	*config = json_tokener_parse(PQgetvalue(row, 0, COL_CONFIG));
	if (!deploy_type_known(type))
		return error_set(err, EXIT_CONFIG, "%s: unknown target type '%s'", job->target_id, type);
	if (job->certificate_id == NULL)
		return error_set(err, EXIT_NOT_FOUND, "job has no certificate");
	if (job->agent_id == NULL)
		return error_set(err, EXIT_NOT_FOUND, "job has no agent to deploy as");
	if ((*version = db_query(run->conn, current_version_sql, 2, params, err)) == NULL)
		return err->code;
	if (PQntuples(*version) == 0)
		return error_set(err, EXIT_NOT_FOUND, "%s: certificate has no version to deploy", job->certificate_id);
	if ((job->version_id = strdup(PQgetvalue(*version, 0, 0))) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if ((code = open_version_key(run, job, *version, &key, &key_length, err)) != 0)
		return code;
	material.cert_pem = PQgetvalue(*version, 0, 1);
	material.chain_pem = PQgetvalue(*version, 0, 2);
	material.key_pem = key;
	material.key_length = key_length;
	code = deploy_plan_build(job->target_id, type, *config, &material, plan, err);
	OPENSSL_cleanse(key, key_length);
	free(key);
	return code;
}

static const char *outcome_status(enum deploy_outcome outcome)
{
	switch (outcome) {
	case DEPLOY_OUTCOME_COMPLETED: return "Completed";
	case DEPLOY_OUTCOME_SKIPPED: return "Skipped";
	case DEPLOY_OUTCOME_FAILED:
	case DEPLOY_OUTCOME_MANUAL_ACTION: break;
	}
	return "Failed";
}

/* --dry-run: which files would change; nothing is written or finished. */
static int report_dry_run(const struct run *run, const struct job *job, const struct deploy_plan *plan)
{
	struct verification verification = { .status = "skipped" };
	bool differs[DEPLOY_MAX_FILES] = { false };
	json_object *metadata = json_object_new_object(), *changes = json_object_new_array();
	struct error err = { 0, "" };
	bool any = false;
	int code = 0;

	if (strcmp(plan->target_type, "ssh") == 0)
		for (size_t i = 0; i < plan->file_count; i++)
			differs[i] = true;
	else
		code = atomic_compare(plan, differs, &err);
	for (size_t i = 0; code == 0 && i < plan->file_count; i++)
		if (differs[i]) {
			json_object_array_add(changes, json_object_new_string(plan->files[i].path));
			any = true;
		}
	json_object_object_add(metadata, "would_change", changes);
	if (code == 0)
		code = write_result_line(run, job, any ? "Completed" : "Skipped", "", metadata, &verification, &err);
	if (code != 0)
		log_error("%s: %s", job->id, err.message);
	json_object_put(metadata);
	return code;
}

/*
 * A job starts only when validate and reload at their full timeout and a
 * rollback still fit before the run deadline; else it stays Running under
 * its lease, for the reaper to hand out again, and systemd never kills a
 * deploy mid-way.
 */
static bool job_fits_run_deadline(const struct job *job, const struct deploy_plan *plan, json_object *config)
{
	int timeout = command_timeout_seconds();
	long long left, needed;
	json_object *value;

	if (strcmp(plan->target_type, "ssh") == 0)
		timeout = json_object_object_get_ex(config, "command_timeout", &value) ? json_object_get_int(value)
										      : SSH_DEFAULT_COMMAND_TIMEOUT;
	if (run_deadline_job_fits(timeout, &left, &needed))
		return true;
	log_error("%s: not started: %.1f s left before the run deadline (%s), a deploy may need %.1f s; "
		  "left Running for the reaper", job->id, (double)(left > 0 ? left : 0) / 1000, RUN_DEADLINE_ENV,
		  (double)needed / 1000);
	return false;
}

static int deploy_one(struct run *run, struct job *job, const PGresult *row)
{
	struct deploy_plan plan;
	struct deploy_result result;
	struct verification verification = { .status = "skipped" };
	struct error err = { 0, "" };
	json_object *config = NULL, *metadata = NULL;
	PGresult *version = NULL;
	bool completed;
	const char *status;
	int code;

	memset(&plan, 0, sizeof(plan));
	deploy_result_init(&result);
	/* Our own environment (key file, database) is not the job's fault: leave it for a retry. */
	if (!run->key_loaded) {
		if ((code = agent_key_load(NULL, &run->agent_key, &err)) != 0) {
			log_error("%s: %s; job left Running for a retry", job->id, err.message);
			goto out;
		}
		run->key_loaded = true;
	}
	if ((code = prepare_plan(run, job, row, &version, &plan, &config, &err)) != 0) {
		if (code == EXIT_UNAVAILABLE || code == EXIT_TEMPORARY) {
			log_error("%s: %s; job left Running for a retry", job->id, err.message);
			goto out;
		}
		code = fail_job(run, job, code, err.message);
		goto out;
	}
	if (run->options->dry_run) {
		code = report_dry_run(run, job, &plan);
		goto out;
	}
	if (!job_fits_run_deadline(job, &plan, config)) {
		code = EXIT_TEMPORARY;
		goto out;
	}
	if (strcmp(plan.target_type, "ssh") == 0)
		code = ssh_apply(&plan, config, &result, &err);
	else
		code = atomic_apply(&plan, &result, &err);
	if (code == EXIT_TEMPORARY) {
		/* Stopped by a signal or a lock wait before anything changed: the job is for a retry. */
		log_error("%s: %s; job left Running", job->id, err.message);
		goto out;
	}
	if (code != 0 && result.error[0] == '\0')
		snprintf(result.error, sizeof(result.error), "%s", err.message);
	completed = result.outcome == DEPLOY_OUTCOME_COMPLETED || result.outcome == DEPLOY_OUTCOME_SKIPPED;
	status = outcome_status(result.outcome);
	if (completed)
		verify_deployment(run, &plan, PQgetvalue(version, 0, 1), &verification);
	if (completed && strcmp(verification.status, "success") != 0 && strcmp(verification.status, "skipped") != 0) {
		if (run->options->verify == VERIFY_STRICT) {
			completed = false;
			status = "Failed";
			code = EXIT_FAILED_CLEANLY;
			snprintf(result.error, sizeof(result.error), "verification %s: %s", verification.status,
				 verification.error);
		} else {
			log_warn("%s: verification %s: %s", job->id, verification.status, verification.error);
		}
	}
	if (!completed)
		log_error("%s: %s: %s", job->id, job->target_id, result.error);
	/* The key is in service now: the key store says so, and keeps the one before it. */
	if (completed && job->stored_key[0] != '\0' &&
	    key_store_promote(&run->key_store, job->certificate_id, job->stored_key, &err) != 0) {
		log_error("%s: the key deployed stays where it was in the key store: %s", job->id, err.message);
		code = exit_code_most_serious(code, err.code);
		error_clear(&err);
	}
	metadata = deploy_result_metadata(&plan, &result);
	if (finish_job(run, job, completed, result.error, metadata, &verification, &err) != 0) {
		log_error("%s: %s", job->id, err.message);
		code = exit_code_most_serious(code, err.code);
		goto out;
	}
	if (write_result_line(run, job, status, result.error, metadata, &verification, &err) != 0) {
		log_error("%s", err.message);
		code = exit_code_most_serious(code, err.code);
	}
out:
	json_object_put(metadata);
	json_object_put(config);
	PQclear(version);
	deploy_plan_free(&plan);
	return code;
}

/* One Deployment job line: fence, route, install, verify, finish. */
int deploy_job_line_parse(json_object *line, enum job_line_kind *kind, struct job_line *job, struct error *err)
{
	const char *type = json_string_field(line, "type");
	int64_t attempts;

	memset(job, 0, sizeof(*job));
	*kind = JOB_LINE_PASS_THROUGH;
	/* No type: not a job line (certctl-csr's results, say), so not ours either. */
	if (!json_object_object_get_ex(line, "type", NULL))
		return 0;
	if (type == NULL)
		return error_set(err, EXIT_DATA, "type is not a string");
	if (strcmp(type, "Deployment") != 0)
		return 0;
	*kind = JOB_LINE_DEPLOYMENT;
	job->id = json_string_field(line, "id");
	job->claimed_by = json_string_field(line, "claimed_by");
	if (job->id == NULL || job->claimed_by == NULL || !json_int_field(line, "attempts", &attempts))
		return error_set(err, EXIT_DATA, "a Deployment job line needs id, claimed_by and attempts");
	/* Truncated to an int, 2^32 + 1 attempts would pass for a claim's 1. */
	if (attempts < 0 || attempts > INT_MAX)
		return error_set(err, EXIT_DATA, "attempts %" PRId64 ": must be from 0 to %d", attempts, INT_MAX);
	job->attempts = (int)attempts;
	return 0;
}

static int process_job(struct run *run, const struct job_line *line)
{
	struct job job = { 0 };
	char offline_after[16];
	const char *params[2];
	PGresult *row = NULL;
	struct error err = { 0, "" };
	int code;

	job.id = line->id;
	job.claim.claimed_by = line->claimed_by;
	job.claim.attempts = line->attempts;
	snprintf(offline_after, sizeof(offline_after), "%ld", STALE_AFTER_SECONDS);
	params[0] = job.id;
	params[1] = offline_after;
	if ((row = db_query(run->conn, load_job_sql, 2, params, &err)) == NULL) {
		log_error("%s: %s", job.id, err.message);
		return err.code;
	}
	if (PQntuples(row) == 0) {
		/* Another agent's job is invisible to an agent's role: that is 77, not 66. */
		if ((code = scope_check_job(run->conn, job.id, &err)) != 0) {
			log_error("%s: %s", job.id, err.message);
			goto out;
		}
		log_error("%s: no such job", job.id);
		code = EXIT_NOT_FOUND;
		goto out;
	}
	if (strcmp(PQgetvalue(row, 0, COL_STATUS), "Running") != 0 || text_or_null(row, COL_CLAIMED_BY) == NULL ||
	    strcmp(PQgetvalue(row, 0, COL_CLAIMED_BY), job.claim.claimed_by) != 0 ||
	    atoi(PQgetvalue(row, 0, COL_ATTEMPTS)) != job.claim.attempts ||
	    strcmp(PQgetvalue(row, 0, COL_TYPE), "Deployment") != 0) {
		log_error("%s: claim lost: job is %s under %s/%s, not Running under %s/%d; left alone", job.id,
			  PQgetvalue(row, 0, COL_STATUS),
			  text_or_null(row, COL_CLAIMED_BY) ? PQgetvalue(row, 0, COL_CLAIMED_BY) : "nobody",
			  PQgetvalue(row, 0, COL_ATTEMPTS), job.claim.claimed_by, job.claim.attempts);
		code = EXIT_TEMPORARY;
		goto out;
	}
	job.target_id = text_or_null(row, COL_TARGET_ID);
	job.certificate_id = text_or_null(row, COL_CERTIFICATE_ID);
	job.agent_id = text_or_null(row, COL_AGENT_ID);
	if (job.target_id == NULL || text_or_null(row, COL_TARGET_TYPE) == NULL)
		code = fail_job(run, &job, EXIT_NOT_FOUND, "job has no deployment target");
	else if (strcmp(PQgetvalue(row, 0, COL_AGENT_RETIRED), "t") == 0)
		code = fail_job(run, &job, EXIT_FAILED_CLEANLY, "assigned agent is retired");
	else if (strcmp(PQgetvalue(row, 0, COL_TARGET_RETIRED), "t") == 0)
		code = fail_job(run, &job, EXIT_FAILED_CLEANLY, "assigned target is retired");
	else if (strcmp(PQgetvalue(row, 0, COL_AGENT_ONLINE), "t") != 0)
		code = fail_job(run, &job, EXIT_FAILED_CLEANLY, "agent is offline");
	else
		code = deploy_one(run, &job, row);
out:
	free(job.version_id);
	PQclear(row);
	return code;
}

static void run_free(struct run *run)
{
	agent_key_wipe(&run->agent_key);
	key_store_close(&run->key_store);
}

int deploy_job_lines(PGconn *conn, const struct deploy_options *options, FILE *input,
		     FILE *output, struct error *err)
{
	struct run run = { conn, options, output, { { 0 }, { 0 } }, false, { "", -1 }, false };
	struct jsonl_reader reader;
	json_object *line;
	int status, code = 0;

	if (run_deadline_start(err) != 0)
		return err->code;
	jsonl_reader_init(&reader, input);
	while (!signals_stop_requested() && (status = jsonl_read(&reader, &line, err)) != 0) {
		enum job_line_kind kind;
		struct job_line job;
		if (status < 0) {
			log_error("%s", err->message);
			code = exit_code_most_serious(code, EXIT_DATA);
			continue;
		}
		if (deploy_job_line_parse(line, &kind, &job, err) != 0) {
			log_error("line %ld: %s", reader.line_number, err->message);
			code = exit_code_most_serious(code, EXIT_DATA);
		} else if (kind == JOB_LINE_PASS_THROUGH) {
			/* Not ours: the very bytes we read go on down the pipe. */
			if (jsonl_forward(&reader, output, err) != 0) {
				json_object_put(line);
				code = exit_code_most_serious(code, err->code);
				log_error("%s", err->message);
				break;
			}
		} else {
			code = exit_code_most_serious(code, process_job(&run, &job));
		}
		json_object_put(line);
	}
	jsonl_reader_free(&reader);
	run_free(&run);
	error_clear(err);
	if (signals_stop_requested())
		code = exit_code_most_serious(code, EXIT_TEMPORARY);
	return code;
}

int deploy_job_by_id(PGconn *conn, const struct deploy_options *options, const char *job_id,
		     FILE *output, struct error *err)
{
	struct run run = { conn, options, output, { { 0 }, { 0 } }, false, { "", -1 }, false };
	enum job_line_kind kind = JOB_LINE_PASS_THROUGH;
	struct job_line job;
	json_object *line;
	int code;

	if (options->dry_run)
		return error_set(err, EXIT_USAGE, "--dry-run reads job lines; it does not claim with --job");
	if (run_deadline_start(err) != 0)
		return err->code;
	line = claim_job_by_id(conn, job_id, "Deployment", options->worker, DEFAULT_LEASE_SECONDS, err);
	if (line == NULL)
		return err->code;
	if (deploy_job_line_parse(line, &kind, &job, err) != 0 || kind != JOB_LINE_DEPLOYMENT) {
		log_error("line 1: %s", kind == JOB_LINE_DEPLOYMENT ? err->message : "not a Deployment job");
		code = EXIT_DATA;
	} else {
		code = process_job(&run, &job);
	}
	json_object_put(line);
	run_free(&run);
	if (signals_stop_requested())
		code = exit_code_most_serious(code, EXIT_TEMPORARY);
	return code;
}
