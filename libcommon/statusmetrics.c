/* certctl-status --prometheus: the node_exporter textfile-collector format, one family at a time. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exitcode.h"
#include "status.h"

/* A label value: backslash, double quote and newline escaped. */
static void put_label(FILE *out, const char *name, const char *value)
{
	fprintf(out, "%s=\"", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

static void put_family(FILE *out, const char *name, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

static void put_target_labels(FILE *out, const PGresult *rows, int row)
{
	put_label(out, "certificate_id", PQgetvalue(rows, row, STATUS_CERTIFICATE_ID));
	fputc(',', out);
	put_label(out, "target_id", PQgetvalue(rows, row, STATUS_TARGET_ID));
	fputc(',', out);
	put_label(out, "agent_id", PQgetvalue(rows, row, STATUS_AGENT_ID));
}

/* One sample per target that has column (SQL NULL: no sample). */
static void put_target_family(FILE *out, const PGresult *rows, const char *name, const char *help,
			      int column)
{
	put_family(out, name, help);
	for (int row = 0; row < PQntuples(rows); row++) {
		if (PQgetisnull(rows, row, column))
			continue;
		fprintf(out, "%s{", name);
		put_target_labels(out, rows, row);
		fprintf(out, "} %s\n", PQgetvalue(rows, row, column));
	}
}

/* One sample per certificate (rows come sorted by certificate) that has column. */
static void put_certificate_family(FILE *out, const PGresult *rows, const char *name,
				   const char *help, int column)
{
	const char *previous = NULL, *certificate;

	put_family(out, name, help);
	for (int row = 0; row < PQntuples(rows); row++) {
		certificate = PQgetvalue(rows, row, STATUS_CERTIFICATE_ID);
		if (previous != NULL && strcmp(previous, certificate) == 0)
			continue;
		previous = certificate;
		if (PQgetisnull(rows, row, column))
			continue;
		fprintf(out, "%s{", name);
		put_label(out, "certificate_id", certificate);
		fprintf(out, "} %s\n", strcmp(PQgetvalue(rows, row, column), "t") == 0   ? "1"
				       : strcmp(PQgetvalue(rows, row, column), "f") == 0 ? "0"
											  : PQgetvalue(rows, row, column));
	}
}

char *status_metrics_text(const PGresult *rows, struct error *err)
{
	char *text = NULL;
	size_t length = 0;
	FILE *out = open_memstream(&text, &length);

	if (out == NULL) {
		error_set(err, EXIT_INTERNAL, "out of memory");
		return NULL;
	}
	put_family(out, "certctl_target_state",
		   "1 for the state a certificate's target is in (certctl-status), 0 for the others.");
	for (int row = 0; row < PQntuples(rows); row++) {
		for (int state = 0; status_states[state] != NULL; state++) {
			fputs("certctl_target_state{", out);
			put_target_labels(out, rows, row);
			fputc(',', out);
			put_label(out, "state", status_states[state]);
			fprintf(out, "} %d\n", strcmp(PQgetvalue(rows, row, STATUS_STATE), status_states[state]) == 0);
		}
	}
	put_target_family(out, rows, "certctl_target_deployed_timestamp_seconds",
			  "When the last completed deployment to the target finished (Unix time).",
			  STATUS_DEPLOYED_EPOCH);
	put_target_family(out, rows, "certctl_target_served_timestamp_seconds",
			  "When the target's endpoint was last seen serving a certificate (Unix time).",
			  STATUS_SERVED_EPOCH);
	put_certificate_family(out, rows, "certctl_certificate_not_after_seconds",
			       "When the certificate's current version expires (Unix time).",
			       STATUS_NOT_AFTER_EPOCH);
	put_certificate_family(out, rows, "certctl_certificate_renewal_due_seconds",
			       "When the certificate's current version is due for renewal (Unix time).",
			       STATUS_RENEWAL_DUE_EPOCH);
	put_certificate_family(out, rows, "certctl_certificate_renewal_overdue",
			       "1 when the certificate is past its renewal point with no renewal in progress.",
			       STATUS_RENEWAL_OVERDUE);
	put_family(out, "certctl_status_generated_timestamp_seconds",
		   "When certctl-status wrote this file (Unix time).");
	fprintf(out, "certctl_status_generated_timestamp_seconds %lld\n", (long long)time(NULL));
	if (fclose(out) != 0 || text == NULL) {
		free(text);
		error_set(err, EXIT_INTERNAL, "out of memory");
		return NULL;
	}
	return text;
}
