/*
 * gridsync inspect FILE|- [--json] [--upload]: decode a changeset, a
 * frame or a capture of frames, for an engineer debugging a device. No
 * database is opened. The bytes are read whole (a file, or standard input
 * for "-", at most GS_INSPECT_MAX_INPUT) and handed to gs_inspect, which
 * checks all of them with gridsync's own parsers before it writes
 * anything: invalid input leaves stdout empty and puts one line on stderr
 * that names the problem and its byte offset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/inspect.h>

#include "cli.h"

static const char usage_line[] =
	"usage: gridsync inspect FILE|- [--json] [--upload]\n"
	"  Decodes a changeset or patchset (first byte 'T' or 'P'), one frame"
	" or a\n"
	"  capture of frames (4-byte big-endian length, then an Envelope)."
	" \"-\" reads\n"
	"  standard input. --upload judges a bare changeset as the server"
	" judges a\n"
	"  device's upload (device tables only, default limits).\n";

/* Bad usage: what was wrong, then the usage lines; exit code 2. */
static int usage(const char *msg)
{
	if (msg != NULL)
		fprintf(stderr, "gridsync: inspect: %s\n", msg);
	fputs(usage_line, stderr);
	return CLI_USAGE;
}

/* Read all of f, refusing more than the library accepts. *out is freed
 * with free. Returns 0, or an errno value (EFBIG: too large). */
static int read_all(FILE *f, unsigned char **out, size_t *len_out)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	size_t cap = 0;

	for (;;) {
		size_t n;

		if (len == cap) {
			/* One byte past the limit is enough to know. */
			size_t max = (size_t)GS_INSPECT_MAX_INPUT + 1;
			size_t ncap = cap != 0 ? cap * 2 : 65536;
			unsigned char *p;

			if (cap == max) {
				free(buf);
				return EFBIG;
			}
			if (ncap > max)
				ncap = max;
			p = realloc(buf, ncap); /* checksrc: CLI */
			if (p == NULL) {
				free(buf);
				return ENOMEM;
			}
			buf = p;
			cap = ncap;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return EIO;
	}
	if (len > GS_INSPECT_MAX_INPUT) {
		free(buf);
		return EFBIG;
	}
	*out = buf;
	*len_out = len;
	return 0;
}

/* gs_inspect's output goes to stdout as it comes. */
static int write_out(const char *text, size_t len, void *payload)
{
	(void)payload;
	return fwrite(text, 1, len, stdout) == len ? 0 : GS_EIO;
}

/*
 * The command. argv holds what follows "inspect": one FILE or "-", and the
 * flags --json (also accepted before the command) and --upload. A file
 * literally named like a flag can be given as ./--name.
 */
int cmd_inspect(struct gs_ctx *ctx, bool json, int argc, char **argv)
{
	unsigned flags = 0;
	const char *path = NULL;
	unsigned char *data = NULL;
	size_t len = 0;
	FILE *f;
	int err;
	int rc;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else if (strcmp(argv[i], "--upload") == 0)
			flags |= GS_INSPECT_UPLOAD;
		else if (strcmp(argv[i], "--help") == 0)
			return fputs(usage_line, stdout) < 0 ? CLI_FAIL : 0;
		else if (strncmp(argv[i], "--", 2) == 0)
			return usage("unknown option");
		else if (path != NULL)
			return usage("give one FILE (or - for standard input)");
		else
			path = argv[i];
	}
	if (path == NULL)
		return usage("give a FILE (or - for standard input)");
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "gridsync: inspect: cannot open %s: %s\n", path,
			strerror(errno));
		return CLI_FAIL;
	}
	err = read_all(f, &data, &len);
	if (f != stdin)
		fclose(f);
	if (err == EFBIG) {
		fprintf(stderr,
			"gridsync: inspect: %s is larger than %u MiB; cut the "
			"capture into smaller pieces\n",
			path, GS_INSPECT_MAX_INPUT >> 20);
		return CLI_FAIL;
	}
	if (err != 0) {
		fprintf(stderr, "gridsync: inspect: cannot read %s: %s\n", path,
			strerror(err));
		return CLI_FAIL;
	}
	if (json)
		flags |= GS_INSPECT_JSON;
	/* Nothing reaches stdout unless the whole input is valid. */
	rc = gs_inspect(ctx, data, len, flags, write_out, NULL);
	free(data);
	if (rc == GS_OK && fflush(stdout) != 0)
		rc = GS_EIO;
	if (rc == GS_EIO) {
		fputs("gridsync: inspect: cannot write the output\n", stderr);
		return CLI_FAIL;
	}
	if (rc != GS_OK) {
		const char *msg = gs_ctx_errmsg(ctx);

		fprintf(stderr, "gridsync: inspect: %s\n",
			msg[0] != '\0' ? msg : gs_strerror(rc));
		return CLI_FAIL;
	}
	return 0;
}
