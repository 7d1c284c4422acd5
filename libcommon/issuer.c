#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "exitcode.h"
#include "fileio.h"
#include "issuer.h"
#include "pem.h"

/* The environment protocol's variables. */
#define PROTOCOL_VARIABLES 5

void issuer_free(struct issuer *issuer)
{
	for (size_t i = 0; issuer->argv != NULL && issuer->argv[i] != NULL; i++)
		free(issuer->argv[i]);
	free(issuer->argv);
	issuer->argv = NULL;
}

static int parse_command(const char *issuer_id, json_object *command, struct issuer *issuer,
			 struct error *err)
{
	size_t count;

	if (command == NULL || !json_object_is_type(command, json_type_array) ||
	    (count = json_object_array_length(command)) == 0)
		return error_set(err, EXIT_CONFIG,
				 "issuer %s: config needs \"command\", a non-empty array of strings (argv)",
				 issuer_id);
	if ((issuer->argv = calloc(count + 1, sizeof(*issuer->argv))) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		json_object *word = json_object_array_get_idx(command, i);
		const char *text = json_object_get_string(word);

		if (!json_object_is_type(word, json_type_string) || (i == 0 && text[0] == '\0'))
			return error_set(err, EXIT_CONFIG,
					 "issuer %s: command[%zu] is not a%s string", issuer_id, i,
					 i == 0 ? " non-empty" : "");
		if (strlen(text) != (size_t)json_object_get_string_len(word))
			return error_set(err, EXIT_CONFIG, "issuer %s: command[%zu] holds a NUL byte",
					 issuer_id, i);
		if ((issuer->argv[i] = strdup(text)) == NULL)
			return error_set(err, EXIT_INTERNAL, "out of memory");
	}
	return 0;
}

static int parse_timeout(const char *issuer_id, json_object *timeout, struct issuer *issuer,
			 struct error *err)
{
	double seconds;

	issuer->timeout_seconds = ISSUER_DEFAULT_TIMEOUT_SECONDS;
	if (timeout == NULL)
		return 0;
	seconds = json_object_get_double(timeout);
	if (!json_object_is_type(timeout, json_type_int) || seconds < 1 ||
	    seconds > ISSUER_MAX_TIMEOUT_SECONDS)
		return error_set(err, EXIT_CONFIG,
				 "issuer %s: \"timeout\" must be a whole number of seconds from 1 to %d",
				 issuer_id, ISSUER_MAX_TIMEOUT_SECONDS);
	issuer->timeout_seconds = (int)seconds;
	return 0;
}

int issuer_parse(const char *issuer_id, const char *type, const char *config_json,
		 struct issuer *issuer, struct error *err)
{
	json_object *config = NULL, *command = NULL, *timeout = NULL;
	int code;

	issuer->argv = NULL;
	if (strcmp(type, "command") != 0)
		return error_set(err, EXIT_CONFIG, "issuer %s: unknown type '%s' (only \"command\")",
				 issuer_id, type);
	config = json_tokener_parse(config_json);
	if (config == NULL || !json_object_is_type(config, json_type_object)) {
		json_object_put(config);
		return error_set(err, EXIT_CONFIG, "issuer %s: config is not a JSON object", issuer_id);
	}
	json_object_object_get_ex(config, "command", &command);
	json_object_object_get_ex(config, "timeout", &timeout);
	if ((code = parse_command(issuer_id, command, issuer, err)) != 0 ||
	    (code = parse_timeout(issuer_id, timeout, issuer, err)) != 0)
		issuer_free(issuer);
	json_object_put(config);
	return code;
}

static int remove_entry(const char *path, const struct stat *status, int flag, struct FTW *walk)
{
	(void)status, (void)flag, (void)walk;
	remove(path);
	return 0;
}

/* The work directory and what the issuer left in it, subdirectories included. */
static void remove_tree(const char *directory)
{
	nftw(directory, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_csr(const char *path, const char *csr_pem, struct error *err)
{
	size_t length = strlen(csr_pem), done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: %s", path, strerror(errno));
	while (done < length) {
		ssize_t wrote = write(fd, csr_pem + done, length - done);

		if (wrote < 0 && errno == EINTR)
			continue;
		if (wrote < 0) {
			close(fd);
			return error_set(err, EXIT_CANT_CREATE, "%s: %s", path, strerror(errno));
		}
		done += (size_t)wrote;
	}
	if (close(fd) != 0)
		return error_set(err, EXIT_CANT_CREATE, "%s: %s", path, strerror(errno));
	return 0;
}

/* The names, space separated, for CERTCTL_SANS (malloc'd). */
static char *joined_names(const struct issuer_request *request)
{
	size_t length = 1;
	char *text;

	for (size_t i = 0; i < request->name_count; i++)
		length += strlen(request->names[i]) + 1;
	if ((text = malloc(length)) == NULL)
		return NULL;
	text[0] = '\0';
	for (size_t i = 0; i < request->name_count; i++) {
		if (i > 0)
			strcat(text, " ");
		strcat(text, request->names[i]);
	}
	return text;
}

/* Runs the issuer with the protocol's environment, directory made. */
static int run_in(const char *directory, const struct issuer *issuer,
		  const struct issuer_request *request, char **cert_pem, size_t *cert_length,
		  struct error *err)
{
	char *csr_file = NULL, *cert_file = NULL, *id = NULL, *common_name = NULL, *sans = NULL,
	     *names = joined_names(request);
	const char *assignments[PROTOCOL_VARIABLES + 1] = { NULL };
	struct command_env env = { assignments };
	struct command_io io = { .input = NULL, .timeout_seconds = issuer->timeout_seconds };
	struct error read_err;
	int code;

	if (names == NULL ||
	    asprintf(&csr_file, "CERTCTL_CSR_FILE=%s/request.csr", directory) < 0 ||
	    asprintf(&cert_file, "CERTCTL_CERT_FILE=%s/certificate.pem", directory) < 0 ||
	    asprintf(&id, "CERTCTL_CERTIFICATE_ID=%s", request->certificate_id) < 0 ||
	    asprintf(&common_name, "CERTCTL_COMMON_NAME=%s",
		     request->name_count > 0 ? request->names[0] : "") < 0 ||
	    asprintf(&sans, "CERTCTL_SANS=%s", names) < 0) {
		code = error_set(err, EXIT_INTERNAL, "out of memory");
		goto out;
	}
	assignments[0] = csr_file;
	assignments[1] = cert_file;
	assignments[2] = id;
	assignments[3] = common_name;
	assignments[4] = sans;
	if ((code = write_csr(strchr(csr_file, '=') + 1, request->csr_pem, err)) != 0 ||
	    (code = run_command_io(issuer->argv, &env, &io, err)) != 0)
		goto out;
	*cert_pem = file_read_all(strchr(cert_file, '=') + 1, PEM_MAX_FILE_BYTES, cert_length, &read_err);
	if (*cert_pem == NULL)
		code = error_set(err, EXIT_FAILED_CLEANLY, "%s exited 0 but left no certificate: %s",
				 issuer->argv[0], read_err.message);
out:
	free(csr_file);
	free(cert_file);
	free(id);
	free(common_name);
	free(sans);
	free(names);
	return code;
}

int issuer_run(const struct issuer *issuer, const struct issuer_request *request, char **cert_pem,
	       size_t *cert_length, struct error *err)
{
	const char *base = getenv("TMPDIR");
	char *directory = NULL;
	int code;

	*cert_pem = NULL;
	*cert_length = 0;
	if (base == NULL || base[0] != '/')
		base = "/tmp";
	if (asprintf(&directory, "%s/certctl-issue.XXXXXX", base) < 0)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	/* mkdtemp() makes it 0700: the issuer's files are ours and its alone. */
	if (mkdtemp(directory) == NULL) {
		code = error_set(err, EXIT_CANT_CREATE, "%s: %s", directory, strerror(errno));
		free(directory);
		return code;
	}
	code = run_in(directory, issuer, request, cert_pem, cert_length, err);
	remove_tree(directory);
	free(directory);
	return code;
}
