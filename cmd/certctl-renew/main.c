/* certctl-renew: Issuance and Renewal jobs for the certificates that are due. */
#include <stdio.h>
#include <string.h>

#include "command.h"
#include "options.h"
#include "renew.h"

static const char usage_text[] =
	"usage: certctl-renew [-d DSN] [-v | -q] [--certificate ID] [--dry-run] [--now TIME]\n"
	"       certctl-renew --help | --version\n";

enum { OPTION_CERTIFICATE = OPTION_FIRST_COMMAND_SPECIFIC, OPTION_DRY_RUN, OPTION_NOW };

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ "dry-run", no_argument, NULL, OPTION_DRY_RUN },
	{ "now", required_argument, NULL, OPTION_NOW },
	{ NULL, 0, NULL, 0 },
};

/* RFC 3339 in UTC or with an offset: 2027-03-15T00:00:00Z, …+02:00. */
static int is_rfc3339(const char *text)
{
	int year, month, day, hour, minute, second, consumed = 0;
	const char *zone;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second,
		   &consumed) != 6 || consumed != 19)
		return 0;
	zone = text + consumed;
	if (strcmp(zone, "Z") == 0)
		return 1;
	return (zone[0] == '+' || zone[0] == '-') && strlen(zone) == 6 && zone[3] == ':';
}

static int renew_option(void *state, int option, char *argument)
{
	struct renew_request *request = state;

	switch (option) {
	case OPTION_CERTIFICATE:
		request->certificate_id = argument;
		return 0;
	case OPTION_DRY_RUN:
		request->dry_run = true;
		return 0;
	case OPTION_NOW:
		if (!is_rfc3339(argument))
			return usage_error("--now wants an RFC 3339 time, such as 2027-03-15T00:00:00Z");
		request->now = argument;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int renew_check(void *state, const char *dsn, int operand_count, char *operands[],
		       struct error *err)
{
	struct renew_request *request = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (request->certificate_id != NULL && request->certificate_id[0] == '\0')
		return usage_error("--certificate needs an id");
	return 0;
}

static int renew_run(void *state, PGconn **conn, struct error *err)
{
	return renew_due_certificates(*conn, state, stdout, err);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-renew",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = renew_option,
		.check = renew_check,
		.run = renew_run,
	};
	struct renew_request request = { NULL, NULL, false };

	return command_main(&command, &request, argc, argv);
}
