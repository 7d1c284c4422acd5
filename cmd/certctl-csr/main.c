/* certctl-csr: answer the agent's AwaitingCSR jobs with a key made here and its CSR. */
#include <stdio.h>

#include "command.h"
#include "csrsubmit.h"
#include "options.h"

static const char usage_text[] =
	"usage: certctl-csr [-d DSN] [-v | -q] < job lines\n"
	"       certctl-csr --help | --version\n";

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

static int csr_option(void *state, int option, char *argument)
{
	(void)state, (void)option, (void)argument;
	return usage_error("unexpected option");
}

static int csr_check(void *state, const char *dsn, int operand_count, char *operands[], struct error *err)
{
	(void)state, (void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	return 0;
}

/* Each job's failure is logged as it happens; the key directory is $CERTCTL_KEY_DIR's. */
static int csr_run(void *state, PGconn **conn, struct error *err)
{
	(void)state;
	return csr_job_lines(*conn, NULL, stdin, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-csr",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = csr_option,
		.check = csr_check,
		.run = csr_run,
	};

	return command_main(&command, NULL, argc, argv);
}
