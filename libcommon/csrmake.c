#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "csrmake.h"
#include "exitcode.h"
#include "sslerror.h"

#define DNS_NAME_MAX_LENGTH 253
#define DNS_LABEL_MAX_LENGTH 63

struct key_type {
	const char *name;
	const char *algorithm;   /* EVP_PKEY_Q_keygen's type */
	const char *curve;       /* EC: the group; NULL for RSA */
	size_t bits;             /* RSA: the modulus */
};

static const struct key_type key_types[] = {
	{ "ecdsa-p256", "EC", "P-256", 0 },
	{ "ecdsa-p384", "EC", "P-384", 0 },
	{ "rsa-2048", "RSA", NULL, 2048 },
	{ "rsa-3072", "RSA", NULL, 3072 },
};

static const struct key_type *key_type_find(const char *name)
{
	if (name == NULL || name[0] == '\0')
		name = KEY_TYPE_DEFAULT;
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		if (strcmp(key_types[i].name, name) == 0)
			return &key_types[i];
	return NULL;
}

bool key_type_is_known(const char *key_type)
{
	return key_type != NULL && key_type_find(key_type) != NULL;
}

EVP_PKEY *private_key_generate(const char *key_type, struct error *err)
{
	const struct key_type *type = key_type_find(key_type);
	char reason[256];
	EVP_PKEY *key;

	if (type == NULL) {
		error_set(err, EXIT_CONFIG,
			  "key type \"%s\": unknown (ecdsa-p256, ecdsa-p384, rsa-2048 or rsa-3072)",
			  key_type);
		return NULL;
	}
	key = type->curve != NULL ? EVP_PKEY_Q_keygen(NULL, NULL, type->algorithm, type->curve)
				  : EVP_PKEY_Q_keygen(NULL, NULL, type->algorithm, type->bits);
	if (key == NULL)
		error_set(err, EXIT_INTERNAL, "making a %s key: %s", type->name,
			  openssl_reason(reason, sizeof(reason), "key generation failed"));
	return key;
}

int private_key_pem(EVP_PKEY *key, unsigned char **pem, size_t *length, struct error *err)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char reason[256];
	char *data;
	long size;
	int code = 0;

	*pem = NULL;
	*length = 0;
	if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ||
	    (size = BIO_get_mem_data(bio, &data)) <= 0) {
		code = error_set(err, EXIT_INTERNAL, "encoding the private key: %s",
				 openssl_reason(reason, sizeof(reason), "PEM encoding failed"));
		goto out;
	}
	if ((*pem = malloc((size_t)size + 1)) == NULL) {
		code = error_set(err, EXIT_INTERNAL, "encoding the private key: out of memory");
		goto out;
	}
	memcpy(*pem, data, (size_t)size);
	(*pem)[size] = '\0';
	*length = (size_t)size;
out:
	BIO_free(bio);   /* a secmem BIO cleanses what it held */
	return code;
}

static bool ip_literal(const char *name, unsigned char address[16], int *family)
{
	if (inet_pton(AF_INET, name, address) == 1) {
		*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, name, address) == 1) {
		*family = AF_INET6;
		return true;
	}
	return false;
}

/* RFC 1123 labels from name to its end; *labels gets their count. */
static bool dns_labels_valid(const char *name, size_t *labels)
{
	const char *label = name;
	bool all_digits = true;

	*labels = 0;
	for (const char *p = name;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t length = (size_t)(p - label);

			if (length == 0 || length > DNS_LABEL_MAX_LENGTH || label[0] == '-' ||
			    p[-1] == '-')
				return false;
			(*labels)++;
			if (*p == '\0')
				return !all_digits;   /* "1.2.3" is no host name */
			label = p + 1;
			all_digits = true;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-'))
			return false;
		if (!(*p >= '0' && *p <= '9'))
			all_digits = false;
	}
}

bool san_is_valid(const char *name)
{
	unsigned char address[16];
	size_t labels;
	int family;

	if (name == NULL || name[0] == '\0' || strlen(name) > DNS_NAME_MAX_LENGTH)
		return false;
	if (ip_literal(name, address, &family))
		return true;
	if (strncmp(name, "*.", 2) == 0)
		return dns_labels_valid(name + 2, &labels) && labels >= 2;
	return dns_labels_valid(name, &labels);
}

/* Appends name to names unless it is there already (DNS names case-insensitively). */
static int add_general_name(GENERAL_NAMES *names, const char *name)
{
	unsigned char address[16];
	GENERAL_NAME *general = NULL;
	ASN1_OCTET_STRING *ip = NULL;
	ASN1_IA5STRING *dns = NULL;
	int family;

	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *seen = sk_GENERAL_NAME_value(names, i);
		int type;
		const ASN1_STRING *value = GENERAL_NAME_get0_value(seen, &type);

		if (type == GEN_DNS && (size_t)ASN1_STRING_length(value) == strlen(name) &&
		    strncasecmp((const char *)ASN1_STRING_get0_data(value), name, strlen(name)) == 0)
			return 0;
	}
	if ((general = GENERAL_NAME_new()) == NULL)
		return -1;
	if (ip_literal(name, address, &family)) {
		if ((ip = ASN1_OCTET_STRING_new()) == NULL ||
		    !ASN1_OCTET_STRING_set(ip, address, family == AF_INET ? 4 : 16))
			goto fail;
		GENERAL_NAME_set0_value(general, GEN_IPADD, ip);
		ip = NULL;
	} else {
		if ((dns = ASN1_IA5STRING_new()) == NULL || !ASN1_STRING_set(dns, name, -1))
			goto fail;
		GENERAL_NAME_set0_value(general, GEN_DNS, dns);
		dns = NULL;
	}
	/* An IP address given twice is one inet_pton() value: drop the copy. */
	for (int i = 0; i < sk_GENERAL_NAME_num(names); i++)
		if (GENERAL_NAME_cmp(sk_GENERAL_NAME_value(names, i), general) == 0) {
			GENERAL_NAME_free(general);
			return 0;
		}
	if (!sk_GENERAL_NAME_push(names, general))
		goto fail;
	return 0;
fail:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(general);
	return -1;
}

static int request_names(X509_REQ *request, const char *common_name, const char *const *sans,
			 size_t san_count)
{
	STACK_OF(X509_EXTENSION) *extensions = NULL;
	GENERAL_NAMES *names = GENERAL_NAMES_new();
	X509_EXTENSION *extension = NULL;
	X509_NAME *subject = X509_NAME_new();
	int result = -1;

	if (names == NULL || subject == NULL ||
	    !X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)common_name, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(request, subject) || add_general_name(names, common_name) != 0)
		goto out;
	for (size_t i = 0; i < san_count; i++)
		if (add_general_name(names, sans[i]) != 0)
			goto out;
	if ((extension = X509V3_EXT_i2d(NID_subject_alt_name, 0, names)) == NULL ||
	    (extensions = sk_X509_EXTENSION_new_null()) == NULL ||
	    !sk_X509_EXTENSION_push(extensions, extension))
		goto out;
	extension = NULL;
	if (X509_REQ_add_extensions(request, extensions))
		result = 0;
out:
	sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
	X509_EXTENSION_free(extension);
	GENERAL_NAMES_free(names);
	X509_NAME_free(subject);
	return result;
}

int csr_build(EVP_PKEY *key, const char *common_name, const char *const *sans, size_t san_count,
	      char **csr_pem, struct error *err)
{
	X509_REQ *request = NULL;
	BIO *bio = NULL;
	char reason[256];
	char *data;
	long size;
	int code = 0;

	*csr_pem = NULL;
	if (common_name == NULL || common_name[0] == '\0')
		return error_set(err, EXIT_DATA, "the certificate has no common name");
	if (strlen(common_name) > COMMON_NAME_MAX_LENGTH || !san_is_valid(common_name))
		return error_set(err, EXIT_DATA,
				 "common name \"%.300s\": not a DNS name or IP address of at most %d characters",
				 common_name, COMMON_NAME_MAX_LENGTH);
	for (size_t i = 0; i < san_count; i++)
		if (!san_is_valid(sans[i]))
			return error_set(err, EXIT_DATA, "SAN \"%.300s\": not a DNS name or IP address",
					 sans[i] != NULL ? sans[i] : "");
	if ((request = X509_REQ_new()) == NULL || !X509_REQ_set_version(request, 0) ||
	    !X509_REQ_set_pubkey(request, key) ||
	    request_names(request, common_name, sans, san_count) != 0 ||
	    X509_REQ_sign(request, key, EVP_sha256()) <= 0 || (bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(bio, request) || (size = BIO_get_mem_data(bio, &data)) <= 0) {
		code = error_set(err, EXIT_INTERNAL, "building the CSR: %s",
				 openssl_reason(reason, sizeof(reason), "out of memory"));
		goto out;
	}
	if ((*csr_pem = strndup(data, (size_t)size)) == NULL)
		code = error_set(err, EXIT_INTERNAL, "building the CSR: out of memory");
out:
	BIO_free(bio);
	X509_REQ_free(request);
	return code;
}

int public_key_sha256(EVP_PKEY *key, char hex[SHA256_HEX_SIZE])
{
	unsigned char *der = NULL;
	int length = i2d_PUBKEY(key, &der);

	if (length <= 0)
		return -1;
	sha256_hex(der, (size_t)length, hex);
	OPENSSL_free(der);
	return 0;
}
