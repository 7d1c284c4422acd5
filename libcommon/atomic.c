#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "applier.h"
#include "atomic.h"
#include "exitcode.h"
#include "runcmd.h"
#include "signals.h"

/* A destination larger than this cannot hold our bytes: it simply differs. */
#define COMPARE_MAX_BYTES (4L * 1024 * 1024)

/* Everything atomic_apply() knows about one destination while it works. */
struct file_state {
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char temp[PATH_MAX];      /* "" when no temp file exists */
	char backup[PATH_MAX];    /* "" when no backup was taken */
	int lock_fd;
	bool existed;
	uid_t uid;                /* (uid_t)-1: leave as created */
	gid_t gid;
	mode_t mode;
};

static unsigned long temp_counter;

static int split_path(const char *path, struct file_state *state, struct error *err)
{
	const char *slash = strrchr(path, '/');
	size_t dir_length;

	if (slash == NULL || slash[1] == '\0' || strlen(slash + 1) > NAME_MAX - 32)
		return error_set(err, EXIT_CONFIG, "%s: not an absolute path to a file", path);
	dir_length = slash == path ? 1 : (size_t)(slash - path);
	if (dir_length >= sizeof(state->dir))
		return error_set(err, EXIT_CONFIG, "%s: path too long", path);
	memcpy(state->dir, path, dir_length);
	state->dir[dir_length] = '\0';
	snprintf(state->base, sizeof(state->base), "%s", slash + 1);
	return 0;
}

static long long now_nanoseconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* ".<name>.certctl-tmp.<19-digit ns>.<pid>.<n>" in the destination's directory. */
static void make_temp_name(const struct file_state *state, char *name, size_t size)
{
	snprintf(name, size, "%s/.%s" TEMP_FILE_INFIX "%019lld.%ld.%lu",
		 strcmp(state->dir, "/") == 0 ? "" : state->dir, state->base,
		 now_nanoseconds(), (long)getpid(), ++temp_counter);
}

static int fsync_directory(const char *dir, struct error *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot open directory: %s", dir, strerror(errno));
	if (fsync(fd) != 0 && errno != EINVAL) {
		int saved = errno;
		close(fd);
		return error_set(err, EXIT_CANT_CREATE, "%s: fsync: %s", dir, strerror(saved));
	}
	close(fd);
	return 0;
}

static int fsync_directories(struct file_state *states, size_t count, struct error *err)
{
	for (size_t i = 0; i < count; i++) {
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen = seen || strcmp(states[i].dir, states[j].dir) == 0;
		if (!seen && fsync_directory(states[i].dir, err) != 0)
			return err->code;
	}
	return 0;
}

/* Does path hold exactly bytes? A missing or unreadable file differs. */
static bool holds_bytes(const char *path, const unsigned char *bytes, size_t length, bool secret)
{
	unsigned char *current = NULL, want[SHA256_DIGEST_LENGTH], have[SHA256_DIGEST_LENGTH];
	struct stat info;
	size_t done = 0;
	bool same = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode) || info.st_size != (off_t)length ||
	    info.st_size > COMPARE_MAX_BYTES)
		goto out;
	current = malloc(length + 1);
	if (current == NULL)
		goto out;
	while (done < length) {
		ssize_t got = read(fd, current + done, length - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;
		done += (size_t)got;
	}
	SHA256(bytes, length, want);
	SHA256(current, length, have);
	same = memcmp(want, have, sizeof(want)) == 0;
out:
	if (current != NULL) {
		if (secret)
			OPENSSL_cleanse(current, length);
		free(current);
	}
	close(fd);
	return same;
}

int atomic_compare(const struct deploy_plan *plan, bool differs[DEPLOY_MAX_FILES], struct error *err)
{
	for (size_t i = 0; i < plan->file_count; i++) {
		const struct deploy_file *file = &plan->files[i];
		differs[i] = !holds_bytes(file->path, file->bytes, file->length, file->secret);
		if (differs[i] && access(file->path, F_OK) == 0 && access(file->path, R_OK) != 0)
			return error_set(err, EXIT_CANT_CREATE, "%s: cannot read: %s", file->path, strerror(errno));
	}
	return 0;
}

/* Removes ".<name>.certctl-tmp.*" a killed run left; we hold the destination's lock. */
static void remove_leftover_temps(const struct file_state *state)
{
	char prefix[NAME_MAX + 32], path[PATH_MAX];
	struct dirent *entry;
	DIR *dir = opendir(state->dir);

	if (dir == NULL)
		return;
	snprintf(prefix, sizeof(prefix), ".%s" TEMP_FILE_INFIX, state->base);
	while ((entry = readdir(dir)) != NULL)
		if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(path, sizeof(path), "%s/%s", state->dir, entry->d_name);
			unlink(path);
		}
	closedir(dir);
}

static int name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps the newest keep "<name>.certctl-bak.<ns>" files; the names sort by time. */
static void prune_backups(const struct file_state *state, int keep)
{
	char prefix[NAME_MAX + 32], path[PATH_MAX];
	char **names = NULL;
	size_t count = 0, capacity = 0;
	struct dirent *entry;
	DIR *dir = opendir(state->dir);

	if (dir == NULL)
		return;
	snprintf(prefix, sizeof(prefix), "%s" ATOMIC_BACKUP_INFIX, state->base);
	while ((entry = readdir(dir)) != NULL) {
		if (strncmp(entry->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (count == capacity) {
			char **grown = realloc(names, (capacity ? capacity * 2 : 8) * sizeof(*names));
			if (grown == NULL)
				break;
			names = grown;
			capacity = capacity ? capacity * 2 : 8;
		}
		if ((names[count] = strdup(entry->d_name)) != NULL)
			count++;
	}
	closedir(dir);
	if (count > 0)
		qsort(names, count, sizeof(*names), name_compare);
	for (size_t i = 0; i < count; i++) {
		if (i + (size_t)keep < count) {
			snprintf(path, sizeof(path), "%s/%s", state->dir, names[i]);
			unlink(path);
		}
		free(names[i]);
	}
	free(names);
}

static int lock_destination(const struct deploy_file *file, struct file_state *state, struct error *err)
{
	char lock_path[PATH_MAX];

	snprintf(lock_path, sizeof(lock_path), "%s/.%s" ATOMIC_LOCK_SUFFIX,
		 strcmp(state->dir, "/") == 0 ? "" : state->dir, state->base);
	state->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (state->lock_fd < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot open lock %s: %s", file->path, lock_path,
				 strerror(errno));
	while (flock(state->lock_fd, LOCK_EX) != 0) {
		if (errno == EINTR && signals_stop_requested())
			return error_set(err, EXIT_TEMPORARY, "%s: interrupted while waiting for the lock; nothing changed",
					 file->path);
		if (errno != EINTR)
			return error_set(err, EXIT_CANT_CREATE, "%s: flock %s: %s", file->path, lock_path,
					 strerror(errno));
	}
	return 0;
}

/* A user or group name, or a number. */
static int lookup_owner(const struct deploy_file *file, uid_t *uid, gid_t *gid, struct error *err)
{
	char *end;

	if (file->owner != NULL) {
		unsigned long number = strtoul(file->owner, &end, 10);
		struct passwd *user;
		if (*end == '\0')
			*uid = (uid_t)number;
		else if ((user = getpwnam(file->owner)) != NULL)
			*uid = user->pw_uid;
		else
			return error_set(err, EXIT_CONFIG, "%s: owner '%s': no such user", file->path, file->owner);
	}
	if (file->group != NULL) {
		unsigned long number = strtoul(file->group, &end, 10);
		struct group *group;
		if (*end == '\0')
			*gid = (gid_t)number;
		else if ((group = getgrnam(file->group)) != NULL)
			*gid = group->gr_gid;
		else
			return error_set(err, EXIT_CONFIG, "%s: group '%s': no such group", file->path, file->group);
	}
	return 0;
}

/* Existing owner, group and mode are kept; explicit ones from the plan win. */
static int resolve_ownership(const struct deploy_file *file, struct file_state *state, struct error *err)
{
	struct stat info;

	state->uid = (uid_t)-1;
	state->gid = (gid_t)-1;
	state->mode = (mode_t)file->default_mode;
	if (stat(file->path, &info) == 0) {
		if (!S_ISREG(info.st_mode))
			return error_set(err, EXIT_CANT_CREATE, "%s: exists and is not a regular file", file->path);
		state->existed = true;
		state->uid = info.st_uid;
		state->gid = info.st_gid;
		state->mode = info.st_mode & 07777;
	} else if (errno != ENOENT) {
		return error_set(err, EXIT_CANT_CREATE, "%s: %s", file->path, strerror(errno));
	}
	if (file->mode >= 0)
		state->mode = (mode_t)file->mode;
	return lookup_owner(file, &state->uid, &state->gid, err);
}

static int write_all(int fd, const unsigned char *bytes, size_t length)
{
	while (length > 0) {
		ssize_t wrote = write(fd, bytes, length);
		if (wrote < 0 && errno == EINTR)
			continue;
		if (wrote <= 0)
			return -1;
		bytes += wrote;
		length -= (size_t)wrote;
	}
	return 0;
}

/*
 * Creates temp (0600 before any byte lands) holding bytes with owner, group
 * and mode, fsynced. On failure removes it and returns -1 with errno set.
 */
static int write_temp(const char *temp, const unsigned char *bytes, size_t length,
		      uid_t uid, gid_t gid, mode_t mode, const char **step)
{
	int fd, saved;

	*step = "create";
	fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	*step = "write";
	if (write_all(fd, bytes, length) != 0)
		goto fail;
	/* chown before chmod: chown clears set-id bits. */
	*step = "chown";
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0)
		goto fail;
	*step = "chmod";
	if (fchmod(fd, mode) != 0)
		goto fail;
	*step = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	*step = "close";
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(temp);
	errno = saved;
	return -1;
}

/* A copy of source at destination with source's owner and mode (when link(2) is refused). */
static int copy_file(const char *source, const char *destination)
{
	unsigned char *bytes = NULL;
	struct stat info;
	const char *step;
	size_t done = 0;
	int fd = open(source, O_RDONLY | O_CLOEXEC), result = -1, saved;

	if (fd < 0)
		return -1;
	if (fstat(fd, &info) != 0 || (bytes = malloc((size_t)info.st_size + 1)) == NULL)
		goto out;
	while (done < (size_t)info.st_size) {
		ssize_t got = read(fd, bytes + done, (size_t)info.st_size - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;
		done += (size_t)got;
	}
	result = write_temp(destination, bytes, done, info.st_uid, info.st_gid, info.st_mode & 07777, &step);
out:
	saved = errno;
	if (bytes != NULL) {
		OPENSSL_cleanse(bytes, done);
		free(bytes);
	}
	close(fd);
	errno = saved;
	return result;
}

/* A hard link is instant and keeps bytes, owner and mode exactly; copy when refused. */
static int snapshot(const char *source, const char *destination)
{
	if (link(source, destination) == 0)
		return 0;
	if (errno == EEXIST || errno == ENOENT)
		return -1;
	return copy_file(source, destination);
}

/* One local deploy in progress: the applier's context. */
struct local_apply {
	const struct deploy_plan *plan;
	struct file_state states[DEPLOY_MAX_FILES];
};

static int local_lock_and_compare(void *context, bool *all_same, struct error *err)
{
	struct local_apply *local = context;
	const struct deploy_plan *plan = local->plan;
	size_t order[DEPLOY_MAX_FILES], count = plan->file_count;

	for (size_t i = 0; i < count; i++) {
		if (split_path(plan->files[i].path, &local->states[i], err) != 0)
			return err->code;
		order[i] = i;
	}
	/* Lock in path order, so two deploys sharing files cannot deadlock. */
	for (size_t i = 1; i < count; i++)
		for (size_t j = i; j > 0 && strcmp(plan->files[order[j - 1]].path, plan->files[order[j]].path) > 0; j--) {
			size_t swap = order[j];
			order[j] = order[j - 1];
			order[j - 1] = swap;
		}
	for (size_t i = 0; i < count; i++)
		if (lock_destination(&plan->files[order[i]], &local->states[order[i]], err) != 0)
			return err->code;
	*all_same = true;
	for (size_t i = 0; i < count; i++) {
		remove_leftover_temps(&local->states[i]);
		*all_same = *all_same && holds_bytes(plan->files[i].path, plan->files[i].bytes,
						     plan->files[i].length, plan->files[i].secret);
	}
	return 0;
}

static int local_settle_ownership(void *context, struct error *err)
{
	struct local_apply *local = context;

	for (size_t i = 0; i < local->plan->file_count; i++)
		if (resolve_ownership(&local->plan->files[i], &local->states[i], err) != 0)
			return err->code;
	return 0;
}

static int local_stage(void *context, struct error *err)
{
	struct local_apply *local = context;

	for (size_t i = 0; i < local->plan->file_count; i++) {
		const struct deploy_file *file = &local->plan->files[i];
		struct file_state *state = &local->states[i];
		const char *what;

		make_temp_name(state, state->temp, sizeof(state->temp));
		if (write_temp(state->temp, file->bytes, file->length, state->uid, state->gid, state->mode, &what) != 0) {
			error_set(err, EXIT_CANT_CREATE, "%s: temp file %s: %s: %s; nothing changed",
				  file->path, state->temp, what, strerror(errno));
			state->temp[0] = '\0';
			return err->code;
		}
	}
	return fsync_directories(local->states, local->plan->file_count, err);
}

static int local_validate(void *context, struct error *err)
{
	struct local_apply *local = context;
	char assignments[DEPLOY_MAX_FILES][PATH_MAX + 40];
	const char *list[DEPLOY_MAX_FILES + 1];
	struct command_env env = { list };

	for (size_t i = 0; i < local->plan->file_count; i++) {
		snprintf(assignments[i], sizeof(assignments[i]), "%s=%s",
			 deploy_file_new_path_variable(local->plan->files[i].role), local->states[i].temp);
		list[i] = assignments[i];
	}
	list[local->plan->file_count] = NULL;
	return run_command(local->plan->validate_argv, &env, err);
}

/* "<path>.certctl-bak.<ns>" beside each existing destination, one stamp for the whole deploy. */
static int local_back_up(void *context, struct error *err)
{
	struct local_apply *local = context;
	const struct deploy_plan *plan = local->plan;
	long long stamp = now_nanoseconds();

	for (size_t i = 0; i < plan->file_count && plan->backup_retention != BACKUPS_DISABLED; i++) {
		struct file_state *state = &local->states[i];

		if (!state->existed)
			continue;
		for (int tries = 0; tries < 1000; tries++) {
			snprintf(state->backup, sizeof(state->backup), "%s" ATOMIC_BACKUP_INFIX "%019lld",
				 plan->files[i].path, stamp + tries);
			if (snapshot(plan->files[i].path, state->backup) == 0 || errno != EEXIST)
				break;
		}
		if (access(state->backup, F_OK) != 0) {
			error_set(err, EXIT_CANT_CREATE, "%s: cannot back up to %s: %s; nothing changed",
				  plan->files[i].path, state->backup, strerror(errno));
			state->backup[0] = '\0';
			for (size_t j = 0; j < i; j++)
				if (local->states[j].backup[0] != '\0')
					unlink(local->states[j].backup);
			return err->code;
		}
	}
	return 0;
}

static int local_install(void *context, size_t i, struct error *err)
{
	struct local_apply *local = context;

	if (rename(local->states[i].temp, local->plan->files[i].path) != 0)
		return error_set(err, EXIT_CANT_CREATE, "%s", strerror(errno));
	local->states[i].temp[0] = '\0';
	return 0;
}

static void local_sync(void *context)
{
	struct local_apply *local = context;
	struct error ignored;

	fsync_directories(local->states, local->plan->file_count, &ignored);
}

static void local_describe(void *context, size_t i, bool *existed, bool *backed_up)
{
	struct local_apply *local = context;

	*existed = local->states[i].existed;
	*backed_up = local->states[i].backup[0] != '\0';
}

static void local_remove_temps(void *context)
{
	struct local_apply *local = context;

	for (size_t i = 0; i < local->plan->file_count; i++)
		if (local->states[i].temp[0] != '\0') {
			unlink(local->states[i].temp);
			local->states[i].temp[0] = '\0';
		}
}

/*
 * Puts file i back as it was before the deploy: the backup is linked to a
 * temp name and renamed over the destination; a file that did not exist is
 * removed.
 */
static enum backup_status local_restore(void *context, size_t i, char *why, size_t why_size)
{
	struct local_apply *local = context;
	const char *path = local->plan->files[i].path;
	struct file_state *state = &local->states[i];
	char temp[PATH_MAX];

	if (!state->existed) {
		if (unlink(path) == 0 || errno == ENOENT)
			return BACKUP_REMOVED;
		snprintf(why, why_size, "remove: %s", strerror(errno));
		return BACKUP_REMOVE_FAILED;
	}
	if (state->backup[0] == '\0') {
		snprintf(why, why_size, "no backup (backup_retention -1)");
		return BACKUP_RESTORE_FAILED;
	}
	make_temp_name(state, temp, sizeof(temp));
	if (snapshot(state->backup, temp) != 0) {
		snprintf(why, why_size, "cannot read backup %s: %s", state->backup, strerror(errno));
		return BACKUP_RESTORE_FAILED;
	}
	if (rename(temp, path) != 0) {
		snprintf(why, why_size, "rename: %s", strerror(errno));
		unlink(temp);
		return BACKUP_RESTORE_FAILED;
	}
	return BACKUP_RESTORED;
}

static int local_reload(void *context, struct error *err)
{
	struct local_apply *local = context;

	return run_command(local->plan->reload_argv, NULL, err);
}

static void local_prune_backups(void *context)
{
	struct local_apply *local = context;

	for (size_t i = 0; i < local->plan->file_count && local->plan->backup_retention != BACKUPS_DISABLED; i++)
		prune_backups(&local->states[i], local->plan->backup_retention);
}

static const struct applier_ops local_ops = {
	.lock_and_compare = local_lock_and_compare,
	.settle_ownership = local_settle_ownership,
	.stage = local_stage,
	.validate = local_validate,
	.back_up = local_back_up,
	.install = local_install,
	.sync = local_sync,
	.describe = local_describe,
	.remove_temps = local_remove_temps,
	.restore = local_restore,
	.reload = local_reload,
	.prune_backups = local_prune_backups,
};

int atomic_apply(const struct deploy_plan *plan, struct deploy_result *result, struct error *err)
{
	struct local_apply local;
	struct applier applier = { &local_ops, &local, "", false };
	int code;

	deploy_result_init(result);
	memset(&local, 0, sizeof(local));
	local.plan = plan;
	for (size_t i = 0; i < DEPLOY_MAX_FILES; i++)
		local.states[i].lock_fd = -1;
	code = applier_run(&applier, plan, result, err);
	for (size_t i = 0; i < DEPLOY_MAX_FILES; i++)
		if (local.states[i].lock_fd >= 0)
			close(local.states[i].lock_fd);
	return code;
}
