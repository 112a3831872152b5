#!/usr/bin/env bash
# run-tests.sh BUILD_DIR: runs every test binary of a build (normally build/san, made with
# ASan+UBSan by `make test`) and ends with one summary line "N passed, N failed".
#
#   scripts/check-format.sh       every C file formatted as .clang-format says
#   BUILD_DIR/tests/unit          framing and codec (Criterion)
#   BUILD_DIR/tests/store         the store conformance suite, on EVSTORE_TEST_STORE=memory
#   BUILD_DIR/tests/integration   a real BUILD_DIR/bin/evstored per test (EVSTORED_BIN)
#   tests/service/run.sh          the daemon as a service (shell scripts and BUILD_DIR/tests/svc-tool)
#   tests/fuzz/run.sh             the libFuzzer harnesses of BUILD_DIR/fuzz, 10 s of new inputs each
#   then, on one throwaway PostgreSQL cluster, the store suite and the integration tests again
#   with EVSTORE_TEST_STORE=postgresql://..., and BUILD_DIR/tests/pg (PostgreSQL faults)
#
# Counts come from each binary's Criterion "Synthesis" line. A test whose .init or .fini
# crashed (the store and unit suites abort there on a leak or on handles left open) counts as
# failed even though Criterion counts it as passing; a binary that is missing, prints no
# synthesis or exits non-zero without a failing test counts as one failure. Exits 1 when
# anything failed.
#
# Environment: EVSTORE_TEST_JOBS (Criterion --jobs, default 2), EVSTORE_TEST_TIMEOUT (seconds per
# binary, default 900), EVSTORE_TEST_FUZZ_SECONDS (new inputs per harness, default 10),
# EVSTORE_TEST_LOG_LEVEL (the daemons' --log-level, default warn), and
# ASAN_OPTIONS / UBSAN_OPTIONS, which are appended to ours.
set -u

build=${1:?usage: run-tests.sh BUILD_DIR}
build=${build%/}
jobs=${EVSTORE_TEST_JOBS:-2}
limit=${EVSTORE_TEST_TIMEOUT:-900}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Criterion ignores how a test's worker process exits, so a leak report when a worker exits
# fails nothing: the unit and store suites check for leaks in each test's .fini instead (and crash
# there, which is counted below), and a daemon that leaks exits non-zero, which fails its test.
# Criterion's runner process (which runs no code of ours) sometimes leaks at exit: that report
# and the exit status it causes are ignored.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

total_passed=0
total_failed=0
summaries=()

# run_suite LABEL BINARY [VAR=VALUE...]: runs one Criterion binary with the variables set and
# adds its counts to the totals.
run_suite() {
    local label=$1 bin=$2
    shift 2
    local log="$tmp/log" passed=0 failed=0 note=""
    echo "==== $label: $bin"
    if [ ! -x "$bin" ]; then
        echo "run-tests: $bin is missing (make BUILD=$build SAN=1 all tests)" >&2
        summaries+=("$label: missing binary")
        total_failed=$((total_failed + 1))
        return
    fi
    # The runner writes its pid (sh execs env, which execs the binary) so that its own
    # sanitizer reports can be told from those of test processes.
    timeout --kill-after=10 "$limit" \
        sh -c 'echo $$ >"$0"; exec "$@"' "$tmp/pid" env "$@" "$bin" --jobs "$jobs" 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]} pid
    pid=$(cat "$tmp/pid" 2>/dev/null)
    [ "$rc" -eq 124 ] && echo "run-tests: $bin still running after $limit s: killed" >&2

    # Criterion colours its output on a terminal only, but strip colours anyway.
    sed -i 's/\x1b\[[0-9;]*m//g' "$log"
    local synth
    synth=$(grep -a 'Synthesis: Tested:' "$log" | tail -n 1)
    if [ -z "$synth" ]; then
        failed=1
        note=" (no Criterion synthesis: exit status $rc)"
    else
        local tested passing
        tested=$(sed -n 's/.*Tested: *\([0-9]*\).*/\1/p' <<<"$synth")
        passing=$(sed -n 's/.*Passing: *\([0-9]*\).*/\1/p' <<<"$synth")
        # Tests that crashed in .init/.fini but that Criterion counted as passing.
        grep -a '^\[FAIL\] ' "$log" | sed 's/^\[FAIL\] \([^ ]*\): .*/\1/' | sort -u >"$tmp/failed"
        grep -a 'crashed during its setup or teardown' "$log" |
            sed -n 's/.*The test `\([^`]*\)`.*/\1/p' | sort -u >"$tmp/crashed"
        local extra
        extra=$(comm -13 "$tmp/failed" "$tmp/crashed" | grep -c . || true)
        if [ "$extra" -gt 0 ]; then
            note=" ($extra crashed in setup or teardown:"$(comm -13 "$tmp/failed" "$tmp/crashed" |
                tr '\n' ' ' | sed 's/ $//; s/^/ /')")"
        fi
        passed=$((passing - extra))
        failed=$((tested - passing + extra))
        if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
            if [ -n "$pid" ] && grep -aq "^==$pid==ERROR: LeakSanitizer" "$log" &&
                ! grep -aq "^==$pid==ERROR: AddressSanitizer" "$log"; then
                note=" (Criterion's runner leaked at exit: ignored)"
            else
                failed=1
                note=" (exit status $rc with no failing test)"
            fi
        fi
    fi
    summaries+=("$label: $passed passed, $failed failed$note")
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
}

# ---------------------------------------------------------------- format
# Every C file formatted as .clang-format says (scripts/check-format.sh): one test.
echo "==== format: scripts/check-format.sh"
if "$(dirname "$0")/check-format.sh"; then
    summaries+=("format: 1 passed, 0 failed")
    total_passed=$((total_passed + 1))
else
    summaries+=("format: 0 passed, 1 failed (make format)")
    total_failed=$((total_failed + 1))
fi

# ---------------------------------------------------------------- in-memory store

run_suite "unit" "$build/tests/unit"
run_suite "store (memory)" "$build/tests/store" EVSTORE_TEST_STORE=memory
run_suite "integration (memory)" "$build/tests/integration" \
    EVSTORED_BIN="$build/bin/evstored" EVSTORE_TEST_STORE=memory

# ---------------------------------------------------------------- service
# tests/service/run.sh: readiness over a fake NOTIFY_SOCKET, SIGHUP, SIGTERM drain,
# --check-config, make install + pkg-config, the examples built from the installed tree and run on
# both stores, unit file, man pages, stats. Its last line is
# "service: N passed, N failed"; no such line is one failure.
echo "==== service: tests/service/run.sh $build"
"$(dirname "$0")/../tests/service/run.sh" "$build" 2>&1 | tee "$tmp/service.log"
svc=$(sed -n 's/^service: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$tmp/service.log" | tail -n 1)
read -r svc_passed svc_failed <<<"${svc:-0 1}"
summaries+=("service: $svc_passed passed, $svc_failed failed")
total_passed=$((total_passed + svc_passed))
total_failed=$((total_failed + svc_failed))

# ---------------------------------------------------------------- fuzz
# tests/fuzz/run.sh: each libFuzzer harness of BUILD_DIR/fuzz over its checked-in corpus plus
# EVSTORE_TEST_FUZZ_SECONDS (default 10) of new inputs, under ASan and UBSan: one test per
# harness, failed by a crash, a leak or a broken promise. Its lines give the inputs each ran.
echo "==== fuzz: tests/fuzz/run.sh $build ${EVSTORE_TEST_FUZZ_SECONDS:-10}"
"$(dirname "$0")/../tests/fuzz/run.sh" "$build" "${EVSTORE_TEST_FUZZ_SECONDS:-10}" 2>&1 |
    tee "$tmp/fuzz.log"
fz=$(sed -n 's/^fuzz: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$tmp/fuzz.log" | tail -n 1)
read -r fz_passed fz_failed <<<"${fz:-0 1}"
summaries+=("fuzz: $fz_passed passed, $fz_failed failed")
while read -r line; do summaries+=("  $line"); done < <(grep -a '^fuzz [a-z_]*: ' "$tmp/fuzz.log")
total_passed=$((total_passed + fz_passed))
total_failed=$((total_failed + fz_failed))

# ---------------------------------------------------------------- PostgreSQL
# One throwaway cluster for the whole run (scripts/pg-cluster.sh: initdb as the postgres user
# into a temporary folder, a free port on 127.0.0.1, fsync off), removed at exit. The store suite uses a random name prefix per test, so
# one database serves all of it; the integration tests get a database of their own; tests/pg
# creates one per test and stops and restarts the server, so it runs last and with one job.
pgdir=$(mktemp -d /tmp/evstore-pg.XXXXXX)
trap 'scripts/pg-cluster.sh stop "$pgdir" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
if url=$(scripts/pg-cluster.sh start "$pgdir"); then
    echo "==== PostgreSQL cluster: $url ($pgdir)"
    run_suite "store (postgresql)" "$build/tests/store" EVSTORE_TEST_STORE="$url"
    psql "$url" -XqAtc "CREATE DATABASE evs_integration" >/dev/null
    run_suite "integration (postgresql)" "$build/tests/integration" \
        EVSTORED_BIN="$build/bin/evstored" EVSTORE_TEST_STORE="${url%/*}/evs_integration"
    saved_jobs=$jobs
    jobs=1
    run_suite "pg" "$build/tests/pg" EVSTORE_PG_URL="$url" EVSTORE_PG_DIR="$pgdir"
    jobs=$saved_jobs
else
    echo "run-tests: could not start a PostgreSQL cluster (scripts/pg-cluster.sh)" >&2
    summaries+=("postgresql: no cluster")
    total_failed=$((total_failed + 1))
fi
scripts/pg-cluster.sh stop "$pgdir" >/dev/null 2>&1

# ---------------------------------------------------------------- summary

echo
for s in "${summaries[@]}"; do echo "  $s"; done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
