#!/bin/sh
# Banned calls outside tests and the CLI's own output code: allocation must
# go through gs__malloc and friends (the context allocator), and the unsafe
# string calls never. A line may opt out with a "checksrc:" comment.
set -eu
cd "$(dirname "$0")/.."
pattern='(^|[^_a-z0-9.>])(malloc|calloc|realloc|free|strdup|strndup|sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)[[:space:]]*\('
bad=$(git ls-files 'platform/*.c' 'proto/*.c' 'sync/*.c' 'client/*.c' |
	grep -v -e '^client/cli/' -e '^platform/err.c' |
	xargs grep -nE "$pattern" | grep -v 'checksrc:' || true)
if [ -n "$bad" ]; then
	echo "banned calls (use gs__malloc/gs__free/gs__strdup/snprintf):" >&2
	echo "$bad" >&2
	exit 1
fi
# Public headers must not include private ones.
bad=$(grep -nE '#include "' client/include/gridsync/*.h platform/include/gridsync/err.h platform/include/gridsync/ctx.h || true)
if [ -n "$bad" ]; then
	echo "public headers include private headers:" >&2
	echo "$bad" >&2
	exit 1
fi
echo "checksrc: ok"
