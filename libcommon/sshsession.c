#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "deadline.h"
#include "digest.h"
#include "exitcode.h"
#include "fileio.h"
#include "runcmd.h"
#include "sshsession.h"
#include "tcpconnect.h"

#define SECRET_FILE_MAX 4096
#define SECRETS_DIR_ENV "CERTCTL_SECRETS_DIR"
#define STDERR_KEPT 2048
#define SUMMARY_MAX 200
/* After a command timed out, how long closing its channel may take. */
#define CLOSE_GRACE_MS 2000

static long remaining_ms(long long deadline)
{
	long long left = deadline - monotonic_milliseconds();

	if (left < 1)
		return 1;
	return left > LONG_MAX ? LONG_MAX : (long)left;
}

/* ---- configuration ---- */

static int option_string(const char *target_id, json_object *config, const char *key,
			 bool required, char **value, struct error *err)
{
	json_object *field;

	*value = NULL;
	if (!json_object_object_get_ex(config, key, &field) || json_object_is_type(field, json_type_null)) {
		if (required)
			return error_set(err, EXIT_CONFIG, "%s: config %s: required for ssh targets", target_id, key);
		return 0;
	}
	if (!json_object_is_type(field, json_type_string) || json_object_get_string_len(field) == 0)
		return error_set(err, EXIT_CONFIG, "%s: config %s: must be a non-empty string", target_id, key);
	*value = strdup(json_object_get_string(field));
	if (*value == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	return 0;
}

static int option_integer(const char *target_id, json_object *config, const char *key,
			  int fallback, int minimum, int maximum, int *value, struct error *err)
{
	json_object *field;
	int64_t number;

	*value = fallback;
	if (!json_object_object_get_ex(config, key, &field) || json_object_is_type(field, json_type_null))
		return 0;
	number = json_object_get_int64(field);
	if (!json_object_is_type(field, json_type_int) || number < minimum || number > maximum)
		return error_set(err, EXIT_CONFIG, "%s: config %s: must be an integer from %d to %d",
				 target_id, key, minimum, maximum);
	*value = (int)number;
	return 0;
}

/* "SHA256:<base64>" (ssh-keygen -lf), bare base64, or 64 hex digits (colons allowed). */
static bool decode_host_key_pin(const char *text, unsigned char pin[SSH_HOST_KEY_SHA256_LENGTH])
{
	unsigned char decoded[SSH_HOST_KEY_SHA256_LENGTH + 3];
	char padded[48], digits[2 * SSH_HOST_KEY_SHA256_LENGTH + 1];
	size_t length, count = 0;

	if (strncmp(text, "SHA256:", 7) == 0)
		text += 7;
	/* Hex, with or without colons between the bytes; a 65th digit means too many. */
	for (const char *p = text; *p && count < sizeof(digits); p++)
		if (*p != ':')
			digits[count++] = *p;
	if (count == 2 * SSH_HOST_KEY_SHA256_LENGTH && hex_decode(digits, SSH_HOST_KEY_SHA256_LENGTH, pin) == 0)
		return true;
	length = strlen(text);
	while (length > 0 && text[length - 1] == '=')
		length--;
	if (length != 43)
		return false;
	memcpy(padded, text, length);
	memcpy(padded + length, "=", 2);
	if (EVP_DecodeBlock(decoded, (const unsigned char *)padded, 44) != 33)
		return false;
	memcpy(pin, decoded, SSH_HOST_KEY_SHA256_LENGTH);
	return true;
}

static char *default_known_hosts(void)
{
	struct passwd *user = getpwuid(geteuid());
	const char *home = user != NULL ? user->pw_dir : getenv("HOME");
	char *path;

	if (home == NULL || asprintf(&path, "%s/.ssh/known_hosts", home) < 0)
		return NULL;
	return path;
}

/* path with every symbolic link resolved; a missing last component is resolved through its directory. */
static char *resolve_path(const char *path)
{
	char *slash, *directory, *resolved, *joined = NULL;
	const char *name;

	if ((resolved = realpath(path, NULL)) != NULL || errno != ENOENT)
		return resolved;
	if ((directory = strdup(path)) == NULL)
		return NULL;
	slash = strrchr(directory, '/');
	name = slash ? path + (slash - directory) + 1 : path;
	if (slash == directory)
		directory[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		strcpy(directory, ".");
	if (name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	    (resolved = realpath(directory, NULL)) != NULL &&
	    asprintf(&joined, "%s%s%s", resolved, strcmp(resolved, "/") == 0 ? "" : "/", name) < 0)
		joined = NULL;
	free(resolved);
	free(directory);
	return joined;
}

/*
 * The database names these files, and a row anyone can write must not make
 * us read (and send) any local file: each must resolve under the secrets
 * directory. On success *path is replaced by its resolved form, which is
 * what gets opened.
 */
static int confine_to_secrets_dir(const char *target_id, const char *key, const char *secrets_dir,
				  const char *resolved_dir, char **path, struct error *err)
{
	char *resolved;
	size_t length = strlen(resolved_dir);

	if (*path == NULL)
		return 0;
	if (resolved_dir[0] == '\0' || (resolved = resolve_path(*path)) == NULL)
		return error_set(err, EXIT_CONFIG, "%s: config %s: %s: not under " SECRETS_DIR_ENV " %s%s; nothing sent",
				 target_id, key, *path, secrets_dir,
				 resolved_dir[0] == '\0' ? " (which cannot be resolved)" : "");
	if (strcmp(resolved_dir, "/") != 0 &&
	    (strncmp(resolved, resolved_dir, length) != 0 || resolved[length] != '/')) {
		error_set(err, EXIT_CONFIG, "%s: config %s: %s: not under " SECRETS_DIR_ENV " %s; nothing sent",
			  target_id, key, *path, secrets_dir);
		free(resolved);
		return EXIT_CONFIG;
	}
	free(*path);
	*path = resolved;
	return 0;
}

static int confine_secret_files(const char *target_id, struct ssh_options *options, bool known_hosts_named,
				struct error *err)
{
	const char *secrets_dir = getenv(SECRETS_DIR_ENV);
	char *resolved_dir;
	int code;

	if (secrets_dir == NULL || secrets_dir[0] == '\0')
		secrets_dir = SSH_DEFAULT_SECRETS_DIR;
	if ((resolved_dir = realpath(secrets_dir, NULL)) == NULL && (resolved_dir = strdup("")) == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if ((code = confine_to_secrets_dir(target_id, "private_key_path", secrets_dir, resolved_dir,
					   &options->private_key_path, err)) == 0 &&
	    (code = confine_to_secrets_dir(target_id, "passphrase_file", secrets_dir, resolved_dir,
					   &options->passphrase_file, err)) == 0 &&
	    (code = confine_to_secrets_dir(target_id, "password_file", secrets_dir, resolved_dir,
					   &options->password_file, err)) == 0 && known_hosts_named)
		code = confine_to_secrets_dir(target_id, "known_hosts", secrets_dir, resolved_dir,
					      &options->known_hosts, err);
	free(resolved_dir);
	return code;
}

int ssh_options_parse(const char *target_id, json_object *config, struct ssh_options *options,
		      struct error *err)
{
	char *pin = NULL;
	int code;

	memset(options, 0, sizeof(*options));
	if ((code = option_string(target_id, config, "host", true, &options->host, err)) ||
	    (code = option_integer(target_id, config, "port", SSH_DEFAULT_PORT, 1, 65535, &options->port, err)) ||
	    (code = option_string(target_id, config, "user", true, &options->user, err)) ||
	    (code = option_string(target_id, config, "private_key_path", false, &options->private_key_path, err)) ||
	    (code = option_string(target_id, config, "passphrase_file", false, &options->passphrase_file, err)) ||
	    (code = option_string(target_id, config, "password_file", false, &options->password_file, err)) ||
	    (code = option_string(target_id, config, "known_hosts", false, &options->known_hosts, err)) ||
	    (code = option_string(target_id, config, "host_key_sha256", false, &pin, err)) ||
	    (code = option_integer(target_id, config, "connect_timeout", SSH_DEFAULT_CONNECT_TIMEOUT, 1,
				   SSH_MAX_TIMEOUT, &options->connect_timeout, err)) ||
	    (code = option_integer(target_id, config, "command_timeout", SSH_DEFAULT_COMMAND_TIMEOUT, 1,
				   SSH_MAX_TIMEOUT, &options->command_timeout, err)))
		goto out;
	if (options->private_key_path == NULL && options->password_file == NULL) {
		code = error_set(err, EXIT_CONFIG, "%s: config private_key_path or password_file: one is required for ssh targets",
				 target_id);
		goto out;
	}
	if (options->private_key_path != NULL && options->password_file != NULL) {
		code = error_set(err, EXIT_CONFIG, "%s: config private_key_path and password_file: set only one",
				 target_id);
		goto out;
	}
	if (options->passphrase_file != NULL && options->private_key_path == NULL) {
		code = error_set(err, EXIT_CONFIG, "%s: config passphrase_file: needs private_key_path", target_id);
		goto out;
	}
	if (pin != NULL) {
		if (!decode_host_key_pin(pin, options->host_key_pin)) {
			code = error_set(err, EXIT_CONFIG, "%s: config host_key_sha256: '%s' is not a SHA-256 fingerprint "
					 "(\"SHA256:<base64>\" as ssh-keygen -lf prints it, or 64 hex digits)",
					 target_id, pin);
			goto out;
		}
		options->has_host_key_pin = true;
	}
	if ((code = confine_secret_files(target_id, options, options->known_hosts != NULL, err)) != 0)
		goto out;
	if (options->known_hosts == NULL && (options->known_hosts = default_known_hosts()) == NULL) {
		code = error_set(err, EXIT_CONFIG, "%s: config known_hosts: not set and the running user has no home directory",
				 target_id);
		goto out;
	}
out:
	free(pin);
	return code;
}

void ssh_options_free(struct ssh_options *options)
{
	free(options->host);
	free(options->user);
	free(options->private_key_path);
	free(options->passphrase_file);
	free(options->password_file);
	free(options->known_hosts);
	OPENSSL_cleanse(options->host_key_pin, sizeof(options->host_key_pin));
	memset(options, 0, sizeof(*options));
}

/* ---- connection ---- */

static const char *session_error_text(LIBSSH2_SESSION *session)
{
	char *message = NULL;
	int length = 0;

	libssh2_session_last_error(session, &message, &length, 0);
	return message != NULL && length > 0 ? message : "unknown error";
}

/* The shared connect-with-deadline (tcpconnect.h), worded as ssh's "host:port: ..." errors. */
static int ssh_tcp_connect(const struct ssh_options *options, long long deadline, int *socket_out,
			   struct error *err)
{
	struct tcp_failure failure;
	char port[8];

	snprintf(port, sizeof(port), "%d", options->port);
	if ((*socket_out = tcp_connect(options->host, port, deadline, false, &failure)) >= 0)
		return 0;
	if (failure.step == TCP_FAILED_RESOLVE)
		return error_set(err, EXIT_UNAVAILABLE, "%s:%d: cannot resolve host: %s", options->host,
				 options->port, gai_strerror(failure.resolve_status));
	if (failure.step == TCP_FAILED_NO_ADDRESS)
		return error_set(err, EXIT_UNAVAILABLE, "%s:%d: cannot resolve host: no address",
				 options->host, options->port);
	return error_set(err, EXIT_UNAVAILABLE, "%s:%d: cannot connect: %s", options->host, options->port,
			 strerror(failure.step == TCP_FAILED_TIMEOUT ? ETIMEDOUT : failure.error_number));
}

/*
 * What certctl accepts, strongest first: no ssh-rsa (SHA-1) host keys, no
 * SHA-1 key exchange, no CBC ciphers, no hmac-sha1 or MD5. Names libssh2 does
 * not implement are skipped (1.10 has no rsa-sha2 host keys, GCM or ETM MACs),
 * so a newer libssh2 gets them without a change here.
 */
#define SSH_ACCEPTED_KEX "curve25519-sha256,curve25519-sha256@libssh.org," \
	"ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521," \
	"diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512," \
	"diffie-hellman-group18-sha512,diffie-hellman-group14-sha256"
#define SSH_ACCEPTED_HOST_KEYS "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384," \
	"ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256"
#define SSH_ACCEPTED_CIPHERS "aes256-gcm@openssh.com,aes128-gcm@openssh.com," \
	"aes256-ctr,aes192-ctr,aes128-ctr"
#define SSH_ACCEPTED_MACS "hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com," \
	"hmac-sha2-512,hmac-sha2-256"

static const struct ssh_method_policy {
	int method;
	const char *what;
	const char *accepted;
} ssh_method_policies[] = {
	{ LIBSSH2_METHOD_KEX, "key exchange", SSH_ACCEPTED_KEX },
	{ LIBSSH2_METHOD_HOSTKEY, "host key algorithm", SSH_ACCEPTED_HOST_KEYS },
	{ LIBSSH2_METHOD_CRYPT_CS, "cipher", SSH_ACCEPTED_CIPHERS },
	{ LIBSSH2_METHOD_CRYPT_SC, "cipher", SSH_ACCEPTED_CIPHERS },
	{ LIBSSH2_METHOD_MAC_CS, "MAC", SSH_ACCEPTED_MACS },
	{ LIBSSH2_METHOD_MAC_SC, "MAC", SSH_ACCEPTED_MACS },
};

/* Is name one of the comma-separated names in list? */
static bool name_listed(const char *list, const char *name)
{
	size_t length = strlen(name);

	for (const char *p = list; *p; p += strcspn(p, ","), p += *p == ',') {
		if (strncmp(p, name, length) == 0 && (p[length] == ',' || p[length] == '\0'))
			return true;
	}
	return false;
}

/*
 * Only names this libssh2 implements reach libssh2_session_method_pref():
 * libssh2 1.10 strips the others with an overlapping memcpy.
 */
static int prefer_accepted_methods(LIBSSH2_SESSION *session, struct error *err)
{
	for (size_t i = 0; i < sizeof(ssh_method_policies) / sizeof(ssh_method_policies[0]); i++) {
		const struct ssh_method_policy *policy = &ssh_method_policies[i];
		const char **supported = NULL;
		char preference[512] = "";
		int count = libssh2_session_supported_algs(session, policy->method, &supported), rc;
		const char *name = policy->accepted;

		while (*name) {
			size_t length = strcspn(name, ","), used = strlen(preference);

			for (int j = 0; j < count; j++)
				if (strlen(supported[j]) == length && strncmp(supported[j], name, length) == 0) {
					snprintf(preference + used, sizeof(preference) - used, "%s%.*s",
						 used ? "," : "", (int)length, name);
					break;
				}
			name += length + (name[length] == ',');
		}
		if (supported != NULL)
			libssh2_free(session, supported);
		if (preference[0] == '\0')
			return error_set(err, EXIT_INTERNAL, "libssh2 implements no accepted %s", policy->what);
		if ((rc = libssh2_session_method_pref(session, policy->method, preference)) != 0)
			return error_set(err, EXIT_INTERNAL, "libssh2 refused the %s preference: %s",
					 policy->what, session_error_text(session));
	}
	return 0;
}

/*
 * Key exchange found nothing in common. A second handshake with libssh2's
 * defaults, whose result is never trusted or used, shows what the server
 * insists on, so the message can name the refused method.
 */
static int explain_refused_methods(const struct ssh_options *options, long long deadline,
				   const char *label, struct error *err)
{
	LIBSSH2_SESSION *probe = NULL;
	char refused[256] = "";
	int fd = -1;
	struct error probe_err;

	if (ssh_tcp_connect(options, deadline, &fd, &probe_err) == 0 && (probe = libssh2_session_init()) != NULL) {
		libssh2_session_set_timeout(probe, remaining_ms(deadline));
		if (libssh2_session_handshake(probe, fd) == 0) {
			for (size_t i = 0; i < sizeof(ssh_method_policies) / sizeof(ssh_method_policies[0]); i++) {
				const char *chosen = libssh2_session_methods(probe, ssh_method_policies[i].method);
				size_t used = strlen(refused);

				if (chosen != NULL && !name_listed(ssh_method_policies[i].accepted, chosen) &&
				    strstr(refused, chosen) == NULL)
					snprintf(refused + used, sizeof(refused) - used, "%s%s %s",
						 used ? ", " : "", ssh_method_policies[i].what, chosen);
			}
			libssh2_session_disconnect(probe, "certctl: algorithms refused");
		}
		libssh2_session_free(probe);
	}
	if (fd >= 0)
		close(fd);
	if (refused[0] != '\0')
		return error_set(err, EXIT_UNAVAILABLE, "%s: SSH handshake refused: the server offers only "
				 "algorithms certctl rejects (%s); see certctl-deploy(1), SSH algorithms",
				 label, refused);
	return error_set(err, EXIT_UNAVAILABLE, "%s: SSH handshake failed: no key exchange, host key "
			 "algorithm, cipher or MAC in common with those certctl accepts", label);
}

/* OpenSSH's known_hosts name: "host" on port 22, "[host]:port" elsewhere. */
static void known_hosts_name(const struct ssh_options *options, char *name, size_t size)
{
	if (options->port == SSH_DEFAULT_PORT)
		snprintf(name, size, "%s", options->host);
	else
		snprintf(name, size, "[%s]:%d", options->host, options->port);
}

static int known_host_key_type(int host_key_type)
{
	switch (host_key_type) {
	case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
	case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
	case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
	case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
	}
	return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
}

/*
 * Line by line, so one entry libssh2 cannot parse (a key type it lacks, a
 * host certificate authority) does not hide the others; "@revoked" entries
 * go to their own list, which check_host_key() consults first.
 */
void ssh_known_hosts_load(FILE *file, LIBSSH2_KNOWNHOSTS *known, LIBSSH2_KNOWNHOSTS *revoked)
{
	char *line = NULL;
	size_t capacity = 0;
	ssize_t length;

	while ((length = getline(&line, &capacity, file)) > 0) {
		char *start = line;
		while (*start == ' ' || *start == '\t')
			start++;
		length = (ssize_t)strcspn(start, "\r\n");
		start[length] = '\0';
		if (strncmp(start, "@revoked", 8) == 0 && (start[8] == ' ' || start[8] == '\t')) {
			start += 9;
			libssh2_knownhost_readline(revoked, start, strlen(start), LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		} else if (start[0] != '@') {
			libssh2_knownhost_readline(known, start, (size_t)length, LIBSSH2_KNOWNHOST_FILE_OPENSSH);
		}
	}
	free(line);
}

static int check_host_key(const struct ssh_options *options, struct ssh_connection *connection,
			  struct error *err)
{
	LIBSSH2_KNOWNHOSTS *known = NULL, *revoked = NULL;
	const unsigned char *hash;
	unsigned char encoded[48];
	char name[300], fingerprint[64];
	const char *key;
	size_t key_length;
	int key_type, mask, check = LIBSSH2_KNOWNHOST_CHECK_NOTFOUND, code = 0;
	FILE *file = NULL;

	known_hosts_name(options, name, sizeof(name));
	key = libssh2_session_hostkey(connection->session, &key_length, &key_type);
	hash = (const unsigned char *)libssh2_hostkey_hash(connection->session, LIBSSH2_HOSTKEY_HASH_SHA256);
	if (key == NULL || hash == NULL)
		return error_set(err, EXIT_FORBIDDEN, "%s: cannot read the host key; nothing written", name);
	EVP_EncodeBlock(encoded, hash, SSH_HOST_KEY_SHA256_LENGTH);
	encoded[strcspn((char *)encoded, "=")] = '\0';
	snprintf(fingerprint, sizeof(fingerprint), "SHA256:%s", (char *)encoded);

	if (options->has_host_key_pin &&
	    CRYPTO_memcmp(hash, options->host_key_pin, SSH_HOST_KEY_SHA256_LENGTH) != 0)
		return error_set(err, EXIT_FORBIDDEN, "%s: host key %s does not match config host_key_sha256; nothing written",
				 name, fingerprint);
	known = libssh2_knownhost_init(connection->session);
	revoked = libssh2_knownhost_init(connection->session);
	if (known == NULL || revoked == NULL) {
		code = error_set(err, EXIT_INTERNAL, "out of memory");
		goto out;
	}
	mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | known_host_key_type(key_type);
	if ((file = fopen(options->known_hosts, "r")) == NULL) {
		if (!options->has_host_key_pin)
			code = error_set(err, EXIT_FORBIDDEN, "%s: host key %s cannot be verified: known_hosts %s: %s; nothing written",
					 name, fingerprint, options->known_hosts, strerror(errno));
		goto out;
	}
	ssh_known_hosts_load(file, known, revoked);
	if (libssh2_knownhost_checkp(revoked, name, -1, key, key_length, mask, NULL) ==
	    LIBSSH2_KNOWNHOST_CHECK_MATCH) {
		code = error_set(err, EXIT_FORBIDDEN, "%s: host key %s is marked @revoked in %s; nothing written",
				 name, fingerprint, options->known_hosts);
		goto out;
	}
	check = libssh2_knownhost_checkp(known, name, -1, key, key_length, mask, NULL);
	if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH)
		code = error_set(err, EXIT_FORBIDDEN, "%s: host key %s differs from the key known_hosts %s holds for it "
				 "(changed, or someone is in the middle); nothing written",
				 name, fingerprint, options->known_hosts);
	else if (check == LIBSSH2_KNOWNHOST_CHECK_NOTFOUND && !options->has_host_key_pin)
		code = error_set(err, EXIT_FORBIDDEN, "%s: host key %s is not in known_hosts %s "
				 "(add it after checking the fingerprint out of band); nothing written",
				 name, fingerprint, options->known_hosts);
	else if (check == LIBSSH2_KNOWNHOST_CHECK_FAILURE)
		code = error_set(err, EXIT_FORBIDDEN, "%s: cannot check host key %s against %s; nothing written",
				 name, fingerprint, options->known_hosts);
out:
	if (file != NULL)
		fclose(file);
	if (known != NULL)
		libssh2_knownhost_free(known);
	if (revoked != NULL)
		libssh2_knownhost_free(revoked);
	return code;
}

static int authenticate(const struct ssh_options *options, struct ssh_connection *connection,
			struct error *err)
{
	LIBSSH2_SESSION *session = connection->session;
	char *secret = NULL;
	size_t secret_length = 0;
	int rc, code = 0;

	if (options->passphrase_file != NULL || options->password_file != NULL) {
		const char *key = options->password_file ? "password_file" : "passphrase_file";
		struct error read_err = { 0, "" };

		/* The first line is the secret: an editor's trailing newline or a comment never is. */
		secret = secret_file_read_line(options->password_file ? options->password_file
								      : options->passphrase_file,
					       SECRET_FILE_MAX, &secret_length, &read_err);
		if (secret == NULL)
			return error_set(err, EXIT_CONFIG, "config %s: %s", key, read_err.message);
	}
	if (options->private_key_path != NULL)
		/* A NULL public key makes libssh2 derive it from the private key. */
		rc = libssh2_userauth_publickey_fromfile_ex(session, options->user,
							    (unsigned int)strlen(options->user), NULL,
							    options->private_key_path, secret ? secret : "");
	else
		rc = libssh2_userauth_password_ex(session, options->user, (unsigned int)strlen(options->user),
						  secret, (unsigned int)secret_length, NULL);
	if (rc == LIBSSH2_ERROR_FILE)
		code = error_set(err, EXIT_CONFIG, "config private_key_path: cannot use %s: %s",
				 options->private_key_path, session_error_text(session));
	else if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_RECV ||
		 rc == LIBSSH2_ERROR_SOCKET_SEND || rc == LIBSSH2_ERROR_SOCKET_DISCONNECT)
		code = error_set(err, EXIT_UNAVAILABLE, "%s: authentication did not complete: %s",
				 connection->label, session_error_text(session));
	else if (rc != 0)
		code = error_set(err, EXIT_FORBIDDEN, "%s: authentication refused (%s): %s", connection->label,
				 options->private_key_path ? "publickey" : "password", session_error_text(session));
	secret_free(secret, secret_length);
	return code;
}

int ssh_connect(const struct ssh_options *options, struct ssh_connection *connection,
		struct error *err)
{
	bool cut;
	long long deadline = monotonic_milliseconds() + run_deadline_command_ms(options->connect_timeout, &cut);
	int rc, code;

	memset(connection, 0, sizeof(*connection));
	connection->socket = -1;
	connection->command_timeout = options->command_timeout;
	snprintf(connection->label, sizeof(connection->label), "%s@%s:%d",
		 options->user, options->host, options->port);
	if (options->private_key_path != NULL && access(options->private_key_path, R_OK) != 0)
		return error_set(err, EXIT_CONFIG, "config private_key_path: %s: %s",
				 options->private_key_path, strerror(errno));
	if (libssh2_init(0) != 0)
		return error_set(err, EXIT_INTERNAL, "libssh2_init failed");
	connection->library_initialized = true;
	if ((code = ssh_tcp_connect(options, deadline, &connection->socket, err)) != 0)
		return code;
	if ((connection->session = libssh2_session_init()) == NULL)
		return error_set(err, EXIT_INTERNAL, "libssh2_session_init failed");
	libssh2_session_set_blocking(connection->session, 1);
	libssh2_session_set_timeout(connection->session, remaining_ms(deadline));
	if ((code = prefer_accepted_methods(connection->session, err)) != 0)
		return code;
	rc = libssh2_session_handshake(connection->session, connection->socket);
	if (rc == LIBSSH2_ERROR_KEX_FAILURE)
		return explain_refused_methods(options, deadline, connection->label, err);
	if (rc != 0)
		return error_set(err, EXIT_UNAVAILABLE, "%s: SSH handshake failed: %s", connection->label,
				 rc == LIBSSH2_ERROR_TIMEOUT ? "timed out" : session_error_text(connection->session));
	connection->handshake_done = true;
	if ((code = check_host_key(options, connection, err)) != 0)
		return code;
	libssh2_session_set_timeout(connection->session, remaining_ms(deadline));
	if ((code = authenticate(options, connection, err)) != 0)
		return code;
	libssh2_session_set_timeout(connection->session, (long)options->command_timeout * 1000);
	if ((connection->sftp = libssh2_sftp_init(connection->session)) == NULL)
		return error_set(err, EXIT_UNAVAILABLE, "%s: cannot start SFTP: %s", connection->label,
				 session_error_text(connection->session));
	return 0;
}

void ssh_disconnect(struct ssh_connection *connection)
{
	if (connection->sftp != NULL)
		libssh2_sftp_shutdown(connection->sftp);
	if (connection->session != NULL) {
		if (connection->handshake_done)
			libssh2_session_disconnect(connection->session, "certctl: done");
		libssh2_session_free(connection->session);
	}
	if (connection->socket >= 0)
		close(connection->socket);
	if (connection->library_initialized)
		libssh2_exit();
	memset(connection, 0, sizeof(*connection));
	connection->socket = -1;
}

static const char *sftp_status_text(unsigned long status)
{
	switch (status) {
	case LIBSSH2_FX_EOF: return "end of file";
	case LIBSSH2_FX_NO_SUCH_FILE: return "no such file";
	case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
	case LIBSSH2_FX_FAILURE: return "failure";
	case LIBSSH2_FX_OP_UNSUPPORTED: return "operation not supported";
	case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists";
	case LIBSSH2_FX_WRITE_PROTECT: return "write protected";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left on filesystem";
	case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
	case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory";
	case LIBSSH2_FX_INVALID_FILENAME: return "invalid file name";
	}
	return "SFTP error";
}

const char *ssh_sftp_error_text(struct ssh_connection *connection)
{
	if (connection->session == NULL)
		return "not connected";
	if (libssh2_session_last_errno(connection->session) == LIBSSH2_ERROR_SFTP_PROTOCOL &&
	    connection->sftp != NULL)
		return sftp_status_text(libssh2_sftp_last_error(connection->sftp));
	return session_error_text(connection->session);
}

/* ---- remote commands ---- */

char *shell_quote_argv(char *const *argv)
{
	size_t size = 1;
	char *line, *cursor;

	for (size_t i = 0; argv[i] != NULL; i++) {
		size += strlen(argv[i]) + 3;
		for (const char *p = argv[i]; *p; p++)
			if (*p == '\'')
				size += 3;
	}
	if ((line = malloc(size)) == NULL)
		return NULL;
	cursor = line;
	for (size_t i = 0; argv[i] != NULL; i++) {
		if (i > 0)
			*cursor++ = ' ';
		*cursor++ = '\'';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '\'') {
				memcpy(cursor, "'\\''", 4);
				cursor += 4;
			} else {
				*cursor++ = *p;
			}
		}
		*cursor++ = '\'';
	}
	*cursor = '\0';
	return line;
}

static void wait_socket(struct ssh_connection *connection, long timeout_ms)
{
	struct pollfd ready = { .fd = connection->socket, .events = 0 };
	int directions = libssh2_session_block_directions(connection->session);

	if (directions & LIBSSH2_SESSION_BLOCK_INBOUND)
		ready.events |= POLLIN;
	if (directions & LIBSSH2_SESSION_BLOCK_OUTBOUND)
		ready.events |= POLLOUT;
	if (ready.events == 0)
		ready.events = POLLIN;
	poll(&ready, 1, timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms);
}

/* First non-empty stderr line, printable, for a one-line message. */
static void stderr_summary(const char *text, size_t length, char *summary, size_t size)
{
	size_t start = 0, end, out = 0;

	while (start < length && (text[start] == '\n' || text[start] == '\r' || text[start] == ' '))
		start++;
	end = start;
	while (end < length && text[end] != '\n' && text[end] != '\r')
		end++;
	for (size_t i = start; i < end && out + 1 < size && out < SUMMARY_MAX; i++)
		summary[out++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? ' ' : text[i];
	summary[out] = '\0';
}

int ssh_run_command(struct ssh_connection *connection, const char *command, struct error *err)
{
	LIBSSH2_SESSION *session = connection->session;
	LIBSSH2_CHANNEL *channel;
	bool cut;
	long long allowed = run_deadline_command_ms(connection->command_timeout, &cut);
	long long deadline = monotonic_milliseconds() + allowed;
	char kept[STDERR_KEPT], buffer[4096], summary[SUMMARY_MAX + 1];
	size_t kept_length = 0;
	char *signal_name = NULL;
	size_t signal_length = 0;
	bool timed_out = false, broken = false;
	int exit_status, code = 0;

	libssh2_session_set_timeout(session, remaining_ms(deadline));
	if ((channel = libssh2_channel_open_session(session)) == NULL)
		return error_set(err, EXIT_UNAVAILABLE, "%s: cannot open a channel: %s", connection->label,
				 session_error_text(session));
	if (libssh2_channel_exec(channel, command) != 0) {
		code = error_set(err, EXIT_UNAVAILABLE, "%s: cannot start a command: %s", connection->label,
				 session_error_text(session));
		libssh2_channel_free(channel);
		return code;
	}
	/* Non-blocking while draining, so stdout and stderr both flow and the deadline holds. */
	libssh2_session_set_blocking(session, 0);
	for (;;) {
		ssize_t out = libssh2_channel_read(channel, buffer, sizeof(buffer));
		ssize_t errors = libssh2_channel_read_stderr(channel, buffer, sizeof(buffer));

		if ((out < 0 && out != LIBSSH2_ERROR_EAGAIN) || (errors < 0 && errors != LIBSSH2_ERROR_EAGAIN)) {
			broken = true;
			break;
		}
		if (errors > 0 && kept_length < sizeof(kept)) {
			size_t take = (size_t)errors < sizeof(kept) - kept_length ? (size_t)errors
										 : sizeof(kept) - kept_length;
			memcpy(kept + kept_length, buffer, take);
			kept_length += take;
		}
		if (out > 0 || errors > 0)
			continue;
		if (libssh2_channel_eof(channel))
			break;
		if (monotonic_milliseconds() >= deadline) {
			timed_out = true;
			break;
		}
		wait_socket(connection, remaining_ms(deadline));
	}
	libssh2_session_set_blocking(session, 1);
	libssh2_session_set_timeout(session, timed_out || broken ? CLOSE_GRACE_MS : remaining_ms(deadline) + CLOSE_GRACE_MS);
	if (!broken && !timed_out) {
		libssh2_channel_close(channel);
		libssh2_channel_wait_closed(channel);
	}
	exit_status = libssh2_channel_get_exit_status(channel);
	libssh2_channel_get_exit_signal(channel, &signal_name, &signal_length, NULL, NULL, NULL, NULL);
	stderr_summary(kept, kept_length, summary, sizeof(summary));
	if (timed_out && cut)
		code = error_set(err, EXIT_FAILED_CLEANLY, "timed out after %.1f s (cut to fit the run deadline, %s)",
				 (double)allowed / 1000, RUN_DEADLINE_ENV);
	else if (timed_out)
		code = error_set(err, EXIT_FAILED_CLEANLY, "timed out after %d s (command_timeout)", connection->command_timeout);
	else if (broken)
		code = error_set(err, EXIT_UNAVAILABLE, "%s: connection lost while a command ran: %s",
				 connection->label, session_error_text(session));
	else if (signal_name != NULL && signal_length > 0)
		code = error_set(err, EXIT_FAILED_CLEANLY, "killed by signal %s%s%s", signal_name,
				 summary[0] ? ": " : "", summary);
	else if (exit_status != 0)
		code = error_set(err, EXIT_FAILED_CLEANLY, "exit %d%s%s", exit_status, summary[0] ? ": " : "", summary);
	if (signal_name != NULL)
		libssh2_free(session, signal_name);
	libssh2_channel_free(channel);
	libssh2_session_set_timeout(session, (long)connection->command_timeout * 1000);
	return code;
}

int ssh_run_argv(struct ssh_connection *connection, char *const *argv, struct error *err)
{
	char *command = shell_quote_argv(argv);
	int code;

	if (command == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	code = ssh_run_command(connection, command, err);
	free(command);
	return code;
}
