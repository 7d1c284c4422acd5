/* certctl-verify: which certificate does a live TLS endpoint serve, and is it the right one? */
#include <stdio.h>

#include "command.h"
#include "db.h"
#include "options.h"
#include "verify.h"
#include "verifyall.h"

static const char usage_text[] =
	"usage: certctl-verify [-d DSN] [-v | -q] HOST:PORT [--sni NAME]\n"
	"                      [--expect-sha256 HEX | --certificate ID]\n"
	"                      [--ca-file FILE] [--timeout SECONDS]\n"
	"       certctl-verify [-d DSN] [-v | -q] --all [--agent ID] [--parallel N]\n"
	"                      [--ca-file FILE] [--timeout SECONDS]\n"
	"       certctl-verify --help | --version\n";

enum {
	OPTION_SNI = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_EXPECT_SHA256,
	OPTION_CERTIFICATE,
	OPTION_CA_FILE,
	OPTION_TIMEOUT,
	OPTION_ALL,
	OPTION_AGENT,
	OPTION_PARALLEL,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "sni", required_argument, NULL, OPTION_SNI },
	{ "expect-sha256", required_argument, NULL, OPTION_EXPECT_SHA256 },
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ "ca-file", required_argument, NULL, OPTION_CA_FILE },
	{ "timeout", required_argument, NULL, OPTION_TIMEOUT },
	{ "all", no_argument, NULL, OPTION_ALL },
	{ "agent", required_argument, NULL, OPTION_AGENT },
	{ "parallel", required_argument, NULL, OPTION_PARALLEL },
	{ NULL, 0, NULL, 0 },
};

struct verify_command {
	struct verify_request request;
	char expected[SHA256_HEX_SIZE];
	bool all;
	struct verify_all_request all_request;
};

static int verify_option(void *state, int option, char *argument)
{
	struct verify_command *verify = state;
	long number;

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
		if (!parse_non_negative_long(argument, &number) || number < 1 || number > VERIFY_MAX_TIMEOUT_SECONDS)
			return usage_error("--timeout takes 1 to %d seconds, not '%s'",
					   VERIFY_MAX_TIMEOUT_SECONDS, argument);
		verify->request.timeout_seconds = (int)number;
		return 0;
	case OPTION_ALL:
		verify->all = true;
		return 0;
	case OPTION_AGENT:
		if (argument[0] == '\0')
			return usage_error("--agent takes an agent id");
		verify->all_request.agent_id = argument;
		return 0;
	case OPTION_PARALLEL:
		if (!parse_non_negative_long(argument, &number) || number < 1 || number > VERIFY_ALL_MAX_PARALLEL)
			return usage_error("--parallel takes 1 to %d, not '%s'", VERIFY_ALL_MAX_PARALLEL, argument);
		verify->all_request.parallel = (int)number;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int verify_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	struct verify_command *verify = state;
	struct verify_request *request = &verify->request;

	(void)err;
	request->dsn = dsn;
	if (verify->all) {
		if (operand_count != 0)
			return usage_error("--all probes the targets' endpoints; no endpoint '%s'", operands[0]);
		if (request->sni != NULL || request->expect_sha256 != NULL || request->certificate_id != NULL)
			return usage_error("--all takes neither --sni, --expect-sha256 nor --certificate");
		verify->all_request.ca_file = request->ca_file;
		verify->all_request.timeout_seconds = request->timeout_seconds;
		return 0;
	}
	if (verify->all_request.agent_id != NULL || verify->all_request.parallel != VERIFY_ALL_DEFAULT_PARALLEL)
		return usage_error("--agent and --parallel go with --all");
	if (operand_count != 1)
		return usage_error("expected one endpoint, HOST:PORT");
	if (request->expect_sha256 != NULL && request->certificate_id != NULL)
		return usage_error("--expect-sha256 and --certificate exclude each other");
	request->endpoint = operands[0];
	return 0;
}

/* One endpoint asks the database only for --certificate's fingerprint; --all needs it throughout. */
static int verify_run(void *state, PGconn **conn, struct error *err)
{
	struct verify_command *verify = state;

	if (!verify->all)
		return verify_endpoint(&verify->request, stdout, err);
	if ((*conn = db_connect(verify->request.dsn, err)) == NULL)
		return err->code;
	return verify_all_targets(*conn, &verify->all_request, stdout, err);
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
		.all_request = { .parallel = VERIFY_ALL_DEFAULT_PARALLEL },
	};

	return command_main(&command, &verify, argc, argv);
}
