/*
 * certctl-csr: for each AwaitingCSR job line of this agent, a new key staged
 * in the key store (keystore.h), a CSR for the certificate's names, and its
 * submission (certctl_submit_csr, migration 000006) with the audit event
 * csr_submitted, in one transaction. Other lines pass through.
 */
#ifndef CERTCTL_CSRSUBMIT_H
#define CERTCTL_CSRSUBMIT_H

#include <stdio.h>

#include <libpq-fe.h>

#include "error.h"

/*
 * Reads job lines from input; writes other lines through unchanged and one
 * result line per submitted CSR. key_dir NULL: $CERTCTL_KEY_DIR or the
 * default. Per-job problems are logged and do not stop the run; returns the
 * most serious exit code met (EXIT_TEMPORARY after SIGINT/SIGTERM).
 */
int csr_job_lines(PGconn *conn, const char *key_dir, FILE *input, FILE *output, struct error *err);

#endif
