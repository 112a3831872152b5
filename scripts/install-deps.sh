#!/bin/sh
# install-deps.sh [run|test]: installs the Debian packages evstore needs that are missing.
# install-deps.sh --list run|test: prints that set's packages, one a line, and installs nothing.
#
#   run   what building and running the daemon, the library and the CLI need (`make run`)
#   test  that plus what the tests need (`make test`, the default): Criterion, a PostgreSQL
#         server for the throwaway test cluster, systemd-analyze and man for the service tests,
#         clang-format and libFuzzer, the Prometheus text parser of the metrics test, and
#         debhelper and lintian for the package test
#
# Does nothing when all are there; apt-get runs non-interactively and only then. Needs root (or
# sudo) only when something is missing.
set -eu
list=no
if [ "${1:-}" = --list ]; then
    list=yes
    shift
    [ $# -eq 1 ] || { echo "usage: install-deps.sh --list run|test" >&2; exit 2; }
fi
what=${1:-test}
run_pkgs="gcc make pkg-config libuv1-dev libmsgpack-dev libpq-dev libjansson-dev
          uuid-dev uthash-dev libssl-dev libhttp-parser-dev"
test_pkgs="libcriterion-dev openssl postgresql procps
           systemd man-db binutils
           clang-format-14
           clang-14 libclang-rt-14-dev
           python3 python3-prometheus-client
           debhelper dpkg-dev fakeroot lintian"
case $what in
run) pkgs=$run_pkgs ;;
test) pkgs="$run_pkgs $test_pkgs" ;;
*) echo "usage: install-deps.sh [--list] [run|test]" >&2; exit 2 ;;
esac
if [ $list = yes ]; then
    # shellcheck disable=SC2086
    printf '%s\n' $pkgs
    exit 0
fi
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
