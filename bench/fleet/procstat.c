#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"

/* The fields of /proc/PID/stat we use, by their number in proc(5). */
struct proc_stat {
	long parent;                              /* field 4 */
	unsigned long long utime, stime;          /* 14, 15 */
	unsigned long long cutime, cstime;        /* 16, 17 */
};

/* Reads /proc/PID/stat; the command name (field 2) may hold spaces and ')', so fields start after the last ')'. */
static int read_stat(pid_t pid, struct proc_stat *stat)
{
	char path[64], line[1024], *cursor;
	FILE *file;
	size_t length;
	long long cutime, cstime;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((file = fopen(path, "r")) == NULL)
		return -1;
	length = fread(line, 1, sizeof(line) - 1, file);
	fclose(file);
	line[length] = '\0';
	if ((cursor = strrchr(line, ')')) == NULL)
		return -1;
	/* Fields 3 (state) to 17. */
	if (sscanf(cursor + 1, " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld",
		   &stat->parent, &stat->utime, &stat->stime, &cutime, &cstime) != 5)
		return -1;
	stat->cutime = (unsigned long long)cutime;
	stat->cstime = (unsigned long long)cstime;
	return 0;
}

static double ticks_to_seconds(unsigned long long ticks)
{
	return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

pid_t procstat_parent(pid_t pid)
{
	struct proc_stat stat;

	return read_stat(pid, &stat) == 0 ? (pid_t)stat.parent : -1;
}

double procstat_cpu_seconds(pid_t pid)
{
	struct proc_stat stat;

	return read_stat(pid, &stat) == 0 ? ticks_to_seconds(stat.utime + stat.stime) : -1;
}

double procstat_cluster_cpu_seconds(pid_t postmaster)
{
	struct proc_stat stat;
	unsigned long long ticks;
	struct dirent *entry;
	DIR *proc;

	if (read_stat(postmaster, &stat) != 0 || (proc = opendir("/proc")) == NULL)
		return -1;
	ticks = stat.utime + stat.stime + stat.cutime + stat.cstime;
	while ((entry = readdir(proc)) != NULL) {
		struct proc_stat child;

		if (!isdigit((unsigned char)entry->d_name[0]))
			continue;
		/* A child that exits now is lost from both counts: a few ticks at most. */
		if (read_stat((pid_t)atol(entry->d_name), &child) == 0 && child.parent == postmaster)
			ticks += child.utime + child.stime;
	}
	closedir(proc);
	return ticks_to_seconds(ticks);
}
