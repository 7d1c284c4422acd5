/*
 * SIGINT/SIGTERM set a flag instead of killing the process, so the item in
 * hand is finished or rolled back before the command exits 75.
 */
#ifndef CERTCTL_SIGNALS_H
#define CERTCTL_SIGNALS_H

#include <stdbool.h>

/* Installs the handlers without SA_RESTART (a blocked wait returns EINTR) and ignores SIGPIPE. */
void signals_install(void);
bool signals_stop_requested(void);
/* The signal number that asked us to stop, or 0. */
int signals_received(void);

#endif
