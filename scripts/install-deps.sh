#!/bin/sh
# install-deps.sh: installs the Debian packages evstore needs that are missing (build, tests, the
# PostgreSQL server for the tests). Does nothing when all are there; apt-get runs non-interactively
# and only then. Needs root (or sudo) only when something is missing.
set -eu
pkgs="gcc make pkg-config libuv1-dev libmsgpack-dev libpq-dev libcriterion-dev libjansson-dev
      uuid-dev uthash-dev libssl-dev openssl postgresql procps
      systemd man-db binutils
      clang-format-14"  # systemd-analyze, man --warnings, objdump: tests/service; the format check
missing=""
for p in $pkgs; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in *" installed") ;; *) missing="$missing $p" ;; esac
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null || $sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q --no-install-recommends $missing
