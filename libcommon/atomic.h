/*
 * The atomic install primitive for local file targets (CONTRACT "The atomic
 * primitive"): lock, skip identical bytes, temp + fsync, validate, back up,
 * rename, reload, and restore + reload again when the reload fails. The
 * algorithm is applier_run()'s (applier.h); this file is the local file system.
 */
#ifndef CERTCTL_ATOMIC_H
#define CERTCTL_ATOMIC_H

#include <stdbool.h>

#include "deployplan.h"
#include "error.h"

#define ATOMIC_BACKUP_INFIX ".certctl-bak."
/* Lock file beside each destination: ".<name>.certctl-lock", kept for good. */
#define ATOMIC_LOCK_SUFFIX ".certctl-lock"

/*
 * Applies plan to the local filesystem and fills result (outcome, backup
 * status per file, daemon_state_unknown, manual_action_required, error).
 * Returns result->exit_code: 0 (Completed or Skipped); EXIT_FAILED_CLEANLY (nothing
 * changed, or rolled back); EXIT_MANUAL_ACTION (restore failed); EXIT_CONFIG
 * (unknown owner/group); EXIT_CANT_CREATE (a temp file could not be written;
 * nothing changed); EXIT_TEMPORARY (SIGINT/SIGTERM before anything changed).
 * err carries the same message as result->error. The validate command finds
 * each new file's temp path in the variable deploy_file_new_path_variable() names.
 */
int atomic_apply(const struct deploy_plan *plan, struct deploy_result *result, struct error *err);

/*
 * For --dry-run: sets differs[i] for each file of plan whose destination is
 * missing or holds other bytes. Writes nothing, takes no lock. Returns 0 or
 * EXIT_CANT_CREATE when a destination exists but cannot be read.
 */
int atomic_compare(const struct deploy_plan *plan, bool differs[DEPLOY_MAX_FILES], struct error *err);

#endif
