/* Running an operator's validate/reload command: argv only, bounded in time. */
#ifndef CERTCTL_RUNCMD_H
#define CERTCTL_RUNCMD_H

#include "error.h"

/* A command that outlives this is killed (SIGKILL to its process group). */
#define DEFAULT_COMMAND_TIMEOUT_SECONDS 60
/* $CERTCTL_COMMAND_TIMEOUT (seconds) overrides the default, e.g. for slow reloads. */
#define COMMAND_TIMEOUT_ENV "CERTCTL_COMMAND_TIMEOUT"

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
 * EXIT_FAILED with err "NAME exited N: <stderr on one line>" (or "killed by
 * signal N", "timed out after N s", "cannot run: why").
 */
int run_command(char *const argv[], const struct command_env *env, struct error *err);

#endif
