#include "exitcode.h"

static int exit_code_rank(int code)
{
	static const int order[] = {
		EXIT_MANUAL_ACTION, EXIT_FORBIDDEN, EXIT_CONFIG, EXIT_UNAVAILABLE,
		EXIT_NOT_FOUND, EXIT_DATA, EXIT_FAILED_CLEANLY, EXIT_OK,
	};
	const int count = (int)(sizeof(order) / sizeof(order[0]));

	for (int i = 0; i < count; i++)
		if (order[i] == code)
			return 2 * (count - i);
	/* Unlisted codes (70, 73, 75, 4, 3) are serious but below manual action. */
	return 2 * count - 1;
}

int exit_code_most_serious(int a, int b)
{
	return exit_code_rank(b) > exit_code_rank(a) ? b : a;
}
