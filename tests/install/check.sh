#!/bin/sh
# Install the build into a scratch prefix and build a program against it
# with pkg-config alone: the install rules ship the library, the public
# headers (and not the internal ones) and a gridsync.pc that works where
# it was installed.
set -eu
build=$1
extra=${2:-} # compiler flags of the build (a sanitizer runtime)
dest=$(mktemp -d "${TMPDIR:-/tmp}/gridsync-install-XXXXXX")
trap 'rm -rf "$dest"' EXIT
cmake --install "$build" --prefix "$dest" >/dev/null
pc=$(dirname "$(find "$dest" -name gridsync.pc | head -n 1)")
test -f "$dest/include/gridsync/gridsync.h"
test -f "$dest/include/gridsync/err.h"
if find "$dest/include" -name '*_internal.h' | grep -q .; then
	echo "internal headers were installed" >&2
	exit 1
fi
cat >"$dest/use.c" <<'C'
#include <gridsync/gridsync.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
	struct gs_ctx *ctx = NULL;
	if (gs_ctx_new(&ctx, NULL) != GS_OK)
		return 1;
	if (strcmp(gs_strerror(GS_ESTATE), "transition not allowed") != 0)
		return 2;
	gs_ctx_free(ctx);
	puts("installed library works");
	return 0;
}
C
# shellcheck disable=SC2046
# shellcheck disable=SC2086
cc -std=c11 -Wall -Werror $extra "$dest/use.c" -o "$dest/use" \
	$(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs --static gridsync)
"$dest/use"
