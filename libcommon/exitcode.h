/* Exit codes: part of the interface (CONTRACT.md §1). */
#ifndef CERTCTL_EXITCODE_H
#define CERTCTL_EXITCODE_H

enum certctl_exit {
	EXIT_OK = 0,
	EXIT_FAILED_CLEANLY = 1,  /* ran and failed cleanly (rolled back); not libc's EXIT_FAILURE */
	EXIT_MANUAL_ACTION = 2,   /* could not restore; a human must look */
	EXIT_BLOCKED = 3,         /* refused because of dependencies */
	EXIT_RETIRED = 4,         /* the agent is retired: stop, do not retry */
	EXIT_USAGE = 64,
	EXIT_DATA = 65,
	EXIT_NOT_FOUND = 66,
	EXIT_UNAVAILABLE = 69,
	EXIT_INTERNAL = 70,
	EXIT_CANT_CREATE = 73,
	EXIT_TEMPORARY = 75,
	EXIT_FORBIDDEN = 77,
	EXIT_CONFIG = 78,
};

/*
 * The more serious of two exit codes, in the order a multi-item run reports:
 * 2, 77, 78, 69, 66, 65, 1, 0. Codes outside that list rank just below 2.
 */
int exit_code_most_serious(int a, int b);

#endif
