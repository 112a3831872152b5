#!/bin/sh
# build-deb.sh [OUT]: builds the Debian packages of debian/ (`make deb`) into OUT (default
# build/deb): evstore, libevstore1, libevstore-dev (and their -dbgsym), the source package
# (.dsc, .orig.tar.xz, .debian.tar.xz) and the .changes.
#
# It builds from a copy of the working tree's files that git knows of (tracked or new, not
# ignored; changes not yet committed included) in OUT/evstore-VERSION, because
# dpkg-buildpackage writes its results next to the tree it builds and cleans the tree first.
# The orig tarball is that copy without debian/. Tests are not run (debian/rules); the build
# runs two jobs (JOBS=N for more).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/build/deb}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
JOBS=${JOBS:-2}

command -v dpkg-buildpackage >/dev/null || {
    echo "build-deb: dpkg-buildpackage is missing (scripts/install-deps.sh test installs it)" >&2
    exit 1
}
git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 || {
    echo "build-deb: $ROOT is not a git checkout: the files to package are the ones git knows" >&2
    exit 1
}
version=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
upstream=${version%-*}
src=$OUT/evstore-$upstream

rm -rf "$OUT"
mkdir -p "$src"
cd "$ROOT"
git ls-files --cached --others --exclude-standard | while IFS= read -r f; do
    # A file deleted in the working tree (not yet committed) is left out.
    if [ -e "$f" ]; then printf '%s\n' "$f"; fi
done >"$OUT/files"
tar -cf - -T "$OUT/files" | tar -xf - -C "$src"
rm -f "$OUT/files"
tar -C "$OUT" --exclude="evstore-$upstream/debian" --sort=name --owner=0 --group=0 \
    -cJf "$OUT/evstore_$upstream.orig.tar.xz" "evstore-$upstream"

cd "$src"
# The Makefile's variables from the caller's environment (BUILD=build/san, SAN=1) must not
# reach the package build; debian/rules sets what it needs.
unset BUILD SAN PREFIX LIBDIR SYSCONFDIR DESTDIR
DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -J"$JOBS"
ls "$OUT"/*.deb
