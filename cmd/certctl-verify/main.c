/* certctl-verify: which certificate does a live TLS endpoint serve, and is it the right one? */
#include <stdio.h>

#include "command.h"
#include "options.h"
#include "verify.h"

static const char usage_text[] =
	"usage: certctl-verify [-d DSN] [-v | -q] HOST:PORT [--sni NAME]\n"
	"                      [--expect-sha256 HEX | --certificate ID]\n"
	"                      [--ca-file FILE] [--timeout SECONDS]\n"
	"       certctl-verify --help | --version\n";

enum {
	OPTION_SNI = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_EXPECT_SHA256,
	OPTION_CERTIFICATE,
	OPTION_CA_FILE,
	OPTION_TIMEOUT,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "sni", required_argument, NULL, OPTION_SNI },
	{ "expect-sha256", required_argument, NULL, OPTION_EXPECT_SHA256 },
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ "ca-file", required_argument, NULL, OPTION_CA_FILE },
	{ "timeout", required_argument, NULL, OPTION_TIMEOUT },
	{ NULL, 0, NULL, 0 },
};

struct verify_command {
	struct verify_request request;
	char expected[SHA256_HEX_SIZE];
};

static int verify_option(void *state, int option, char *argument)
{
	struct verify_command *verify = state;
	long timeout;

	switch (option) {
	case OPTION_SNI:
		if (argument[0] == '\0')
			return usage_error("--sni takes a host name");
		verify->request.sni = argument;
		return 0;
	case OPTION_EXPECT_SHA256:
		if (!verify_normalize_fingerprint(argument, verify->expected))
			return usage_error("--expect-sha256 takes 64 hex digits, not '%s'", argument);
		verify->request.expect_sha256 = verify->expected;
		return 0;
	case OPTION_CERTIFICATE:
		if (argument[0] == '\0')
			return usage_error("--certificate takes a certificate id");
		verify->request.certificate_id = argument;
		return 0;
	case OPTION_CA_FILE:
		verify->request.ca_file = argument;
		return 0;
	case OPTION_TIMEOUT:
		if (!parse_non_negative_long(argument, &timeout) || timeout < 1 || timeout > VERIFY_MAX_TIMEOUT_SECONDS)
			return usage_error("--timeout takes 1 to %d seconds, not '%s'",
					   VERIFY_MAX_TIMEOUT_SECONDS, argument);
		verify->request.timeout_seconds = (int)timeout;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int verify_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct verify_request *request = &((struct verify_command *)state)->request;

	(void)err;
	if (operand_count != 1)
		return usage_error("expected one endpoint, HOST:PORT");
	if (request->expect_sha256 != NULL && request->certificate_id != NULL)
		return usage_error("--expect-sha256 and --certificate exclude each other");
	request->endpoint = operands[0];
	request->dsn = dsn;
	return 0;
}

/* The database is asked only for --certificate's fingerprint. */
static int verify_run(void *state, PGconn **conn, struct error *err)
{
	(void)conn;
	return verify_endpoint(&((struct verify_command *)state)->request, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-verify",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS_ITSELF,
		.option = verify_option,
		.check = verify_check,
		.run = verify_run,
	};
	struct verify_command verify = {
		.request = { .timeout_seconds = VERIFY_DEFAULT_TIMEOUT_SECONDS },
	};

	return command_main(&command, &verify, argc, argv);
}
