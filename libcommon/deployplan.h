/*
 * What a deploy writes where: a target's config and a certificate version
 * become a plan of files plus validate/reload commands; applying the plan
 * (atomic.h locally, sshdeploy.h remotely) fills a result.
 */
#ifndef CERTCTL_DEPLOYPLAN_H
#define CERTCTL_DEPLOYPLAN_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "error.h"

#define DEPLOY_MAX_FILES 4
#define DEPLOY_BACKUP_PATH_MAX 1024
#define DEFAULT_BACKUP_RETENTION 3
#define BACKUPS_DISABLED (-1)
#define DEFAULT_CERT_MODE 0644
#define DEFAULT_KEY_MODE 0600

enum deploy_file_role {
	DEPLOY_FILE_CERT,      /* leaf, plus chain unless a chain file is planned */
	DEPLOY_FILE_KEY,
	DEPLOY_FILE_CHAIN,
	DEPLOY_FILE_COMBINED,  /* leaf + chain + key (haproxy) */
};

struct deploy_file {
	enum deploy_file_role role;
	char *path;             /* absolute destination path (local or remote) */
	unsigned char *bytes;   /* new content; cleansed on free when secret */
	size_t length;
	bool secret;            /* holds private key material */
	int mode;               /* explicit mode from config, or -1: keep existing */
	int default_mode;       /* for a file that does not exist yet */
	char *owner, *group;    /* explicit from config, or NULL: keep existing */
};

struct deploy_plan {
	char *target_id;
	char *target_type;
	struct deploy_file files[DEPLOY_MAX_FILES];
	size_t file_count;
	char **validate_argv;   /* NULL-terminated, or NULL for none */
	char **reload_argv;     /* NULL-terminated, or NULL for none */
	int backup_retention;   /* newest N backups kept per file; BACKUPS_DISABLED: none, no rollback */
	bool allow_shared_directory; /* local: deploy into directories other users can write to */
	char *verify_endpoint;  /* "host:port" or NULL */
	char *verify_sni;       /* or NULL */
};

/* What a version brings; key_pem is secret and not owned by the plan. */
struct certificate_material {
	const char *cert_pem;           /* the leaf */
	const char *chain_pem;          /* intermediates, may be "" */
	const unsigned char *key_pem;
	size_t key_length;
};

/* Is type one certctl deploys to? (file, nginx, apache, haproxy, postfix, dovecot, traefik, caddy, ssh) */
bool deploy_type_known(const char *type);

/*
 * Builds the plan for target_id of type from its config (CONTRACT "Target
 * config") and material. Unknown type, missing or relative paths, bad modes,
 * commands that are not argv arrays: EXIT_CONFIG with err saying which key.
 * Default validate/reload commands per type apply when the config has none;
 * "[]" means none. Caller frees with deploy_plan_free() (also on failure).
 */
int deploy_plan_build(const char *target_id, const char *type, json_object *config,
		      const struct certificate_material *material, struct deploy_plan *plan,
		      struct error *err);
void deploy_plan_free(struct deploy_plan *plan);

enum backup_status {
	BACKUP_NOT_APPLICABLE,
	BACKUP_SNAPSHOTTED,
	BACKUP_NO_PRE_EXISTING,
	BACKUP_RESTORED,
	BACKUP_REMOVED,
	BACKUP_RESTORE_FAILED,
	BACKUP_REMOVE_FAILED,
};

/* "n/a", "snapshotted", "no_pre_existing", "restored", "removed", ... */
const char *backup_status_name(enum backup_status status);

enum deploy_outcome {
	DEPLOY_OUTCOME_COMPLETED,
	DEPLOY_OUTCOME_SKIPPED,        /* identical bytes everywhere: no write, no reload */
	DEPLOY_OUTCOME_FAILED,         /* nothing changed, or rolled back cleanly: exit 1 */
	DEPLOY_OUTCOME_MANUAL_ACTION,  /* could not restore: exit 2 */
};

struct deploy_result {
	enum deploy_outcome outcome;
	enum backup_status backup[DEPLOY_MAX_FILES]; /* parallel to plan->files */
	bool daemon_state_unknown;
	bool manual_action_required;
	int exit_code;                  /* 0, 1, 2, or 69/73/77/78 when it could not start */
	/* ssh: per file, the backup a killed earlier run left on the remote, or "" */
	char interrupted_backup[DEPLOY_MAX_FILES][DEPLOY_BACKUP_PATH_MAX];
	char error[ERROR_MESSAGE_MAX];  /* one line, "" on success */
};

void deploy_result_init(struct deploy_result *result);

/*
 * Sets result's outcome, exit code and (printf-style, may be NULL) error, and
 * copies the error into err; returns code. Both deployers end through it.
 */
int deploy_result_finish(struct deploy_result *result, enum deploy_outcome outcome, int code,
			 struct error *err, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/*
 * The environment variable a validate command finds a new file's temp path
 * in, e.g. CERTCTL_NEW_CERT_PATH, so it can check the new files before they
 * replace the old.
 */
const char *deploy_file_new_path_variable(enum deploy_file_role role);

/*
 * The contract's metadata object: backup_status_cert/_key/_chain ("n/a" for
 * roles not in the plan; a combined file reports as cert), plus
 * daemon_state_unknown / manual_action_required when set, and
 * interrupted_run_backups (the backups a killed run left) when there are
 * any. Caller puts it.
 */
json_object *deploy_result_metadata(const struct deploy_plan *plan,
				    const struct deploy_result *result);

#endif
