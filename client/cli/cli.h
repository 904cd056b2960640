/* Private to the gridsync CLI. */
#ifndef GS_CLI_H
#define GS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <gridsync/gridsync.h>

/* Exit codes: 0 success, 1 the operation failed, 2 bad usage. */
#define CLI_FAIL  1
#define CLI_USAGE 2

/* Collects rows grouped by kind, then prints them as text or JSON. */
struct printer;

struct printer *printer_new(bool json, bool table);
void printer_free(struct printer *p);
/* Make kind appear (as an empty list) even when no row comes. */
void printer_expect(struct printer *p, const char *kind);
/* A gs_row_cb: payload is the printer. */
int printer_row(const struct gs_row *row, void *payload);
/* Add a scalar to the JSON object / a "name: value" line to the text. */
void printer_field(struct printer *p,
		   const char *name,
		   const char *value,
		   bool quoted);
void printer_flush(struct printer *p, FILE *out);

/* gridsync inspect FILE|- [--json] [--upload] (inspect.c): argv holds
 * the arguments after the command; no database is needed. Returns the
 * exit code. */
int cmd_inspect(struct gs_ctx *ctx, bool json, int argc, char **argv);

#endif
