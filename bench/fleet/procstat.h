/* CPU time of PostgreSQL and pgbouncer, read from /proc on this host. */
#ifndef FLEET_PROCSTAT_H
#define FLEET_PROCSTAT_H

#include <sys/types.h>

/* The parent of a process (the postmaster, for a backend's pid), or -1. */
pid_t procstat_parent(pid_t pid);

/* utime + stime of pid, in seconds; -1 when it cannot be read. */
double procstat_cpu_seconds(pid_t pid);

/*
 * CPU seconds the postmaster and all its children have used so far: its own
 * time, the time of children it has reaped (cutime, cstime: backends that
 * have exited) and that of children still running. -1 when unreadable.
 */
double procstat_cluster_cpu_seconds(pid_t postmaster);

#endif
