#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "db.h"
#include "exitcode.h"
#include "fileio.h"
#include "jsonl.h"
#include "log.h"
#include "pgjson.h"
#include "scope.h"
#include "status.h"

const char *const status_states[] = { "current", "pending", "failing", "drifted",
				      "unverified", "never_deployed", NULL };

/*
 * One row per active target of each certificate. The served view is the
 * newer of the target's last probe (certctl-verify --all) and the last
 * deployment's own verification; a probe older than that deployment says
 * nothing about it ("unverified"). The states, first match wins: an
 * unfinished deployment; the last finished one failed; nothing deployed (or
 * no version); the deployed or the served fingerprint is not the current
 * version's; never probed since; current.
 */
static const char status_sql[] =
	"WITH base AS ("
	"  SELECT ct.certificate_id, t.id AS target_id, t.agent_id, c.renewal_due_at,"
	"         v.fingerprint_sha256 AS expected, v.not_after,"
	"         lc.deployed_fingerprint, lc.completed_at AS deployed_at,"
	"         lc.verified_fingerprint, lc.verified_at, lf.status AS last_status, lf.last_error,"
	"         p.served_fingerprint AS probe_fingerprint, p.served_at AS probe_at, p.error AS probe_error,"
	"         EXISTS (SELECT 1 FROM jobs u WHERE u.target_id = t.id"
	"                   AND u.certificate_id = ct.certificate_id AND u.type = 'Deployment'"
	"                   AND u.status IN ('Pending', 'AwaitingCSR', 'AwaitingApproval', 'Running'))"
	"           AS pending"
	"    FROM certificate_targets ct"
	"    JOIN deployment_targets t ON t.id = ct.target_id AND t.retired_at IS NULL"
	"    JOIN managed_certificates c ON c.id = ct.certificate_id"
	"    LEFT JOIN LATERAL (SELECT v.fingerprint_sha256, v.not_after FROM certificate_versions v"
	"                        WHERE v.certificate_id = c.id"
	"                        ORDER BY v.created_at DESC, v.id DESC LIMIT 1) v ON true"
	"    LEFT JOIN LATERAL (SELECT j.status, j.last_error FROM jobs j"
	"                        WHERE j.target_id = t.id AND j.certificate_id = c.id"
	"                          AND j.type = 'Deployment' AND j.status IN ('Completed', 'Failed')"
	"                        ORDER BY j.completed_at DESC NULLS LAST LIMIT 1) lf ON true"
	"    LEFT JOIN LATERAL (SELECT j.deployed_fingerprint, j.completed_at, j.verified_fingerprint,"
	"                              j.verified_at FROM jobs j"
	"                        WHERE j.target_id = t.id AND j.certificate_id = c.id"
	"                          AND j.type = 'Deployment' AND j.status = 'Completed'"
	"                        ORDER BY j.completed_at DESC NULLS LAST LIMIT 1) lc ON true"
	"    LEFT JOIN target_probes p ON p.target_id = t.id"
	"   WHERE ($1::text IS NULL OR ct.certificate_id = $1) AND ($2::text IS NULL OR t.agent_id = $2)"
	"), chosen AS ("
	"  SELECT b.*, b.probe_at IS NOT NULL AND (b.verified_fingerprint IS NULL OR b.deployed_at IS NULL"
	"                                          OR b.probe_at >= b.deployed_at) AS use_probe"
	"    FROM base b"
	"), served AS ("
	"  SELECT c.*,"
	"         CASE WHEN c.use_probe THEN c.probe_fingerprint ELSE c.verified_fingerprint END AS served_fingerprint,"
	"         CASE WHEN c.use_probe THEN c.probe_at ELSE c.verified_at END AS served_at,"
	"         CASE WHEN c.use_probe THEN c.deployed_at IS NULL OR c.probe_at >= c.deployed_at"
	"              ELSE c.verified_fingerprint IS NOT NULL END AS served_fresh,"
	"         isfinite(c.renewal_due_at) AND c.renewal_due_at <= now() AS renewal_past"
	"    FROM chosen c"
	")"
	"SELECT s.certificate_id, s.target_id, s.agent_id, s.expected, s.deployed_fingerprint,"
	"       certctl_rfc3339(s.deployed_at), s.served_fingerprint, certctl_rfc3339(s.served_at),"
	"       s.probe_error,"
	"       CASE WHEN s.pending THEN 'pending'"
	"            WHEN s.last_status = 'Failed' THEN 'failing'"
	"            WHEN s.expected IS NULL OR s.deployed_at IS NULL THEN 'never_deployed'"
	"            WHEN s.deployed_fingerprint <> s.expected THEN 'drifted'"
	"            WHEN NOT s.served_fresh OR s.served_fingerprint IS NULL THEN 'unverified'"
	"            WHEN s.served_fingerprint = s.expected THEN 'current'"
	"            ELSE 'drifted' END,"
	"       certctl_rfc3339(s.not_after),"
	"       floor(extract(epoch FROM s.not_after - now()) / 86400)::bigint,"
	"       CASE WHEN isfinite(s.renewal_due_at) THEN certctl_rfc3339(s.renewal_due_at) END,"
	"       s.renewal_past AND certctl_renewal_in_progress(s.certificate_id),"
	"       s.renewal_past AND NOT certctl_renewal_in_progress(s.certificate_id),"
	"       s.last_error,"
	"       extract(epoch FROM s.not_after)::bigint,"
	"       CASE WHEN isfinite(s.renewal_due_at) THEN extract(epoch FROM s.renewal_due_at)::bigint END,"
	"       extract(epoch FROM s.deployed_at)::bigint, extract(epoch FROM s.served_at)::bigint,"
	"       extract(epoch FROM s.not_after - now())::bigint,"
	"       CASE WHEN isfinite(s.renewal_due_at) THEN extract(epoch FROM s.renewal_due_at - now())::bigint END"
	"  FROM served s ORDER BY s.certificate_id, s.target_id";

static const char certificate_exists_sql[] = "SELECT 1 FROM managed_certificates WHERE id = $1";

static const char *column_or_null(const PGresult *rows, int row, int column)
{
	return PQgetisnull(rows, row, column) ? NULL : PQgetvalue(rows, row, column);
}

static bool column_true(const PGresult *rows, int row, int column)
{
	return !PQgetisnull(rows, row, column) && strcmp(PQgetvalue(rows, row, column), "t") == 0;
}

/* 66 for a --certificate nobody knows (or this role cannot see). */
static int check_certificate(PGconn *conn, const char *certificate_id, struct error *err)
{
	const char *params[1] = { certificate_id };
	PGresult *result;
	int code = 0;

	if ((result = db_query(conn, certificate_exists_sql, 1, params, err)) == NULL)
		return err->code;
	if (PQntuples(result) == 0)
		code = error_set(err, EXIT_NOT_FOUND, "%s: no such certificate", certificate_id);
	PQclear(result);
	return code;
}

static json_object *status_line(const PGresult *rows, int row)
{
	json_object *line = json_object_new_object();

	json_add_text_column(line, "certificate_id", rows, row, STATUS_CERTIFICATE_ID);
	json_add_text_column(line, "target_id", rows, row, STATUS_TARGET_ID);
	json_add_text_column(line, "agent_id", rows, row, STATUS_AGENT_ID);
	json_add_text_column(line, "expected_fingerprint", rows, row, STATUS_EXPECTED_FINGERPRINT);
	json_add_text_column(line, "deployed_fingerprint", rows, row, STATUS_DEPLOYED_FINGERPRINT);
	json_add_text_column(line, "deployed_at", rows, row, STATUS_DEPLOYED_AT);
	json_add_text_column(line, "served_fingerprint", rows, row, STATUS_SERVED_FINGERPRINT);
	json_add_text_column(line, "served_at", rows, row, STATUS_SERVED_AT);
	json_add_text_column(line, "served_error", rows, row, STATUS_SERVED_ERROR);
	json_add_text_column(line, "state", rows, row, STATUS_STATE);
	json_add_text_column(line, "not_after", rows, row, STATUS_NOT_AFTER);
	json_add_int_column(line, "days_left", rows, row, STATUS_DAYS_LEFT);
	json_add_text_column(line, "renewal_due_at", rows, row, STATUS_RENEWAL_DUE_AT);
	json_object_object_add(line, "renewal_in_progress",
			       json_object_new_boolean(column_true(rows, row, STATUS_RENEWAL_IN_PROGRESS)));
	return line;
}

static int write_lines(const PGresult *rows, FILE *output, struct error *err)
{
	json_object *line;
	int code = 0;

	for (int row = 0; row < PQntuples(rows) && code == 0; row++) {
		line = status_line(rows, row);
		code = jsonl_put(output, line, err);
		json_object_put(line);
	}
	return code != 0 ? code : jsonl_flush(output, err);
}

/* "12 days", "5 hours", "1 minute": whole units, rounded down. */
static void duration_text(long long seconds, char *text, size_t size)
{
	long long magnitude = seconds < 0 ? -seconds : seconds, count;
	const char *unit;

	if (magnitude >= 86400)
		count = magnitude / 86400, unit = "day";
	else if (magnitude >= 3600)
		count = magnitude / 3600, unit = "hour";
	else
		count = magnitude / 60, unit = "minute";
	snprintf(text, size, "%lld %s%s", count, unit, count == 1 ? "" : "s");
}

/* "in 12 days", "3 days ago" */
static void relative_time(long long seconds, char *text, size_t size)
{
	char duration[32];

	duration_text(seconds, duration, sizeof(duration));
	snprintf(text, size, seconds < 0 ? "%s ago" : "in %s", duration);
}

enum { TABLE_COLUMNS = 5 };
static const char *const table_headers[TABLE_COLUMNS] = { "CERTIFICATE", "TARGET", "STATE", "EXPIRES",
							  "RENEWAL" };
/* Caps plus two spaces between columns stay within STATUS_TABLE_MAX_WIDTH. */
static const size_t table_caps[TABLE_COLUMNS] = { 18, 22, 14, 22, 16 };

/* The table's cells of one row; an id longer than its column ends in '~'. */
static void table_cells(const PGresult *rows, int row, char cells[TABLE_COLUMNS][64])
{
	char when[32];

	snprintf(cells[0], 64, "%s", PQgetvalue(rows, row, STATUS_CERTIFICATE_ID));
	snprintf(cells[1], 64, "%s", PQgetvalue(rows, row, STATUS_TARGET_ID));
	snprintf(cells[2], 64, "%s", PQgetvalue(rows, row, STATUS_STATE));
	if (PQgetisnull(rows, row, STATUS_NOT_AFTER)) {
		snprintf(cells[3], 64, "-");
	} else {
		relative_time(strtoll(PQgetvalue(rows, row, STATUS_NOT_AFTER_IN), NULL, 10), when, sizeof(when));
		snprintf(cells[3], 64, "%.10s %s", PQgetvalue(rows, row, STATUS_NOT_AFTER), when);
	}
	if (PQgetisnull(rows, row, STATUS_RENEWAL_DUE_IN)) {
		snprintf(cells[4], 64, "-");
	} else if (column_true(rows, row, STATUS_RENEWAL_IN_PROGRESS)) {
		snprintf(cells[4], 64, "renewing");
	} else if (column_true(rows, row, STATUS_RENEWAL_OVERDUE)) {
		duration_text(strtoll(PQgetvalue(rows, row, STATUS_RENEWAL_DUE_IN), NULL, 10), when, sizeof(when));
		snprintf(cells[4], 64, "overdue %s", when);
	} else {
		relative_time(strtoll(PQgetvalue(rows, row, STATUS_RENEWAL_DUE_IN), NULL, 10), cells[4], 64);
	}
	for (int column = 0; column < TABLE_COLUMNS; column++) {
		if (strlen(cells[column]) > table_caps[column]) {
			cells[column][table_caps[column] - 1] = '~';
			cells[column][table_caps[column]] = '\0';
		}
	}
}

static int write_table(const PGresult *rows, FILE *output, struct error *err)
{
	char cells[TABLE_COLUMNS][64];
	size_t widths[TABLE_COLUMNS];
	int count = PQntuples(rows);

	for (int column = 0; column < TABLE_COLUMNS; column++)
		widths[column] = strlen(table_headers[column]);
	for (int row = 0; row < count; row++) {
		table_cells(rows, row, cells);
		for (int column = 0; column < TABLE_COLUMNS; column++)
			if (strlen(cells[column]) > widths[column])
				widths[column] = strlen(cells[column]);
	}
	for (int row = -1; row < count; row++) {
		if (row >= 0)
			table_cells(rows, row, cells);
		for (int column = 0; column < TABLE_COLUMNS; column++) {
			const char *cell = row < 0 ? table_headers[column] : cells[column];

			if (column == TABLE_COLUMNS - 1)
				fprintf(output, "%s\n", cell);
			else
				fprintf(output, "%-*s  ", (int)widths[column], cell);
		}
	}
	if (fflush(output) != 0 || ferror(output))
		return error_set(err, EXIT_CANT_CREATE, "cannot write the table to stdout");
	return 0;
}

static int write_metrics(const PGresult *rows, const char *path, struct error *err)
{
	char *text = status_metrics_text(rows, err);
	int code;

	if (text == NULL)
		return err->code;
	code = file_write_atomic(path, text, strlen(text), 0644, err);
	free(text);
	return code;
}

/* One stderr line per problem --check finds; returns how many. */
static int report_problems(const PGresult *rows)
{
	const char *previous = NULL, *certificate, *state, *last_error;
	int problems = 0;

	for (int row = 0; row < PQntuples(rows); row++) {
		certificate = PQgetvalue(rows, row, STATUS_CERTIFICATE_ID);
		state = PQgetvalue(rows, row, STATUS_STATE);
		last_error = column_or_null(rows, row, STATUS_LAST_ERROR);
		if (strcmp(state, "failing") == 0) {
			log_error("%s on %s: failing: %s", certificate, PQgetvalue(rows, row, STATUS_TARGET_ID),
				  last_error ? last_error : "the last deployment failed");
			problems++;
		} else if (strcmp(state, "drifted") == 0) {
			log_error("%s on %s: drifted: deployed %s, served %s, current version %s", certificate,
				  PQgetvalue(rows, row, STATUS_TARGET_ID),
				  PQgetisnull(rows, row, STATUS_DEPLOYED_FINGERPRINT)
					  ? "unknown" : PQgetvalue(rows, row, STATUS_DEPLOYED_FINGERPRINT),
				  PQgetisnull(rows, row, STATUS_SERVED_FINGERPRINT)
					  ? "unknown" : PQgetvalue(rows, row, STATUS_SERVED_FINGERPRINT),
				  PQgetvalue(rows, row, STATUS_EXPECTED_FINGERPRINT));
			problems++;
		}
		if ((previous == NULL || strcmp(previous, certificate) != 0) &&
		    column_true(rows, row, STATUS_RENEWAL_OVERDUE)) {
			log_error("%s: past its renewal point (%s) with no renewal in progress", certificate,
				  PQgetvalue(rows, row, STATUS_RENEWAL_DUE_AT));
			problems++;
		}
		previous = certificate;
	}
	return problems;
}

int status_report(PGconn *conn, const struct status_options *options, FILE *output,
		  struct error *err)
{
	const char *params[2] = { options->certificate_id, options->agent_id };
	PGresult *rows;
	int code = 0;

	if (options->agent_id != NULL && (code = scope_check_agent_named(conn, options->agent_id, err)) != 0)
		return code;
	if (options->certificate_id != NULL && (code = check_certificate(conn, options->certificate_id, err)) != 0)
		return code;
	if ((rows = db_query(conn, status_sql, 2, params, err)) == NULL)
		return err->code;
	switch (options->output) {
	case STATUS_OUTPUT_JSON:
		code = write_lines(rows, output, err);
		break;
	case STATUS_OUTPUT_TABLE:
		code = write_table(rows, output, err);
		break;
	case STATUS_OUTPUT_PROMETHEUS:
		code = write_metrics(rows, options->prometheus_file, err);
		break;
	case STATUS_OUTPUT_NONE:
		break;
	}
	if (code == 0 && options->check && report_problems(rows) > 0) {
		error_clear(err);
		code = EXIT_FAILED_CLEANLY;
	}
	PQclear(rows);
	return code;
}
