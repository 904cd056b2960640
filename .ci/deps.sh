#!/bin/sh
# Install the Debian packages the build and tests need, if any is missing.
# Quiet and quick when everything is there; needs root to install.
set -eu
pkgs="cmake make gcc pkg-config git libsqlite3-dev sqlite3 libuv1-dev libgit2-dev
libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libssl-dev libzstd-dev
clang clang-format libclang-rt-14-dev valgrind faketime"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "install them with: sudo apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
