#!/bin/sh
# run.sh: the service tests (systemd readiness, reload, drain, config check, install,
# unit file, man pages, stats). Usage: tests/service/run.sh BUILD_DIR (default build/san).
# Each test_* function of the scripts beside this one runs in a subshell with its own temporary
# directory and daemon; the last line is "service: N passed, N failed"; exit 1 if any failed.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build/san}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export ROOT BUILD
. "$HERE/lib.sh"
for f in "$HERE"/test_*.sh; do . "$f"; done

only=${SERVICE_TESTS:-}   # e.g. SERVICE_TESTS="test_reload_valid test_notify_ready"
# SERVICE_VERBOSE=1 prints the output of passing tests too.
passed=0 failed=0
for t in $(grep -ho '^test_[a-z0-9_]*()' "$HERE"/test_*.sh | tr -d '()'); do
    if [ -n "$only" ] && ! echo " $only " | grep -q " $t "; then continue; fi
    T=$(mktemp -d /tmp/evs-svc.XXXXXX) && chmod 755 "$T"  # PostgreSQL runs as postgres
    ( export T; cd "$T" && "$t" ) >"$T/out" 2>&1
    rc=$?
    ( export T; cleanup_daemons ) >/dev/null 2>&1
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1)); echo "PASS $t"
        [ -n "${SERVICE_VERBOSE:-}" ] && sed 's/^/    /' "$T/out"
        rm -rf "$T"
    elif [ $rc -eq 77 ]; then
        passed=$((passed + 1)); echo "SKIP $t: $(tail -n 1 "$T/out")"; rm -rf "$T"
    else
        failed=$((failed + 1)); echo "FAIL $t"; sed 's/^/    /' "$T/out" | tail -n 40
        echo "    (kept $T)"
    fi
done
echo "service: $passed passed, $failed failed"
[ $failed -eq 0 ]
