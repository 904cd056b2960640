/*
 * Field-merged records (households, residents) and visits.
 *
 * Households and residents are written from a list of (column, text value)
 * pairs checked against the manifest: the column must exist, be writable
 * by a device and not be one the engine sets itself (id, hlc, origin,
 * created_*, updated_*, server_seq, deleted); the text is converted to the
 * column's declared type. Encrypted columns (BLOB) are not settable as
 * text. Messages name the field, never its value.
 */
#define GS_MODULE "client.record"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gridsync/schema.h>

#include "device_impl.h"

#define MAX_FIELDS 40

static const char *const engine_cols[] = {
	"id",         "hlc",        "origin",     "created_at", "created_by",
	"updated_at", "updated_by", "server_seq", "deleted",    NULL,
};

static bool is_engine_col(const char *name)
{
	for (int i = 0; engine_cols[i] != NULL; i++)
		if (strcmp(engine_cols[i], name) == 0)
			return true;
	return false;
}

/* Bind the text value of field f to parameter idx as column c's type. */
static int bind_field(struct gs_device *dev,
		      sqlite3_stmt *st,
		      int idx,
		      const struct gs_column *c,
		      const char *value)
{
	int64_t iv;
	double dv;
	char *end = NULL;

	if (value == NULL) {
		sqlite3_bind_null(st, idx);
		return GS_OK;
	}
	if (!gs__utf8_valid((const uint8_t *)value, strlen(value)))
		return gs__err(dev->ctx, GS_EINVAL,
			       "field %s is not valid UTF-8 text", c->name);
	switch (c->type) {
	case GS_COL_INTEGER:
		if (gs__parse_i64(&iv, value) != GS_OK)
			return gs__err(dev->ctx, GS_EINVAL,
				       "field %s must be a whole number",
				       c->name);
		sqlite3_bind_int64(st, idx, iv);
		return GS_OK;
	case GS_COL_REAL:
		dv = strtod(value, &end);
		if (end == value || *end != '\0' || !isfinite(dv))
			return gs__err(dev->ctx, GS_EINVAL,
				       "field %s must be a number", c->name);
		sqlite3_bind_double(st, idx, dv);
		return GS_OK;
	case GS_COL_TEXT:
		sqlite3_bind_text(st, idx, value, -1, SQLITE_STATIC);
		return GS_OK;
	default:
		return gs__err(dev->ctx, GS_EINVAL,
			       "field %s is stored encrypted and cannot be set "
			       "as text",
			       c->name);
	}
}

/* Check the fields against table t; fill cols[i] with the column. */
static int check_fields(struct gs_device *dev,
			const struct gs_table *t,
			const struct gs_field *fields,
			size_t n,
			const struct gs_column **cols)
{
	if (n > MAX_FIELDS)
		return gs__err(dev->ctx, GS_EINVAL, "too many fields");
	for (size_t i = 0; i < n; i++) {
		int ci;

		if (fields[i].name == NULL)
			return gs__err(dev->ctx, GS_EINVAL, "unnamed field");
		ci = gs__table_col(t, fields[i].name);
		if (ci < 0)
			return gs__err(dev->ctx, GS_EINVAL,
				       "%s has no field %.64s", t->name,
				       fields[i].name);
		if (!(t->cols[ci].flags & GS_COL_DEVICE) ||
		    is_engine_col(fields[i].name))
			return gs__err(dev->ctx, GS_EINVAL,
				       "field %s of %s is set by gridsync, not "
				       "by hand",
				       fields[i].name, t->name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(fields[k].name, fields[i].name) == 0)
				return gs__err(dev->ctx, GS_EINVAL,
					       "field %s given twice",
					       fields[i].name);
		cols[i] = &t->cols[ci];
	}
	return GS_OK;
}

/* The grid a new or edited row belongs to, for the scope check. */
static const char household_grid_sql[] =
	"SELECT grid_id FROM household WHERE id = ? AND deleted = 0";
static const char resident_grid_sql[] =
	"SELECT h.grid_id FROM resident r JOIN household h"
	" ON h.id = r.household_id WHERE r.id = ? AND r.deleted = 0";

static int row_grid(struct gs_device *dev,
		    const char *table,
		    const char *id,
		    char **grid_out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*grid_out = NULL;
	rc = gs__stmt(dev,
		      strcmp(table, "household") == 0 ? household_grid_sql
						      : resident_grid_sql,
		      &st);
	if (rc != GS_OK)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*grid_out = gs__strdup(
			dev->ctx, (const char *)sqlite3_column_text(st, 0));
		rc = *grid_out != NULL ? GS_OK : GS_ENOMEM;
	} else if (rc == SQLITE_DONE) {
		rc = gs__err(dev->ctx, GS_ENOTFOUND, "no %s %.64s", table, id);
	} else {
		rc = gs__err_from_sqlite(dev->ctx, rc, dev->db);
	}
	gs__stmt_done(st);
	return rc;
}

static const char *field_value(const struct gs_field *fields,
			       size_t n,
			       const char *name,
			       bool *found)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fields[i].name, name) == 0) {
			*found = true;
			return fields[i].value;
		}
	*found = false;
	return NULL;
}

/* INSERT or UPDATE one household or resident from fields. */
static int write_fields(struct gs_device *dev,
			const char *table,
			const char *id,
			bool insert,
			const struct gs_field *fields,
			size_t n)
{
	const struct gs_table *t = gs__manifest_find(table);
	const struct gs_column *cols[MAX_FIELDS];
	struct gs_txn txn;
	struct gs_buf sql;
	sqlite3_stmt *st = NULL;
	char *grid = NULL;
	bool found;
	int idx = 1;
	int rc;

	GS_ASSERT(t != NULL);
	rc = check_fields(dev, t, fields, n, cols);
	if (rc != GS_OK)
		return rc;
	if (!insert && n == 0)
		return gs__err(dev->ctx, GS_EINVAL, "no field to change");
	rc = gs__txn_begin(dev, &txn);
	if (rc != GS_OK)
		return rc;
	gs__buf_init(&sql, dev->ctx, 8192);
	if (insert) {
		const char *parent = NULL;

		if (strcmp(table, "household") == 0) {
			grid = gs__strdup(
				dev->ctx,
				field_value(fields, n, "grid_id", &found));
		} else {
			parent = field_value(fields, n, "household_id", &found);
			if (parent == NULL)
				rc = gs__err(dev->ctx, GS_EINVAL,
					     "resident: field household_id is "
					     "required");
			else
				rc = row_grid(dev, "household", parent, &grid);
		}
		if (rc == GS_OK && grid == NULL)
			rc = gs__err(dev->ctx, GS_EINVAL,
				     "%s: field grid_id is required", table);
		rc = rc == GS_OK
			     ? gs__buf_printf(&sql, "INSERT INTO %s (id", table)
			     : rc;
		for (size_t i = 0; rc == GS_OK && i < n; i++)
			rc = gs__buf_printf(&sql, ",%s", fields[i].name);
		if (rc == GS_OK)
			rc = gs__buf_printf(&sql, ",hlc,origin,created_at,"
						  "created_by) VALUES (?");
		for (size_t i = 0; rc == GS_OK && i < n; i++)
			rc = gs__buf_printf(&sql, ",?");
		if (rc == GS_OK)
			rc = gs__buf_printf(&sql, ",?,?,?,?)");
	} else {
		rc = row_grid(dev, table, id, &grid);
		if (rc == GS_OK)
			rc = gs__buf_printf(&sql, "UPDATE %s SET ", table);
		for (size_t i = 0; rc == GS_OK && i < n; i++)
			rc = gs__buf_printf(&sql, "%s=?,", fields[i].name);
		if (rc == GS_OK)
			rc = gs__buf_printf(&sql, "hlc=?,updated_at=?,"
						  "updated_by=? WHERE id=?");
	}
	if (rc == GS_OK)
		rc = gs__check_scope(dev, grid);
	/* Moving a household to another grid must stay in scope too. */
	if (rc == GS_OK && !insert && strcmp(table, "household") == 0) {
		const char *to = field_value(fields, n, "grid_id", &found);

		if (found)
			rc = gs__check_scope(dev, to);
	}
	if (rc == GS_OK)
		rc = gs__buf_cstr(&sql);
	if (rc == GS_OK)
		rc = gs__db_prepare(dev->ctx, dev->db, &st, (char *)sql.data);
	if (rc == GS_OK && insert)
		sqlite3_bind_text(st, idx++, id, -1, SQLITE_STATIC);
	for (size_t i = 0; rc == GS_OK && i < n; i++)
		rc = bind_field(dev, st, idx++, cols[i], fields[i].value);
	if (rc == GS_OK) {
		sqlite3_bind_text(st, idx++, txn.hlc_text, -1, SQLITE_STATIC);
		if (insert)
			sqlite3_bind_text(st, idx++, dev->device_id, -1,
					  SQLITE_STATIC);
		sqlite3_bind_text(st, idx++, txn.now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, idx++, dev->worker_id, -1, SQLITE_STATIC);
		if (!insert)
			sqlite3_bind_text(st, idx++, id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(dev->ctx, dev->db, st);
		if (rc != GS_OK)
			rc = gs__write_err(dev, rc, table);
	}
	sqlite3_finalize(st);
	gs__buf_fini(&sql);
	gs__free(dev->ctx, grid);
	if (rc == GS_OK)
		return gs__txn_commit(dev);
	gs__txn_rollback(dev);
	return rc;
}

static int add_record(struct gs_device *dev,
		      const char *table,
		      char id_out[GS_ID_LEN],
		      const struct gs_field *fields,
		      size_t n)
{
	char id[GS_ID_LEN];
	int rc;

	GS_CHECK_ARG(dev != NULL && id_out != NULL &&
		     (fields != NULL || n == 0));
	rc = gs__new_id(dev, id);
	if (rc == GS_OK)
		rc = write_fields(dev, table, id, true, fields, n);
	if (rc == GS_OK)
		memcpy(id_out, id, GS_ID_LEN);
	return rc;
}

int gs_household_add(struct gs_device *dev,
		     char id_out[GS_ID_LEN],
		     const struct gs_field *fields,
		     size_t n_fields)
{
	return add_record(dev, "household", id_out, fields, n_fields);
}

int gs_resident_add(struct gs_device *dev,
		    char id_out[GS_ID_LEN],
		    const struct gs_field *fields,
		    size_t n_fields)
{
	return add_record(dev, "resident", id_out, fields, n_fields);
}

int gs_household_edit(struct gs_device *dev,
		      const char *id,
		      const struct gs_field *fields,
		      size_t n_fields)
{
	GS_CHECK_ARG(dev != NULL && id != NULL &&
		     (fields != NULL || n_fields == 0));
	return write_fields(dev, "household", id, false, fields, n_fields);
}

int gs_resident_edit(struct gs_device *dev,
		     const char *id,
		     const struct gs_field *fields,
		     size_t n_fields)
{
	GS_CHECK_ARG(dev != NULL && id != NULL &&
		     (fields != NULL || n_fields == 0));
	return write_fields(dev, "resident", id, false, fields, n_fields);
}

int gs_household_delete(struct gs_device *dev, const char *id)
{
	struct gs_txn txn;
	sqlite3_stmt *st = NULL;
	char *grid = NULL;
	int rc;

	GS_CHECK_ARG(dev != NULL && id != NULL);
	rc = gs__txn_begin(dev, &txn);
	if (rc != GS_OK)
		return rc;
	rc = row_grid(dev, "household", id, &grid);
	if (rc == GS_OK)
		rc = gs__check_scope(dev, grid);
	if (rc == GS_OK)
		rc = gs__db_prepare(dev->ctx, dev->db, &st,
				    "UPDATE household SET deleted = 1, hlc = ?,"
				    " updated_at = ?, updated_by = ? WHERE id ="
				    " ?");
	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, txn.hlc_text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, txn.now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, dev->worker_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(dev->ctx, dev->db, st);
	}
	sqlite3_finalize(st);
	gs__free(dev->ctx, grid);
	if (rc == GS_OK)
		return gs__txn_commit(dev);
	gs__txn_rollback(dev);
	return rc;
}

int gs_household_list(struct gs_device *dev, gs_row_cb cb, void *payload)
{
	GS_CHECK_ARG(dev != NULL && cb != NULL);
	return gs__rows_query(
		dev, "household", cb, payload,
		"SELECT h.id, g.code AS grid, p.name || ' ' || d.room_no"
		" AS address, h.size, h.status, h.residence_type,"
		" (SELECT count(*) FROM resident r WHERE r.household_id = h.id"
		" AND r.deleted = 0 AND r.id NOT IN (SELECT id FROM"
		" merged_into)) AS residents,"
		" (SELECT max(v.started_at) FROM visit v"
		" WHERE v.household_id = h.id AND v.deleted = 0) AS last_visit,"
		" h.hlc IN (SELECT printf('%016x', hlc) FROM gs_outbox)"
		" AS pending"
		" FROM household h LEFT JOIN grid g ON g.id = h.grid_id"
		" LEFT JOIN dwelling d ON d.id = h.dwelling_id"
		" LEFT JOIN place p ON p.id = d.place_id"
		" WHERE h.deleted = 0 AND h.id NOT IN (SELECT id FROM"
		" merged_into WHERE deleted = 0)"
		" ORDER BY g.code, address, h.id",
		NULL);
}

int gs_household_show(struct gs_device *dev,
		      const char *id,
		      gs_row_cb cb,
		      void *payload)
{
	const char *params[] = { id, NULL };
	char *grid = NULL;
	int rc;

	GS_CHECK_ARG(dev != NULL && id != NULL && cb != NULL);
	rc = row_grid(dev, "household", id, &grid);
	gs__free(dev->ctx, grid);
	if (rc == GS_OK)
		rc = gs__rows_query(
			dev, "household", cb, payload,
			"SELECT h.*, (SELECT into_id FROM merged_into"
			" m WHERE m.id = h.id AND m.deleted = 0) AS"
			" merged_into FROM household h WHERE id = ?",
			params);
	if (rc == GS_OK)
		rc = gs__rows_query(
			dev, "resident", cb, payload,
			"SELECT id, name, gender, birth_date, relation,"
			" id_no_masked, presence, (SELECT into_id FROM"
			" merged_into m WHERE m.id = resident.id AND"
			" m.deleted = 0) AS merged_into FROM resident"
			" WHERE household_id = ? AND deleted = 0 ORDER BY id",
			params);
	if (rc == GS_OK)
		rc = gs__rows_query(
			dev, "visit", cb, payload,
			"SELECT id, kind, outcome, started_at, worker_id,"
			" hlc IN (SELECT printf('%016x', hlc) FROM gs_outbox)"
			" AS pending FROM visit"
			" WHERE (household_id = ?1 OR household_id IN (SELECT"
			" id FROM merged_into WHERE into_id = ?1 AND deleted ="
			" 0)) AND deleted = 0 ORDER BY started_at DESC LIMIT 5",
			params);
	return rc;
}

/* ---- visits ----------------------------------------------------------- */

static bool one_of(const char *v, const char *const *allowed)
{
	for (int i = 0; v != NULL && allowed[i] != NULL; i++)
		if (strcmp(v, allowed[i]) == 0)
			return true;
	return false;
}

static const char *const visit_kinds[] = { "routine",         "care",
					   "follow_up",       "mobilization",
					   "info_collection", NULL };
static const char *const visit_outcomes[] = { "met",   "not_home", "refused",
					      "moved", "vacant",   NULL };

/* Inserting a visit: one cached statement that also finds the household's
 * grid and checks the scope (gs_in_scope), because the save path is the
 * hottest path on the handheld. When it inserts nothing, visit_refused()
 * finds out why. */
static const char visit_sql[] =
	"INSERT INTO visit (id, household_id, grid_id, worker_id, kind,"
	" started_at, lat, lng, outcome, answers, summary, hlc, origin,"
	" created_at) SELECT ?1, h.id, h.grid_id, ?2, ?3, ifnull(?4, ?10),"
	" ?5, ?6, ?7, ?8, ?9, ?11, ?12, ?10 FROM household h"
	" WHERE h.id = ?13 AND h.deleted = 0 AND gs_in_scope(h.grid_id)";

static int visit_refused(struct gs_device *dev, const char *household_id)
{
	char *grid = NULL;
	int rc = row_grid(dev, "household", household_id, &grid);

	if (rc == GS_OK)
		rc = gs__check_scope(dev, grid);
	gs__free(dev->ctx, grid);
	return rc != GS_OK ? rc
			   : gs__err(dev->ctx, GS_ERROR,
				     "visit: the household changed meanwhile");
}

int gs_visit_add(struct gs_device *dev,
		 char id_out[GS_ID_LEN],
		 const struct gs_visit_opts *o)
{
	char id[GS_ID_LEN];
	struct gs_txn txn;
	sqlite3_stmt *st = NULL;
	int64_t t;
	int rc;

	GS_CHECK_ARG(dev != NULL && id_out != NULL && o != NULL);
	if (o->version != GS_VISIT_OPTS_VERSION)
		return gs__err(dev->ctx, GS_EINVAL, "unknown options version");
	if (o->household_id == NULL)
		return gs__err(dev->ctx, GS_EINVAL,
			       "visit: a household is "
			       "required");
	if (!one_of(o->kind, visit_kinds))
		return gs__err(dev->ctx, GS_EINVAL,
			       "visit: kind must be routine, care, follow_up, "
			       "mobilization or info_collection");
	if (!one_of(o->outcome, visit_outcomes))
		return gs__err(dev->ctx, GS_EINVAL,
			       "visit: outcome must be met, not_home, refused, "
			       "moved or vacant");
	if (o->started_at != NULL && gs__time_parse(&t, o->started_at) != GS_OK)
		return gs__err(dev->ctx, GS_EINVAL,
			       "visit: start time must look like "
			       "2025-03-01T08:30:00.000Z");
	if ((o->summary != NULL && !gs__utf8_valid((const uint8_t *)o->summary,
						   strlen(o->summary))) ||
	    (o->answers != NULL &&
	     !gs__utf8_valid((const uint8_t *)o->answers, strlen(o->answers))))
		return gs__err(dev->ctx, GS_EINVAL,
			       "visit: text is not valid UTF-8");
	if (dev->worker_id == NULL)
		return gs__err(dev->ctx, GS_EINVAL,
			       "this device has no worker: initialise it with "
			       "--worker");
	rc = gs__new_id(dev, id);
	if (rc == GS_OK)
		rc = gs__txn_begin(dev, &txn);
	if (rc != GS_OK)
		return rc;
	rc = gs__stmt(dev, visit_sql, &st);
	if (rc == GS_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, dev->worker_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, o->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, o->started_at, -1, SQLITE_STATIC);
		if (o->has_location) {
			sqlite3_bind_double(st, 5, o->lat);
			sqlite3_bind_double(st, 6, o->lng);
		}
		sqlite3_bind_text(st, 7, o->outcome, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, o->answers, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, o->summary, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, txn.now, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, txn.hlc_text, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 12, dev->device_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 13, o->household_id, -1, SQLITE_STATIC);
		rc = gs__db_step_done(dev->ctx, dev->db, st);
		if (rc != GS_OK)
			rc = gs__write_err(dev, rc, "visit");
		else if (sqlite3_changes(dev->db) == 0)
			rc = visit_refused(dev, o->household_id);
	}
	gs__stmt_done(st);
	if (rc == GS_OK)
		rc = gs__txn_commit(dev);
	else
		gs__txn_rollback(dev);
	if (rc == GS_OK)
		memcpy(id_out, id, GS_ID_LEN);
	return rc;
}
