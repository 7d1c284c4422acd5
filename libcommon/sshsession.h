/*
 * An authenticated SSH session with SFTP to one host, for sshdeploy.c:
 * connection settings from a target's config, strict host-key checking,
 * remote commands built from argv with every element single-quoted.
 */
#ifndef CERTCTL_SSHSESSION_H
#define CERTCTL_SSHSESSION_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>
#include <libssh2.h>
#include <libssh2_sftp.h>

#include "error.h"

#define SSH_DEFAULT_PORT 22
#define SSH_DEFAULT_CONNECT_TIMEOUT 10   /* seconds: TCP, handshake, authentication */
#define SSH_DEFAULT_COMMAND_TIMEOUT 60   /* seconds: each remote command and SFTP request */
#define SSH_MAX_TIMEOUT 600            /* MAX_COMMAND_TIMEOUT_SECONDS: inside the units' TimeoutStartSec */
#define SSH_HOST_KEY_SHA256_LENGTH 32
/* Where the key, password and known_hosts files a target names must live ($CERTCTL_SECRETS_DIR). */
#define SSH_DEFAULT_SECRETS_DIR "/etc/certctl/ssh"

/* The connection keys of an ssh target's config; strings are owned copies. */
struct ssh_options {
	char *host;
	int port;
	char *user;
	char *private_key_path;   /* local file; with passphrase_file when encrypted */
	char *passphrase_file;
	char *password_file;      /* alternative to private_key_path */
	char *known_hosts;        /* local file in OpenSSH format */
	bool has_host_key_pin;
	unsigned char host_key_pin[SSH_HOST_KEY_SHA256_LENGTH];
	int connect_timeout;
	int command_timeout;
};

/*
 * Reads and checks the connection keys of config. A missing or malformed key
 * is EXIT_CONFIG naming it, and so is a private_key_path, passphrase_file,
 * password_file or known_hosts that does not resolve (symbolic links and
 * "..", followed) to a file under $CERTCTL_SECRETS_DIR (default
 * SSH_DEFAULT_SECRETS_DIR); those paths are stored resolved. The default
 * known_hosts (~/.ssh/known_hosts), named by no config, is not confined.
 * Caller frees with ssh_options_free() (also on failure).
 */
int ssh_options_parse(const char *target_id, json_object *config, struct ssh_options *options,
		      struct error *err);
void ssh_options_free(struct ssh_options *options);

struct ssh_connection {
	int socket;
	LIBSSH2_SESSION *session;
	LIBSSH2_SFTP *sftp;
	int command_timeout;
	bool library_initialized; /* libssh2_init() paired with libssh2_exit() */
	bool handshake_done;
	char label[300];          /* "user@host:port" for messages */
};

/*
 * Connects, verifies the host key (known_hosts and/or the pin), authenticates
 * and starts SFTP. Unreachable or timed out: EXIT_UNAVAILABLE. Host key
 * unknown, changed or revoked, or authentication refused: EXIT_FORBIDDEN.
 * Unreadable local key or secret files: EXIT_CONFIG. Caller always calls
 * ssh_disconnect(), also on failure.
 */
int ssh_connect(const struct ssh_options *options, struct ssh_connection *connection,
		struct error *err);
void ssh_disconnect(struct ssh_connection *connection);

/*
 * Runs argv on the remote host through its login shell, every element
 * single-quoted, within the command timeout. Returns 0 on exit status 0;
 * EXIT_FAILED_CLEANLY with err "exit N: first stderr line" (or signal, or timeout)
 * otherwise; EXIT_UNAVAILABLE when the channel itself fails.
 */
int ssh_run_argv(struct ssh_connection *connection, char *const *argv, struct error *err);

/* Runs an already quoted shell command line; same results as ssh_run_argv(). */
int ssh_run_command(struct ssh_connection *connection, const char *command, struct error *err);

/* argv as one POSIX shell command line, each element in '…' ('\'' inside). Caller frees. */
char *shell_quote_argv(char *const *argv);

/*
 * Reads an OpenSSH known_hosts file into known, "@revoked" entries into
 * revoked; lines libssh2 cannot parse are skipped.
 */
void ssh_known_hosts_load(FILE *file, LIBSSH2_KNOWNHOSTS *known, LIBSSH2_KNOWNHOSTS *revoked);

/* The last SFTP or session error of connection as text, for messages. */
const char *ssh_sftp_error_text(struct ssh_connection *connection);

#endif
