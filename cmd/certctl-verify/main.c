/* certctl-verify: which certificate does a live TLS endpoint serve, and is it the right one? */
#include <stdio.h>

#include "exitcode.h"
#include "hygiene.h"
#include "log.h"
#include "options.h"
#include "signals.h"
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

int main(int argc, char *argv[])
{
	static const struct option long_options[] = {
		COMMON_LONG_OPTIONS,
		{ "sni", required_argument, NULL, OPTION_SNI },
		{ "expect-sha256", required_argument, NULL, OPTION_EXPECT_SHA256 },
		{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
		{ "ca-file", required_argument, NULL, OPTION_CA_FILE },
		{ "timeout", required_argument, NULL, OPTION_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	struct common_options common;
	struct verify_request request = { .timeout_seconds = VERIFY_DEFAULT_TIMEOUT_SECONDS };
	struct error err = { 0, "" };
	char expected[SHA256_HEX_SIZE];
	long timeout;
	int option, code;

	log_init("certctl-verify");
	if ((code = process_protect_secrets(&err)) != 0) {
		log_error("%s", err.message);
		return code;
	}
	common_options_init(&common);
	while ((option = getopt_long(argc, argv, COMMON_SHORT_OPTIONS, long_options, NULL)) != -1) {
		code = common_option(option, optarg, &common, usage_text, argv);
		if (code == COMMON_OPTION_CONTINUE)
			continue;
		if (code != COMMON_OPTION_NOT_MINE)
			return code;
		switch (option) {
		case OPTION_SNI:
			if (optarg[0] == '\0')
				return usage_error("--sni takes a host name");
			request.sni = optarg;
			break;
		case OPTION_EXPECT_SHA256:
			if (!verify_normalize_fingerprint(optarg, expected))
				return usage_error("--expect-sha256 takes 64 hex digits, not '%s'", optarg);
			request.expect_sha256 = expected;
			break;
		case OPTION_CERTIFICATE:
			if (optarg[0] == '\0')
				return usage_error("--certificate takes a certificate id");
			request.certificate_id = optarg;
			break;
		case OPTION_CA_FILE:
			request.ca_file = optarg;
			break;
		case OPTION_TIMEOUT:
			if (!parse_seconds(optarg, &timeout) || timeout < 1 ||
			    timeout > VERIFY_MAX_TIMEOUT_SECONDS)
				return usage_error("--timeout takes 1 to %d seconds, not '%s'",
						   VERIFY_MAX_TIMEOUT_SECONDS, optarg);
			request.timeout_seconds = (int)timeout;
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc - 1)
		return usage_error("expected one endpoint, HOST:PORT");
	if (request.expect_sha256 != NULL && request.certificate_id != NULL)
		return usage_error("--expect-sha256 and --certificate exclude each other");
	request.endpoint = argv[optind];
	request.dsn = common.dsn;

	signals_install();
	code = standard_streams_check(&err);
	if (code == 0)
		code = verify_endpoint(&request, stdout, &err);
	if (code != 0)
		log_error("%s", err.message);
	return code;
}
