/* The known_hosts reader sshsession.c uses, then a host-key check against what it loaded. */
#include <string.h>

#include "fuzz.h"
#include "sshsession.h"

/* An ed25519 public key blob (string "ssh-ed25519", string 32 bytes). */
static const char host_key[] =
	"\0\0\0\x0bssh-ed25519\0\0\0\x20"
	"0123456789abcdef0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int initialized;
	LIBSSH2_SESSION *session;
	LIBSSH2_KNOWNHOSTS *known, *revoked;
	int mask = LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | LIBSSH2_KNOWNHOST_KEY_ED25519;
	FILE *input;

	if (!initialized && libssh2_init(0) != 0)
		return 0;
	initialized = 1;
	if (size == 0 || (input = fmemopen((void *)data, size, "r")) == NULL)
		return 0;
	if ((session = libssh2_session_init()) == NULL) {
		fclose(input);
		return 0;
	}
	known = libssh2_knownhost_init(session);
	revoked = libssh2_knownhost_init(session);
	if (known != NULL && revoked != NULL) {
		ssh_known_hosts_load(input, known, revoked);
		libssh2_knownhost_checkp(revoked, "[127.0.0.1]", 2222, host_key, sizeof(host_key) - 1, mask, NULL);
		libssh2_knownhost_checkp(known, "[127.0.0.1]", 2222, host_key, sizeof(host_key) - 1, mask, NULL);
		libssh2_knownhost_checkp(known, "host.example", -1, host_key, sizeof(host_key) - 1, mask, NULL);
	}
	if (known != NULL)
		libssh2_knownhost_free(known);
	if (revoked != NULL)
		libssh2_knownhost_free(revoked);
	libssh2_session_free(session);
	fclose(input);
	return 0;
}
