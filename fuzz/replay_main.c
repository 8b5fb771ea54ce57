/*
 * replay_main: the driver of a harness when it is not built with libFuzzer.
 * Runs LLVMFuzzerTestOneInput once over every file named on the command line
 * and every file of every directory named there (in name order), so the
 * CTest replay checks each corpus file under whatever sanitizers the build
 * has.  Exits 0 when all ran (a broken contract aborts), 1 when a path cannot
 * be read or when no file was found.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int
replay_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf = NULL;
	long size;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (size = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		if (fp != NULL)
			fclose(fp);
		return -1;
	}
	buf = malloc((size_t)size + 1); /* +1: a zero-length file still gets a buffer */
	if (buf == NULL || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(buf);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, (size_t)size);
	free(buf);
	return 0;
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int
main(int argc, char **argv)
{
	size_t files = 0;
	int status = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		struct dirent **names;
		int n;

		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: no such file or directory\n", argv[i]);
			status = 1;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			if (replay_file(argv[i]) != 0)
				status = 1;
			else
				files++;
			continue;
		}
		n = scandir(argv[i], &names, NULL, by_name);
		if (n < 0) {
			fprintf(stderr, "replay: cannot list %s\n", argv[i]);
			status = 1;
			continue;
		}
		for (int k = 0; k < n; k++) {
			char path[4096];

			snprintf(path, sizeof(path), "%s/%s", argv[i], names[k]->d_name);
			if (names[k]->d_name[0] != '.' && stat(path, &st) == 0 &&
			    S_ISREG(st.st_mode)) {
				if (replay_file(path) != 0)
					status = 1;
				else
					files++;
			}
			free(names[k]);
		}
		free(names);
	}
	printf("replayed %zu file(s)\n", files);
	if (files == 0)
		status = 1;
	return status;
}
