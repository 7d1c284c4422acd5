/* Running an operator's validate/reload command: argv only, bounded in time. */
#ifndef CERTCTL_RUNCMD_H
#define CERTCTL_RUNCMD_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* A command that outlives this is killed (SIGKILL to its process group). */
#define DEFAULT_COMMAND_TIMEOUT_SECONDS 60
/* $CERTCTL_COMMAND_TIMEOUT (seconds) overrides the default, e.g. for slow reloads. */
#define COMMAND_TIMEOUT_ENV "CERTCTL_COMMAND_TIMEOUT"
/* No command timeout (local or ssh) is longer: well inside the units' TimeoutStartSec=14min. */
#define MAX_COMMAND_TIMEOUT_SECONDS 600
/*
 * A run of certctl-deploy ends within this many seconds of its start (the
 * shipped units give it 14 min), $CERTCTL_RUN_DEADLINE to change it.
 */
#define DEFAULT_RUN_DEADLINE_SECONDS 780
#define RUN_DEADLINE_ENV "CERTCTL_RUN_DEADLINE"
/* Kept back from every command for a rollback's restore and reload; a quarter of shorter deadlines. */
#define ROLLBACK_RESERVE_SECONDS 60

/* Extra environment for the child: NULL-terminated "NAME=value" strings, or NULL. */
struct command_env {
	const char *const *assignments;
};

/*
 * Runs argv (NULL-terminated; argv[0] looked up in $PATH) with fork/execvp,
 * in a scrubbed environment (PATH, LANG, LC_*, TZ and CERTCTL_NEW_* only,
 * then env's assignments; PATH defaults to /usr/sbin:/usr/bin:/sbin:/bin),
 * stdin from /dev/null, stdout discarded, in its own process group (so a
 * terminal's SIGINT reaches us, not the reload in flight). Waits for it
 * through our own SIGINT/SIGTERM. Returns 0 when it exited 0; otherwise
 * EXIT_FAILED_CLEANLY with err "NAME exited N: <stderr on one line>" (or "killed by
 * signal N", "timed out after N s", "cannot run: why").
 */
int run_command(char *const argv[], const struct command_env *env, struct error *err);

/* Longest stderr line run_command_io() keeps, terminator included. */
#define COMMAND_LAST_LINE_SIZE 400

/* What run_command_io() feeds a command on stdin, how long it may take, and what it keeps of its stderr. */
struct command_io {
	const char *input;      /* input_length bytes on stdin; NULL: /dev/null */
	size_t input_length;
	/* > 0: the command's own timeout (an issuer's), not cut by the run deadline; 0: command_timeout_seconds() */
	int timeout_seconds;
	/* Filled: the last non-blank line it wrote to stderr (cut, control characters blanked), or "". */
	char last_line[COMMAND_LAST_LINE_SIZE];
	/* Filled: the status it exited with, or -1 when it was killed, timed out or never ran. */
	int exit_status;
};

/*
 * run_command(), with io's input on stdin (certctl-notify's event line), io's
 * timeout (certctl-issue's issuer), and its last stderr line kept: a failure's
 * err then ends with that line, where a program says why it gave up.
 */
int run_command_io(char *const argv[], const struct command_env *env, struct command_io *io,
		   struct error *err);

/* The command timeout in seconds ($CERTCTL_COMMAND_TIMEOUT or the default, at most MAX_COMMAND_TIMEOUT_SECONDS). */
int command_timeout_seconds(void);

/*
 * Starts the run's clock: every command from now on ends by the deadline
 * ($CERTCTL_RUN_DEADLINE seconds, default DEFAULT_RUN_DEADLINE_SECONDS).
 * Until it is called there is no deadline. Returns EXIT_USAGE with err set
 * when the variable is not a number of seconds from 1 to 86400.
 */
int run_deadline_start(struct error *err);

/*
 * Milliseconds a command may run when it starts now: timeout_seconds, cut to
 * the time left minus the rollback reserve (during a rollback, to all the
 * time left); *cut says whether it was cut. At least 1 ms.
 */
long long run_deadline_command_ms(int timeout_seconds, bool *cut);

/* A rollback is under way (its commands may use the reserve), or over. */
void run_deadline_rollback(bool under_way);

/*
 * Whether a job whose commands may each take timeout_seconds still fits
 * before the deadline: validate and reload at their full timeout plus the
 * rollback reserve. Fills the milliseconds left and needed.
 */
bool run_deadline_job_fits(int timeout_seconds, long long *left_ms, long long *needed_ms);

#endif
