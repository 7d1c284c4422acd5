#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "exitcode.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"
#include "scope.h"
#include "signals.h"
#include "tlsprobe.h"
#include "verifyall.h"

/*
 * The targets to probe, with the current version of each certificate mapped
 * to them (space separated) and the time the run started by the database's
 * clock: a probe is recorded as of then, so a deployment that finishes
 * during the run is never judged by a probe that may have preceded it.
 */
static const char targets_sql[] =
	"SELECT t.id, t.agent_id, t.config->>'verify_endpoint', NULLIF(t.config->>'verify_sni', ''),"
	"       (SELECT string_agg(cv.fingerprint_sha256, ' ') FROM certificate_targets ct"
	"          CROSS JOIN LATERAL (SELECT v.fingerprint_sha256 FROM certificate_versions v"
	"                               WHERE v.certificate_id = ct.certificate_id"
	"                               ORDER BY v.created_at DESC, v.id DESC LIMIT 1) cv"
	"         WHERE ct.target_id = t.id),"
	"       now()::text"
	"  FROM deployment_targets t"
	" WHERE t.retired_at IS NULL AND t.config ? 'verify_endpoint'"
	"   AND ($1::text IS NULL OR t.agent_id = $1)"
	" ORDER BY t.id";
enum { COL_TARGET_ID, COL_AGENT_ID, COL_ENDPOINT, COL_SNI, COL_EXPECTED, COL_RUN_STARTED };

/*
 * served_* keep the last probe that read a certificate from this endpoint;
 * probed_at and error are the last attempt's.
 */
static const char record_probe_sql[] =
	"INSERT INTO target_probes AS p (target_id, endpoint, served_fingerprint, served_not_after,"
	"                                served_at, probed_at, error)"
	" VALUES ($1, $2, $3::text, $4::timestamptz, CASE WHEN $3::text IS NULL THEN NULL ELSE $5::timestamptz END,"
	"         $5::timestamptz, $6)"
	" ON CONFLICT (target_id) DO UPDATE SET"
	"   served_fingerprint = CASE WHEN EXCLUDED.served_fingerprint IS NOT NULL THEN EXCLUDED.served_fingerprint"
	"                             WHEN p.endpoint = EXCLUDED.endpoint THEN p.served_fingerprint END,"
	"   served_not_after = CASE WHEN EXCLUDED.served_fingerprint IS NOT NULL THEN EXCLUDED.served_not_after"
	"                           WHEN p.endpoint = EXCLUDED.endpoint THEN p.served_not_after END,"
	"   served_at = CASE WHEN EXCLUDED.served_fingerprint IS NOT NULL THEN EXCLUDED.served_at"
	"                    WHEN p.endpoint = EXCLUDED.endpoint THEN p.served_at END,"
	"   endpoint = EXCLUDED.endpoint, probed_at = EXCLUDED.probed_at, error = EXCLUDED.error";

/* Errors stored for a target are cut to what the column takes. */
#define PROBE_ERROR_MAX 1024

struct probe {
	const char *target_id, *endpoint, *sni, *expected; /* into the targets' PGresult */
	bool done;
	int code;
	struct tls_probe_result result;
	struct error err;
};

struct probe_pool {
	struct probe *probes;
	int count, next;
	const struct verify_all_request *request;
	struct tls_prober *prober; /* one trust store and TLS context for every probe */
	pthread_mutex_t lock;
};

/* The next probe no worker has taken, or NULL (all taken, or a stop was asked for). */
static struct probe *take_probe(struct probe_pool *pool)
{
	struct probe *probe = NULL;

	pthread_mutex_lock(&pool->lock);
	if (pool->next < pool->count && !signals_stop_requested())
		probe = &pool->probes[pool->next++];
	pthread_mutex_unlock(&pool->lock);
	return probe;
}

static void *probe_worker(void *argument)
{
	struct probe_pool *pool = argument;
	struct probe *probe;

	while ((probe = take_probe(pool)) != NULL) {
		if (probe->endpoint == NULL) {
			probe->code = error_set(&probe->err, EXIT_CONFIG, "verify_endpoint is not a string");
		} else {
			probe->code = tls_prober_probe(pool->prober, probe->endpoint, probe->sni,
						       pool->request->timeout_seconds, &probe->result, &probe->err);
			/* A malformed endpoint is the target's configuration, not the command line. */
			if (probe->code == EXIT_USAGE)
				probe->code = EXIT_CONFIG;
		}
		probe->done = true;
	}
	return NULL;
}

/* Runs the pool with up to parallel threads (at least one: the caller's own, if no thread starts). */
static void run_probes(struct probe_pool *pool, int parallel)
{
	pthread_t threads[VERIFY_ALL_MAX_PARALLEL];
	int started = 0;

	if (parallel > VERIFY_ALL_MAX_PARALLEL)
		parallel = VERIFY_ALL_MAX_PARALLEL;
	if (parallel > pool->count)
		parallel = pool->count;
	while (started < parallel && pthread_create(&threads[started], NULL, probe_worker, pool) == 0)
		started++;
	if (started == 0)
		probe_worker(pool);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
}

static bool matches_any(const char *expected, const char *served)
{
	return expected != NULL && strstr(expected, served) != NULL;
}

static json_object *probe_line(const PGresult *targets, int row, const struct probe *probe)
{
	json_object *line = json_object_new_object();
	bool ok = probe->code == 0;

	json_add_text_column(line, "target_id", targets, row, COL_TARGET_ID);
	json_add_text_column(line, "agent_id", targets, row, COL_AGENT_ID);
	json_add_text_column(line, "endpoint", targets, row, COL_ENDPOINT);
	json_add_text_column(line, "sni", targets, row, COL_SNI);
	json_object_object_add(line, "served_fingerprint",
			       ok ? json_object_new_string(probe->result.fingerprint_sha256) : NULL);
	json_object_object_add(line, "not_after", ok ? json_object_new_string(probe->result.not_after) : NULL);
	json_object_object_add(line, "days_left", ok ? json_object_new_int64(probe->result.days_left) : NULL);
	json_object_object_add(line, "matches",
			       ok && probe->expected != NULL
				       ? json_object_new_boolean(matches_any(probe->expected,
									     probe->result.fingerprint_sha256))
				       : NULL);
	json_object_object_add(line, "verified_chain",
			       ok ? json_object_new_boolean(probe->result.verified_chain) : NULL);
	json_object_object_add(line, "error", ok ? NULL : json_object_new_string(probe->err.message));
	return line;
}

static int record_probes(PGconn *conn, const PGresult *targets, const struct probe *probes, int count,
			 struct error *err)
{
	char error_text[PROBE_ERROR_MAX + 1];
	const char *params[6];
	int code;

	if ((code = db_begin(conn, err)) != 0)
		return code;
	for (int row = 0; row < count; row++) {
		const struct probe *probe = &probes[row];

		if (!probe->done || probe->code == EXIT_TEMPORARY || probe->endpoint == NULL)
			continue;
		snprintf(error_text, sizeof(error_text), "%s", probe->err.message);
		params[0] = probe->target_id;
		params[1] = probe->endpoint;
		params[2] = probe->code == 0 ? probe->result.fingerprint_sha256 : NULL;
		params[3] = probe->code == 0 ? probe->result.not_after : NULL;
		params[4] = PQgetvalue(targets, row, COL_RUN_STARTED);
		params[5] = probe->code == 0 ? NULL : error_text;
		if ((code = db_command(conn, record_probe_sql, 6, params, err)) != 0) {
			db_rollback(conn);
			return error_prefix(err, "%s: recording the probe", probe->target_id);
		}
	}
	return db_commit(conn, err);
}

/* Prints the lines and logs the failures; *outcome: the most serious. Returns 0 or a write error. */
static int report_probes(const PGresult *targets, const struct probe *probes, int count, FILE *output,
			 int *outcome, struct error *err)
{
	json_object *line;
	int code;

	*outcome = 0;
	for (int row = 0; row < count; row++) {
		const struct probe *probe = &probes[row];

		if (!probe->done)
			continue;
		line = probe_line(targets, row, probe);
		code = jsonl_put(output, line, err);
		json_object_put(line);
		if (code != 0)
			return code;
		if (probe->code != 0) {
			log_error("%s: %s", probe->target_id, probe->err.message);
			*outcome = exit_code_most_serious(*outcome, probe->code);
		} else if (probe->expected != NULL &&
			   !matches_any(probe->expected, probe->result.fingerprint_sha256)) {
			log_error("%s: %s serves %s, not the current version of its certificates",
				  probe->target_id, probe->endpoint, probe->result.fingerprint_sha256);
			*outcome = exit_code_most_serious(*outcome, EXIT_FAILED_CLEANLY);
		}
	}
	return jsonl_flush(output, err);
}

int verify_all_targets(PGconn *conn, const struct verify_all_request *request, FILE *output,
		       struct error *err)
{
	const char *params[1] = { request->agent_id };
	struct probe_pool pool = { .request = request };
	PGresult *targets = NULL;
	int code, outcome, count;

	if (request->agent_id != NULL && (code = scope_check_agent_named(conn, request->agent_id, err)) != 0)
		return code;
	if ((targets = db_query(conn, targets_sql, 1, params, err)) == NULL)
		return err->code;
	count = PQntuples(targets);
	if (count == 0) {
		PQclear(targets);
		return 0;
	}
	if ((pool.prober = tls_prober_new(request->ca_file, err)) == NULL) {
		PQclear(targets);
		return err->code;
	}
	if ((pool.probes = calloc((size_t)count, sizeof(*pool.probes))) == NULL) {
		tls_prober_free(pool.prober);
		PQclear(targets);
		return error_set(err, EXIT_INTERNAL, "out of memory");
	}
	for (int row = 0; row < count; row++) {
		struct probe *probe = &pool.probes[row];

		probe->target_id = PQgetvalue(targets, row, COL_TARGET_ID);
		probe->endpoint = PQgetisnull(targets, row, COL_ENDPOINT) ? NULL : PQgetvalue(targets, row, COL_ENDPOINT);
		probe->sni = PQgetisnull(targets, row, COL_SNI) ? NULL : PQgetvalue(targets, row, COL_SNI);
		probe->expected = PQgetisnull(targets, row, COL_EXPECTED) ? NULL : PQgetvalue(targets, row, COL_EXPECTED);
	}
	pool.count = count;
	pthread_mutex_init(&pool.lock, NULL);
	run_probes(&pool, request->parallel);
	pthread_mutex_destroy(&pool.lock);
	tls_prober_free(pool.prober);

	if ((code = record_probes(conn, targets, pool.probes, count, err)) == 0 &&
	    (code = report_probes(targets, pool.probes, count, output, &outcome, err)) == 0) {
		/* Each failure is on stderr already. */
		code = outcome;
		if (signals_stop_requested() && code != EXIT_TEMPORARY)
			code = exit_code_most_serious(code, EXIT_TEMPORARY);
	}
	free(pool.probes);
	PQclear(targets);
	return code;
}
