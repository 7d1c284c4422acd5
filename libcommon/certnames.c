#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "certnames.h"
#include "exitcode.h"

/* Room for the longest name compared: a DNS name (253) or an IPv6 text form. */
#define NAME_TEXT_SIZE 256
/* More names than this in a request, leaf or CSR are refused, not compared. */
#define MAX_NAMES 256

struct name_set {
	char names[MAX_NAMES][NAME_TEXT_SIZE];
	size_t count;
	bool overflow;
};

static bool set_has(const struct name_set *set, const char *name)
{
	for (size_t i = 0; i < set->count; i++)
		if (strcmp(set->names[i], name) == 0)
			return true;
	return false;
}

static void set_add(struct name_set *set, const char *name)
{
	if (set_has(set, name))
		return;
	if (set->count == MAX_NAMES) {
		set->overflow = true;
		return;
	}
	snprintf(set->names[set->count++], NAME_TEXT_SIZE, "%s", name);
}

/* A name as compared: an IP literal in inet_ntop() form, anything else in lower case. */
static void canonical_name(const char *name, char out[NAME_TEXT_SIZE])
{
	unsigned char address[16];
	size_t i;

	if (inet_pton(AF_INET, name, address) == 1 && inet_ntop(AF_INET, address, out, NAME_TEXT_SIZE))
		return;
	if (inet_pton(AF_INET6, name, address) == 1 && inet_ntop(AF_INET6, address, out, NAME_TEXT_SIZE))
		return;
	for (i = 0; name[i] != '\0' && i + 1 < NAME_TEXT_SIZE; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
}

static void add_canonical(struct name_set *set, const char *name)
{
	char text[NAME_TEXT_SIZE];

	canonical_name(name, text);
	set_add(set, text);
}

/* An ASN1 string as text, or "" when it holds a NUL (no name of ours does). */
static void string_text(const ASN1_STRING *value, char out[NAME_TEXT_SIZE])
{
	int length = ASN1_STRING_length(value);
	const unsigned char *data = ASN1_STRING_get0_data(value);

	if (length < 0 || length >= NAME_TEXT_SIZE || memchr(data, '\0', (size_t)length) != NULL)
		length = 0;
	memcpy(out, data, (size_t)length);
	out[length] = '\0';
}

/* The DNS names and IP addresses of a subjectAltName; other kinds are named by their type. */
static void add_general_names(struct name_set *set, const GENERAL_NAMES *names)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
		char text[NAME_TEXT_SIZE];
		int type;
		const ASN1_STRING *value = GENERAL_NAME_get0_value(name, &type);

		if (type == GEN_DNS) {
			string_text(value, text);
			add_canonical(set, text);
		} else if (type == GEN_IPADD && ASN1_STRING_length(value) == 4) {
			inet_ntop(AF_INET, ASN1_STRING_get0_data(value), text, sizeof(text));
			set_add(set, text);
		} else if (type == GEN_IPADD && ASN1_STRING_length(value) == 16) {
			inet_ntop(AF_INET6, ASN1_STRING_get0_data(value), text, sizeof(text));
			set_add(set, text);
		} else {
			snprintf(text, sizeof(text), "(a subjectAltName of type %d)", type);
			set_add(set, text);
		}
	}
}

/* The subject's CN in canonical form, "" when there is none. */
static void subject_common_name(const X509_NAME *subject, char out[NAME_TEXT_SIZE])
{
	int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	char text[NAME_TEXT_SIZE];

	out[0] = '\0';
	if (index < 0)
		return;
	string_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index)), text);
	canonical_name(text, out);
}

/* what ("the certificate", "the CSR") carries names and common_name exactly as asked. */
static int compare_names(const char *what, const struct name_set *got, const char *common_name,
			 const struct name_request *request, struct error *err)
{
	struct name_set *wanted = calloc(1, sizeof(*wanted));
	int code = 0;

	if (wanted == NULL)
		return error_set(err, EXIT_INTERNAL, "out of memory");
	if (request->common_name != NULL)
		add_canonical(wanted, request->common_name);
	for (size_t i = 0; i < request->san_count; i++)
		add_canonical(wanted, request->sans[i]);
	if (got->overflow || wanted->overflow) {
		code = error_set(err, EXIT_DATA, "%s: more than %d names", what, MAX_NAMES);
		goto out;
	}
	for (size_t i = 0; i < got->count && code == 0; i++)
		if (!set_has(wanted, got->names[i]))
			code = error_set(err, EXIT_DATA, "%s names %s, which was not asked for", what,
					 got->names[i]);
	for (size_t i = 0; i < wanted->count && code == 0; i++)
		if (!set_has(got, wanted->names[i]))
			code = error_set(err, EXIT_DATA, "%s lacks the name %s", what, wanted->names[i]);
	if (code == 0 && common_name[0] != '\0' && !set_has(wanted, common_name))
		code = error_set(err, EXIT_DATA, "%s has the common name %s, which was not asked for",
				 what, common_name);
out:
	free(wanted);
	return code;
}

int certificate_names_check(X509 *leaf, const struct name_request *names, struct error *err)
{
	struct name_set *got = calloc(1, sizeof(*got));
	GENERAL_NAMES *alt_names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	char common_name[NAME_TEXT_SIZE];
	int code;

	if (got == NULL) {
		GENERAL_NAMES_free(alt_names);
		return error_set(err, EXIT_INTERNAL, "out of memory");
	}
	if (alt_names != NULL)
		add_general_names(got, alt_names);
	subject_common_name(X509_get_subject_name(leaf), common_name);
	code = compare_names("the certificate", got, common_name, names, err);
	GENERAL_NAMES_free(alt_names);
	free(got);
	return code;
}

int csr_names_check(X509_REQ *request, const struct name_request *names, struct error *err)
{
	struct name_set *got = calloc(1, sizeof(*got));
	STACK_OF(X509_EXTENSION) *extensions = X509_REQ_get_extensions(request);
	GENERAL_NAMES *alt_names = NULL;
	char common_name[NAME_TEXT_SIZE];
	int code;

	if (extensions != NULL)
		alt_names = X509V3_get_d2i(extensions, NID_subject_alt_name, NULL, NULL);
	if (got == NULL) {
		code = error_set(err, EXIT_INTERNAL, "out of memory");
		goto out;
	}
	if (alt_names != NULL)
		add_general_names(got, alt_names);
	subject_common_name(X509_REQ_get_subject_name(request), common_name);
	code = compare_names("the CSR", got, common_name, names, err);
out:
	GENERAL_NAMES_free(alt_names);
	sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
	free(got);
	return code;
}
