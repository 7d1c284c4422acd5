/* exit_code_most_serious follows CONTRACT's order 2, 77, 78, 69, 66, 65, 1, 0. */
#include "check.h"
#include "exitcode.h"

int main(void)
{
	static const int order[] = { 2, 77, 78, 69, 66, 65, 1, 0 };
	const int count = (int)(sizeof(order) / sizeof(order[0]));

	for (int i = 0; i < count; i++)
		for (int j = i + 1; j < count; j++) {
			CHECK(exit_code_most_serious(order[i], order[j]) == order[i]);
			CHECK(exit_code_most_serious(order[j], order[i]) == order[i]);
		}
	/* Unlisted codes rank below manual action but above everything else. */
	CHECK(exit_code_most_serious(70, 77) == 70);
	CHECK(exit_code_most_serious(2, 75) == 2);
	CHECK(exit_code_most_serious(0, 0) == 0);
	return CHECK_DONE();
}
