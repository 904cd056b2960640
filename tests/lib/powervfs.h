/*
 * Power loss below SQLite, for tests: a VFS that wraps the default one
 * ("unix"). Files whose path starts with a chosen prefix are tracked:
 * their writes and truncations are held in memory (reads see them) until
 * the file is synced, when they reach the real file in order. At the n-th
 * write, truncate or sync of a tracked file the power fails: that call and
 * every later read, write, truncate, sync, size or delete of a tracked
 * file fails with SQLITE_IOERR, and whatever was not synced is gone.
 * Locks and closing still work, so the connection can be closed and the
 * database reopened with the real VFS ("power returns").
 *
 * Memory-mapped reads are refused (xFetch gives no page), so every read
 * goes through the overlay. Not thread-safe: one connection at a time.
 */
#ifndef GS_POWERVFS_H
#define GS_POWERVFS_H

#include <stdbool.h>
#include <stdint.h>

/* Make the power-loss VFS the default for files starting with prefix;
 * cut_at: the 1-based write/truncate/sync that fails (0: never). */
int gs_pv_install(const char *prefix, uint64_t cut_at);

/* Write, truncate and sync calls on tracked files so far. */
uint64_t gs_pv_ops(void);

/* Whether the power failed. */
bool gs_pv_cut(void);

/* Restore the real VFS as the default (the power returns). */
void gs_pv_uninstall(void);

#endif
