/*
 * fleet: a load generator for one PostgreSQL and many agents. Each agent,
 * once a (compressed) minute at its own offset, does what an agent host's
 * timer does: connects as its own login, heartbeats, claims, finishes what
 * it claimed, disconnects; an operator thread enqueues deployments. The
 * work is libcommon's (agent_heartbeat, claim_jobs_waiting,
 * job_finish_fenced, enqueue_certificate), so the SQL is the commands'.
 * Prints one JSON report line. See docs/scaling.md and bench/fleet.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "agents.h"
#include "claim.h"
#include "command.h"
#include "db.h"
#include "deadline.h"
#include "enqueue.h"
#include "exitcode.h"
#include "jobs.h"
#include "jsonl.h"
#include "options.h"
#include "procstat.h"

static const char usage_text[] =
	"usage: fleet [-d OPERATOR_DSN] --agents N --agent-dsn DSN [--shared-login]\n"
	"             [--minutes M] [--minute-ms MS] [--threads T] [--enqueue-per-minute R]\n"
	"             [--limit N] [--seed S] [--pgbouncer-pid PID]\n"
	"       fleet --help | --version\n";

enum {
	OPTION_AGENTS = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_AGENT_DSN,
	OPTION_SHARED_LOGIN,
	OPTION_MINUTES,
	OPTION_MINUTE_MS,
	OPTION_THREADS,
	OPTION_ENQUEUE,
	OPTION_LIMIT,
	OPTION_SEED,
	OPTION_PGBOUNCER_PID,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "agents", required_argument, NULL, OPTION_AGENTS },
	{ "agent-dsn", required_argument, NULL, OPTION_AGENT_DSN },
	{ "shared-login", no_argument, NULL, OPTION_SHARED_LOGIN },
	{ "minutes", required_argument, NULL, OPTION_MINUTES },
	{ "minute-ms", required_argument, NULL, OPTION_MINUTE_MS },
	{ "threads", required_argument, NULL, OPTION_THREADS },
	{ "enqueue-per-minute", required_argument, NULL, OPTION_ENQUEUE },
	{ "limit", required_argument, NULL, OPTION_LIMIT },
	{ "seed", required_argument, NULL, OPTION_SEED },
	{ "pgbouncer-pid", required_argument, NULL, OPTION_PGBOUNCER_PID },
	{ NULL, 0, NULL, 0 },
};

/* How often the monitor counts the server's client backends. */
#define SAMPLE_EVERY_MS 250L
#define MAX_THREADS 512

static const char agents_sql[] =
	"SELECT a.id, a.db_role, t.id FROM agents a"
	" JOIN deployment_targets t ON t.agent_id = a.id AND t.retired_at IS NULL"
	" JOIN certificate_targets ct ON ct.target_id = t.id"
	" WHERE a.db_role IS NOT NULL AND a.retired_at IS NULL"
	" ORDER BY a.id LIMIT $1::int";

/* Which certificate an agent's target is mapped to: what the operator enqueues. */
static const char certificate_sql[] =
	"SELECT ct.certificate_id FROM certificate_targets ct WHERE ct.target_id = $1"
	" ORDER BY ct.certificate_id LIMIT 1";

static const char client_backends_sql[] =
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";

static const char backend_pid_sql[] = "SELECT pg_backend_pid()";

struct fleet_options {
	long agents, minutes, minute_ms, threads, enqueue_per_minute, limit, seed, pgbouncer_pid;
	const char *agent_dsn, *operator_dsn;
	bool shared_login;
};

struct agent {
	char *id, *dsn, *certificate_id, worker[96];
	long offset_ms;
};

/* What one tick measured; each tick writes its own slot. */
struct tick {
	long long connect_us, claim_us, lag_us;
	bool done;
};

struct fleet {
	const struct fleet_options *options;
	struct agent *agents;
	struct tick *ticks;
	long tick_count;
	atomic_long next_tick, ticks_skipped;
	long long start_ms;
	/* Totals, under lock. */
	pthread_mutex_t lock;
	long heartbeats, claims, jobs_claimed, jobs_finished, jobs_enqueued, enqueues;
	long errors_connect, errors_heartbeat, errors_claim, errors_finish, errors_enqueue;
	char first_error[ERROR_MESSAGE_MAX + 32];
	char **claimed_ids;
	long claimed_count, claimed_size;
	/* The monitor's samples. */
	atomic_bool stop_monitor;
	long samples, connections_sum, connections_max;
};

static int parse_count(const char *option, const char *text, long min, long max, long *value)
{
	if (!parse_non_negative_long(text, value) || *value < min || *value > max)
		return usage_error("--%s takes a number from %ld to %ld, not '%s'", option, min, max, text);
	return 0;
}

static int fleet_option(void *state, int option, char *argument)
{
	struct fleet_options *options = state;

	switch (option) {
	case OPTION_AGENTS:
		return parse_count("agents", argument, 1, 1000000, &options->agents);
	case OPTION_AGENT_DSN:
		options->agent_dsn = argument;
		return 0;
	case OPTION_SHARED_LOGIN:
		options->shared_login = true;
		return 0;
	case OPTION_MINUTES:
		return parse_count("minutes", argument, 2, 10000, &options->minutes);
	case OPTION_MINUTE_MS:
		return parse_count("minute-ms", argument, 100, 3600000, &options->minute_ms);
	case OPTION_THREADS:
		return parse_count("threads", argument, 1, MAX_THREADS, &options->threads);
	case OPTION_ENQUEUE:
		return parse_count("enqueue-per-minute", argument, 0, 10000000, &options->enqueue_per_minute);
	case OPTION_LIMIT:
		return parse_count("limit", argument, 1, 100000, &options->limit);
	case OPTION_SEED:
		return parse_count("seed", argument, 0, 1L << 30, &options->seed);
	case OPTION_PGBOUNCER_PID:
		return parse_count("pgbouncer-pid", argument, 1, 1L << 30, &options->pgbouncer_pid);
	default:
		return usage_error("unexpected option");
	}
}

static int fleet_check(void *state, const char *dsn, int operand_count, char *operands[],
		       struct error *err)
{
	struct fleet_options *options = state;

	(void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (options->agents == 0 || options->agent_dsn == NULL)
		return usage_error("--agents and --agent-dsn are required");
	options->operator_dsn = dsn;
	return 0;
}

static long long monotonic_us(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (long long)now.tv_sec * 1000000LL + now.tv_nsec / 1000;
}

static void sleep_until_us(long long when)
{
	struct timespec at = { .tv_sec = (time_t)(when / 1000000LL),
			       .tv_nsec = (long)(when % 1000000LL) * 1000L };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
		;
}

/* Counts a failed step and keeps the first message for the report. */
static void record_error(struct fleet *fleet, long *counter, const char *step, const struct error *err)
{
	pthread_mutex_lock(&fleet->lock);
	(*counter)++;
	if (fleet->first_error[0] == '\0')
		snprintf(fleet->first_error, sizeof(fleet->first_error), "%s: %s", step, err->message);
	pthread_mutex_unlock(&fleet->lock);
}

static void remember_claimed(struct fleet *fleet, const char *job_id)
{
	pthread_mutex_lock(&fleet->lock);
	if (fleet->claimed_count == fleet->claimed_size) {
		fleet->claimed_size = fleet->claimed_size ? fleet->claimed_size * 2 : 1024;
		fleet->claimed_ids = realloc(fleet->claimed_ids, (size_t)fleet->claimed_size * sizeof(char *));
		if (fleet->claimed_ids == NULL)
			abort();
	}
	fleet->claimed_ids[fleet->claimed_count++] = strdup(job_id);
	pthread_mutex_unlock(&fleet->lock);
}

/* Finishes each claimed job on the claim's lines as Completed, fenced by its claim token. */
static void finish_claimed(struct fleet *fleet, PGconn *conn, const char *lines, long *finished)
{
	const char *cursor = lines;

	while (cursor != NULL && *cursor != '\0') {
		const char *end = strchr(cursor, '\n');
		json_object *line = json_tokener_parse(cursor), *id, *by, *attempts, *status;
		struct error err = { 0, "" };

		cursor = end ? end + 1 : NULL;
		if (line == NULL)
			continue;
		/* An agent's AwaitingCSR jobs are listed, not claimed. */
		if (json_object_object_get_ex(line, "id", &id) &&
		    json_object_object_get_ex(line, "claimed_by", &by) &&
		    json_object_object_get_ex(line, "attempts", &attempts) &&
		    json_object_object_get_ex(line, "status", &status) &&
		    strcmp(json_object_get_string(status), "Running") == 0) {
			struct job_claim claim = { json_object_get_string(by), json_object_get_int(attempts) };

			remember_claimed(fleet, json_object_get_string(id));
			if (job_finish_fenced(conn, json_object_get_string(id), &claim, "Completed", NULL,
					      NULL, &err) == 0)
				(*finished)++;
			else
				record_error(fleet, &fleet->errors_finish, "finish", &err);
		}
		json_object_put(line);
	}
}

/* One agent's minute: connect as its login, heartbeat, claim, finish, disconnect. */
static void run_tick(struct fleet *fleet, const struct agent *agent, struct tick *tick, FILE *sink)
{
	struct heartbeat_request beat = { agent->id, NULL, NULL, false };
	struct claim_request request = { .agent_id = agent->id, .worker = agent->worker,
					 .limit = fleet->options->limit,
					 .lease_seconds = DEFAULT_LEASE_SECONDS };
	struct error err = { 0, "" };
	long long started = monotonic_us();
	long count = 0, finished = 0;
	bool beat_ok;
	char *lines = NULL;
	size_t length = 0;
	FILE *claimed;
	PGconn *conn;
	int code;

	if ((conn = db_connect(agent->dsn, &err)) == NULL) {
		record_error(fleet, &fleet->errors_connect, "connect", &err);
		return;
	}
	tick->connect_us = monotonic_us() - started;
	if (!(beat_ok = agent_heartbeat(conn, &beat, sink, &err) == 0))
		record_error(fleet, &fleet->errors_heartbeat, "heartbeat", &err);
	if ((claimed = open_memstream(&lines, &length)) == NULL)
		abort();
	started = monotonic_us();
	code = claim_jobs_waiting(conn, &request, 0, claimed, &count, &err);
	tick->claim_us = monotonic_us() - started;
	fclose(claimed);
	if (code != 0)
		record_error(fleet, &fleet->errors_claim, "claim", &err);
	else
		finish_claimed(fleet, conn, lines, &finished);
	free(lines);
	db_disconnect(conn);

	pthread_mutex_lock(&fleet->lock);
	fleet->heartbeats += beat_ok;
	fleet->claims += code == 0;
	fleet->jobs_claimed += code == 0 ? count : 0;
	fleet->jobs_finished += finished;
	pthread_mutex_unlock(&fleet->lock);
	tick->done = code == 0;
}

/* Takes the next tick in due order, sleeps until it is due, runs it. */
static void *agent_worker(void *argument)
{
	struct fleet *fleet = argument;
	long agent_count = fleet->options->agents;
	FILE *sink = fopen("/dev/null", "w");
	long k;

	if (sink == NULL)
		abort();
	while ((k = atomic_fetch_add(&fleet->next_tick, 1)) < fleet->tick_count) {
		const struct agent *agent = &fleet->agents[k % agent_count];
		long long due = (fleet->start_ms + (k / agent_count) * fleet->options->minute_ms +
				 agent->offset_ms) * 1000LL;

		sleep_until_us(due);
		fleet->ticks[k].lag_us = monotonic_us() - due;
		/* As a systemd timer does not stack runs: a minute late, the tick is dropped. */
		if (fleet->ticks[k].lag_us > fleet->options->minute_ms * 1000LL) {
			atomic_fetch_add(&fleet->ticks_skipped, 1);
			continue;
		}
		run_tick(fleet, agent, &fleet->ticks[k], sink);
	}
	fclose(sink);
	return NULL;
}

/*
 * The operator: enqueue_per_minute deployments a minute, evenly spaced, for
 * all minutes but the last, so that every job is due for a claim before the
 * run ends. Agent i's certificate comes up every agent-count enqueues.
 */
static void *operator_worker(void *argument)
{
	struct fleet *fleet = argument;
	const struct fleet_options *options = fleet->options;
	long total = options->enqueue_per_minute * (options->minutes - 1);
	struct error err = { 0, "" };
	PGconn *conn;

	if (total == 0)
		return NULL;
	if ((conn = db_connect(options->operator_dsn, &err)) == NULL) {
		record_error(fleet, &fleet->errors_enqueue, "enqueue", &err);
		return NULL;
	}
	for (long i = 0; i < total; i++) {
		const struct agent *agent = &fleet->agents[i % options->agents];
		long long due = fleet->start_ms * 1000LL + i * options->minute_ms * 1000LL /
							       options->enqueue_per_minute;
		char *lines = NULL;
		size_t length = 0;
		FILE *created = open_memstream(&lines, &length);
		long jobs = 0;
		int code;

		if (created == NULL)
			abort();
		sleep_until_us(due);
		code = enqueue_certificate(conn, agent->certificate_id, created, &err);
		fclose(created);
		for (const char *c = lines; c && *c; c++)
			jobs += *c == '\n';
		free(lines);
		if (code != 0) {
			record_error(fleet, &fleet->errors_enqueue, "enqueue", &err);
			if (PQstatus(conn) != CONNECTION_OK)
				break;
			continue;
		}
		pthread_mutex_lock(&fleet->lock);
		fleet->enqueues++;
		fleet->jobs_enqueued += jobs;
		pthread_mutex_unlock(&fleet->lock);
	}
	db_disconnect(conn);
	return NULL;
}

/* Counts the server's client backends every SAMPLE_EVERY_MS until told to stop. */
static void *monitor_worker(void *argument)
{
	struct fleet *fleet = argument;
	struct error err = { 0, "" };
	PGconn *conn = db_connect(fleet->options->operator_dsn, &err);

	if (conn == NULL)
		return NULL;
	while (!atomic_load(&fleet->stop_monitor)) {
		PGresult *result = db_query(conn, client_backends_sql, 0, NULL, &err);
		struct timespec pause = { 0, SAMPLE_EVERY_MS * 1000000L };

		if (result == NULL)
			break;
		/* Not counting the monitor's own backend. */
		long connections = atol(PQgetvalue(result, 0, 0)) - 1;
		PQclear(result);
		fleet->samples++;
		fleet->connections_sum += connections;
		if (connections > fleet->connections_max)
			fleet->connections_max = connections;
		nanosleep(&pause, NULL);
	}
	db_disconnect(conn);
	return NULL;
}

/* The DSN an agent connects with: the given one, with the agent's login unless shared. */
static char *agent_dsn(const struct fleet_options *options, const char *role)
{
	size_t size = strlen(options->agent_dsn) + 2 * strlen(role) + 16;
	char *dsn = malloc(size), *out;

	if (dsn == NULL)
		abort();
	out = dsn + snprintf(dsn, size, "%s", options->agent_dsn);
	if (options->shared_login)
		return dsn;
	out += sprintf(out, " user='");
	for (const char *c = role; *c; c++) {
		if (*c == '\'' || *c == '\\')
			*out++ = '\\';
		*out++ = *c;
	}
	strcpy(out, "'");
	return dsn;
}

static int compare_offsets(const void *a, const void *b)
{
	const struct agent *left = a, *right = b;

	return (left->offset_ms > right->offset_ms) - (left->offset_ms < right->offset_ms);
}

/*
 * The first --agents enrolled agents with a target mapped to a certificate,
 * each at a random offset in the minute (as a timer's RandomizedDelaySec
 * spreads them), sorted by it so that ticks run in due order.
 */
static int load_agents(PGconn *conn, struct fleet *fleet, struct error *err)
{
	const struct fleet_options *options = fleet->options;
	char limit[24];
	const char *params[1] = { limit };
	PGresult *result;
	unsigned int seed = (unsigned int)options->seed;

	snprintf(limit, sizeof(limit), "%ld", options->agents);
	if ((result = db_query(conn, agents_sql, 1, params, err)) == NULL)
		return err->code;
	if (PQntuples(result) < options->agents) {
		error_set(err, EXIT_NOT_FOUND, "%d agents with a login and a mapped target, not %ld",
			  PQntuples(result), options->agents);
		PQclear(result);
		return err->code;
	}
	fleet->agents = calloc((size_t)options->agents, sizeof(*fleet->agents));
	for (long i = 0; i < options->agents; i++) {
		struct agent *agent = &fleet->agents[i];
		const char *target[1] = { PQgetvalue(result, (int)i, 2) };
		PGresult *certificate = db_query(conn, certificate_sql, 1, target, err);

		if (certificate == NULL) {
			PQclear(result);
			return err->code;
		}
		agent->id = strdup(PQgetvalue(result, (int)i, 0));
		agent->dsn = agent_dsn(options, PQgetvalue(result, (int)i, 1));
		agent->certificate_id = strdup(PQgetvalue(certificate, 0, 0));
		snprintf(agent->worker, sizeof(agent->worker), "fleet:%s", agent->id);
		agent->offset_ms = (long)((double)rand_r(&seed) / ((double)RAND_MAX + 1) *
					  (double)options->minute_ms);
		PQclear(certificate);
	}
	PQclear(result);
	qsort(fleet->agents, (size_t)options->agents, sizeof(*fleet->agents), compare_offsets);
	return 0;
}

static void free_agents(struct fleet *fleet)
{
	for (long i = 0; fleet->agents != NULL && i < fleet->options->agents; i++) {
		free(fleet->agents[i].id);
		free(fleet->agents[i].dsn);
		free(fleet->agents[i].certificate_id);
	}
	free(fleet->agents);
	for (long i = 0; i < fleet->claimed_count; i++)
		free(fleet->claimed_ids[i]);
	free(fleet->claimed_ids);
	free(fleet->ticks);
}

static int compare_long_long(const void *a, const void *b)
{
	long long left = *(const long long *)a, right = *(const long long *)b;

	return (left > right) - (left < right);
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_object *milliseconds(long long us)
{
	return json_object_new_double((double)(us / 10) / 100.0);
}

/* {"p50":…, "p99":…, "max":…} in milliseconds, over the done ticks' values at offset. */
static json_object *distribution(const struct fleet *fleet, size_t offset)
{
	long long *values = malloc((size_t)fleet->tick_count * sizeof(long long) + 1);
	json_object *summary = json_object_new_object();
	long n = 0;

	for (long k = 0; k < fleet->tick_count; k++)
		if (fleet->ticks[k].done)
			values[n++] = *(const long long *)((const char *)&fleet->ticks[k] + offset);
	qsort(values, (size_t)n, sizeof(*values), compare_long_long);
	if (n > 0) {
		json_object_object_add(summary, "p50", milliseconds(values[(n - 1) / 2]));
		json_object_object_add(summary, "p99", milliseconds(values[(n * 99 - 1) / 100]));
		json_object_object_add(summary, "max", milliseconds(values[n - 1]));
	}
	free(values);
	return summary;
}

/* Claimed job ids seen twice: a claim handed out twice would show here. */
static long duplicate_claims(struct fleet *fleet)
{
	long duplicates = 0;

	qsort(fleet->claimed_ids, (size_t)fleet->claimed_count, sizeof(char *), compare_strings);
	for (long i = 1; i < fleet->claimed_count; i++)
		duplicates += strcmp(fleet->claimed_ids[i - 1], fleet->claimed_ids[i]) == 0;
	return duplicates;
}

static void add_number(json_object *report, const char *key, double value)
{
	json_object_object_add(report, key, json_object_new_double(value));
}

static void add_count(json_object *report, const char *key, long value)
{
	json_object_object_add(report, key, json_object_new_int64(value));
}

static double per_second(long count, double seconds)
{
	return seconds > 0 ? (double)(long long)((double)count / seconds * 100) / 100.0 : 0;
}

static int print_report(struct fleet *fleet, double wall_s, double postgres_cpu_s, double pgbouncer_cpu_s,
			struct error *err)
{
	const struct fleet_options *options = fleet->options;
	json_object *report = json_object_new_object(), *errors = json_object_new_object();
	long error_total = fleet->errors_connect + fleet->errors_heartbeat + fleet->errors_claim +
			   fleet->errors_finish + fleet->errors_enqueue;
	int code;

	add_count(report, "agents", options->agents);
	add_count(report, "minutes", options->minutes);
	add_count(report, "minute_ms", options->minute_ms);
	json_object_object_add(report, "logins", json_object_new_string(options->shared_login ? "shared" : "per-agent"));
	add_number(report, "wall_s", (double)(long long)(wall_s * 100) / 100.0);
	add_count(report, "ticks", fleet->tick_count);
	add_count(report, "ticks_skipped", atomic_load(&fleet->ticks_skipped));
	add_count(report, "heartbeats", fleet->heartbeats);
	add_count(report, "claims", fleet->claims);
	add_number(report, "heartbeats_per_s", per_second(fleet->heartbeats, wall_s));
	add_number(report, "claims_per_s", per_second(fleet->claims, wall_s));
	json_object_object_add(report, "claim_ms", distribution(fleet, offsetof(struct tick, claim_us)));
	json_object_object_add(report, "connect_ms", distribution(fleet, offsetof(struct tick, connect_us)));
	json_object_object_add(report, "tick_lag_ms", distribution(fleet, offsetof(struct tick, lag_us)));
	add_count(report, "enqueues", fleet->enqueues);
	add_count(report, "jobs_enqueued", fleet->jobs_enqueued);
	add_count(report, "jobs_claimed", fleet->jobs_claimed);
	add_count(report, "jobs_finished", fleet->jobs_finished);
	add_count(report, "duplicate_claims", duplicate_claims(fleet));
	if (postgres_cpu_s >= 0) {
		add_number(report, "postgres_cpu_s", (double)(long long)(postgres_cpu_s * 100) / 100.0);
		/* Per 1 000 agent-minutes served (ticks run, not dropped): a compressed minute carries a real one's work. */
		add_number(report, "postgres_cpu_s_per_1000_agent_minutes",
			   fleet->claims ? (double)(long long)(postgres_cpu_s / (double)fleet->claims * 1e6) / 1000.0 : 0);
		add_number(report, "postgres_cpu_ms_per_claim",
			   fleet->claims ? (double)(long long)(postgres_cpu_s * 1e5 / (double)fleet->claims) / 100.0 : 0);
		add_number(report, "postgres_cores", (double)(long long)(postgres_cpu_s / wall_s * 1000) / 1000.0);
	}
	if (pgbouncer_cpu_s >= 0)
		add_number(report, "pgbouncer_cpu_s", (double)(long long)(pgbouncer_cpu_s * 100) / 100.0);
	add_count(report, "server_connections_max", fleet->connections_max);
	add_number(report, "server_connections_mean",
		   fleet->samples ? (double)(long long)((double)fleet->connections_sum / (double)fleet->samples * 10) / 10.0 : 0);
	add_count(errors, "connect", fleet->errors_connect);
	add_count(errors, "heartbeat", fleet->errors_heartbeat);
	add_count(errors, "claim", fleet->errors_claim);
	add_count(errors, "finish", fleet->errors_finish);
	add_count(errors, "enqueue", fleet->errors_enqueue);
	add_count(report, "errors", error_total);
	json_object_object_add(report, "errors_by_step", errors);
	if (fleet->first_error[0] != '\0')
		json_object_object_add(report, "first_error", json_object_new_string(fleet->first_error));
	code = jsonl_write(stdout, report, err);
	json_object_put(report);
	if (code == 0 && error_total > 0)
		code = error_set(err, EXIT_TEMPORARY, "%ld errors in the run; first: %s", error_total,
				 fleet->first_error);
	return code;
}

/* The postmaster is the parent of the operator's own backend: this host's cluster only. */
static pid_t find_postmaster(PGconn *conn, struct error *err)
{
	PGresult *result = db_query(conn, backend_pid_sql, 0, NULL, err);
	pid_t postmaster;

	if (result == NULL)
		return -1;
	postmaster = procstat_parent((pid_t)atol(PQgetvalue(result, 0, 0)));
	PQclear(result);
	return postmaster;
}

static int fleet_run(void *state, PGconn **unused, struct error *err)
{
	const struct fleet_options *options = state;
	struct fleet fleet = { .options = options, .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t workers[MAX_THREADS], operator, monitor;
	double postgres_cpu = -1, pgbouncer_cpu = -1;
	long long started;
	pid_t postmaster;
	PGconn *conn;
	int code;

	(void)unused;
	if ((conn = db_connect(options->operator_dsn, err)) == NULL)
		return err->code;
	code = load_agents(conn, &fleet, err);
	postmaster = code == 0 ? find_postmaster(conn, err) : -1;
	db_disconnect(conn);
	if (code != 0)
		goto out;
	fleet.tick_count = options->agents * options->minutes;
	fleet.ticks = calloc((size_t)fleet.tick_count, sizeof(*fleet.ticks));
	if (fleet.ticks == NULL)
		abort();
	if (postmaster > 0)
		postgres_cpu = procstat_cluster_cpu_seconds(postmaster);
	if (options->pgbouncer_pid > 0)
		pgbouncer_cpu = procstat_cpu_seconds((pid_t)options->pgbouncer_pid);
	/* A little ahead, so the first ticks are not late for thread start-up. */
	fleet.start_ms = monotonic_milliseconds() + 100;
	started = monotonic_us();
	pthread_create(&monitor, NULL, monitor_worker, &fleet);
	pthread_create(&operator, NULL, operator_worker, &fleet);
	for (long t = 0; t < options->threads; t++)
		pthread_create(&workers[t], NULL, agent_worker, &fleet);
	for (long t = 0; t < options->threads; t++)
		pthread_join(workers[t], NULL);
	pthread_join(operator, NULL);
	atomic_store(&fleet.stop_monitor, true);
	pthread_join(monitor, NULL);
	if (postgres_cpu >= 0)
		postgres_cpu = procstat_cluster_cpu_seconds(postmaster) - postgres_cpu;
	if (pgbouncer_cpu >= 0)
		pgbouncer_cpu = procstat_cpu_seconds((pid_t)options->pgbouncer_pid) - pgbouncer_cpu;
	code = print_report(&fleet, (double)(monotonic_us() - started) / 1e6, postgres_cpu,
			    pgbouncer_cpu, err);
out:
	free_agents(&fleet);
	pthread_mutex_destroy(&fleet.lock);
	return code;
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "fleet",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS_ITSELF,
		.option = fleet_option,
		.check = fleet_check,
		.run = fleet_run,
	};
	struct fleet_options options = {
		.minutes = 3, .minute_ms = 60000, .threads = 32, .enqueue_per_minute = 0,
		.limit = 10, .seed = 1, .pgbouncer_pid = 0,
	};

	return command_main(&command, &options, argc, argv);
}
