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
#include "fileio.h"
#include "runcmd.h"
#include "signals.h"

/* A destination larger than this cannot hold our bytes: it simply differs. */
#define COMPARE_MAX_BYTES (4L * 1024 * 1024)
/* A key is never installed more readable than this (CONTRACT: owner rw, group r). */
#define KEY_MODE_CEILING 0640
/* Room for ".<name>" TEMP_FILE_INFIX "<ns>.<pid>.<n>" or "<name>" ATOMIC_BACKUP_INFIX "<ns>". */
#define SIBLING_NAME_MAX (NAME_MAX + 64)

/* Owner, group and mode a file gets; (uid_t)-1 / (gid_t)-1: as created (ours). */
struct ownership {
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/*
 * Everything atomic_apply() knows about one destination while it works.
 * Every name is relative to dir_fd, which was reached from "/" one
 * component at a time without following a symbolic link.
 */
struct file_state {
	char dir[PATH_MAX];
	char base[NAME_MAX + 1];
	char temp[SIBLING_NAME_MAX];    /* "" when no temp file exists */
	char backup[SIBLING_NAME_MAX];  /* "" when no backup was taken */
	int dir_fd;
	int lock_fd;
	bool existed;
	bool was_link;                  /* a symbolic link stood at the destination */
	struct stat before;             /* lstat of the destination, when it existed */
	struct ownership owner;
};

static unsigned long temp_counter;

static int split_path(const char *path, struct file_state *state, struct error *err)
{
	const char *slash = strrchr(path, '/');
	size_t dir_length;

	if (path[0] != '/' || slash == NULL || slash[1] == '\0' || strlen(slash + 1) > NAME_MAX - 32 ||
	    strcmp(slash + 1, ".") == 0 || strcmp(slash + 1, "..") == 0)
		return error_set(err, EXIT_CONFIG, "%s: not an absolute path to a file", path);
	dir_length = slash == path ? 1 : (size_t)(slash - path);
	if (dir_length >= sizeof(state->dir))
		return error_set(err, EXIT_CONFIG, "%s: path too long", path);
	memcpy(state->dir, path, dir_length);
	state->dir[dir_length] = '\0';
	snprintf(state->base, sizeof(state->base), "%s", slash + 1);
	return 0;
}

/* Another user could rename, replace or add entries in it (a sticky root-owned one excepted). */
static bool directory_is_shared(const struct stat *info)
{
	if (info->st_uid != 0 && info->st_uid != geteuid())
		return true;
	if ((info->st_mode & (S_IWGRP | S_IWOTH)) == 0)
		return false;
	return !((info->st_mode & S_ISVTX) && info->st_uid == 0);
}

/*
 * Opens dir from "/" one component at a time with O_NOFOLLOW, so a
 * symbolic link anywhere on the way is refused (73), and unless
 * allow_shared refuses a directory on the way that another user can write
 * to (78). ENOENT on the way is 73 with *missing set. Returns 0 and *fd.
 */
static int open_directory(const char *path, const char *dir, bool allow_shared, int *fd, bool *missing,
			  struct error *err)
{
	char walked[PATH_MAX] = "", component[NAME_MAX + 1];
	const char *cursor = dir;
	struct stat info;
	/* O_PATH on the way needs search permission only, as a path lookup does. */
	int current = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);

	*fd = -1;
	*missing = false;
	if (current < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot open /: %s", path, strerror(errno));
	for (;;) {
		if (fstat(current, &info) != 0) {
			int saved = errno;
			close(current);
			return error_set(err, EXIT_CANT_CREATE, "%s: %s: %s", path, walked[0] ? walked : "/",
					 strerror(saved));
		}
		if (!allow_shared && directory_is_shared(&info)) {
			close(current);
			return error_set(err, EXIT_CONFIG, "%s: directory %s can be written by other users "
					 "(owner %ld, mode %04o); refused unless the target sets allow_shared_directory",
					 path, walked[0] ? walked : "/", (long)info.st_uid,
					 (unsigned)(info.st_mode & 07777));
		}
		while (*cursor == '/')
			cursor++;
		if (*cursor == '\0')
			break;
		size_t length = strcspn(cursor, "/");
		if (length > NAME_MAX) {
			close(current);
			return error_set(err, EXIT_CONFIG, "%s: path component too long", path);
		}
		memcpy(component, cursor, length);
		component[length] = '\0';
		cursor += length;
		snprintf(walked + strlen(walked), sizeof(walked) - strlen(walked), "/%s", component);
		int next = openat(current, component, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(current);
		if (next < 0) {
			*missing = saved == ENOENT;
			if (saved == ELOOP || saved == ENOTDIR)
				return error_set(err, EXIT_CANT_CREATE, "%s: %s is a symbolic link or not a directory; "
						 "nothing is written through it", path, walked);
			return error_set(err, EXIT_CANT_CREATE, "%s: directory %s: %s", path, walked, strerror(saved));
		}
		current = next;
	}
	/* The destination's directory itself is read (listed) and fsynced. */
	*fd = openat(current, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0) {
		int saved = errno;
		close(current);
		return error_set(err, EXIT_CANT_CREATE, "%s: directory %s: %s", path, dir, strerror(saved));
	}
	close(current);
	return 0;
}

static long long now_nanoseconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* ".<name>.certctl-tmp.<19-digit ns>.<pid>.<n>", a name in the destination's directory. */
static void make_temp_name(const struct file_state *state, char *name, size_t size)
{
	snprintf(name, size, ".%s" TEMP_FILE_INFIX "%019lld.%ld.%lu", state->base,
		 now_nanoseconds(), (long)getpid(), ++temp_counter);
}

/* The directories' entries are durable; each directory once. */
static int fsync_directories(struct file_state *states, size_t count, struct error *err)
{
	for (size_t i = 0; i < count; i++) {
		bool seen = false;
		for (size_t j = 0; j < i; j++)
			seen = seen || strcmp(states[i].dir, states[j].dir) == 0;
		if (!seen && fsync(states[i].dir_fd) != 0 && errno != EINVAL)
			return error_set(err, EXIT_CANT_CREATE, "%s: fsync: %s", states[i].dir, strerror(errno));
	}
	return 0;
}

/*
 * What stands at name in dir_fd, without following or blocking on it: absent
 * (*existed false), a symbolic link, or a regular file (lstat in *info).
 * Anything else (a FIFO, a device, a directory) is 73.
 */
static int inspect_destination(int dir_fd, const char *name, const char *path, bool *existed,
			       bool *is_link, struct stat *info, struct error *err)
{
	*existed = *is_link = false;
	if (fstatat(dir_fd, name, info, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, EXIT_CANT_CREATE, "%s: %s; nothing changed", path, strerror(errno));
	}
	*existed = true;
	*is_link = S_ISLNK(info->st_mode);
	if (!*is_link && !S_ISREG(info->st_mode))
		return error_set(err, EXIT_CANT_CREATE, "%s: exists and is not a regular file; nothing changed", path);
	return 0;
}

/*
 * Does the regular file name in dir_fd hold exactly bytes? Opened with
 * O_NOFOLLOW|O_NONBLOCK, so whatever was swapped in since the lstat cannot
 * block us or be followed; something not regular is 73.
 */
static int holds_bytes(int dir_fd, const char *name, const char *path, const struct deploy_file *file,
		       bool *same, struct error *err)
{
	unsigned char *current = NULL, want[SHA256_DIGEST_LENGTH], have[SHA256_DIGEST_LENGTH];
	struct stat info;
	size_t done = 0, length = file->length;
	int fd = openat(dir_fd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), code = 0;

	*same = false;
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP)
			return 0;
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot read: %s", path, strerror(errno));
	}
	if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
		code = error_set(err, EXIT_CANT_CREATE, "%s: exists and is not a regular file; nothing changed", path);
		goto out;
	}
	if (info.st_size != (off_t)length || info.st_size > COMPARE_MAX_BYTES)
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
	SHA256(file->bytes, length, want);
	SHA256(current, length, have);
	*same = memcmp(want, have, sizeof(want)) == 0;
out:
	if (current != NULL) {
		if (file->secret)
			OPENSSL_cleanse(current, length);
		free(current);
	}
	close(fd);
	return code;
}

int atomic_compare(const struct deploy_plan *plan, bool differs[DEPLOY_MAX_FILES], struct error *err)
{
	for (size_t i = 0; i < plan->file_count; i++) {
		const struct deploy_file *file = &plan->files[i];
		struct file_state state;
		struct stat info;
		bool missing, existed, is_link, same = false;
		int code;

		differs[i] = true;
		if (split_path(file->path, &state, err) != 0)
			return err->code;
		if (open_directory(file->path, state.dir, plan->allow_shared_directory, &state.dir_fd, &missing, err) != 0) {
			if (missing)
				continue;
			return err->code;
		}
		code = inspect_destination(state.dir_fd, state.base, file->path, &existed, &is_link, &info, err);
		if (code == 0 && existed && !is_link)
			code = holds_bytes(state.dir_fd, state.base, file->path, file, &same, err);
		close(state.dir_fd);
		if (code != 0)
			return code;
		differs[i] = !same;
	}
	return 0;
}

/* A directory stream of dir_fd's directory with its own offset. Caller closedir()s. */
static DIR *open_listing(int dir_fd)
{
	int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;

	if (fd < 0)
		return NULL;
	if ((dir = fdopendir(fd)) == NULL)
		close(fd);
	return dir;
}

/* Removes ".<name>.certctl-tmp.*" a killed run left; we hold the destination's lock. */
static void remove_leftover_temps(const struct file_state *state)
{
	char prefix[SIBLING_NAME_MAX];
	struct dirent *entry;
	DIR *dir = open_listing(state->dir_fd);

	if (dir == NULL)
		return;
	snprintf(prefix, sizeof(prefix), ".%s" TEMP_FILE_INFIX, state->base);
	while ((entry = readdir(dir)) != NULL)
		if (strncmp(entry->d_name, prefix, strlen(prefix)) == 0)
			unlinkat(state->dir_fd, entry->d_name, 0);
	closedir(dir);
}

static void drop_backup(void *context, const char *name)
{
	unlinkat(*(const int *)context, name, 0);
}

/* Keeps the newest keep "<name>.certctl-bak.<ns>" files. */
static void prune_backups(const struct file_state *state, int keep)
{
	char prefix[SIBLING_NAME_MAX];
	struct backup_names names = { prefix, NULL, 0, 0 };
	struct dirent *entry;
	DIR *dir = open_listing(state->dir_fd);

	if (dir == NULL)
		return;
	snprintf(prefix, sizeof(prefix), "%s" ATOMIC_BACKUP_INFIX, state->base);
	while ((entry = readdir(dir)) != NULL && backup_names_add(&names, entry->d_name))
		;
	closedir(dir);
	backup_names_prune(&names, keep, drop_backup, (void *)&state->dir_fd);
}

/* The lock file must be a regular file: a FIFO or link planted there is refused, never waited on. */
static int lock_destination(const struct deploy_file *file, struct file_state *state, struct error *err)
{
	char lock_name[SIBLING_NAME_MAX];
	struct stat info;

	snprintf(lock_name, sizeof(lock_name), ".%s" ATOMIC_LOCK_SUFFIX, state->base);
	state->lock_fd = openat(state->dir_fd, lock_name, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK |
				O_NOCTTY, 0600);
	if (state->lock_fd < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: cannot open lock %s: %s", file->path, lock_name,
				 strerror(errno));
	if (fstat(state->lock_fd, &info) != 0 || !S_ISREG(info.st_mode))
		return error_set(err, EXIT_CANT_CREATE, "%s: lock %s is not a regular file", file->path, lock_name);
	while (flock(state->lock_fd, LOCK_EX) != 0) {
		if (errno == EINTR && signals_stop_requested())
			return error_set(err, EXIT_TEMPORARY, "%s: interrupted while waiting for the lock; nothing changed",
					 file->path);
		if (errno != EINTR)
			return error_set(err, EXIT_CANT_CREATE, "%s: flock %s: %s", file->path, lock_name,
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

/*
 * Existing owner, group and mode are kept; explicit ones from the plan win.
 * A key keeps an existing owner only when it is root (us) or the configured
 * owner, and never gains group-write or an "other" bit; else it is ours, 0600.
 * A symbolic link at the destination lends nothing: it is replaced.
 */
static int resolve_ownership(const struct deploy_file *file, struct file_state *state, struct error *err)
{
	struct ownership *owner = &state->owner;
	uid_t configured = (uid_t)-1;
	gid_t ignored = (gid_t)-1;

	owner->uid = (uid_t)-1;
	owner->gid = (gid_t)-1;
	owner->mode = (mode_t)file->default_mode;
	if (lookup_owner(file, &configured, &ignored, err) != 0)
		return err->code;
	if (state->existed && !state->was_link) {
		const struct stat *info = &state->before;
		bool trusted_owner = info->st_uid == 0 || info->st_uid == geteuid() ||
				     (file->owner != NULL && info->st_uid == configured);
		if (!file->secret || trusted_owner) {
			owner->uid = info->st_uid;
			owner->gid = info->st_gid;
			owner->mode = info->st_mode & 07777;
			if (file->secret)
				owner->mode &= KEY_MODE_CEILING;
		}
	}
	if (file->mode >= 0)
		owner->mode = (mode_t)file->mode;
	return lookup_owner(file, &owner->uid, &owner->gid, err);
}

/*
 * Creates name in dir_fd (0600 before any byte lands) holding bytes with
 * owner's owner, group and mode, fsynced. On failure removes it and returns
 * -1 with errno set.
 */
static int write_temp(int dir_fd, const char *name, const unsigned char *bytes, size_t length,
		      const struct ownership *owner, const char **step)
{
	int fd, saved;

	*step = "create";
	fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	*step = "write";
	if (fd_write_all(fd, bytes, length) != 0)
		goto fail;
	/* chown before chmod: chown clears set-id bits. */
	*step = "chown";
	if ((owner->uid != (uid_t)-1 || owner->gid != (gid_t)-1) && fchown(fd, owner->uid, owner->gid) != 0)
		goto fail;
	*step = "chmod";
	if (fchmod(fd, owner->mode) != 0)
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
	unlinkat(dir_fd, name, 0);
	errno = saved;
	return -1;
}

/* A copy of the regular file source at destination, with owner (or source's own when NULL). */
static int copy_file(int dir_fd, const char *source, const char *destination, const struct ownership *owner)
{
	unsigned char *bytes = NULL;
	struct ownership own;
	struct stat info;
	const char *step;
	size_t done = 0;
	int fd = openat(dir_fd, source, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY), result = -1, saved;

	if (fd < 0)
		return -1;
	if (fstat(fd, &info) != 0)
		goto out;
	if (!S_ISREG(info.st_mode) || info.st_size > COMPARE_MAX_BYTES) {
		errno = EINVAL;
		goto out;
	}
	if ((bytes = malloc((size_t)info.st_size + 1)) == NULL)
		goto out;
	while (done < (size_t)info.st_size) {
		ssize_t got = read(fd, bytes + done, (size_t)info.st_size - done);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			goto out;
		done += (size_t)got;
	}
	own = owner != NULL ? *owner : (struct ownership){ info.st_uid, info.st_gid, info.st_mode & 07777 };
	result = write_temp(dir_fd, destination, bytes, done, &own, &step);
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

/* A hard link is instant and keeps bytes, owner and mode exactly (a link stays a link); copy when refused. */
static int snapshot(int dir_fd, const char *source, const char *destination)
{
	if (linkat(dir_fd, source, dir_fd, destination, 0) == 0)
		return 0;
	if (errno == EEXIST || errno == ENOENT)
		return -1;
	return copy_file(dir_fd, source, destination, NULL);
}

static uid_t effective_uid(uid_t uid)
{
	return uid == (uid_t)-1 ? geteuid() : uid;
}

static gid_t effective_gid(gid_t gid)
{
	return gid == (gid_t)-1 ? getegid() : gid;
}

/*
 * A key whose owner or mode the deploy changes is backed up as a copy with
 * the new key's owner and mode, so the backup is never more readable than
 * the key; everything else as a hard link.
 */
static int back_up_file(const struct deploy_file *file, struct file_state *state)
{
	const struct stat *info = &state->before;
	const struct ownership *owner = &state->owner;

	if (file->secret && !state->was_link &&
	    (info->st_uid != effective_uid(owner->uid) || info->st_gid != effective_gid(owner->gid) ||
	     (info->st_mode & 07777) != owner->mode))
		return copy_file(state->dir_fd, state->base, state->backup, owner);
	return snapshot(state->dir_fd, state->base, state->backup);
}

/* One local deploy in progress: the applier's context. */
struct local_apply {
	const struct deploy_plan *plan;
	struct file_state states[DEPLOY_MAX_FILES];
};

/* Each destination's directory, opened once per distinct directory. */
static int open_directories(struct local_apply *local, struct error *err)
{
	const struct deploy_plan *plan = local->plan;

	for (size_t i = 0; i < plan->file_count; i++) {
		struct file_state *state = &local->states[i];
		bool missing;

		if (split_path(plan->files[i].path, state, err) != 0)
			return err->code;
		for (size_t j = 0; j < i && state->dir_fd < 0; j++)
			if (strcmp(local->states[j].dir, state->dir) == 0 &&
			    (state->dir_fd = fcntl(local->states[j].dir_fd, F_DUPFD_CLOEXEC, 0)) < 0)
				return error_set(err, EXIT_CANT_CREATE, "%s: %s", state->dir, strerror(errno));
		if (state->dir_fd < 0 &&
		    open_directory(plan->files[i].path, state->dir, plan->allow_shared_directory, &state->dir_fd,
				   &missing, err) != 0)
			return err->code;
	}
	return 0;
}

static int local_lock_and_compare(void *context, bool *all_same, struct error *err)
{
	struct local_apply *local = context;
	const struct deploy_plan *plan = local->plan;
	size_t order[DEPLOY_MAX_FILES], count = plan->file_count;

	if (open_directories(local, err) != 0)
		return err->code;
	for (size_t i = 0; i < count; i++)
		order[i] = i;
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
		struct file_state *state = &local->states[i];
		bool same = false;

		remove_leftover_temps(state);
		if (inspect_destination(state->dir_fd, state->base, plan->files[i].path, &state->existed,
					&state->was_link, &state->before, err) != 0)
			return err->code;
		if (state->existed && !state->was_link &&
		    holds_bytes(state->dir_fd, state->base, plan->files[i].path, &plan->files[i], &same, err) != 0)
			return err->code;
		*all_same = *all_same && same;
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
		if (write_temp(state->dir_fd, state->temp, file->bytes, file->length, &state->owner, &what) != 0) {
			error_set(err, EXIT_CANT_CREATE, "%s: temp file %s/%s: %s: %s; nothing changed",
				  file->path, strcmp(state->dir, "/") == 0 ? "" : state->dir, state->temp, what,
				  strerror(errno));
			state->temp[0] = '\0';
			return err->code;
		}
	}
	return fsync_directories(local->states, local->plan->file_count, err);
}

static int local_validate(void *context, struct error *err)
{
	struct local_apply *local = context;
	char assignments[DEPLOY_MAX_FILES][PATH_MAX + SIBLING_NAME_MAX + 40];
	const char *list[DEPLOY_MAX_FILES + 1];
	struct command_env env = { list };

	for (size_t i = 0; i < local->plan->file_count; i++) {
		const struct file_state *state = &local->states[i];
		snprintf(assignments[i], sizeof(assignments[i]), "%s=%s/%s",
			 deploy_file_new_path_variable(local->plan->files[i].role),
			 strcmp(state->dir, "/") == 0 ? "" : state->dir, state->temp);
		list[i] = assignments[i];
	}
	list[local->plan->file_count] = NULL;
	return run_command(local->plan->validate_argv, &env, err);
}

/* "<name>.certctl-bak.<ns>" beside each existing destination, one stamp for the whole deploy. */
static int local_back_up(void *context, struct error *err)
{
	struct local_apply *local = context;
	const struct deploy_plan *plan = local->plan;
	long long stamp = now_nanoseconds();

	for (size_t i = 0; i < plan->file_count && plan->backup_retention != BACKUPS_DISABLED; i++) {
		struct file_state *state = &local->states[i];
		int result = -1;

		if (!state->existed)
			continue;
		for (int tries = 0; tries < 1000; tries++) {
			/* The name, then the suffix: one snprintf of both, gcc -O0 takes the two members for one object (-Wrestrict). */
			size_t length = strnlen(state->base, sizeof(state->backup) - 1);

			memcpy(state->backup, state->base, length);
			snprintf(state->backup + length, sizeof(state->backup) - length,
				 ATOMIC_BACKUP_INFIX "%019lld", stamp + tries);
			if ((result = back_up_file(&plan->files[i], state)) == 0 || errno != EEXIST)
				break;
		}
		if (result != 0) {
			error_set(err, EXIT_CANT_CREATE, "%s: cannot back up to %s" ATOMIC_BACKUP_INFIX "…: %s; nothing changed",
				  plan->files[i].path, plan->files[i].path, strerror(errno));
			state->backup[0] = '\0';
			for (size_t j = 0; j < i; j++)
				if (local->states[j].backup[0] != '\0')
					unlinkat(local->states[j].dir_fd, local->states[j].backup, 0);
			return err->code;
		}
	}
	return 0;
}

static int local_install(void *context, size_t i, struct error *err)
{
	struct local_apply *local = context;
	struct file_state *state = &local->states[i];

	if (renameat(state->dir_fd, state->temp, state->dir_fd, state->base) != 0)
		return error_set(err, EXIT_CANT_CREATE, "%s", strerror(errno));
	state->temp[0] = '\0';
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
			unlinkat(local->states[i].dir_fd, local->states[i].temp, 0);
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
	struct file_state *state = &local->states[i];
	char temp[SIBLING_NAME_MAX];

	if (!state->existed) {
		if (unlinkat(state->dir_fd, state->base, 0) == 0 || errno == ENOENT)
			return BACKUP_REMOVED;
		snprintf(why, why_size, "remove: %s", strerror(errno));
		return BACKUP_REMOVE_FAILED;
	}
	if (state->backup[0] == '\0') {
		snprintf(why, why_size, "no backup (backup_retention -1)");
		return BACKUP_RESTORE_FAILED;
	}
	make_temp_name(state, temp, sizeof(temp));
	if (snapshot(state->dir_fd, state->backup, temp) != 0) {
		snprintf(why, why_size, "cannot read backup %s/%s: %s", state->dir, state->backup, strerror(errno));
		return BACKUP_RESTORE_FAILED;
	}
	if (renameat(state->dir_fd, temp, state->dir_fd, state->base) != 0) {
		snprintf(why, why_size, "rename: %s", strerror(errno));
		unlinkat(state->dir_fd, temp, 0);
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
		local.states[i].lock_fd = local.states[i].dir_fd = -1;
	code = applier_run(&applier, plan, result, err);
	for (size_t i = 0; i < DEPLOY_MAX_FILES; i++) {
		if (local.states[i].lock_fd >= 0)
			close(local.states[i].lock_fd);
		if (local.states[i].dir_fd >= 0)
			close(local.states[i].dir_fd);
	}
	return code;
}
