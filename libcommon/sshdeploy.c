/*
 * The atomic primitive over SFTP. Before the first rename each existing
 * destination is kept on the remote as <path>.certctl-bak.<ns> (a hard link,
 * or cp -p), and a marker .<name>.certctl-inflight names it until the deploy
 * ends, so a run killed between rename and restore leaves the old bytes on
 * the remote and the next deploy reports them; a restore comes from those
 * files. Each new file goes to a sibling temp file with its final mode, and
 * replaces its destination with rename(2) run as `mv -f` over an exec
 * channel: libssh2 1.10 only has the SFTP v3 rename, which OpenSSH refuses
 * when the target exists, and it does not expose OpenSSH's
 * posix-rename@openssh.com extension.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "applier.h"
#include "atomic.h"
#include "digest.h"
#include "exitcode.h"
#include "signals.h"
#include "sshdeploy.h"
#include "sshsession.h"

#define SNAPSHOT_MAX_BYTES (16 * 1024 * 1024)
#define PERMISSION_BITS 07777
/* ".<name>" INFLIGHT_SUFFIX beside a destination names its backup while a deploy is under way. */
#define INFLIGHT_SUFFIX ".certctl-inflight"
#define MARKER_MAX_BYTES 4096

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
	char *backup;                   /* this run's <path>.certctl-bak.<ns>, or NULL */
	char *marker;                   /* .<name>.certctl-inflight beside path */
	bool marker_written;
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
	char random_hex[2 * sizeof(random_bytes) + 1], *temp;

	if (slash == NULL || RAND_bytes(random_bytes, sizeof(random_bytes)) != 1)
		return NULL;
	hex_encode(random_bytes, sizeof(random_bytes), random_hex);
	if (asprintf(&temp, "%.*s/.%s" TEMP_FILE_INFIX "%ld-%s", (int)(slash - path), path, slash + 1,
		     (long)getpid(), random_hex) < 0)
		return NULL;
	return temp;
}

/* ".<name>" INFLIGHT_SUFFIX beside path. Caller frees. */
static char *marker_path_for(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *marker;

	if (slash == NULL || asprintf(&marker, "%.*s/.%s" INFLIGHT_SUFFIX, (int)(slash - path), path, slash + 1) < 0)
		return NULL;
	return marker;
}

static long long now_nanoseconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/*
 * A copy of source at destination with source's bytes, mode and owner: a
 * hard link, or cp -p where links are refused. destination must not exist.
 */
static int copy_remote_file(struct ssh_connection *connection, const char *source, const char *destination,
			    struct error *err)
{
	char *const one[] = { (char *)source, NULL }, *const two[] = { (char *)destination, NULL };
	char *from = shell_quote_argv(one), *to = shell_quote_argv(two), *command = NULL;
	int code;

	if (from == NULL || to == NULL ||
	    asprintf(&command, "ln -- %s %s 2>/dev/null || { if [ -e %s ] || [ -L %s ]; then "
		     "echo 'backup name already taken' >&2; exit 1; fi; cp -p -- %s %s || { rm -f -- %s; exit 1; }; }",
		     from, to, to, to, from, to, to) < 0) {
		command = NULL;
		code = error_set(err, EXIT_INTERNAL, "out of memory");
	} else {
		code = ssh_run_command(connection, command, err);
	}
	free(from);
	free(to);
	free(command);
	return code;
}

/* A small remote file's text, or NULL when it cannot be read. Caller frees. */
static char *read_remote_text(struct ssh_connection *connection, const char *path)
{
	LIBSSH2_SFTP_HANDLE *handle;
	char *text = malloc(MARKER_MAX_BYTES + 1);
	size_t length = 0;
	ssize_t got;

	if (text == NULL)
		return NULL;
	handle = libssh2_sftp_open_ex(connection->sftp, path, (unsigned int)strlen(path), LIBSSH2_FXF_READ, 0,
				      LIBSSH2_SFTP_OPENFILE);
	if (handle == NULL) {
		free(text);
		return NULL;
	}
	while (length < MARKER_MAX_BYTES &&
	       (got = libssh2_sftp_read(handle, text + length, MARKER_MAX_BYTES - length)) > 0)
		length += (size_t)got;
	libssh2_sftp_close_handle(handle);
	text[length] = '\0';
	text[strcspn(text, "\n")] = '\0';
	return text;
}

/* A backup's name and where it lives, for backup_names_prune(). */
struct remote_directory {
	struct ssh_connection *connection;
	const char *dir;
};

static void drop_remote_backup(void *context, const char *name)
{
	const struct remote_directory *where = context;
	char *full;

	if (asprintf(&full, "%s/%s", strcmp(where->dir, "/") == 0 ? "" : where->dir, name) < 0)
		return;
	libssh2_sftp_unlink_ex(where->connection->sftp, full, (unsigned int)strlen(full));
	free(full);
}

/* Keeps the newest keep "<name>.certctl-bak.<ns>" beside path, as a local target does. */
static void prune_remote_backups(struct ssh_connection *connection, const char *path, int keep)
{
	const char *slash = strrchr(path, '/');
	char *dir = NULL, *prefix = NULL, entry[1024];
	struct backup_names names = { NULL, NULL, 0, 0 };
	struct remote_directory where = { connection, NULL };
	LIBSSH2_SFTP_HANDLE *handle;
	LIBSSH2_SFTP_ATTRIBUTES attributes;

	if (slash == NULL || asprintf(&dir, "%.*s", slash == path ? 1 : (int)(slash - path), path) < 0)
		return;
	if (asprintf(&prefix, "%s" ATOMIC_BACKUP_INFIX, slash + 1) < 0) {
		free(dir);
		return;
	}
	if ((handle = libssh2_sftp_opendir(connection->sftp, dir)) != NULL) {
		names.prefix = prefix;
		while (libssh2_sftp_readdir(handle, entry, sizeof(entry), &attributes) > 0 &&
		       backup_names_add(&names, entry))
			;
		libssh2_sftp_closedir(handle);
		where.dir = dir;
		backup_names_prune(&names, keep, drop_remote_backup, &where);
	}
	free(prefix);
	free(dir);
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

/* One ssh deploy in progress: the applier's context. */
struct remote_apply {
	const struct deploy_plan *plan;
	struct deploy_result *result;
	struct ssh_options *options;
	struct ssh_connection connection;
	char label_prefix[sizeof(((struct ssh_connection *)0)->label) + 2]; /* "user@host:port: " */
	struct remote_file states[DEPLOY_MAX_FILES];
};

/*
 * A marker left beside a destination means a run was killed after backing
 * it up: the backup it names (when still there) goes into the metadata.
 */
static void notice_interrupted_runs(struct remote_apply *remote)
{
	for (size_t i = 0; i < remote->plan->file_count; i++) {
		struct remote_file *state = &remote->states[i];
		LIBSSH2_SFTP_ATTRIBUTES attributes;
		char *named;

		if (state->marker == NULL && (state->marker = marker_path_for(remote->plan->files[i].path)) == NULL)
			continue;
		if ((named = read_remote_text(&remote->connection, state->marker)) == NULL)
			continue;
		/* Only what the marker should name, a backup of this very file, is reported. */
		state->marker_written = true;
		if (strncmp(named, remote->plan->files[i].path, strlen(remote->plan->files[i].path)) == 0 &&
		    strncmp(named + strlen(remote->plan->files[i].path), ATOMIC_BACKUP_INFIX,
			    strlen(ATOMIC_BACKUP_INFIX)) == 0 &&
		    libssh2_sftp_stat_ex(remote->connection.sftp, named, (unsigned int)strlen(named),
					 LIBSSH2_SFTP_LSTAT, &attributes) == 0)
			snprintf(remote->result->interrupted_backup[i], sizeof(remote->result->interrupted_backup[i]),
				 "%s", named);
		free(named);
	}
}

static int remote_lock_and_compare(void *context, bool *all_same, struct error *err)
{
	struct remote_apply *remote = context;
	const struct deploy_plan *plan = remote->plan;

	if (ssh_connect(remote->options, &remote->connection, err) != 0)
		return err->code;
	snprintf(remote->label_prefix, sizeof(remote->label_prefix), "%s: ", remote->connection.label);
	*all_same = true;
	for (size_t i = 0; i < plan->file_count; i++) {
		if (take_snapshot(&remote->connection, &plan->files[i], &remote->states[i], err) != 0)
			return err->code;
		*all_same = *all_same && holds_plan_bytes(&plan->files[i], &remote->states[i]);
	}
	notice_interrupted_runs(remote);
	return 0;
}

static void appended_nothing_changed(struct error *err)
{
	size_t used = strlen(err->message);

	snprintf(err->message + used, sizeof(err->message) - used, "; nothing changed");
}

static int remote_stage(void *context, struct error *err)
{
	struct remote_apply *remote = context;

	for (size_t i = 0; i < remote->plan->file_count; i++) {
		const struct deploy_file *file = &remote->plan->files[i];
		struct remote_file *state = &remote->states[i];

		if ((state->temp = temp_path_for(file->path)) == NULL)
			return error_set(err, EXIT_INTERNAL, "out of memory");
		/* An explicit owner/group wins over the existing file's; chown sets it below. */
		if (write_remote_temp(&remote->connection, state->temp, file->bytes, file->length, state->mode,
				      state->has_owner && file->owner == NULL && file->group == NULL,
				      state->uid, state->gid, err) != 0) {
			free(state->temp);
			state->temp = NULL;
			error_prefix(err, "%s", file->path);
			appended_nothing_changed(err);
			return err->code;
		}
		if (apply_explicit_owner(&remote->connection, file, state->temp, err) != 0) {
			err->code = EXIT_CANT_CREATE;
			appended_nothing_changed(err);
			return err->code;
		}
	}
	return 0;
}

static int remote_validate(void *context, struct error *err)
{
	struct remote_apply *remote = context;
	char *command;
	int code;

	if (remote->plan->validate_argv == NULL)
		return 0;
	if ((command = validate_command_line(remote->plan, remote->states)) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	code = ssh_run_command(&remote->connection, command, err);
	free(command);
	return code;
}

/* Removes this run's backups and every marker beside the destinations. */
static void remove_backups_and_markers(struct remote_apply *remote, bool backups)
{
	LIBSSH2_SFTP *sftp = remote->connection.sftp;

	for (size_t i = 0; i < remote->plan->file_count; i++) {
		struct remote_file *state = &remote->states[i];

		if (backups && state->backup != NULL) {
			libssh2_sftp_unlink_ex(sftp, state->backup, (unsigned int)strlen(state->backup));
			free(state->backup);
			state->backup = NULL;
		}
		if (state->marker_written && state->marker != NULL &&
		    libssh2_sftp_unlink_ex(sftp, state->marker, (unsigned int)strlen(state->marker)) == 0)
			state->marker_written = false;
	}
}

/*
 * Keeps each existing destination as <path>.certctl-bak.<ns> on the remote
 * (one stamp for the deploy), then writes the markers that name them. With
 * backup_retention -1 nothing is kept on the remote and a restore uses the
 * snapshot in memory. On failure nothing of it is left.
 */
static int remote_back_up(void *context, struct error *err)
{
	struct remote_apply *remote = context;
	const struct deploy_plan *plan = remote->plan;
	long long stamp = now_nanoseconds();

	if (plan->backup_retention == BACKUPS_DISABLED)
		return 0;
	for (size_t i = 0; i < plan->file_count; i++) {
		struct remote_file *state = &remote->states[i];
		const char *path = plan->files[i].path;

		if (!state->existed)
			continue;
		if (asprintf(&state->backup, "%s" ATOMIC_BACKUP_INFIX "%019lld", path, stamp) < 0) {
			state->backup = NULL;
			error_set(err, EXIT_INTERNAL, "out of memory");
			goto fail;
		}
		if (copy_remote_file(&remote->connection, path, state->backup, err) != 0) {
			free(state->backup);
			state->backup = NULL;
			error_prefix(err, "%s: cannot back up on the remote", path);
			err->code = err->code == EXIT_UNAVAILABLE ? EXIT_UNAVAILABLE : EXIT_CANT_CREATE;
			goto fail;
		}
	}
	for (size_t i = 0; i < plan->file_count; i++) {
		struct remote_file *state = &remote->states[i];
		char line[DEPLOY_BACKUP_PATH_MAX + 2];

		if (state->backup == NULL)
			continue;
		if (state->marker == NULL && (state->marker = marker_path_for(plan->files[i].path)) == NULL) {
			error_set(err, EXIT_INTERNAL, "out of memory");
			goto fail;
		}
		snprintf(line, sizeof(line), "%s\n", state->backup);
		libssh2_sftp_unlink_ex(remote->connection.sftp, state->marker, (unsigned int)strlen(state->marker));
		if (write_remote_temp(&remote->connection, state->marker, (const unsigned char *)line, strlen(line),
				      0600, false, 0, 0, err) != 0) {
			error_prefix(err, "%s: cannot mark the backup", plan->files[i].path);
			goto fail;
		}
		state->marker_written = true;
	}
	return 0;
fail:
	remove_backups_and_markers(remote, true);
	appended_nothing_changed(err);
	return err->code;
}

static int remote_install(void *context, size_t i, struct error *err)
{
	struct remote_apply *remote = context;

	if (rename_remote(&remote->connection, remote->states[i].temp, remote->plan->files[i].path, err) != 0)
		return err->code;
	free(remote->states[i].temp);
	remote->states[i].temp = NULL;
	return 0;
}

/* The snapshot in memory is the backup of every file that existed. */
static void remote_describe(void *context, size_t i, bool *existed, bool *backed_up)
{
	struct remote_apply *remote = context;

	*existed = *backed_up = remote->states[i].existed;
}

static void remote_remove_temps(void *context)
{
	struct remote_apply *remote = context;

	for (size_t i = 0; i < remote->plan->file_count; i++) {
		struct remote_file *state = &remote->states[i];

		if (state->temp == NULL)
			continue;
		libssh2_sftp_unlink_ex(remote->connection.sftp, state->temp, (unsigned int)strlen(state->temp));
		free(state->temp);
		state->temp = NULL;
	}
}

/* Puts file i back as the snapshot has it, through a temp file and a rename; removes a new file. */
static enum backup_status remote_restore(void *context, size_t i, char *why, size_t why_size)
{
	struct remote_apply *remote = context;
	struct ssh_connection *connection = &remote->connection;
	const struct remote_file *state = &remote->states[i];
	const char *path = remote->plan->files[i].path;
	struct error step = { 0, "" };
	char *temp;

	if (!state->existed) {
		if (libssh2_sftp_unlink_ex(connection->sftp, path, (unsigned int)strlen(path)) == 0 ||
		    sftp_status_is(connection, LIBSSH2_FX_NO_SUCH_FILE))
			return BACKUP_REMOVED;
		snprintf(why, why_size, "%s", ssh_sftp_error_text(connection));
		return BACKUP_REMOVE_FAILED;
	}
	if ((temp = temp_path_for(path)) == NULL) {
		error_set(&step, EXIT_INTERNAL, "out of memory");
	} else if (state->backup != NULL) {
		/* From the backup on the remote: what a killed run would have left too. */
		if (copy_remote_file(connection, state->backup, temp, &step) != 0)
			error_prefix(&step, "cannot read backup %s", state->backup);
		else if (rename_remote(connection, temp, path, &step) != 0)
			libssh2_sftp_unlink_ex(connection->sftp, temp, (unsigned int)strlen(temp));
	} else if (write_remote_temp(connection, temp, state->original, state->original_length,
				     state->original_mode, state->has_owner, state->uid, state->gid, &step) == 0 &&
		   rename_remote(connection, temp, path, &step) != 0) {
		libssh2_sftp_unlink_ex(connection->sftp, temp, (unsigned int)strlen(temp));
	}
	free(temp);
	if (step.code == 0)
		return BACKUP_RESTORED;
	snprintf(why, why_size, "%s", step.message);
	return BACKUP_RESTORE_FAILED;
}

static int remote_reload(void *context, struct error *err)
{
	struct remote_apply *remote = context;

	if (remote->plan->reload_argv == NULL)
		return 0;
	return ssh_run_argv(&remote->connection, remote->plan->reload_argv, err);
}

static const struct applier_ops remote_ops = {
	.lock_and_compare = remote_lock_and_compare,
	.stage = remote_stage,
	.validate = remote_validate,
	.back_up = remote_back_up,
	.install = remote_install,
	.describe = remote_describe,
	.remove_temps = remote_remove_temps,
	.restore = remote_restore,
	.reload = remote_reload,
};

/*
 * After the run: a clean rollback put every file back, so its backups go; a
 * completed deploy keeps the newest backup_retention per file; either way
 * the markers go. A restore that failed keeps everything for the human.
 */
static void settle_backups(struct remote_apply *remote)
{
	const struct deploy_plan *plan = remote->plan;
	bool rolled_back = false;

	if (remote->result->outcome == DEPLOY_OUTCOME_MANUAL_ACTION)
		return;
	for (size_t i = 0; i < plan->file_count; i++)
		rolled_back = rolled_back || remote->result->backup[i] == BACKUP_RESTORED ||
			      remote->result->backup[i] == BACKUP_REMOVED;
	remove_backups_and_markers(remote, rolled_back);
	if (remote->result->outcome == DEPLOY_OUTCOME_COMPLETED && plan->backup_retention != BACKUPS_DISABLED)
		for (size_t i = 0; i < plan->file_count; i++)
			if (remote->states[i].existed)
				prune_remote_backups(&remote->connection, plan->files[i].path, plan->backup_retention);
}

int ssh_apply(const struct deploy_plan *plan, json_object *config,
	      struct deploy_result *result, struct error *err)
{
	struct ssh_options options;
	struct remote_apply remote;
	/* mv's outcome is unknown when its channel broke: a failed install is restored too. */
	struct applier applier = { &remote_ops, &remote, remote.label_prefix, true };
	struct error step = { 0, "" };
	int code;

	deploy_result_init(result);
	memset(&remote, 0, sizeof(remote));
	remote.plan = plan;
	remote.result = result;
	remote.options = &options;
	remote.connection.socket = -1;
	if ((code = ssh_options_parse(plan->target_id, config, &options, &step)) != 0)
		deploy_result_finish(result, DEPLOY_OUTCOME_FAILED, code, err, "%s", step.message);
	else
		code = applier_run(&applier, plan, result, err);
	if (remote.connection.sftp != NULL)
		settle_backups(&remote);
	for (size_t i = 0; i < DEPLOY_MAX_FILES; i++) {
		free(remote.states[i].backup);
		free(remote.states[i].marker);
		if (remote.states[i].original != NULL) {
			OPENSSL_cleanse(remote.states[i].original, remote.states[i].original_length);
			free(remote.states[i].original);
		}
		free(remote.states[i].temp);
	}
	ssh_disconnect(&remote.connection);
	ssh_options_free(&options);
	return code;
}
