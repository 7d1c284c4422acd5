/* Placeholder until the SFTP implementation lands; keeps the build linking. */
#include "exitcode.h"
#include "sshdeploy.h"

int ssh_apply(const struct deploy_plan *plan, json_object *config,
	      struct deploy_result *result, struct error *err)
{
	(void)config;
	result->outcome = DEPLOY_OUTCOME_FAILED;
	result->exit_code = EXIT_CONFIG;
	return error_set(err, EXIT_CONFIG, "%s: ssh targets are not supported by this build",
			 plan->target_id);
}
