/*
 * Durable file helpers. gs__fs_write_atomic is the classic sequence:
 * write a temp file beside the target, fsync it, rename over the target,
 * fsync the directory, so a crash leaves either the old or the new file.
 *
 * Private files: everything these helpers create is 0600 (directories
 * 0700) whatever the umask, and is created with O_EXCL|O_NOFOLLOW, so a
 * file or symlink planted at the name beforehand is never written through
 * (docs/SECURITY.md).
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
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	/* A temp file left by a crash, or a symlink planted there: remove
	 * the name itself (unlink never follows a link) and create afresh,
	 * exclusively; a second collision is somebody racing us. */
	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
		fd = open(tmp,
			  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			  0600);
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

/* Existing files are looked at by name, never opened: closing any
 * descriptor of a file drops every POSIX lock this process holds on it,
 * and SQLite in this process may hold some (a second connection to an
 * open database would silently lose the first one's WAL locks). */
int gs__fs_private_file(struct gs_ctx *ctx, const char *path, bool create)
{
	struct stat st;
	int fd;
	int rc = GS_OK;

	if (lstat(path, &st) == 0) {
		if (S_ISLNK(st.st_mode))
			return gs__err(ctx, GS_EDENIED,
				       "%s is a symbolic link: give the real "
				       "path",
				       path);
		/* Files made by an older version (or a careless umask) are
		 * tightened; only the owner can, and anyone else's file is
		 * left as it is with a warning. */
		if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0 &&
		    chmod(path, st.st_mode & 0700) != 0)
			GS_WARN(ctx,
				"%s is readable by other users and "
				"cannot be made private: %s",
				path, strerror(errno));
		return GS_OK;
	}
	if (errno != ENOENT)
		return io_err(ctx, "stat", path);
	if (!create)
		return GS_OK; /* nothing to protect yet */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return io_err(ctx, "create", path);
	if (fsync(fd) != 0)
		rc = io_err(ctx, "fsync", path);
	close(fd);
	return rc == GS_OK ? gs__fs_fsync_dir(ctx, path) : rc;
}

int gs__fs_private_dir(struct gs_ctx *ctx, const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return gs__fs_fsync_dir(ctx, path);
	if (errno != EEXIST)
		return io_err(ctx, "mkdir", path);
	if (lstat(path, &st) != 0)
		return io_err(ctx, "stat", path);
	if (!S_ISDIR(st.st_mode))
		return gs__err(ctx, GS_EINVAL,
			       "%s is not a directory (a symbolic link is "
			       "not accepted: give the real path)",
			       path);
	if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 0700) != 0)
		GS_WARN(ctx,
			"%s is open to other users and cannot be made "
			"private: %s",
			path, strerror(errno));
	return GS_OK;
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
