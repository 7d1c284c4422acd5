#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "exitcode.h"
#include "hygiene.h"

int process_protect_secrets(struct error *err)
{
	const struct rlimit no_core = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
		return error_set(err, EXIT_INTERNAL, "cannot make the process non-dumpable: %s", strerror(errno));
	/* Belt and braces: a core file of a dumpable child or a later re-enable still holds nothing. */
	if (setrlimit(RLIMIT_CORE, &no_core) != 0)
		return error_set(err, EXIT_INTERNAL, "cannot set the core size limit to 0: %s", strerror(errno));
	return 0;
}
