/* certctl-import: inventory lines upserted by id, or a new certificate version. */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "certversion.h"
#include "db.h"
#include "exitcode.h"
#include "hygiene.h"
#include "inventory.h"
#include "log.h"
#include "options.h"
#include "pem.h"
#include "signals.h"

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

struct version_options {
	const char *certificate_id, *cert, *key, *chain, *lineage;
	bool enqueue;
};

/* Checks the bundle and loads the sealing key before the database is touched. */
static int import_version(const struct common_options *common, const struct version_options *options,
			  struct error *err)
{
	char cert[PATH_MAX], chain[PATH_MAX], key[PATH_MAX];
	struct sealing_key sealing_key = { { 0 }, false };
	struct pem_bundle bundle = { 0 };
	PGconn *conn = NULL;
	int code;

	if (options->lineage != NULL) {
		snprintf(cert, sizeof(cert), "%s/cert.pem", options->lineage);
		snprintf(chain, sizeof(chain), "%s/chain.pem", options->lineage);
		snprintf(key, sizeof(key), "%s/privkey.pem", options->lineage);
		code = pem_bundle_load(cert, chain, key, &bundle, err);
	} else {
		code = pem_bundle_load(options->cert, options->chain, options->key, &bundle, err);
	}
	if (code != 0)
		return code;
	if ((code = sealing_key_load(&sealing_key, err)) != 0)
		goto out;
	if ((conn = db_connect(common->dsn, err)) == NULL) {
		code = err->code;
		goto out;
	}
	code = certificate_version_import(conn, options->certificate_id, &bundle, &sealing_key,
					  options->enqueue, stdout, err);
out:
	sealing_key_wipe(&sealing_key);
	pem_bundle_free(&bundle);
	db_disconnect(conn);
	return code;
}

static int import_inventory(const struct common_options *common, struct error *err)
{
	PGconn *conn = db_connect(common->dsn, err);
	int code;

	if (conn == NULL)
		return err->code;
	code = inventory_import(conn, stdin, stdout, err);
	db_disconnect(conn);
	return code;
}

int main(int argc, char *argv[])
{
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
	struct common_options common;
	struct version_options version = { NULL, NULL, NULL, NULL, NULL, false };
	struct error err = { 0, "" };
	int option, code;

	log_init("certctl-import");
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
		case OPTION_CERTIFICATE:
			version.certificate_id = optarg;
			break;
		case OPTION_CERT:
			version.cert = optarg;
			break;
		case OPTION_KEY:
			version.key = optarg;
			break;
		case OPTION_CHAIN:
			version.chain = optarg;
			break;
		case OPTION_LINEAGE:
			version.lineage = optarg;
			break;
		case OPTION_ENQUEUE:
			version.enqueue = true;
			break;
		default:
			return usage_error("unexpected option");
		}
	}
	if (optind != argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (version.certificate_id == NULL) {
		if (version.cert || version.key || version.chain || version.lineage || version.enqueue)
			return usage_error("--cert, --key, --chain, --certbot-lineage and --enqueue need --certificate");
	} else if (version.certificate_id[0] == '\0') {
		return usage_error("--certificate needs a certificate id");
	} else if (version.lineage != NULL) {
		if (version.cert || version.key || version.chain)
			return usage_error("--certbot-lineage replaces --cert, --key and --chain");
	} else if (version.cert == NULL || version.key == NULL) {
		return usage_error("--certificate needs --cert and --key, or --certbot-lineage");
	}

	signals_install();
	code = standard_streams_check(&err);
	if (code == 0 && version.certificate_id != NULL)
		code = import_version(&common, &version, &err);
	else if (code == 0)
		code = import_inventory(&common, &err);
	if (code != 0)
		log_error("%s", err.message);
	return code;
}
