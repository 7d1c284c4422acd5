#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certnames.h"
#include "exitcode.h"
#include "fileio.h"
#include "pem.h"
#include "sslerror.h"

/* An encrypted key must fail, never prompt on a terminal. */
static int refuse_passphrase(char *buffer, int size, int rwflag, void *userdata)
{
	(void)buffer;
	(void)size;
	(void)rwflag;
	(void)userdata;
	return -1;
}

/* The bytes a memory BIO holds, as a malloc'd NUL-terminated string. */
static char *bio_to_string(BIO *bio)
{
	char *data, *copy;
	long length = BIO_get_mem_data(bio, &data);

	if (length < 0)
		return NULL;
	copy = malloc((size_t)length + 1);
	if (copy == NULL)
		return NULL;
	/* An empty memory BIO (no intermediates) has no data pointer at all. */
	if (length > 0)
		memcpy(copy, data, (size_t)length);
	copy[length] = '\0';
	return copy;
}

static int read_certificates(const char *text, size_t length, const char *label,
			     STACK_OF(X509) *certs, struct error *err)
{
	char reason[256];
	/* Checked before the cast: BIO_new_mem_buf takes an int length. */
	BIO *bio = length > PEM_MAX_FILE_BYTES ? NULL : BIO_new_mem_buf(text, (int)length);
	unsigned long last;
	int count = 0, code = 0;
	X509 *cert;

	if (bio == NULL) {
		code = error_set(err, EXIT_DATA, "%s: cannot read", label);
		goto out;
	}
	ERR_clear_error();
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int duplicate = 0;

		/* A fullchain plus its chain file names the intermediates twice. */
		for (int i = 0; i < sk_X509_num(certs) && !duplicate; i++)
			duplicate = X509_cmp(sk_X509_value(certs, i), cert) == 0;
		if (duplicate || !sk_X509_push(certs, cert))
			X509_free(cert);
		count++;
	}
	last = ERR_peek_last_error();
	if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM &&
			   ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
		code = error_set(err, EXIT_DATA, "%s: not a valid PEM certificate: %s", label,
				 openssl_reason(reason, sizeof(reason), "parse error"));
		goto out;
	}
	ERR_clear_error();
	if (count == 0)
		code = error_set(err, EXIT_DATA, "%s: no PEM certificate found", label);
out:
	BIO_free(bio);
	return code;
}

static int format_time(const ASN1_TIME *time, char out[PEM_TIME_SIZE])
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(time, &tm))
		return 0;
	return strftime(out, PEM_TIME_SIZE, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0;
}

static char *certificate_to_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text = NULL;

	if (bio != NULL && PEM_write_bio_X509(bio, cert))
		text = bio_to_string(bio);
	BIO_free(bio);
	return text;
}

static char *chain_to_pem(STACK_OF(X509) *certs)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text = NULL;
	int i;

	if (bio == NULL)
		return NULL;
	for (i = 1; i < sk_X509_num(certs); i++)
		if (!PEM_write_bio_X509(bio, sk_X509_value(certs, i)))
			break;
	if (i == sk_X509_num(certs))
		text = bio_to_string(bio);
	BIO_free(bio);
	return text;
}

static char *subject_text(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *text = NULL;

	if (bio != NULL &&
	    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		text = bio_to_string(bio);
	BIO_free(bio);
	return text;
}

static char *common_name_of(X509 *cert)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	char *copy;

	if (index < 0 ||
	    ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index))) < 0)
		return NULL;
	copy = strdup((char *)utf8);
	OPENSSL_free(utf8);
	return copy;
}

static char *serial_hex(X509 *cert)
{
	BIGNUM *number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = number ? BN_bn2hex(number) : NULL, *copy = NULL;

	if (hex != NULL) {
		for (char *p = hex; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		copy = strdup(hex);
	}
	OPENSSL_free(hex);
	BN_free(number);
	return copy;
}

static char *key_algorithm_of(EVP_PKEY *key)
{
	char text[64], group[64];
	const char *nist;
	size_t group_length;

	if (EVP_PKEY_is_a(key, "RSA")) {
		snprintf(text, sizeof(text), "RSA-%d", EVP_PKEY_get_bits(key));
	} else if (EVP_PKEY_is_a(key, "EC") &&
		   EVP_PKEY_get_group_name(key, group, sizeof(group), &group_length)) {
		nist = EC_curve_nid2nist(OBJ_txt2nid(group));
		snprintf(text, sizeof(text), "EC-%s", nist ? nist : group);
	} else {
		snprintf(text, sizeof(text), "%s", EVP_PKEY_get0_type_name(key));
	}
	return strdup(text);
}

/* The key re-encoded as PKCS#8 PEM in secure memory, then copied once to the heap. */
static int key_to_pem(EVP_PKEY *key, struct pem_bundle *bundle)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data;
	long length;
	int ok = 0;

	if (bio == NULL || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
		goto out;
	length = BIO_get_mem_data(bio, &data);
	if (length <= 0 || (bundle->key_pem = malloc((size_t)length + 1)) == NULL)
		goto out;
	memcpy(bundle->key_pem, data, (size_t)length);
	bundle->key_pem[length] = '\0';
	bundle->key_length = (size_t)length;
	ok = 1;
out:
	BIO_free(bio);
	return ok;
}

static int check_chain_order(STACK_OF(X509) *certs, struct error *err)
{
	for (int i = 0; i + 1 < sk_X509_num(certs); i++) {
		X509 *subject = sk_X509_value(certs, i), *issuer = sk_X509_value(certs, i + 1);

		if (X509_check_issued(issuer, subject) != X509_V_OK ||
		    X509_verify(subject, X509_get0_pubkey(issuer)) != 1) {
			char *name = subject_text(subject), *issuer_name = subject_text(issuer);

			error_set(err, EXIT_DATA,
				  "chain: certificate %d (%s) is not issued by certificate %d (%s): "
				  "wrong order or incomplete chain",
				  i + 1, name ? name : "?", i + 2, issuer_name ? issuer_name : "?");
			free(name);
			free(issuer_name);
			ERR_clear_error();
			return EXIT_DATA;
		}
	}
	return 0;
}

static int check_not_expired(STACK_OF(X509) *certs, struct error *err)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *cert = sk_X509_value(certs, i);
		char when[PEM_TIME_SIZE] = "?";

		if (X509_cmp_current_time(X509_get0_notAfter(cert)) > 0)
			continue;
		format_time(X509_get0_notAfter(cert), when);
		return error_set(err, EXIT_DATA, "%s expired at %s",
				 i == 0 ? "certificate" : "chain certificate", when);
	}
	return 0;
}

static int fill_leaf_facts(X509 *leaf, struct pem_bundle *bundle, struct error *err)
{
	if (certificate_fingerprint(leaf, bundle->fingerprint_sha256) != 0)
		return error_set(err, EXIT_DATA, "certificate: cannot encode as DER");
	bundle->serial_number = serial_hex(leaf);
	bundle->subject = subject_text(leaf);
	bundle->common_name = common_name_of(leaf);
	if (bundle->serial_number == NULL || bundle->subject == NULL ||
	    !format_time(X509_get0_notBefore(leaf), bundle->not_before) ||
	    !format_time(X509_get0_notAfter(leaf), bundle->not_after))
		return error_set(err, EXIT_DATA, "certificate: unreadable serial, subject or validity");
	return 0;
}

/*
 * The checks every bundle passes once its certificates are read: the leaf
 * (certs[0]) is for key (a private key, kept in bundle->key_pem, or with
 * key_is_private false a public key, nothing kept), the chain is in order,
 * nothing has expired; then bundle is filled.
 */
static int check_certificates(STACK_OF(X509) *certs, const char *cert_label, EVP_PKEY *key,
			      bool key_is_private, const char *key_label, struct pem_bundle *bundle,
			      struct error *err)
{
	X509 *leaf = sk_X509_value(certs, 0);
	int code;

	if (key_is_private ? X509_check_private_key(leaf, key) != 1
			   : EVP_PKEY_eq(X509_get0_pubkey(leaf), key) != 1) {
		ERR_clear_error();
		return error_set(err, EXIT_DATA, "%s: the %s key does not match the certificate in %s",
				 key_label, key_is_private ? "private" : "public", cert_label);
	}
	if ((code = check_chain_order(certs, err)) != 0 || (code = check_not_expired(certs, err)) != 0 ||
	    (code = fill_leaf_facts(leaf, bundle, err)) != 0)
		return code;
	bundle->cert_pem = certificate_to_pem(leaf);
	bundle->chain_pem = chain_to_pem(certs);
	bundle->key_algorithm = key_algorithm_of(key);
	if (bundle->cert_pem == NULL || bundle->chain_pem == NULL || bundle->key_algorithm == NULL ||
	    (key_is_private && !key_to_pem(key, bundle)))
		return error_set(err, EXIT_INTERNAL, "cannot re-encode the bundle: out of memory");
	return 0;
}

int pem_bundle_check(const char *cert_text, size_t cert_length, const char *cert_label,
		     const char *chain_text, size_t chain_length, const char *chain_label,
		     const unsigned char *key_text, size_t key_length, const char *key_label,
		     struct pem_bundle *bundle, struct error *err)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	BIO *key_bio = NULL;
	EVP_PKEY *key = NULL;
	char reason[256];
	int code;

	memset(bundle, 0, sizeof(*bundle));
	if (certs == NULL) {
		code = error_set(err, EXIT_INTERNAL, "out of memory");
		goto out;
	}
	if ((code = read_certificates(cert_text, cert_length, cert_label, certs, err)) != 0)
		goto out;
	if (chain_text != NULL &&
	    (code = read_certificates(chain_text, chain_length, chain_label, certs, err)) != 0)
		goto out;

	ERR_clear_error();
	key_bio = key_length > PEM_MAX_FILE_BYTES ? NULL : BIO_new_mem_buf(key_text, (int)key_length);
	if (key_bio == NULL ||
	    (key = PEM_read_bio_PrivateKey(key_bio, NULL, refuse_passphrase, NULL)) == NULL) {
		code = error_set(err, EXIT_DATA, "%s: not an unencrypted PEM private key: %s",
				 key_label, openssl_reason(reason, sizeof(reason), "parse error"));
		goto out;
	}
	code = check_certificates(certs, cert_label, key, true, key_label, bundle, err);
out:
	if (code != 0)
		pem_bundle_free(bundle);
	EVP_PKEY_free(key);
	BIO_free(key_bio);
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return code;
}

int pem_bundle_check_issued(const char *cert_text, size_t cert_length, const char *cert_label,
			    EVP_PKEY *key, bool key_is_private, const char *key_label,
			    const struct name_request *names, struct pem_bundle *bundle,
			    struct error *err)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	int code;

	memset(bundle, 0, sizeof(*bundle));
	if (certs == NULL)
		code = error_set(err, EXIT_INTERNAL, "out of memory");
	else if ((code = read_certificates(cert_text, cert_length, cert_label, certs, err)) == 0 &&
		 (code = check_certificates(certs, cert_label, key, key_is_private, key_label, bundle,
					    err)) == 0)
		code = certificate_names_check(sk_X509_value(certs, 0), names, err);
	if (code != 0)
		pem_bundle_free(bundle);
	sk_X509_pop_free(certs, X509_free);
	ERR_clear_error();
	return code;
}

void pem_bundle_free(struct pem_bundle *bundle)
{
	if (bundle->key_pem != NULL)
		OPENSSL_cleanse(bundle->key_pem, bundle->key_length);
	free(bundle->key_pem);
	free(bundle->cert_pem);
	free(bundle->chain_pem);
	free(bundle->serial_number);
	free(bundle->subject);
	free(bundle->common_name);
	free(bundle->key_algorithm);
	memset(bundle, 0, sizeof(*bundle));
}

int pem_bundle_load(const char *cert_path, const char *chain_path, const char *key_path,
		    struct pem_bundle *bundle, struct error *err)
{
	char *cert_text = NULL, *chain_text = NULL, *key_text = NULL;
	size_t cert_length = 0, chain_length = 0, key_length = 0;
	int code = 0;

	memset(bundle, 0, sizeof(*bundle));
	if ((cert_text = file_read_all(cert_path, PEM_MAX_FILE_BYTES, &cert_length, err)) == NULL ||
	    (chain_path != NULL &&
	     (chain_text = file_read_all(chain_path, PEM_MAX_FILE_BYTES, &chain_length, err)) == NULL) ||
	    (key_text = secret_file_read(key_path, PEM_MAX_FILE_BYTES, &key_length, err)) == NULL) {
		code = err->code;
		goto out;
	}
	code = pem_bundle_check(cert_text, cert_length, cert_path, chain_text, chain_length,
				chain_path, (const unsigned char *)key_text, key_length, key_path, bundle, err);
out:
	secret_free(key_text, key_length);
	free(chain_text);
	free(cert_text);
	return code;
}
