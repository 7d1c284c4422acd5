/* certctl-status: what is deployed where, from the database alone, as JSON lines, a table or metrics. */
#ifndef CERTCTL_STATUS_H
#define CERTCTL_STATUS_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/* The table's width budget: every column at its cap, with the gaps, fits. */
#define STATUS_TABLE_MAX_WIDTH 100

enum status_output {
	STATUS_OUTPUT_JSON,       /* one line per target of each certificate (the default) */
	STATUS_OUTPUT_TABLE,      /* aligned columns for a person */
	STATUS_OUTPUT_PROMETHEUS, /* a node_exporter textfile, written atomically */
	STATUS_OUTPUT_NONE,       /* --check alone: only the problems, on stderr */
};

struct status_options {
	const char *certificate_id; /* NULL: every certificate */
	const char *agent_id;       /* NULL: every agent (an agent's role sees its own anyway) */
	enum status_output output;
	const char *prometheus_file;
	bool check;
};

/*
 * Reads every active target of every (or the chosen) certificate in one
 * statement and writes the chosen output. With check, logs each failing or
 * drifted target and each certificate past its renewal point with no renewal
 * in progress, and returns EXIT_FAILED_CLEANLY when there was one (err
 * cleared: the problems are already on stderr). EXIT_NOT_FOUND for an
 * unknown --certificate or --agent, EXIT_FORBIDDEN for an agent's role asking
 * for another agent.
 */
int status_report(PGconn *conn, const struct status_options *options, FILE *output,
		  struct error *err);

/* The rows status_report() reads, columns as enum status_column. */
enum status_column {
	STATUS_CERTIFICATE_ID, STATUS_TARGET_ID, STATUS_AGENT_ID, STATUS_EXPECTED_FINGERPRINT,
	STATUS_DEPLOYED_FINGERPRINT, STATUS_DEPLOYED_AT, STATUS_SERVED_FINGERPRINT, STATUS_SERVED_AT,
	STATUS_SERVED_ERROR, STATUS_STATE, STATUS_NOT_AFTER, STATUS_DAYS_LEFT, STATUS_RENEWAL_DUE_AT,
	STATUS_RENEWAL_IN_PROGRESS, STATUS_RENEWAL_OVERDUE, STATUS_LAST_ERROR,
	STATUS_NOT_AFTER_EPOCH, STATUS_RENEWAL_DUE_EPOCH, STATUS_DEPLOYED_EPOCH, STATUS_SERVED_EPOCH,
	STATUS_NOT_AFTER_IN, STATUS_RENEWAL_DUE_IN,
};

/* The states, in the order the metrics list them. */
extern const char *const status_states[];

/* The node_exporter textfile for rows (status_report()'s), as text; caller free()s. */
char *status_metrics_text(const PGresult *rows, struct error *err);

#endif
