/* tls_endpoint_parse: what it accepts has a host and a port from 1 to 65535. */
#include <string.h>

#include "exitcode.h"
#include "fuzz.h"
#include "tlsprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_endpoint endpoint;
	struct error err;
	char *text;
	long port;

	if (size > 4096 || (text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (tls_endpoint_parse(text, &endpoint, &err) == 0) {
		FUZZ_ASSERT(endpoint.host[0] != '\0' && strlen(endpoint.host) < sizeof(endpoint.host));
		port = strtol(endpoint.port, NULL, 10);
		FUZZ_ASSERT(port >= 1 && port <= 65535);
		FUZZ_ASSERT(strchr(endpoint.host, ':') == NULL || text[0] == '[');
	} else {
		FUZZ_ASSERT(err.code == EXIT_USAGE);
	}
	free(text);
	return 0;
}
