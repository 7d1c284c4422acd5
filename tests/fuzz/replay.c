/* Runs a harness once over each file named on the command line, without fuzzing. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"

static int replay(const char *path)
{
	FILE *file = fopen(path, "rb");
	uint8_t *data;
	long size;

	if (file == NULL || fseek(file, 0, SEEK_END) != 0 || (size = ftell(file)) < 0 ||
	    fseek(file, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (file != NULL)
			fclose(file);
		return 1;
	}
	/* Exactly size bytes, so a sanitizer build catches any read past the input. */
	data = malloc(size > 0 ? (size_t)size : 1);
	if (data == NULL || fread(data, 1, (size_t)size, file) != (size_t)size) {
		fprintf(stderr, "replay: %s: cannot read\n", path);
		free(data);
		fclose(file);
		return 1;
	}
	fclose(file);
	LLVMFuzzerTestOneInput(data, (size_t)size);
	free(data);
	return 0;
}

int main(int argc, char *argv[])
{
	int failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s INPUT...\n", argv[0]);
		return 64;
	}
	for (int i = 1; i < argc; i++)
		failed |= replay(argv[i]);
	if (!failed)
		printf("replayed %d input%s\n", argc - 1, argc == 2 ? "" : "s");
	return failed;
}
