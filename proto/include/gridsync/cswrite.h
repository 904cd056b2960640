/*
 * A writer of SQLite changeset bytes from values: table headers and INSERT
 * records of whole rows, the form the server's downloads take (the device
 * applies them with sqlite3changeset_apply and REPLACE on conflict). The
 * byte format is described atop proto/changeset.c.
 *
 * The writer refuses (GS_EINVAL) any row the strict parser would refuse
 * (an undefined value, a type that does not fit the declared column, NULL
 * in a key or NOT NULL column, text that is not UTF-8 or holds a NUL, a
 * NaN), so what it writes always passes gs__cs_check. Pure: bytes out, no
 * I/O. Internal (gs__), not installed.
 */
#ifndef GRIDSYNC_CSWRITE_H
#define GRIDSYNC_CSWRITE_H

#include <stddef.h>

#include <gridsync/changeset.h>
#include <gridsync/platform.h>
#include <gridsync/schema.h>

/* Append the changeset table header of t ('T', column count, key
 * positions, name, NUL). GS_ENOMEM or GS_ETOOBIG (out's ceiling). */
int gs__cs_write_header(struct gs_buf *out, const struct gs_table *t);

/*
 * Bytes gs__cs_write_insert would append for this row, or 0 if the row is
 * not writable (see above). Lets a caller keep a byte budget before it
 * writes.
 */
size_t gs__cs_insert_size(const struct gs_table *t,
			  const struct gs_cs_value *vals);

/*
 * Append one INSERT record (not indirect) of t with vals[0..t->n_cols-1].
 * The caller writes the table header once before the first record of a
 * table, and each table once per changeset. GS_EINVAL for a row the
 * parser would refuse (nothing appended), GS_ENOMEM, GS_ETOOBIG.
 */
int gs__cs_write_insert(struct gs_buf *out,
			const struct gs_table *t,
			const struct gs_cs_value *vals);

#endif
