/*
 * SIGINT/SIGTERM set a flag instead of killing the process, so the item in
 * hand is finished or rolled back before the command exits 75.
 */
#ifndef CERTCTL_SIGNALS_H
#define CERTCTL_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

/* Installs the handlers without SA_RESTART (a blocked wait returns EINTR) and ignores SIGPIPE. */
void signals_install(void);
bool signals_stop_requested(void);

/*
 * Blocks SIGINT and SIGTERM and sets *wait_mask to the previous mask without
 * them: pass it to ppoll() so a stop can arrive only inside the wait, never
 * just before it; sigprocmask(SIG_SETMASK, wait_mask, NULL) unblocks after.
 */
void signals_block_stop(sigset_t *wait_mask);
/* The signal number that asked us to stop, or 0. */
int signals_received(void);

#endif
