/*
 * The atomic primitive over SFTP. The snapshot of every destination lives in
 * memory (no backup files are left on the remote host); each new file goes to
 * a sibling temp file with its final mode, and replaces its destination with
 * rename(2) run as `mv -f` over an exec channel: libssh2 1.10 only has the
 * SFTP v3 rename, which OpenSSH refuses when the target exists, and it does
 * not expose OpenSSH's posix-rename@openssh.com extension.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "exitcode.h"
#include "signals.h"
#include "sshdeploy.h"
#include "sshsession.h"

#define SSH_TEMP_INFIX ".certctl-tmp."
#define SNAPSHOT_MAX_BYTES (16 * 1024 * 1024)
#define PERMISSION_BITS 07777

/* What one destination held before the deploy, and where its new bytes wait. */
struct remote_file {
	bool existed;
	unsigned char *original;        /* snapshot; cleansed when the file is secret */
	size_t original_length;
	unsigned long original_mode;
	bool has_owner;
	unsigned long uid, gid;
	unsigned long mode;             /* the mode the new file gets */
	char *temp;                     /* temp path while it exists on the remote */
};

static bool sftp_status_is(struct ssh_connection *connection, unsigned long status)
{
	return libssh2_session_last_errno(connection->session) == LIBSSH2_ERROR_SFTP_PROTOCOL &&
	       libssh2_sftp_last_error(connection->sftp) == status;
}

/* ".<name>.certctl-tmp.<pid>-<random>" beside path. Caller frees. */
static char *temp_path_for(const char *path)
{
	const char *slash = strrchr(path, '/');
	unsigned char random_bytes[6];
	char *temp;

	if (slash == NULL || RAND_bytes(random_bytes, sizeof(random_bytes)) != 1)
		return NULL;
	if (asprintf(&temp, "%.*s/.%s" SSH_TEMP_INFIX "%ld-%02x%02x%02x%02x%02x%02x",
		     (int)(slash - path), path, slash + 1, (long)getpid(),
		     random_bytes[0], random_bytes[1], random_bytes[2],
		     random_bytes[3], random_bytes[4], random_bytes[5]) < 0)
		return NULL;
	return temp;
}

static int read_remote_file(struct ssh_connection *connection, const char *path,
			    struct remote_file *state, struct error *err)
{
	LIBSSH2_SFTP_HANDLE *handle;
	size_t capacity = 0;
	ssize_t got;

	handle = libssh2_sftp_open_ex(connection->sftp, path, (unsigned int)strlen(path),
				      LIBSSH2_FXF_READ, 0, LIBSSH2_SFTP_OPENFILE);
	if (handle == NULL)
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot read: %s; nothing changed", path,
				 ssh_sftp_error_text(connection));
	for (;;) {
		if (capacity - state->original_length < 8192) {
			unsigned char *grown;
			capacity = capacity ? capacity * 2 : 16384;
			if (capacity > SNAPSHOT_MAX_BYTES) {
				libssh2_sftp_close_handle(handle);
				return error_set(err, EXIT_CANT_CREATE, "%s: larger than %d bytes; nothing changed",
						 path, SNAPSHOT_MAX_BYTES);
			}
			/* Copy by hand so no stale copy of secret bytes is left by realloc. */
			if ((grown = malloc(capacity)) == NULL) {
				libssh2_sftp_close_handle(handle);
				return error_set(err, EXIT_INTERNAL, "out of memory");
			}
			if (state->original != NULL) {
				memcpy(grown, state->original, state->original_length);
				OPENSSL_cleanse(state->original, state->original_length);
				free(state->original);
			}
			state->original = grown;
		}
		got = libssh2_sftp_read(handle, (char *)state->original + state->original_length,
					capacity - state->original_length);
		if (got == 0)
			break;
		if (got < 0) {
			int code = error_set(err, EXIT_CANT_CREATE, "%s: cannot read: %s; nothing changed", path,
					     ssh_sftp_error_text(connection));
			libssh2_sftp_close_handle(handle);
			return code;
		}
		state->original_length += (size_t)got;
	}
	libssh2_sftp_close_handle(handle);
	return 0;
}

/* Missing: first deploy. Any other stat failure aborts before anything is written. */
static int take_snapshot(struct ssh_connection *connection, const struct deploy_file *file,
			 struct remote_file *state, struct error *err)
{
	LIBSSH2_SFTP_ATTRIBUTES attributes;

	if (libssh2_sftp_stat_ex(connection->sftp, file->path, (unsigned int)strlen(file->path),
				 LIBSSH2_SFTP_LSTAT, &attributes) != 0) {
		if (sftp_status_is(connection, LIBSSH2_FX_NO_SUCH_FILE)) {
			state->existed = false;
			state->mode = file->mode >= 0 ? (unsigned long)file->mode : (unsigned long)file->default_mode;
			return 0;
		}
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot stat: %s; nothing changed", file->path,
				 ssh_sftp_error_text(connection));
	}
	if (!(attributes.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) || !LIBSSH2_SFTP_S_ISREG(attributes.permissions))
		return error_set(err, EXIT_CANT_CREATE, "%s: exists and is not a regular file "
				 "(a symbolic link would be replaced, not followed); nothing changed", file->path);
	state->existed = true;
	state->original_mode = attributes.permissions & PERMISSION_BITS;
	state->mode = file->mode >= 0 ? (unsigned long)file->mode : state->original_mode;
	if (attributes.flags & LIBSSH2_SFTP_ATTR_UIDGID) {
		state->has_owner = true;
		state->uid = attributes.uid;
		state->gid = attributes.gid;
	}
	return read_remote_file(connection, file->path, state, err);
}

static bool holds_plan_bytes(const struct deploy_file *file, const struct remote_file *state)
{
	return state->existed && state->original_length == file->length &&
	       CRYPTO_memcmp(state->original, file->bytes, file->length) == 0;
}

/*
 * Creates temp (it must not exist) with mode from the first byte on, writes
 * bytes, fsyncs where the server offers fsync@openssh.com, and sets the exact
 * mode (the server's umask applied at open) and, when given, uid/gid.
 */
static int write_remote_temp(struct ssh_connection *connection, const char *temp,
			     const unsigned char *bytes, size_t length, unsigned long mode,
			     bool set_owner, unsigned long uid, unsigned long gid, struct error *err)
{
	LIBSSH2_SFTP_HANDLE *handle;
	LIBSSH2_SFTP_ATTRIBUTES attributes;
	size_t written = 0;
	const char *what = NULL;
	int code = 0;

	handle = libssh2_sftp_open_ex(connection->sftp, temp, (unsigned int)strlen(temp),
				      LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
				      (long)(mode & PERMISSION_BITS), LIBSSH2_SFTP_OPENFILE);
	if (handle == NULL)
		return error_set(err, EXIT_CANT_CREATE, "temp file %s: cannot create: %s", temp,
				 ssh_sftp_error_text(connection));
	while (written < length) {
		ssize_t sent = libssh2_sftp_write(handle, (const char *)bytes + written, length - written);
		if (sent <= 0) {
			what = "cannot write";
			goto out;
		}
		written += (size_t)sent;
	}
	if (libssh2_sftp_fsync(handle) != 0 && !sftp_status_is(connection, LIBSSH2_FX_OP_UNSUPPORTED)) {
		what = "cannot fsync";
		goto out;
	}
	memset(&attributes, 0, sizeof(attributes));
	if (libssh2_sftp_fstat_ex(handle, &attributes, 0) != 0) {
		what = "cannot stat";
		goto out;
	}
	attributes.flags &= LIBSSH2_SFTP_ATTR_PERMISSIONS | LIBSSH2_SFTP_ATTR_UIDGID;
	if ((attributes.permissions & PERMISSION_BITS) != (mode & PERMISSION_BITS) ||
	    (set_owner && (attributes.uid != uid || attributes.gid != gid))) {
		attributes.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
		attributes.permissions = mode & PERMISSION_BITS;
		if (set_owner) {
			attributes.flags |= LIBSSH2_SFTP_ATTR_UIDGID;
			attributes.uid = uid;
			attributes.gid = gid;
		}
		if (libssh2_sftp_fstat_ex(handle, &attributes, 1) != 0)
			what = set_owner ? "cannot set mode and owner" : "cannot set mode";
	}
out:
	if (what != NULL)
		code = error_set(err, EXIT_CANT_CREATE, "temp file %s: %s: %s", temp, what,
				 ssh_sftp_error_text(connection));
	if (libssh2_sftp_close_handle(handle) != 0 && code == 0)
		code = error_set(err, EXIT_CANT_CREATE, "temp file %s: cannot close: %s", temp,
				 ssh_sftp_error_text(connection));
	if (code != 0)
		libssh2_sftp_unlink_ex(connection->sftp, temp, (unsigned int)strlen(temp));
	return code;
}

/* Explicit owner/group are names, which SFTP cannot carry: chown runs remotely. */
static int apply_explicit_owner(struct ssh_connection *connection, const struct deploy_file *file,
				const char *temp, struct error *err)
{
	char *owner = NULL;
	char *argv[5] = { NULL };
	int code;

	if (file->owner == NULL && file->group == NULL)
		return 0;
	if (file->owner != NULL) {
		if (asprintf(&owner, "%s%s%s", file->owner, file->group ? ":" : "",
			     file->group ? file->group : "") < 0)
			return error_set(err, EXIT_INTERNAL, "out of memory");
		argv[0] = "chown";
		argv[2] = owner;
	} else {
		argv[0] = "chgrp";
		argv[2] = file->group;
	}
	argv[1] = "--";
	argv[3] = (char *)temp;
	code = ssh_run_argv(connection, argv, err);
	free(owner);
	if (code != 0)
		return error_prefix(err, "%s: cannot set owner/group of %s", file->path, temp);
	return 0;
}

/* rename(2) through mv; refuses a directory destination, into which mv would move the file. */
static int rename_remote(struct ssh_connection *connection, const char *temp, const char *path,
			 struct error *err)
{
	char *const argv_temp[] = { (char *)temp, NULL };
	char *const argv_path[] = { (char *)path, NULL };
	char *quoted_temp = shell_quote_argv(argv_temp), *quoted_path = shell_quote_argv(argv_path);
	char *command = NULL;
	int code;

	if (quoted_temp == NULL || quoted_path == NULL ||
	    asprintf(&command, "if [ -d %s ]; then echo 'destination is a directory' >&2; exit 1; fi; mv -f -- %s %s",
		     quoted_path, quoted_temp, quoted_path) < 0) {
		command = NULL;
		code = error_set(err, EXIT_INTERNAL, "out of memory");
	} else {
		code = ssh_run_command(connection, command, err);
	}
	free(quoted_temp);
	free(quoted_path);
	free(command);
	return code;
}

static void remove_temps(struct ssh_connection *connection, struct remote_file *states, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (states[i].temp == NULL)
			continue;
		libssh2_sftp_unlink_ex(connection->sftp, states[i].temp, (unsigned int)strlen(states[i].temp));
		free(states[i].temp);
		states[i].temp = NULL;
	}
}

static void append_reason(char *reasons, size_t size, const char *path, const char *why)
{
	size_t used = strlen(reasons);

	snprintf(reasons + used, size - used, "%s%s: %s", used ? "; " : "", path, why);
}

/* Puts the first count files back as the snapshot has them; false if any could not be. */
static bool restore_files(struct ssh_connection *connection, const struct deploy_plan *plan,
			  struct remote_file *states, size_t count, struct deploy_result *result,
			  char *reasons, size_t size)
{
	bool all_restored = true;

	for (size_t i = 0; i < count; i++) {
		const char *path = plan->files[i].path;
		struct error step = { 0, "" };
		char *temp;

		if (!states[i].existed) {
			if (libssh2_sftp_unlink_ex(connection->sftp, path, (unsigned int)strlen(path)) == 0 ||
			    sftp_status_is(connection, LIBSSH2_FX_NO_SUCH_FILE)) {
				result->backup[i] = BACKUP_REMOVED;
			} else {
				result->backup[i] = BACKUP_REMOVE_FAILED;
				append_reason(reasons, size, path, ssh_sftp_error_text(connection));
				all_restored = false;
			}
			continue;
		}
		if ((temp = temp_path_for(path)) == NULL) {
			error_set(&step, EXIT_INTERNAL, "out of memory");
		} else if (write_remote_temp(connection, temp, states[i].original, states[i].original_length,
					     states[i].original_mode, states[i].has_owner, states[i].uid,
					     states[i].gid, &step) == 0 &&
			   rename_remote(connection, temp, path, &step) != 0) {
			libssh2_sftp_unlink_ex(connection->sftp, temp, (unsigned int)strlen(temp));
		}
		free(temp);
		if (step.code == 0) {
			result->backup[i] = BACKUP_RESTORED;
		} else {
			result->backup[i] = BACKUP_RESTORE_FAILED;
			append_reason(reasons, size, path, step.message);
			all_restored = false;
		}
	}
	return all_restored;
}

/* The reload failed and the new files are in place: restore, reload again, say how it ended. */
static int roll_back(struct ssh_connection *connection, const struct deploy_plan *plan,
		     struct remote_file *states, struct deploy_result *result, const char *reload_error,
		     struct error *err)
{
	char reasons[ERROR_MESSAGE_MAX] = "";
	struct error again = { 0, "" };

	if (!restore_files(connection, plan, states, plan->file_count, result, reasons, sizeof(reasons))) {
		result->manual_action_required = true;
		return deploy_result_finish(result, DEPLOY_OUTCOME_MANUAL_ACTION, EXIT_MANUAL_ACTION, err,
			      "%s: reload command failed (%s) and restoring the previous files failed (%s): manual action required",
			      connection->label, reload_error, reasons);
	}
	if (ssh_run_argv(connection, plan->reload_argv, &again) != 0) {
		result->daemon_state_unknown = true;
		return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED, err,
			      "%s: reload command failed; rolled back to pre-deploy state, but the reload after the rollback failed too (%s); first failure: %s",
			      connection->label, again.message, reload_error);
	}
	return deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED, err,
		      "%s: reload command failed; rolled back to pre-deploy state: %s", connection->label, reload_error);
}

/* "VAR='temp' … 'argv0' 'argv1'": the validate command sees where the new bytes wait. */
static char *validate_command_line(const struct deploy_plan *plan, struct remote_file *states)
{
	char *command = shell_quote_argv(plan->validate_argv);

	for (size_t i = plan->file_count; command != NULL && i-- > 0;) {
		char *const single[] = { states[i].temp, NULL };
		char *quoted = shell_quote_argv(single), *longer = NULL;
		if (quoted == NULL ||
		    asprintf(&longer, "%s=%s %s", deploy_file_new_path_variable(plan->files[i].role), quoted, command) < 0)
			longer = NULL;
		free(quoted);
		free(command);
		command = longer;
	}
	return command;
}

static int run_validate(struct ssh_connection *connection, const struct deploy_plan *plan,
			struct remote_file *states, struct error *err)
{
	char *command;
	int code;

	if (plan->validate_argv == NULL)
		return 0;
	if ((command = validate_command_line(plan, states)) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	code = ssh_run_command(connection, command, err);
	free(command);
	return code;
}

static void appended_nothing_changed(struct error *err)
{
	size_t used = strlen(err->message);

	snprintf(err->message + used, sizeof(err->message) - used, "; nothing changed");
}

static void free_states(struct remote_file *states, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (states[i].original != NULL) {
			OPENSSL_cleanse(states[i].original, states[i].original_length);
			free(states[i].original);
		}
		free(states[i].temp);
	}
}

int ssh_apply(const struct deploy_plan *plan, json_object *config,
	      struct deploy_result *result, struct error *err)
{
	struct ssh_options options;
	struct ssh_connection connection;
	struct remote_file states[DEPLOY_MAX_FILES];
	struct error step = { 0, "" };
	size_t count = plan->file_count, renamed;
	bool all_same = true;
	int code;

	deploy_result_init(result);
	memset(states, 0, sizeof(states));
	memset(&connection, 0, sizeof(connection));
	connection.socket = -1;
	if ((code = ssh_options_parse(plan->target_id, config, &options, &step)) != 0) {
		deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, code, err, "%s", step.message);
		goto out;
	}
	if (count == 0) {
		code = deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_CONFIG, err, "%s: the plan has no files",
			      plan->target_id);
		goto out;
	}
	if ((code = ssh_connect(&options, &connection, &step)) != 0) {
		deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, code, err, "%s", step.message);
		goto out;
	}

	for (size_t i = 0; i < count; i++) {
		if ((code = take_snapshot(&connection, &plan->files[i], &states[i], &step)) != 0)
			goto failed_unchanged;
		all_same = all_same && holds_plan_bytes(&plan->files[i], &states[i]);
	}
	if (all_same) {
		code = deploy_result_finish(result, DEPLOY_OUTCOME_SKIPPED, 0, err, NULL);
		goto out;
	}
	if (signals_stop_requested()) {
		code = error_set(&step, EXIT_TEMPORARY, "interrupted before writing; nothing changed");
		goto failed_unchanged;
	}

	for (size_t i = 0; i < count; i++) {
		const struct deploy_file *file = &plan->files[i];
		if ((states[i].temp = temp_path_for(file->path)) == NULL) {
			code = error_set(&step, EXIT_INTERNAL, "out of memory");
			goto failed_unchanged;
		}
		/* An explicit owner/group wins over the existing file's; chown sets it below. */
		if ((code = write_remote_temp(&connection, states[i].temp, file->bytes, file->length, states[i].mode,
					      states[i].has_owner && file->owner == NULL && file->group == NULL,
					      states[i].uid, states[i].gid, &step)) != 0) {
			free(states[i].temp);
			states[i].temp = NULL;
			error_prefix(&step, "%s", file->path);
			appended_nothing_changed(&step);
			goto failed_unchanged;
		}
		if (apply_explicit_owner(&connection, file, states[i].temp, &step) != 0) {
			code = step.code = EXIT_CANT_CREATE;
			appended_nothing_changed(&step);
			goto failed_unchanged;
		}
	}

	if (run_validate(&connection, plan, states, &step) != 0) {
		code = error_prefix(&step, "validate command failed; nothing changed");
		goto failed_unchanged;
	}
	if (signals_stop_requested()) {
		code = error_set(&step, EXIT_TEMPORARY, "interrupted before installing; nothing changed");
		goto failed_unchanged;
	}

	for (renamed = 0; renamed < count; renamed++) {
		if (rename_remote(&connection, states[renamed].temp, plan->files[renamed].path, &step) != 0) {
			char reasons[ERROR_MESSAGE_MAX] = "";
			remove_temps(&connection, states, count);
			/* mv's outcome is unknown when its channel broke: restore this file too. */
			if (!restore_files(&connection, plan, states, renamed + 1, result, reasons, sizeof(reasons))) {
				result->manual_action_required = true;
				code = deploy_result_finish(result, DEPLOY_OUTCOME_MANUAL_ACTION, EXIT_MANUAL_ACTION, err,
					      "cannot install %s (%s) and restoring the files already installed failed (%s): manual action required",
					      plan->files[renamed].path, step.message, reasons);
				goto out;
			}
			code = deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, EXIT_FAILED, err,
				      "cannot install %s: %s; rolled back to pre-deploy state",
				      plan->files[renamed].path, step.message);
			goto out;
		}
		free(states[renamed].temp);
		states[renamed].temp = NULL;
		result->backup[renamed] = states[renamed].existed ? BACKUP_SNAPSHOTTED : BACKUP_NO_PRE_EXISTING;
	}

	if (plan->reload_argv != NULL && ssh_run_argv(&connection, plan->reload_argv, &step) != 0) {
		code = roll_back(&connection, plan, states, result, step.message, err);
		goto out;
	}
	code = deploy_result_finish(result, DEPLOY_OUTCOME_COMPLETED, 0, err, NULL);
	goto out;

failed_unchanged:
	remove_temps(&connection, states, count);
	for (size_t i = 0; i < count; i++)
		result->backup[i] = BACKUP_NOT_APPLICABLE;
	code = deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, code, err, "%s", step.message);
out:
	free_states(states, count);
	ssh_disconnect(&connection);
	ssh_options_free(&options);
	return code;
}
