/*
 * Drives job_finish_fenced() against the real database from a bats test:
 *   test_jobs_fence JOB_ID CLAIMED_BY ATTEMPTS STATUS [LAST_ERROR]
 * Exits with the function's code (0 finished, 66 unknown job, 75 claim lost).
 */
#include <stdio.h>
#include <stdlib.h>

#include "db.h"
#include "exitcode.h"
#include "jobs.h"
#include "log.h"

int main(int argc, char *argv[])
{
	struct error err = { 0, "" };
	struct job_claim claim;
	PGconn *conn;
	int code;

	log_init("test_jobs_fence");
	if (argc < 5 || argc > 6) {
		log_error("usage: test_jobs_fence JOB_ID CLAIMED_BY ATTEMPTS STATUS [LAST_ERROR]");
		return EXIT_USAGE;
	}
	claim.claimed_by = argv[2];
	claim.attempts = atoi(argv[3]);
	if ((conn = db_connect(NULL, &err)) == NULL) {
		log_error("%s", err.message);
		return err.code;
	}
	code = job_finish_fenced(conn, argv[1], &claim, argv[4], argc == 6 ? argv[5] : NULL,
				 NULL, &err);
	if (code != 0)
		log_error("%s", err.message);
	db_disconnect(conn);
	return code;
}
