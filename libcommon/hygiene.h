/* Keeping a process's secrets (keys, passwords) out of core dumps and its children. */
#ifndef CERTCTL_HYGIENE_H
#define CERTCTL_HYGIENE_H

#include "error.h"

/*
 * Makes the process non-dumpable (no core file, no ptrace or /proc/PID/mem
 * by other processes of the same user) and its core size limit 0, hard and
 * soft. Call first thing in main. Returns 0 or EXIT_INTERNAL with err set.
 */
int process_protect_secrets(struct error *err);

#endif
