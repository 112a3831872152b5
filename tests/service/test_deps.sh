# test_deps.sh: scripts/install-deps.sh's package sets: `make run` installs only what building
# and running needs, `make test` the rest.

test_run_deps_hold_no_test_tool() {
    run=$("$ROOT/scripts/install-deps.sh" --list run) || fail "--list run failed"
    [ -n "$run" ] || fail "--list run printed nothing"
    for p in libuv1-dev libpq-dev libmsgpack-dev; do
        echo "$run" | grep -qx "$p" || fail "the run set lacks $p: $run"
    done
    bad=$(echo "$run" | grep -E '^(postgresql(-[0-9]+)?|systemd|man-db|libcriterion-dev|clang(-[0-9]+)?|clang-format(-[0-9]+)?|libclang-rt.*)$')
    [ -z "$bad" ] || fail "the run set installs test tools: $bad"
}

test_test_deps_are_the_run_deps_and_the_test_tools() {
    run=$("$ROOT/scripts/install-deps.sh" --list run) || fail "--list run failed"
    all=$("$ROOT/scripts/install-deps.sh" --list test) || fail "--list test failed"
    for p in $run; do echo "$all" | grep -qx "$p" || fail "the test set lacks $p"; done
    for p in libcriterion-dev postgresql man-db; do
        echo "$all" | grep -qx "$p" || fail "the test set lacks $p"
    done
    "$ROOT/scripts/install-deps.sh" --list bogus >out.txt 2>&1; rc=$?
    [ $rc -eq 2 ] || fail "--list bogus: exit $rc"
}

test_make_run_depends_on_deps_run_only() {
    line=$(grep -E '^run:' "$ROOT/Makefile") || fail "no run target in the Makefile"
    echo "$line" | grep -qw 'deps-run' || fail "run does not depend on deps-run: $line"
    echo "$line" | grep -qE '(^| )deps( |$)' && fail "run depends on deps (the test set): $line"
    grep -A1 -E '^deps-run:' "$ROOT/Makefile" | grep -q 'install-deps.sh run' ||
        fail "deps-run does not install the run set"
}
