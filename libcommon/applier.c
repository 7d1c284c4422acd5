#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "applier.h"
#include "exitcode.h"
#include "runcmd.h"
#include "signals.h"

/* Restores files [0, count); true when every one is back. Appends "path: why" to reasons. */
static bool restore_files(const struct applier *applier, const struct deploy_plan *plan, size_t count,
			  struct deploy_result *result, char *reasons, size_t reasons_size)
{
	bool all = true;

	for (size_t i = 0; i < count; i++) {
		char why[ERROR_MESSAGE_MAX] = "";
		size_t used = strlen(reasons);

		result->backup[i] = applier->ops->restore(applier->context, i, why, sizeof(why));
		if (result->backup[i] == BACKUP_RESTORED || result->backup[i] == BACKUP_REMOVED)
			continue;
		all = false;
		snprintf(reasons + used, reasons_size - used, "%s%s: %s", used ? "; " : "",
			 plan->files[i].path, why);
	}
	if (applier->ops->sync != NULL)
		applier->ops->sync(applier->context);
	return all;
}

/* Nothing was installed: no temp file is left, and no file's status is anything but n/a. */
static int fail_unchanged(const struct applier *applier, const struct deploy_plan *plan,
			  struct deploy_result *result, const struct error *step, struct error *err)
{
	applier->ops->remove_temps(applier->context);
	for (size_t i = 0; i < plan->file_count; i++)
		result->backup[i] = BACKUP_NOT_APPLICABLE;
	return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, step->code, err, "%s", step->message);
}

static int interrupted(struct error *step, const char *before)
{
	return error_set(step, EXIT_TEMPORARY, "interrupted before %s; nothing changed", before);
}

/* Lock and compare, stage, validate, back up: every failure here changes nothing. */
static int prepare(const struct applier *applier, bool *all_same, struct error *step)
{
	const struct applier_ops *ops = applier->ops;

	if (ops->lock_and_compare(applier->context, all_same, step) != 0)
		return step->code;
	if (*all_same)
		return 0;
	if (ops->settle_ownership != NULL && ops->settle_ownership(applier->context, step) != 0)
		return step->code;
	if (signals_stop_requested())
		return interrupted(step, "writing");
	if (ops->stage(applier->context, step) != 0)
		return step->code;
	if (ops->validate(applier->context, step) != 0)
		return error_prefix(step, "validate command failed; nothing changed");
	if (signals_stop_requested())
		return interrupted(step, "installing");
	if (ops->back_up != NULL && ops->back_up(applier->context, step) != 0)
		return step->code;
	return 0;
}

/* What an installed file's status says: a backup kept, a first deploy, or neither. */
static enum backup_status installed_status(const struct applier *applier, size_t i)
{
	bool existed, backed_up;

	applier->ops->describe(applier->context, i, &existed, &backed_up);
	if (backed_up)
		return BACKUP_SNAPSHOTTED;
	return existed ? BACKUP_NOT_APPLICABLE : BACKUP_NO_PRE_EXISTING;
}

/* File failed did not install: take back the ones that did, and say how it ended. */
static int roll_back_install(const struct applier *applier, const struct deploy_plan *plan, size_t failed,
			     const char *why, struct deploy_result *result, struct error *err)
{
	char reasons[ERROR_MESSAGE_MAX] = "";
	size_t installed = applier->restore_failed_install ? failed + 1 : failed;

	run_deadline_rollback(true);
	applier->ops->remove_temps(applier->context);
	if (!restore_files(applier, plan, installed, result, reasons, sizeof(reasons))) {
		result->manual_action_required = true;
		return deploy_result_finish(result, DEPLOY_OUTCOME_MANUAL_ACTION, EXIT_MANUAL_ACTION, err,
			      "cannot install %s (%s) and restoring the files already installed failed (%s): manual action required",
			      plan->files[failed].path, why, reasons);
	}
	return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED_CLEANLY, err,
		      "cannot install %s: %s; rolled back to pre-deploy state", plan->files[failed].path, why);
}

/* The reload failed and the files are new: restore, reload again, and say how it ended. */
static int roll_back_reload(const struct applier *applier, const struct deploy_plan *plan,
			    const char *reload_error, struct deploy_result *result, struct error *err)
{
	const char *prefix = applier->reload_prefix;
	char reasons[ERROR_MESSAGE_MAX] = "";
	struct error again = { 0, "" };

	/* The restore and the reload after it may use the time kept back for them. */
	run_deadline_rollback(true);
	if (!restore_files(applier, plan, plan->file_count, result, reasons, sizeof(reasons))) {
		result->manual_action_required = true;
		return deploy_result_finish(result, DEPLOY_OUTCOME_MANUAL_ACTION, EXIT_MANUAL_ACTION, err,
			      "%sreload command failed (%s) and restoring the previous files failed (%s): manual action required",
			      prefix, reload_error, reasons);
	}
	if (applier->ops->reload(applier->context, &again) != 0) {
		result->daemon_state_unknown = true;
		return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED_CLEANLY, err,
			      "%sreload command failed; rolled back to pre-deploy state, but the reload after the rollback failed too (%s); first failure: %s",
			      prefix, again.message, reload_error);
	}
	return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED_CLEANLY, err,
		      "%sreload command failed; rolled back to pre-deploy state: %s", prefix, reload_error);
}

/* Install, reload, roll back. */
static int install_and_reload(const struct applier *applier, const struct deploy_plan *plan,
			      struct deploy_result *result, struct error *err)
{
	const struct applier_ops *ops = applier->ops;
	struct error step = { 0, "" };

	for (size_t i = 0; i < plan->file_count; i++) {
		if (ops->install(applier->context, i, &step) != 0)
			return roll_back_install(applier, plan, i, step.message, result, err);
		result->backup[i] = installed_status(applier, i);
	}
	if (ops->sync != NULL)
		ops->sync(applier->context);
	if (ops->reload(applier->context, &step) != 0)
		return roll_back_reload(applier, plan, step.message, result, err);
	return deploy_result_finish(result, DEPLOY_OUTCOME_COMPLETED, 0, err, NULL);
}

int applier_run(const struct applier *applier, const struct deploy_plan *plan,
		struct deploy_result *result, struct error *err)
{
	struct error step = { 0, "" };
	bool all_same = false;
	int code;

	if (plan->file_count == 0)
		return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_CONFIG, err,
					    "%s: the plan has no files", plan->target_id);
	if (prepare(applier, &all_same, &step) != 0)
		return fail_unchanged(applier, plan, result, &step, err);
	if (all_same)
		return deploy_result_finish(result, DEPLOY_OUTCOME_SKIPPED, 0, err, NULL);
	code = install_and_reload(applier, plan, result, err);
	run_deadline_rollback(false);
	if (code != EXIT_MANUAL_ACTION && applier->ops->prune_backups != NULL)
		applier->ops->prune_backups(applier->context);
	return code;
}

bool backup_names_add(struct backup_names *names, const char *entry)
{
	if (strncmp(entry, names->prefix, strlen(names->prefix)) != 0)
		return true;
	if (names->count == names->capacity) {
		size_t capacity = names->capacity ? names->capacity * 2 : 8;
		char **grown = realloc(names->names, capacity * sizeof(*names->names));
		if (grown == NULL)
			return false;
		names->names = grown;
		names->capacity = capacity;
	}
	if ((names->names[names->count] = strdup(entry)) == NULL)
		return false;
	names->count++;
	return true;
}

static int name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void backup_names_prune(struct backup_names *names, int keep,
			void (*drop)(void *context, const char *name), void *context)
{
	if (names->count > 0)
		qsort(names->names, names->count, sizeof(*names->names), name_compare);
	for (size_t i = 0; i < names->count; i++) {
		if (i + (size_t)keep < names->count)
			drop(context, names->names[i]);
		free(names->names[i]);
	}
	free(names->names);
	names->names = NULL;
	names->count = names->capacity = 0;
}
