/* certctl-renew: Issuance and Renewal jobs for the certificates that are due, and expiry warnings. */
#ifndef CERTCTL_RENEW_H
#define CERTCTL_RENEW_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

struct renew_request {
	const char *certificate_id; /* NULL: every certificate */
	const char *now;            /* NULL: the database's now(); else a timestamp, as if it were then */
	bool dry_run;               /* every change rolled back; the lines say what would be created */
};

/*
 * One transaction per certificate due: an Issuance (no version yet) or
 * Renewal job, Pending with no agent for key_mode central, AwaitingCSR for
 * the certificate's one agent for key_mode agent, and its audit event; then
 * the expiry_warning / expired events, once per version and kind. Job lines
 * go to output after each commit. An agent-mode certificate whose active
 * targets are not on exactly one agent gets no job (EXIT_CONFIG, named on
 * stderr); the others go on. Unknown --certificate: EXIT_NOT_FOUND.
 */
int renew_due_certificates(PGconn *conn, const struct renew_request *request, FILE *output,
			   struct error *err);

#endif
