/* certctl-import: inventory lines upserted by id, or a new certificate version. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "certversion.h"
#include "command.h"
#include "inventory.h"
#include "options.h"
#include "pem.h"

static const char usage_text[] =
	"usage: certctl-import [-d DSN] [-v | -q] < inventory.jsonl\n"
	"       certctl-import [-d DSN] --certificate ID --cert FILE --key FILE [--chain FILE] [--enqueue]\n"
	"       certctl-import [-d DSN] --certificate ID --certbot-lineage DIR [--enqueue]\n"
	"       certctl-import --help | --version\n";

enum {
	OPTION_CERTIFICATE = OPTION_FIRST_COMMAND_SPECIFIC,
	OPTION_CERT,
	OPTION_KEY,
	OPTION_CHAIN,
	OPTION_LINEAGE,
	OPTION_ENQUEUE,
};

static const struct option long_options[] = {
	COMMON_LONG_OPTIONS,
	{ "certificate", required_argument, NULL, OPTION_CERTIFICATE },
	{ "cert", required_argument, NULL, OPTION_CERT },
	{ "key", required_argument, NULL, OPTION_KEY },
	{ "chain", required_argument, NULL, OPTION_CHAIN },
	{ "certbot-lineage", required_argument, NULL, OPTION_LINEAGE },
	{ "enqueue", no_argument, NULL, OPTION_ENQUEUE },
	{ NULL, 0, NULL, 0 },
};

struct import_command {
	const char *certificate_id, *cert, *key, *chain, *lineage;   /* certificate_id NULL: inventory */
	bool enqueue;
	struct pem_bundle bundle;
	struct sealing_key sealing_key;
};

static int import_option(void *state, int option, char *argument)
{
	struct import_command *import = state;

	switch (option) {
	case OPTION_CERTIFICATE:
		import->certificate_id = argument;
		return 0;
	case OPTION_CERT:
		import->cert = argument;
		return 0;
	case OPTION_KEY:
		import->key = argument;
		return 0;
	case OPTION_CHAIN:
		import->chain = argument;
		return 0;
	case OPTION_LINEAGE:
		import->lineage = argument;
		return 0;
	case OPTION_ENQUEUE:
		import->enqueue = true;
		return 0;
	default:
		return usage_error("unexpected option");
	}
}

static int import_check(void *state, const char *dsn, int operand_count, char *operands[],
			struct error *err)
{
	const struct import_command *import = state;

	(void)dsn, (void)err;
	if (operand_count != 0)
		return usage_error("unexpected argument '%s'", operands[0]);
	if (import->certificate_id == NULL) {
		if (import->cert || import->key || import->chain || import->lineage || import->enqueue)
			return usage_error("--cert, --key, --chain, --certbot-lineage and --enqueue need --certificate");
	} else if (import->certificate_id[0] == '\0') {
		return usage_error("--certificate needs a certificate id");
	} else if (import->lineage != NULL) {
		if (import->cert || import->key || import->chain)
			return usage_error("--certbot-lineage replaces --cert, --key and --chain");
	} else if (import->cert == NULL || import->key == NULL) {
		return usage_error("--certificate needs --cert and --key, or --certbot-lineage");
	}
	return 0;
}

/* A version's bundle is checked and the sealing key loaded before the database is touched. */
static int import_prepare(void *state, struct error *err)
{
	struct import_command *import = state;
	char cert[PATH_MAX], chain[PATH_MAX], key[PATH_MAX];
	int code;

	if (import->certificate_id == NULL)
		return 0;
	if (import->lineage != NULL) {
		snprintf(cert, sizeof(cert), "%s/cert.pem", import->lineage);
		snprintf(chain, sizeof(chain), "%s/chain.pem", import->lineage);
		snprintf(key, sizeof(key), "%s/privkey.pem", import->lineage);
		code = pem_bundle_load(cert, chain, key, &import->bundle, err);
	} else {
		code = pem_bundle_load(import->cert, import->chain, import->key, &import->bundle, err);
	}
	if (code != 0)
		return code;
	return sealing_key_load(&import->sealing_key, err);
}

static int import_run(void *state, PGconn **conn, struct error *err)
{
	struct import_command *import = state;

	if (import->certificate_id == NULL)
		return inventory_import(*conn, stdin, stdout, err);
	return certificate_version_import(*conn, import->certificate_id, &import->bundle,
					  &import->sealing_key, import->enqueue, stdout, err);
}

static void import_cleanup(void *state)
{
	struct import_command *import = state;

	sealing_key_wipe(&import->sealing_key);
	pem_bundle_free(&import->bundle);
}

int main(int argc, char *argv[])
{
	static const struct command command = {
		.name = "certctl-import",
		.usage = usage_text,
		.long_options = long_options,
		.database = COMMAND_CONNECTS,
		.option = import_option,
		.check = import_check,
		.prepare = import_prepare,
		.run = import_run,
		.cleanup = import_cleanup,
	};
	struct import_command import = { .sealing_key = { { 0 }, false } };

	return command_main(&command, &import, argc, argv);
}
