/*
 * The atomic primitive's one algorithm, over any file system: lock and
 * compare, stage, validate, back up, install, reload, and roll back when the
 * install or the reload fails. atomic.c (local) and sshdeploy.c (SFTP) each
 * fill a struct applier; applier_run() decides every outcome, exit code and
 * backup status, so a rollback fix is made once.
 */
#ifndef CERTCTL_APPLIER_H
#define CERTCTL_APPLIER_H

#include <stdbool.h>
#include <stddef.h>

#include "deployplan.h"
#include "error.h"

/* Temp files are ".<name>" TEMP_FILE_INFIX "<unique>" beside their destination. */
#define TEMP_FILE_INFIX ".certctl-tmp."

/*
 * The steps one file system offers. Each gets the applier's context; int
 * steps return 0 or an exit code with err set. Optional steps may be NULL.
 */
struct applier_ops {
	/* Locks the destinations (or connects) and sets *all_same when every one holds the plan's bytes. */
	int (*lock_and_compare)(void *context, bool *all_same, struct error *err);
	/* Optional: settles owner, group and mode of the new files, after the comparison. */
	int (*settle_ownership)(void *context, struct error *err);
	/* Writes every new file to its temp path; a failure leaves no temp file behind. */
	int (*stage)(void *context, struct error *err);
	/* Runs the plan's validate command on the staged files. */
	int (*validate)(void *context, struct error *err);
	/* Optional: keeps what a restore needs; on failure nothing is left of it. */
	int (*back_up)(void *context, struct error *err);
	/* Renames file i's temp over its destination; err->message says why not. */
	int (*install)(void *context, size_t i, struct error *err);
	/* Optional: makes the installs (or restores) durable. */
	void (*sync)(void *context);
	/* Whether file i existed before the deploy, and whether a backup of it was kept. */
	void (*describe)(void *context, size_t i, bool *existed, bool *backed_up);
	void (*remove_temps)(void *context);
	/* Puts file i back as it was (or removes it); on failure writes why. */
	enum backup_status (*restore)(void *context, size_t i, char *why, size_t why_size);
	/* Runs the plan's reload command. */
	int (*reload)(void *context, struct error *err);
	/* Optional: prunes old backups once the outcome is clean. */
	void (*prune_backups)(void *context);
};

struct applier {
	const struct applier_ops *ops;
	void *context;
	/* "" or "label: ", before the messages of a failed reload. */
	const char *reload_prefix;
	/* True when a failed install may have replaced its file anyway (mv over a broken channel). */
	bool restore_failed_install;
};

/*
 * One file's "<name>.certctl-bak.<ns>" backups gathered from a directory
 * listing, so both file systems apply backup_retention the same way.
 */
struct backup_names {
	const char *prefix;     /* "<name>" ATOMIC_BACKUP_INFIX */
	char **names;
	size_t count, capacity;
};

/* Keeps a copy of entry when it starts with names->prefix; false when out of memory. */
bool backup_names_add(struct backup_names *names, const char *entry);

/* Calls drop for all but the newest keep (the names sort by time), then frees the list. */
void backup_names_prune(struct backup_names *names, int keep,
			void (*drop)(void *context, const char *name), void *context);

/*
 * Runs plan through applier's steps and fills result (already initialised by
 * deploy_result_init()). Returns result->exit_code; err carries result->error.
 */
int applier_run(const struct applier *applier, const struct deploy_plan *plan,
		struct deploy_result *result, struct error *err);

#endif
