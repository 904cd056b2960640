/*
 * Durable file helpers. gs__fs_write_atomic is the classic sequence:
 * write a temp file beside the target, fsync it, rename over the target,
 * fsync the directory, so a crash leaves either the old or the new file.
 */
#define GS_MODULE "platform.fs"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gridsync/platform.h>

static int io_err(struct gs_ctx *ctx, const char *what, const char *path)
{
	int e = errno;

	return gs__err(ctx, e == ENOSPC ? GS_EFULL : GS_EIO, "%s %s: %s", what,
		       path, strerror(e));
}

int gs__fs_fsync_dir(struct gs_ctx *ctx, const char *path)
{
	char copy[4096];
	int fd;
	int rc = GS_OK;

	if (snprintf(copy, sizeof(copy), "%s", path) >= (int)sizeof(copy))
		return gs__err(ctx, GS_EINVAL, "path too long");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return io_err(ctx, "open dir of", path);
	if (fsync(fd) != 0)
		rc = io_err(ctx, "fsync dir of", path);
	close(fd);
	return rc;
}

int gs__fs_write_atomic(struct gs_ctx *ctx,
			const char *path,
			const void *data,
			size_t len)
{
	char tmp[4096];
	const uint8_t *p = data;
	int fd;
	int rc = GS_OK;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return gs__err(ctx, GS_EINVAL, "path too long");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return io_err(ctx, "create", tmp);
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = io_err(ctx, "write", tmp);
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (rc == GS_OK && fsync(fd) != 0)
		rc = io_err(ctx, "fsync", tmp);
	if (close(fd) != 0 && rc == GS_OK)
		rc = io_err(ctx, "close", tmp);
	if (rc == GS_OK && rename(tmp, path) != 0)
		rc = io_err(ctx, "rename to", path);
	if (rc != GS_OK) {
		unlink(tmp);
		return rc;
	}
	return gs__fs_fsync_dir(ctx, path);
}

int gs__fs_read_all(struct gs_ctx *ctx,
		    uint8_t **out,
		    size_t *len_out,
		    const char *path,
		    size_t max)
{
	struct gs_buf b;
	FILE *f;
	uint8_t chunk[65536];
	size_t n;
	int rc = GS_OK;

	*out = NULL;
	*len_out = 0;
	f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (f == NULL)
		return gs__err(ctx, errno == ENOENT ? GS_ENOTFOUND : GS_EIO,
			       "open %s: %s", path, strerror(errno));
	gs__buf_init(&b, ctx, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		rc = gs__buf_append(&b, chunk, n);
		if (rc != GS_OK) {
			if (rc == GS_ETOOBIG)
				gs__err(ctx, rc, "%s is larger than %zu bytes",
					path, max);
			break;
		}
	}
	if (rc == GS_OK && ferror(f))
		rc = io_err(ctx, "read", path);
	if (f != stdin)
		fclose(f);
	if (rc != GS_OK) {
		gs__buf_fini(&b);
		return rc;
	}
	*out = b.data;
	*len_out = b.len;
	return GS_OK;
}
