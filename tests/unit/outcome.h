/* The name the apply drivers print for a deploy outcome (tests/atomic.bats, tests/ssh.bats read it). */
#ifndef CERTCTL_TEST_OUTCOME_H
#define CERTCTL_TEST_OUTCOME_H

#include "deployplan.h"

static const char *outcome_name(enum deploy_outcome outcome)
{
	switch (outcome) {
	case DEPLOY_OUTCOME_COMPLETED: return "Completed";
	case DEPLOY_OUTCOME_SKIPPED: return "Skipped";
	case DEPLOY_OUTCOME_FAILED: return "Failed";
	case DEPLOY_OUTCOME_MANUAL_ACTION: return "ManualAction";
	}
	return "?";
}

#endif
