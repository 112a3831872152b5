#!/usr/bin/env bash
# run.sh BUILD_DIR SECONDS [NAME...]: runs the libFuzzer harnesses of BUILD_DIR/fuzz (made by
# `make fuzz-build`; all of them unless NAMEs are given, e.g. `request config`). Each runs over
# its checked-in corpus (tests/fuzz/corpus/NAME) and then on new inputs for SECONDS (with the
# words of tests/fuzz/dict/NAME.dict), under
# AddressSanitizer and UBSan. New inputs go to a temporary directory, never into the checked-in
# corpus. A crash, leak, timeout or broken promise (FUZZ_CHECK) fails the harness; its input is
# kept in BUILD_DIR/fuzz/artifacts/NAME/ and the report is printed.
#
# One line per harness, with libFuzzer's count of inputs run ("Done N runs in S second(s)"), and
# a last line "fuzz: N passed, N failed" (scripts/run-tests.sh counts it). Exits 1 when anything
# failed. FUZZ_VERBOSE=1 shows libFuzzer's own output as it runs; FUZZ_ARGS adds options.
set -u

build=${1:?usage: run.sh BUILD_DIR SECONDS [NAME...]}
build=${build%/}
secs=${2:?usage: run.sh BUILD_DIR SECONDS [NAME...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$here"/fuzz_*.c; do
        n=$(basename "$f" .c)
        n=${n#fuzz_}
        # The auth_file parser is only there once server/auth.h is (the Makefile says the same).
        [ "$n" = auth_file ] && [ ! -e "$root/server/auth.h" ] && continue
        names+=("$n")
    done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

passed=0
failed=0
for n in "${names[@]}"; do
    bin="$build/fuzz/fuzz_$n"
    corpus="$root/tests/fuzz/corpus/$n"
    if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
        echo "fuzz $n: FAILED: $bin or $corpus is missing (make BUILD=$build fuzz-build)"
        failed=$((failed + 1))
        continue
    fi
    mkdir -p "$tmp/$n" "$build/fuzz/artifacts/$n"
    log="$tmp/$n.log"
    dict=()
    [ -f "$here/dict/$n.dict" ] && dict=(-dict="$here/dict/$n.dict")
    # shellcheck disable=SC2086
    cmd=("$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$build/fuzz/artifacts/$n/" "${dict[@]}" ${FUZZ_ARGS:-} "$tmp/$n"
        "$corpus")
    if [ "${FUZZ_VERBOSE:-0}" = 1 ]; then
        "${cmd[@]}" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
    else
        "${cmd[@]}" >"$log" 2>&1
        rc=$?
    fi
    runs=$(grep -a '^Done [0-9]* runs' "$log" | tail -n 1)
    [ -z "$runs" ] && runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1 runs/p' "$log")
    seeds=$(ls "$corpus" | wc -l)
    found=$(ls "$tmp/$n" | wc -l)
    if [ "$rc" -eq 0 ] && [ -n "$runs" ]; then
        echo "fuzz $n: ok: $runs ($seeds seeds, $found new inputs kept)"
        passed=$((passed + 1))
    else
        echo "fuzz $n: FAILED (exit status $rc): ${runs:-no final stats}; libFuzzer said:"
        grep -av '^#[0-9]\|^INFO:' "$log" | tail -n 60
        echo "fuzz $n: the input is in $build/fuzz/artifacts/$n/; replay it with $bin FILE"
        failed=$((failed + 1))
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
