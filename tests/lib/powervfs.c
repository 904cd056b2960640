/*
 * The power-loss VFS (powervfs.h). Each tracked file keeps an ordered list
 * of operations not yet synced (writes with their bytes, truncations);
 * reads start from the real file and replay that list over the buffer.
 */
#include "powervfs.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pv_op {
	int64_t off; /* write offset, or the truncation size */
	int len;     /* -1: truncation */
	uint8_t *data;
};

struct pv_file {
	sqlite3_file base;
	sqlite3_file *real;
	struct pv_op *ops;
	size_t n_ops, cap_ops;
};

static struct {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	char prefix[4096];
	uint64_t ops, cut_at;
	bool cut;
	bool installed;
} pv;

static void drop_ops(struct pv_file *f)
{
	for (size_t i = 0; i < f->n_ops; i++)
		free(f->ops[i].data);
	f->n_ops = 0;
}

/* Count one write, truncate or sync; true when the power fails now. */
static bool power_fails(void)
{
	if (pv.cut)
		return true;
	pv.ops++;
	if (pv.cut_at != 0 && pv.ops >= pv.cut_at) {
		pv.cut = true;
		return true;
	}
	return false;
}

static int push_op(struct pv_file *f, int64_t off, int len, const void *data)
{
	struct pv_op *op;

	if (f->n_ops == f->cap_ops) {
		size_t cap = f->cap_ops ? f->cap_ops * 2 : 64;
		struct pv_op *n = realloc(f->ops, cap * sizeof(*n));

		if (n == NULL)
			return SQLITE_NOMEM;
		f->ops = n;
		f->cap_ops = cap;
	}
	op = &f->ops[f->n_ops];
	op->off = off;
	op->len = len;
	op->data = NULL;
	if (len > 0) {
		op->data = malloc((size_t)len);
		if (op->data == NULL)
			return SQLITE_NOMEM;
		memcpy(op->data, data, (size_t)len);
	}
	f->n_ops++;
	return SQLITE_OK;
}

static int logical_size(struct pv_file *f, sqlite3_int64 *size)
{
	int rc = f->real->pMethods->xFileSize(f->real, size);

	if (rc != SQLITE_OK)
		return rc;
	for (size_t i = 0; i < f->n_ops; i++) {
		const struct pv_op *op = &f->ops[i];

		if (op->len < 0)
			*size = op->off;
		else if (op->off + op->len > *size)
			*size = op->off + op->len;
	}
	return SQLITE_OK;
}

static int pv_close(sqlite3_file *file)
{
	struct pv_file *f = (struct pv_file *)file;
	int rc = f->real->pMethods->xClose(f->real);

	drop_ops(f);
	free(f->ops);
	f->ops = NULL;
	return rc;
}

static int pv_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
	struct pv_file *f = (struct pv_file *)file;
	sqlite3_int64 size;
	int rc;

	if (pv.cut)
		return SQLITE_IOERR_READ;
	rc = f->real->pMethods->xRead(f->real, buf, amt, off);
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return rc;
	for (size_t i = 0; i < f->n_ops; i++) {
		const struct pv_op *op = &f->ops[i];

		if (op->len < 0) {
			if (op->off < off + amt) {
				int64_t from =
					op->off > off ? op->off - off : 0;

				memset((uint8_t *)buf + from, 0,
				       (size_t)(amt - from));
			}
		} else if (op->off < off + amt && op->off + op->len > off) {
			int64_t a = op->off > off ? op->off : off;
			int64_t b = op->off + op->len < off + amt
					    ? op->off + op->len
					    : off + amt;

			memcpy((uint8_t *)buf + (a - off),
			       op->data + (a - op->off), (size_t)(b - a));
		}
	}
	rc = logical_size(f, &size);
	if (rc != SQLITE_OK)
		return rc;
	if (off + amt > size) {
		int64_t from = size > off ? size - off : 0;

		memset((uint8_t *)buf + from, 0, (size_t)(amt - from));
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

static int
pv_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
	if (power_fails())
		return SQLITE_IOERR_WRITE;
	return push_op((struct pv_file *)file, off, amt, buf);
}

static int pv_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	if (power_fails())
		return SQLITE_IOERR_TRUNCATE;
	return push_op((struct pv_file *)file, size, -1, NULL);
}

static int pv_sync(sqlite3_file *file, int flags)
{
	struct pv_file *f = (struct pv_file *)file;
	int rc = SQLITE_OK;

	if (power_fails()) {
		/* Nothing since the last sync reached the disk. */
		drop_ops(f);
		return SQLITE_IOERR_FSYNC;
	}
	for (size_t i = 0; i < f->n_ops && rc == SQLITE_OK; i++) {
		const struct pv_op *op = &f->ops[i];

		rc = op->len < 0
			     ? f->real->pMethods->xTruncate(f->real, op->off)
			     : f->real->pMethods->xWrite(f->real, op->data,
							 op->len, op->off);
	}
	drop_ops(f);
	if (rc == SQLITE_OK)
		rc = f->real->pMethods->xSync(f->real, flags);
	return rc;
}

static int pv_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	if (pv.cut)
		return SQLITE_IOERR_FSTAT;
	return logical_size((struct pv_file *)file, size);
}

static int pv_lock(sqlite3_file *file, int lock)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int pv_unlock(sqlite3_file *file, int lock)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int pv_check_reserved(sqlite3_file *file, int *out)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int pv_file_control(sqlite3_file *file, int op, void *arg)
{
	struct pv_file *f = (struct pv_file *)file;

	/* A size hint would grow the real file behind the overlay. */
	if (op == SQLITE_FCNTL_SIZE_HINT)
		return SQLITE_OK;
	if (op == SQLITE_FCNTL_MMAP_SIZE) {
		*(sqlite3_int64 *)arg = 0;
		return SQLITE_OK;
	}
	return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int pv_sector_size(sqlite3_file *file)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int pv_device_characteristics(sqlite3_file *file)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int
pv_shm_map(sqlite3_file *file, int pg, int pgsz, int extend, void volatile **pp)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int pv_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void pv_shm_barrier(sqlite3_file *file)
{
	struct pv_file *f = (struct pv_file *)file;

	f->real->pMethods->xShmBarrier(f->real);
}

static int pv_shm_unmap(sqlite3_file *file, int del)
{
	struct pv_file *f = (struct pv_file *)file;

	return f->real->pMethods->xShmUnmap(f->real, del);
}

static int pv_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **pp)
{
	(void)file;
	(void)off;
	(void)amt;
	*pp = NULL; /* no mapping: reads go through the overlay */
	return SQLITE_OK;
}

static int pv_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	(void)file;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods pv_io = {
	3,
	pv_close,
	pv_read,
	pv_write,
	pv_truncate,
	pv_sync,
	pv_file_size,
	pv_lock,
	pv_unlock,
	pv_check_reserved,
	pv_file_control,
	pv_sector_size,
	pv_device_characteristics,
	pv_shm_map,
	pv_shm_lock,
	pv_shm_barrier,
	pv_shm_unmap,
	pv_fetch,
	pv_unfetch,
};

static bool tracked(const char *name)
{
	return name != NULL && strncmp(name, pv.prefix, strlen(pv.prefix)) == 0;
}

static int pv_open(sqlite3_vfs *vfs,
		   const char *name,
		   sqlite3_file *file,
		   int flags,
		   int *out_flags)
{
	struct pv_file *f = (struct pv_file *)file;
	int rc;

	(void)vfs;
	if (!tracked(name)) /* a plain file of the real VFS */
		return pv.real->xOpen(pv.real, name, file, flags, out_flags);
	if (pv.cut)
		return SQLITE_CANTOPEN;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	rc = pv.real->xOpen(pv.real, name, f->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		f->base.pMethods = NULL;
		return rc;
	}
	f->base.pMethods = &pv_io;
	return SQLITE_OK;
}

static int pv_delete(sqlite3_vfs *vfs, const char *name, int dir_sync)
{
	(void)vfs;
	if (tracked(name) && power_fails())
		return SQLITE_IOERR_DELETE;
	return pv.real->xDelete(pv.real, name, dir_sync);
}

static int pv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return pv.real->xAccess(pv.real, name, flags, out);
}

static int
pv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return pv.real->xFullPathname(pv.real, name, n, out);
}

static int pv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return pv.real->xRandomness(pv.real, n, out);
}

static int pv_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return pv.real->xSleep(pv.real, us);
}

static int pv_current_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return pv.real->xCurrentTime(pv.real, out);
}

static int pv_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return pv.real->xGetLastError(pv.real, n, out);
}

static int pv_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return pv.real->xCurrentTimeInt64(pv.real, out);
}

int gs_pv_install(const char *prefix, uint64_t cut_at)
{
	size_t need;

	if (pv.installed)
		gs_pv_uninstall();
	pv.real = sqlite3_vfs_find("unix");
	if (pv.real == NULL)
		return SQLITE_ERROR;
	need = sizeof(struct pv_file) + (size_t)pv.real->szOsFile;
	memset(&pv.vfs, 0, sizeof(pv.vfs));
	pv.vfs.iVersion = 2;
	/* Untracked files are the real VFS's own and need its size. */
	pv.vfs.szOsFile = (int)(need > (size_t)pv.real->szOsFile
					? need
					: (size_t)pv.real->szOsFile);
	pv.vfs.mxPathname = pv.real->mxPathname;
	pv.vfs.zName = "gs-powerloss";
	pv.vfs.xOpen = pv_open;
	pv.vfs.xDelete = pv_delete;
	pv.vfs.xAccess = pv_access;
	pv.vfs.xFullPathname = pv_full_pathname;
	pv.vfs.xRandomness = pv_randomness;
	pv.vfs.xSleep = pv_sleep;
	pv.vfs.xCurrentTime = pv_current_time;
	pv.vfs.xGetLastError = pv_last_error;
	pv.vfs.xCurrentTimeInt64 = pv_current_time64;
	snprintf(pv.prefix, sizeof(pv.prefix), "%s", prefix);
	pv.ops = 0;
	pv.cut_at = cut_at;
	pv.cut = false;
	pv.installed = true;
	return sqlite3_vfs_register(&pv.vfs, 1);
}

uint64_t gs_pv_ops(void)
{
	return pv.ops;
}

bool gs_pv_cut(void)
{
	return pv.cut;
}

void gs_pv_uninstall(void)
{
	if (!pv.installed)
		return;
	sqlite3_vfs_unregister(&pv.vfs);
	sqlite3_vfs_register(pv.real, 1);
	pv.installed = false;
}
