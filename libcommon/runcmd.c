#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "exitcode.h"
#include "runcmd.h"

/* How much of a failing command's stderr makes it into the one-line error. */
#define STDERR_SUMMARY_BYTES 400
/* For a command run with no PATH of ours to inherit. */
#define DEFAULT_COMMAND_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

/* The command timeout in seconds ($CERTCTL_COMMAND_TIMEOUT or the default). */
int command_timeout_seconds(void)
{
	const char *text = getenv(COMMAND_TIMEOUT_ENV);
	char *end;
	long seconds;

	if (text == NULL || text[0] == '\0')
		return DEFAULT_COMMAND_TIMEOUT_SECONDS;
	seconds = strtol(text, &end, 10);
	if (*end != '\0' || seconds < 1 || seconds > 86400)
		return DEFAULT_COMMAND_TIMEOUT_SECONDS;
	return seconds > MAX_COMMAND_TIMEOUT_SECONDS ? MAX_COMMAND_TIMEOUT_SECONDS : (int)seconds;
}

/* The run's deadline (CLOCK_MONOTONIC ms; 0: none) and its rollback reserve. */
static long long run_deadline_ms, run_reserve_ms;
static bool run_in_rollback;

int run_deadline_start(struct error *err)
{
	const char *text = getenv(RUN_DEADLINE_ENV);
	long seconds = DEFAULT_RUN_DEADLINE_SECONDS;
	char *end;

	if (text != NULL && text[0] != '\0') {
		seconds = strtol(text, &end, 10);
		if (*end != '\0' || seconds < 1 || seconds > 86400)
			return error_set(err, EXIT_USAGE, "%s: '%s': must be a number of seconds from 1 to 86400",
					 RUN_DEADLINE_ENV, text);
	}
	run_reserve_ms = (long long)(seconds / 4 < ROLLBACK_RESERVE_SECONDS ? seconds / 4 : ROLLBACK_RESERVE_SECONDS) * 1000;
	run_deadline_ms = monotonic_milliseconds() + (long long)seconds * 1000;
	return 0;
}

long long run_deadline_command_ms(int timeout_seconds, bool *cut)
{
	long long own = (long long)timeout_seconds * 1000, left;

	*cut = false;
	if (run_deadline_ms == 0)
		return own;
	left = run_deadline_ms - monotonic_milliseconds() - (run_in_rollback ? 0 : run_reserve_ms);
	if (left >= own)
		return own;
	*cut = true;
	return left < 1 ? 1 : left;
}

void run_deadline_rollback(bool under_way)
{
	run_in_rollback = under_way;
}

bool run_deadline_job_fits(int timeout_seconds, long long *left_ms, long long *needed_ms)
{
	*needed_ms = 2LL * timeout_seconds * 1000 + run_reserve_ms;
	*left_ms = run_deadline_ms == 0 ? *needed_ms : run_deadline_ms - monotonic_milliseconds();
	return *left_ms >= *needed_ms;
}

/* Control characters and runs of blanks become one space: a one-line summary. */
static void one_line(char *text)
{
	char *out = text;
	bool blank = true;

	for (const char *in = text; *in; in++) {
		unsigned char c = (unsigned char)*in;
		if (c < 0x20 || c == 0x7f || c == ' ') {
			if (!blank)
				*out++ = ' ';
			blank = true;
			continue;
		}
		*out++ = (char)c;
		blank = false;
	}
	while (out > text && out[-1] == ' ')
		out--;
	*out = '\0';
}

/* Does the NAME=value entry have this name? */
static bool entry_is(const char *entry, const char *name)
{
	size_t length = strcspn(name, "=");

	return strncmp(entry, name, length) == 0 && entry[length] == '=';
}

/* What a command may inherit: the locale, the time zone, PATH, and the new files' paths. */
static bool entry_may_pass(const char *entry)
{
	return entry_is(entry, "PATH") || entry_is(entry, "LANG") || entry_is(entry, "TZ") ||
	       (strncmp(entry, "LC_", 3) == 0 && strchr(entry, '=') != NULL) ||
	       (strncmp(entry, "CERTCTL_NEW_", 12) == 0 && strchr(entry, '=') != NULL);
}

/*
 * The child's environment: our allowed entries, then env's assignments
 * (which win). Never the DSN, PG* or a key or password file's path: a
 * reload command has no business with the database. Made before fork, as
 * the child should not allocate. Caller frees the array, not the strings.
 */
static char **scrubbed_environment(const struct command_env *env)
{
	size_t inherited = 0, added = 0, used = 0;
	bool has_path = false;
	char **list;

	while (environ != NULL && environ[inherited] != NULL)
		inherited++;
	while (env != NULL && env->assignments != NULL && env->assignments[added] != NULL)
		added++;
	if ((list = calloc(inherited + added + 2, sizeof(*list))) == NULL)
		return NULL;
	for (size_t i = 0; i < inherited; i++) {
		bool replaced = false;

		if (!entry_may_pass(environ[i]))
			continue;
		for (size_t j = 0; j < added && !replaced; j++)
			replaced = entry_is(environ[i], env->assignments[j]);
		if (!replaced)
			list[used++] = environ[i];
	}
	for (size_t j = 0; j < added; j++)
		list[used++] = (char *)env->assignments[j];
	for (size_t i = 0; i < used; i++)
		has_path = has_path || entry_is(list[i], "PATH");
	if (!has_path)
		list[used++] = (char *)DEFAULT_COMMAND_PATH;
	list[used] = NULL;
	return list;
}

static void exec_child(char *const argv[], char **environment, int input_fd, int stderr_fd)
{
	struct sigaction action;
	sigset_t none;
	int null_fd = open("/dev/null", O_RDWR);

	setpgid(0, 0);
	memset(&action, 0, sizeof(action));
	action.sa_handler = SIG_DFL;
	sigaction(SIGPIPE, &action, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (null_fd < 0 || dup2(input_fd >= 0 ? input_fd : null_fd, STDIN_FILENO) < 0 ||
	    dup2(null_fd, STDOUT_FILENO) < 0 ||
	    dup2(stderr_fd, STDERR_FILENO) < 0)
		_exit(127);
	/* execvp looks argv[0] up in the PATH of environ: the scrubbed one. */
	environ = environment;
	execvp(argv[0], argv);
	dprintf(STDERR_FILENO, "cannot execute: %s", strerror(errno));
	_exit(127);
}

/*
 * The input in a memory file the child reads as stdin: any size, and
 * nothing for us to feed (or block on) while it runs. -1 with errno on failure.
 */
static int input_file(const struct command_io *io)
{
	int fd = memfd_create("certctl-input", MFD_CLOEXEC);
	size_t written = 0;

	if (fd < 0)
		return -1;
	while (written < io->input_length) {
		ssize_t wrote = write(fd, io->input + written, io->input_length - written);
		if (wrote < 0 && errno == EINTR)
			continue;
		if (wrote < 0) {
			close(fd);
			return -1;
		}
		written += (size_t)wrote;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* What is kept of a command's stderr: the start, for the error, and the last line. */
struct stderr_kept {
	char summary[STDERR_SUMMARY_BYTES + 1];
	size_t kept;
	struct command_io *io;      /* NULL: no last line wanted */
	char line[COMMAND_LAST_LINE_SIZE];
	size_t line_length;
};

static bool is_blank(const char *text, size_t length)
{
	for (size_t i = 0; i < length; i++)
		if (text[i] != ' ' && text[i] != '\t' && text[i] != '\r')
			return false;
	return true;
}

/* The line read so far becomes the last line, unless it is blank. */
static void end_line(struct stderr_kept *stderr_kept)
{
	if (stderr_kept->io != NULL && !is_blank(stderr_kept->line, stderr_kept->line_length)) {
		memcpy(stderr_kept->io->last_line, stderr_kept->line, stderr_kept->line_length);
		stderr_kept->io->last_line[stderr_kept->line_length] = '\0';
	}
	stderr_kept->line_length = 0;
}

static void keep_stderr(struct stderr_kept *stderr_kept, const char *bytes, ssize_t got)
{
	for (ssize_t i = 0; i < got; i++) {
		if (stderr_kept->kept < STDERR_SUMMARY_BYTES)
			stderr_kept->summary[stderr_kept->kept++] = bytes[i];
		if (bytes[i] == '\n')
			end_line(stderr_kept);
		else if (stderr_kept->line_length < COMMAND_LAST_LINE_SIZE - 1)
			stderr_kept->line[stderr_kept->line_length++] = bytes[i];
	}
}

int run_command(char *const argv[], const struct command_env *env, struct error *err)
{
	return run_command_io(argv, env, NULL, err);
}

int run_command_io(char *const argv[], const struct command_env *env, struct command_io *io,
		   struct error *err)
{
	struct stderr_kept stderr_kept = { .kept = 0, .io = io, .line_length = 0 };
	char *summary = stderr_kept.summary, drain[512];
	int input_fd = -1;
	bool own_timeout = io != NULL && io->timeout_seconds > 0;
	int timeout_seconds = own_timeout ? io->timeout_seconds : command_timeout_seconds();
	bool cut = false, timed_out = false, stderr_closed = false;
	long long allowed = own_timeout ? (long long)timeout_seconds * 1000
					: run_deadline_command_ms(timeout_seconds, &cut);
	long long deadline = monotonic_milliseconds() + allowed;
	int pipe_fds[2], status = 0;
	char **environment;
	pid_t pid, waited;

	if (io != NULL) {
		io->last_line[0] = '\0';
		io->exit_status = -1;
	}
	if (argv == NULL || argv[0] == NULL)
		return 0;
	if (io != NULL && io->input != NULL && (input_fd = input_file(io)) < 0)
		return error_set(err, EXIT_FAILED_CLEANLY, "%s: cannot run: input: %s", argv[0], strerror(errno));
	if ((environment = scrubbed_environment(env)) == NULL) {
		if (input_fd >= 0)
			close(input_fd);
		return error_set(err, EXIT_FAILED_CLEANLY, "%s: cannot run: out of memory", argv[0]);
	}
	if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
		free(environment);
		if (input_fd >= 0)
			close(input_fd);
		return error_set(err, EXIT_FAILED_CLEANLY, "%s: cannot run: pipe: %s", argv[0], strerror(errno));
	}
	pid = fork();
	if (pid < 0) {
		free(environment);
		if (input_fd >= 0)
			close(input_fd);
		close(pipe_fds[0]);
		close(pipe_fds[1]);
		return error_set(err, EXIT_FAILED_CLEANLY, "%s: cannot run: fork: %s", argv[0], strerror(errno));
	}
	if (pid == 0)
		exec_child(argv, environment, input_fd, pipe_fds[1]);
	free(environment);
	if (input_fd >= 0)
		close(input_fd);
	setpgid(pid, pid);
	close(pipe_fds[1]);

	/*
	 * Collect stderr and watch for the exit together: a reload that leaves a
	 * daemon holding our pipe must not make us wait for the daemon.
	 */
	for (long sleep_ns = 50000;;) {
		long long left = deadline - monotonic_milliseconds();

		waited = waitpid(pid, &status, WNOHANG);
		if (waited == pid)
			break;
		if (waited < 0 && errno != EINTR) {
			close(pipe_fds[0]);
			return error_set(err, EXIT_FAILED_CLEANLY, "%s: cannot wait: %s", argv[0], strerror(errno));
		}
		if (left <= 0) {
			timed_out = true;
			kill(-pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		if (!stderr_closed) {
			struct pollfd poll_fd = { .fd = pipe_fds[0], .events = POLLIN };
			int ready = poll(&poll_fd, 1, left > 50 ? 50 : (int)left);
			ssize_t got;

			if (ready <= 0)
				continue;
			got = read(pipe_fds[0], drain, sizeof(drain));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				stderr_closed = true;
				continue;
			}
			keep_stderr(&stderr_kept, drain, got);
			continue;
		}
		nanosleep(&(struct timespec){ 0, sleep_ns }, NULL);
		if (sleep_ns < 20000000)
			sleep_ns *= 2;
	}
	/* Whatever is still buffered, without blocking on a straggler holding the pipe. */
	fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
	while (!stderr_closed) {
		ssize_t got = read(pipe_fds[0], drain, sizeof(drain));
		if (got <= 0)
			break;
		keep_stderr(&stderr_kept, drain, got);
	}
	close(pipe_fds[0]);
	end_line(&stderr_kept);
	if (io != NULL) {
		one_line(io->last_line);
		if (!timed_out && WIFEXITED(status))
			io->exit_status = WEXITSTATUS(status);
	}
	summary[stderr_kept.kept] = '\0';
	one_line(summary);
	if (io != NULL && io->last_line[0] != '\0')
		summary = io->last_line;

	if (timed_out && cut)
		return error_set(err, EXIT_FAILED_CLEANLY, "%s timed out after %.1f s (cut to fit the run deadline, %s) and was killed%s%s",
				 argv[0], (double)allowed / 1000, RUN_DEADLINE_ENV, summary[0] ? ": " : "", summary);
	if (timed_out)
		return error_set(err, EXIT_FAILED_CLEANLY, "%s timed out after %d s and was killed%s%s", argv[0],
				 timeout_seconds, summary[0] ? ": " : "", summary);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		return error_set(err, EXIT_FAILED_CLEANLY, "%s killed by signal %d%s%s", argv[0], WTERMSIG(status),
				 summary[0] ? ": " : "", summary);
	return error_set(err, EXIT_FAILED_CLEANLY, "%s exited %d%s%s", argv[0], WEXITSTATUS(status),
			 summary[0] ? ": " : "", summary);
}
