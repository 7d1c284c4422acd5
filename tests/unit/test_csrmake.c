/* csrmake: the names a CSR may carry, the key types, and a CSR that carries them. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "csrmake.h"
#include "exitcode.h"

static void check_names(void)
{
	static const char *const valid[] = {
		"example.com", "a.b.example.com", "WEB01.Example.COM", "x", "xn--bcher-kva.example",
		"a-b.example", "1password.com", "*.example.com", "*.a.example.com", "192.0.2.1",
		"::1", "2001:db8::1", "::ffff:192.0.2.1",
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc.example",
	};
	static const char *const invalid[] = {
		"", "-a.example", "a-.example", "a..example", ".example", "example.", "a_b.example",
		"exa mple.com", "*.com", "*", "*.", "a.*.example", "w*.example.com", "**.example.com",
		"1.2.3", "192.0.2.256", "[::1]", "fe80::1%eth0", "2001:db8::g", "example.com/x",
		"abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd.example",
		"caf\xc3\xa9.example",
	};
	char long_name[300];

	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		if (!san_is_valid(valid[i])) {
			fprintf(stderr, "expected \"%s\" to be valid\n", valid[i]);
			check_failures++;
		}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
		if (san_is_valid(invalid[i])) {
			fprintf(stderr, "expected \"%s\" to be invalid\n", invalid[i]);
			check_failures++;
		}
	CHECK(!san_is_valid(NULL));
	/* 253 characters is the longest name; 254 is one too many. */
	memset(long_name, 0, sizeof(long_name));
	for (size_t i = 0; i < 253; i++)
		long_name[i] = i % 4 == 3 ? '.' : 'a';
	long_name[252] = 'a';
	CHECK(san_is_valid(long_name));
	long_name[253] = 'a';
	CHECK(!san_is_valid(long_name));
}

static void check_key_type(const char *key_type, int expected_id, int expected_bits)
{
	struct error err = { 0 };
	EVP_PKEY *key = private_key_generate(key_type, &err);
	unsigned char *pem = NULL;
	size_t length = 0;

	CHECK(key != NULL);
	if (key == NULL)
		return;
	CHECK(EVP_PKEY_get_base_id(key) == expected_id);
	CHECK(EVP_PKEY_get_bits(key) == expected_bits);
	CHECK(private_key_pem(key, &pem, &length, &err) == 0);
	CHECK(pem != NULL && strncmp((char *)pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	CHECK(pem != NULL && strlen((char *)pem) == length);
	if (pem != NULL)
		OPENSSL_cleanse(pem, length);
	free(pem);
	EVP_PKEY_free(key);
}

static void check_key_types(void)
{
	struct error err = { 0 };

	check_key_type("ecdsa-p256", EVP_PKEY_EC, 256);
	check_key_type(NULL, EVP_PKEY_EC, 256);
	check_key_type("", EVP_PKEY_EC, 256);
	check_key_type("ecdsa-p384", EVP_PKEY_EC, 384);
	check_key_type("rsa-2048", EVP_PKEY_RSA, 2048);
	check_key_type("rsa-3072", EVP_PKEY_RSA, 3072);
	CHECK(private_key_generate("rsa-1024", &err) == NULL);
	CHECK(err.code == EXIT_CONFIG);
	CHECK(strstr(err.message, "rsa-1024") != NULL);
	CHECK(private_key_generate("ECDSA-P256", &err) == NULL);
	CHECK(err.code == EXIT_CONFIG);
	CHECK(key_type_is_known("rsa-3072"));
	CHECK(!key_type_is_known("ed25519"));
	CHECK(!key_type_is_known(NULL));
}

static void check_csr(void)
{
	static const char *const sans[] = { "www.example.com", "EXAMPLE.com", "192.0.2.7", "2001:db8::7",
					    "2001:DB8:0::7", "www.example.com" };
	static const char *const bad_san[] = { "ok.example", "not a name" };
	struct error err = { 0 };
	EVP_PKEY *key = private_key_generate("ecdsa-p256", &err);
	char *csr = NULL, key_hash[SHA256_HEX_SIZE], csr_hash[SHA256_HEX_SIZE], text[256];
	X509_REQ *request;
	GENERAL_NAMES *names;
	BIO *bio;
	char common_name[128];

	CHECK(csr_build(key, "example.com", sans, 6, &csr, &err) == 0);
	CHECK(csr != NULL && strncmp(csr, "-----BEGIN CERTIFICATE REQUEST-----", 35) == 0);
	bio = BIO_new_mem_buf(csr, -1);
	request = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	CHECK(request != NULL);
	if (request != NULL) {
		CHECK(X509_REQ_verify(request, X509_REQ_get0_pubkey(request)) == 1);
		CHECK(X509_REQ_get_signature_nid(request) == NID_ecdsa_with_SHA256);
		X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(request), NID_commonName,
					  common_name, sizeof(common_name));
		CHECK_STR("example.com", common_name);
		/* The CN first, then each distinct name: the duplicates are dropped. */
		{
			STACK_OF(X509_EXTENSION) *extensions = X509_REQ_get_extensions(request);

			names = X509V3_get_d2i(extensions, NID_subject_alt_name, NULL, NULL);
			sk_X509_EXTENSION_pop_free(extensions, X509_EXTENSION_free);
		}
		CHECK(names != NULL && sk_GENERAL_NAME_num(names) == 4);
		for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
			GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
			BIO *out = BIO_new(BIO_s_mem());
			char *data;
			long size;

			GENERAL_NAME_print(out, name);
			size = BIO_get_mem_data(out, &data);
			snprintf(text, sizeof(text), "%.*s", (int)size, data);
			BIO_free(out);
			CHECK_STR(i == 0 ? "DNS:example.com" : i == 1 ? "DNS:www.example.com"
				  : i == 2 ? "IP Address:192.0.2.7" : "IP Address:2001:DB8:0:0:0:0:0:7", text);
		}
		GENERAL_NAMES_free(names);
		CHECK(public_key_sha256(key, key_hash) == 0);
		CHECK(public_key_sha256(X509_REQ_get0_pubkey(request), csr_hash) == 0);
		CHECK_STR(key_hash, csr_hash);
		CHECK(strlen(key_hash) == 64 && strspn(key_hash, "0123456789abcdef") == 64);
		X509_REQ_free(request);
	}
	free(csr);

	CHECK(csr_build(key, "example.com", bad_san, 2, &csr, &err) == EXIT_DATA);
	CHECK(csr == NULL && strstr(err.message, "not a name") != NULL);
	CHECK(csr_build(key, "bad_name.example", NULL, 0, &csr, &err) == EXIT_DATA);
	CHECK(csr_build(key, "", NULL, 0, &csr, &err) == EXIT_DATA);
	CHECK(csr_build(key, NULL, NULL, 0, &csr, &err) == EXIT_DATA);
	CHECK(csr_build(key, "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij.example",
			NULL, 0, &csr, &err) == EXIT_DATA);
	CHECK(csr == NULL);
	EVP_PKEY_free(key);
}

int main(void)
{
	check_names();
	check_key_types();
	check_csr();
	return CHECK_DONE();
}
