/* Applying a deploy plan to an `ssh` target over SFTP (libssh2). */
#ifndef CERTCTL_SSHDEPLOY_H
#define CERTCTL_SSHDEPLOY_H

#include <json-c/json.h>

#include "deployplan.h"
#include "error.h"

/*
 * Applies plan (built from the target's config; file paths are remote) to
 * the host the ssh keys of config name (host, port, user, private_key_path,
 * passphrase_file, password_file, known_hosts, host_key_sha256, timeouts,
 * remote commands). Same guarantees and outcomes as atomic_apply(): snapshot,
 * temp file + rename, validate before replace, reload, restore and reload
 * again on failure. Host key unknown or changed: EXIT_FORBIDDEN, nothing
 * written. Unreachable: EXIT_UNAVAILABLE. Fills result; returns its exit code.
 */
int ssh_apply(const struct deploy_plan *plan, json_object *config,
	      struct deploy_result *result, struct error *err);

#endif
