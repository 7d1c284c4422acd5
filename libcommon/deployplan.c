#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "deployplan.h"
#include "exitcode.h"

/* Per-type defaults (CONTRACT "Default commands per type"); NULL: none. */
struct target_type_defaults {
	const char *type;
	const char *const *validate_argv;
	const char *const *reload_argv;
	bool needs_combined;
};

static const char *const nginx_validate[] = { "nginx", "-t", NULL };
static const char *const nginx_reload[] = { "nginx", "-s", "reload", NULL };
static const char *const apache_validate[] = { "apachectl", "configtest", NULL };
static const char *const apache_reload[] = { "apachectl", "graceful", NULL };
static const char *const haproxy_validate[] = { "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg", NULL };
static const char *const haproxy_reload[] = { "systemctl", "reload", "haproxy", NULL };
static const char *const postfix_validate[] = { "postfix", "check", NULL };
static const char *const postfix_reload[] = { "postfix", "reload", NULL };
static const char *const dovecot_validate[] = { "doveconf", "-n", NULL };
static const char *const dovecot_reload[] = { "doveadm", "reload", NULL };

static const struct target_type_defaults target_types[] = {
	{ "file", NULL, NULL, false },
	{ "nginx", nginx_validate, nginx_reload, false },
	{ "apache", apache_validate, apache_reload, false },
	{ "haproxy", haproxy_validate, haproxy_reload, true },
	{ "postfix", postfix_validate, postfix_reload, false },
	{ "dovecot", dovecot_validate, dovecot_reload, false },
	{ "traefik", NULL, NULL, false },
	{ "caddy", NULL, NULL, false },
	{ "ssh", NULL, NULL, false },
};

static const struct target_type_defaults *find_type(const char *type)
{
	for (size_t i = 0; i < sizeof(target_types) / sizeof(target_types[0]); i++)
		if (type != NULL && strcmp(target_types[i].type, type) == 0)
			return &target_types[i];
	return NULL;
}

bool deploy_type_known(const char *type)
{
	return find_type(type) != NULL;
}

static void free_argv(char **argv)
{
	if (argv == NULL)
		return;
	for (size_t i = 0; argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

/* A NULL-terminated copy of argv, or NULL when memory ran out. */
static char **copy_argv(const char *const *argv)
{
	size_t count = 0;
	char **copy;

	while (argv[count] != NULL)
		count++;
	copy = calloc(count + 1, sizeof(*copy));
	for (size_t i = 0; copy != NULL && i < count; i++)
		if ((copy[i] = strdup(argv[i])) == NULL) {
			free_argv(copy);
			return NULL;
		}
	return copy;
}

/* Reads an argv array at key into *argv: absent → defaults, [] → none. */
static int config_argv(const char *target_id, json_object *config, const char *key,
		       const char *const *defaults, char ***argv, struct error *err)
{
	json_object *value;
	size_t count;

	*argv = NULL;
	if (!json_object_object_get_ex(config, key, &value)) {
		if (defaults != NULL && (*argv = copy_argv(defaults)) == NULL)
			return error_set(err, EXIT_INTERNAL, "out of memory");
		return 0;
	}
	if (!json_object_is_type(value, json_type_array))
		return error_set(err, EXIT_CONFIG, "%s: config %s: must be an argv array of strings, e.g. [\"nginx\",\"-t\"]",
				 target_id, key);
	count = json_object_array_length(value);
	if (count == 0)
		return 0;
	*argv = calloc(count + 1, sizeof(**argv));
	if (*argv == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	for (size_t i = 0; i < count; i++) {
		json_object *element = json_object_array_get_idx(value, i);
		if (!json_object_is_type(element, json_type_string) ||
		    json_object_get_string_len(element) == 0)
			return error_set(err, EXIT_CONFIG, "%s: config %s[%zu]: must be a non-empty string",
					 target_id, key, i);
		if (((*argv)[i] = strdup(json_object_get_string(element))) == NULL)
			return error_set(err, EXIT_INTERNAL, "out of memory");
	}
	return 0;
}

/* A string value at key, or NULL when absent; non-strings are config errors. */
static int config_string(const char *target_id, json_object *config, const char *key,
			 const char **text, struct error *err)
{
	json_object *value;

	*text = NULL;
	if (!json_object_object_get_ex(config, key, &value) || json_object_is_type(value, json_type_null))
		return 0;
	if (!json_object_is_type(value, json_type_string) || json_object_get_string_len(value) == 0)
		return error_set(err, EXIT_CONFIG, "%s: config %s: must be a non-empty string", target_id, key);
	*text = json_object_get_string(value);
	return 0;
}

static int config_path(const char *target_id, json_object *config, const char *key,
		       const char **path, struct error *err)
{
	if (config_string(target_id, config, key, path, err) != 0)
		return err->code;
	if (*path != NULL && (*path)[0] != '/')
		return error_set(err, EXIT_CONFIG, "%s: config %s: '%s' is not an absolute path",
				 target_id, key, *path);
	return 0;
}

/* Octal mode string such as "0640" at key; -1 when absent. */
static int config_mode(const char *target_id, json_object *config, const char *key,
		       int *mode, struct error *err)
{
	const char *text;
	char *end;
	long value;

	*mode = -1;
	if (config_string(target_id, config, key, &text, err) != 0)
		return err->code;
	if (text == NULL)
		return 0;
	errno = 0;
	value = strtol(text, &end, 8);
	if (errno != 0 || *end != '\0' || value < 0 || value > 07777)
		return error_set(err, EXIT_CONFIG, "%s: config %s: '%s' is not an octal mode such as \"0640\"",
				 target_id, key, text);
	*mode = (int)value;
	return 0;
}

/* Concatenates PEM parts, each ending in a newline. Returns malloc'd bytes. */
static unsigned char *join_pem(size_t *length, const char *first, const char *second,
			       const unsigned char *third, size_t third_length)
{
	const char *parts[2] = { first, second };
	size_t total = third_length + 3;
	unsigned char *joined, *cursor;

	for (int i = 0; i < 2; i++)
		total += parts[i] ? strlen(parts[i]) : 0;
	joined = malloc(total);
	if (joined == NULL)
		return NULL;
	cursor = joined;
	for (int i = 0; i < 2; i++) {
		size_t part_length = parts[i] ? strlen(parts[i]) : 0;
		if (part_length == 0)
			continue;
		memcpy(cursor, parts[i], part_length);
		cursor += part_length;
		if (cursor[-1] != '\n')
			*cursor++ = '\n';
	}
	if (third_length > 0) {
		memcpy(cursor, third, third_length);
		cursor += third_length;
		if (cursor[-1] != '\n')
			*cursor++ = '\n';
	}
	*length = (size_t)(cursor - joined);
	return joined;
}

static int add_file(struct deploy_plan *plan, enum deploy_file_role role, const char *path,
		    unsigned char *bytes, size_t length, bool secret, int mode,
		    const char *owner, const char *group, struct error *err)
{
	struct deploy_file *file = &plan->files[plan->file_count];

	if (bytes == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	for (size_t i = 0; i < plan->file_count; i++)
		if (strcmp(plan->files[i].path, path) == 0) {
			if (secret)
				OPENSSL_cleanse(bytes, length);
			free(bytes);
			return error_set(err, EXIT_CONFIG, "%s: config names %s for two files",
					 plan->target_id, path);
		}
	plan->file_count++;
	file->role = role;
	file->bytes = bytes;
	file->length = length;
	file->secret = secret;
	file->mode = mode;
	file->default_mode = secret ? DEFAULT_KEY_MODE : DEFAULT_CERT_MODE;
	file->path = strdup(path);
	file->owner = owner ? strdup(owner) : NULL;
	file->group = group ? strdup(group) : NULL;
	if (file->path == NULL || (owner && !file->owner) || (group && !file->group))
		return error_set(err, EXIT_INTERNAL, "out of memory");
	return 0;
}

int deploy_plan_build(const char *target_id, const char *type, json_object *config,
		      const struct certificate_material *material, struct deploy_plan *plan,
		      struct error *err)
{
	const struct target_type_defaults *defaults = find_type(type);
	const char *cert_path, *key_path, *chain_path, *combined_path, *owner, *group;
	const char *endpoint, *sni;
	int cert_mode, key_mode, code;
	bool has_chain = material->chain_pem != NULL && material->chain_pem[0] != '\0';
	unsigned char *bytes;
	size_t length;
	json_object *retention, *shared;

	memset(plan, 0, sizeof(*plan));
	plan->target_id = strdup(target_id);
	plan->target_type = strdup(type ? type : "");
	plan->backup_retention = DEFAULT_BACKUP_RETENTION;
	if (plan->target_id == NULL || plan->target_type == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if (defaults == NULL)
		return error_set(err, EXIT_CONFIG, "%s: unknown target type '%s'", target_id, type ? type : "");
	if (config == NULL || !json_object_is_type(config, json_type_object))
		return error_set(err, EXIT_CONFIG, "%s: config is not a JSON object", target_id);

	if ((code = config_path(target_id, config, "cert_path", &cert_path, err)) ||
	    (code = config_path(target_id, config, "key_path", &key_path, err)) ||
	    (code = config_path(target_id, config, "chain_path", &chain_path, err)) ||
	    (code = config_path(target_id, config, "combined_path", &combined_path, err)) ||
	    (code = config_string(target_id, config, "owner", &owner, err)) ||
	    (code = config_string(target_id, config, "group", &group, err)) ||
	    (code = config_mode(target_id, config, "cert_mode", &cert_mode, err)) ||
	    (code = config_mode(target_id, config, "key_mode", &key_mode, err)) ||
	    (code = config_string(target_id, config, "verify_endpoint", &endpoint, err)) ||
	    (code = config_string(target_id, config, "verify_sni", &sni, err)) ||
	    (code = config_argv(target_id, config, "validate_command", defaults->validate_argv,
				&plan->validate_argv, err)) ||
	    (code = config_argv(target_id, config, "reload_command", defaults->reload_argv,
				&plan->reload_argv, err)))
		return code;

	if (defaults->needs_combined && combined_path == NULL)
		return error_set(err, EXIT_CONFIG, "%s: config combined_path: required for %s targets",
				 target_id, type);
	if (combined_path == NULL && cert_path == NULL)
		return error_set(err, EXIT_CONFIG, "%s: config cert_path: required", target_id);
	if (cert_path != NULL && key_path == NULL)
		return error_set(err, EXIT_CONFIG, "%s: config key_path: required with cert_path", target_id);

	if (json_object_object_get_ex(config, "backup_retention", &retention)) {
		int64_t keep = json_object_get_int64(retention);
		if (!json_object_is_type(retention, json_type_int) || keep < BACKUPS_DISABLED || keep > 1000)
			return error_set(err, EXIT_CONFIG, "%s: config backup_retention: must be -1 (no backups) or 0..1000",
					 target_id);
		plan->backup_retention = (int)keep;
	}
	if (json_object_object_get_ex(config, "allow_shared_directory", &shared)) {
		if (!json_object_is_type(shared, json_type_boolean))
			return error_set(err, EXIT_CONFIG, "%s: config allow_shared_directory: must be true or false",
					 target_id);
		plan->allow_shared_directory = json_object_get_boolean(shared);
	}
	if ((endpoint != NULL && (plan->verify_endpoint = strdup(endpoint)) == NULL) ||
	    (sni != NULL && (plan->verify_sni = strdup(sni)) == NULL))
		return error_set(err, EXIT_INTERNAL, "out of memory");

	if (cert_path != NULL) {
		bytes = join_pem(&length, material->cert_pem, chain_path ? NULL : material->chain_pem, NULL, 0);
		if ((code = add_file(plan, DEPLOY_FILE_CERT, cert_path, bytes, length, false,
				     cert_mode, owner, group, err)))
			return code;
		bytes = join_pem(&length, NULL, NULL, material->key_pem, material->key_length);
		if ((code = add_file(plan, DEPLOY_FILE_KEY, key_path, bytes, length, true,
				     key_mode, owner, group, err)))
			return code;
	}
	if (chain_path != NULL && has_chain) {
		bytes = join_pem(&length, material->chain_pem, NULL, NULL, 0);
		if ((code = add_file(plan, DEPLOY_FILE_CHAIN, chain_path, bytes, length, false,
				     cert_mode, owner, group, err)))
			return code;
	}
	if (combined_path != NULL) {
		bytes = join_pem(&length, material->cert_pem, material->chain_pem,
				 material->key_pem, material->key_length);
		if ((code = add_file(plan, DEPLOY_FILE_COMBINED, combined_path, bytes, length, true,
				     key_mode, owner, group, err)))
			return code;
	}
	return 0;
}

void deploy_plan_free(struct deploy_plan *plan)
{
	for (size_t i = 0; i < plan->file_count; i++) {
		struct deploy_file *file = &plan->files[i];
		if (file->secret && file->bytes != NULL)
			OPENSSL_cleanse(file->bytes, file->length);
		free(file->bytes);
		free(file->path);
		free(file->owner);
		free(file->group);
	}
	free_argv(plan->validate_argv);
	free_argv(plan->reload_argv);
	free(plan->target_id);
	free(plan->target_type);
	free(plan->verify_endpoint);
	free(plan->verify_sni);
	memset(plan, 0, sizeof(*plan));
}

const char *backup_status_name(enum backup_status status)
{
	switch (status) {
	case BACKUP_SNAPSHOTTED: return "snapshotted";
	case BACKUP_NO_PRE_EXISTING: return "no_pre_existing";
	case BACKUP_RESTORED: return "restored";
	case BACKUP_REMOVED: return "removed";
	case BACKUP_RESTORE_FAILED: return "restore_failed";
	case BACKUP_REMOVE_FAILED: return "remove_failed";
	case BACKUP_NOT_APPLICABLE: break;
	}
	return "n/a";
}

void deploy_result_init(struct deploy_result *result)
{
	memset(result, 0, sizeof(*result));
	result->outcome = DEPLOY_OUTCOME_FAILED;
}

int deploy_result_finish(struct deploy_result *result, enum deploy_outcome outcome, int code,
			 struct error *err, const char *fmt, ...)
{
	va_list args;

	result->outcome = outcome;
	result->exit_code = code;
	result->error[0] = '\0';
	if (fmt != NULL) {
		va_start(args, fmt);
		vsnprintf(result->error, sizeof(result->error), fmt, args);
		va_end(args);
		error_set(err, code, "%s", result->error);
	}
	return code;
}

const char *deploy_file_new_path_variable(enum deploy_file_role role)
{
	switch (role) {
	case DEPLOY_FILE_KEY: return "CERTCTL_NEW_KEY_PATH";
	case DEPLOY_FILE_CHAIN: return "CERTCTL_NEW_CHAIN_PATH";
	case DEPLOY_FILE_COMBINED: return "CERTCTL_NEW_COMBINED_PATH";
	case DEPLOY_FILE_CERT: break;
	}
	return "CERTCTL_NEW_CERT_PATH";
}

json_object *deploy_result_metadata(const struct deploy_plan *plan,
				    const struct deploy_result *result)
{
	static const struct { enum deploy_file_role role; const char *key; } keys[] = {
		{ DEPLOY_FILE_CERT, "backup_status_cert" },
		{ DEPLOY_FILE_KEY, "backup_status_key" },
		{ DEPLOY_FILE_CHAIN, "backup_status_chain" },
	};
	json_object *metadata = json_object_new_object();

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		enum backup_status status = BACKUP_NOT_APPLICABLE;
		for (size_t i = 0; i < plan->file_count; i++) {
			enum deploy_file_role role = plan->files[i].role;
			if (role == keys[k].role || (role == DEPLOY_FILE_COMBINED && keys[k].role == DEPLOY_FILE_CERT))
				status = result->backup[i];
		}
		json_object_object_add(metadata, keys[k].key, json_object_new_string(backup_status_name(status)));
	}
	for (size_t i = 0; i < plan->file_count; i++) {
		json_object *left;
		if (result->interrupted_backup[i][0] == '\0')
			continue;
		if (!json_object_object_get_ex(metadata, "interrupted_run_backups", &left)) {
			left = json_object_new_array();
			json_object_object_add(metadata, "interrupted_run_backups", left);
		}
		json_object_array_add(left, json_object_new_string(result->interrupted_backup[i]));
	}
	if (result->daemon_state_unknown)
		json_object_object_add(metadata, "daemon_state_unknown", json_object_new_boolean(1));
	if (result->manual_action_required)
		json_object_object_add(metadata, "manual_action_required", json_object_new_boolean(1));
	return metadata;
}
