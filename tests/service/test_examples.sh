# test_examples.sh: the domain layer's examples (docs/examples/bank, kanban and saga),
# built as a user would: from an installed tree (make install DESTDIR=...) with pkg-config
# (PKG_CONFIG_SYSROOT_DIR, PKG_CONFIG_PATH), with ASan and UBSan, then run against a daemon on
# the memory store and on PostgreSQL. An example exits 0 only when every step of its session
# behaved; a leak or a sanitizer report makes it exit non-zero too.

# Installs $BUILD (the sanitized build of `make test`) into $T/stage and builds both examples
# there into $T/bank and $T/kanban.
build_examples() {
    command -v pkg-config >/dev/null || fail "pkg-config is not installed"
    stage=$T/stage
    case $BUILD in "$ROOT"/*) build=${BUILD#"$ROOT"/} ;; *) build=$BUILD ;; esac
    san=0
    [ -x "$BUILD/bin/evstored" ] && nm -D "$BUILD/lib/libevstore.so.1" 2>/dev/null |
        grep -q __asan && san=1
    make -s -C "$ROOT" BUILD="$build" SAN=$san DESTDIR="$stage" install >make.log 2>&1 ||
        { tail -n 30 make.log; fail "make install failed"; }
    export PKG_CONFIG_PATH=$stage/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
    flags=$(pkg-config --cflags --libs evstore) || fail "pkg-config does not know evstore"
    echo "pkg-config: $flags"
    case $flags in *"$stage"/usr/local/include*) ;; *) fail "the flags miss the stage" ;; esac
    for ex in bank kanban saga; do
        cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined "$ROOT/docs/examples/$ex/main.c" $flags \
            -o "$T/$ex" || fail "the $ex example did not build"
    done
}

# Runs both examples against the daemon at $ADDR.
run_examples() {
    for ex in bank kanban; do
        out=$(LD_LIBRARY_PATH=$stage/usr/local/lib "$T/$ex" --server "$ADDR" 2>&1)
        rc=$?
        echo "$out" | tail -n 5
        [ $rc -eq 0 ] || { echo "$out"; fail "the $ex example exited with $rc"; }
        echo "$out" | grep -q '^every step behaved$' || fail "the $ex example did not finish"
        ! echo "$out" | grep -q '^FAILED' || fail "a step of the $ex example failed"
    done
    LD_LIBRARY_PATH=$stage/usr/local/lib ldd "$T/bank" |
        grep -q "$stage/usr/local/lib/libevstore.so.1" || fail "the examples did not load the staged library"
}

test_examples_built_with_pkg_config_run_on_the_memory_store() {
    build_examples
    start_daemon --store memory
    run_examples
}

test_examples_built_with_pkg_config_run_on_postgresql() {
    ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
        fail "no PostgreSQL server installed (scripts/install-deps.sh)"
    build_examples
    url=$("$ROOT/scripts/pg-cluster.sh" start "$T/pg") || fail "cannot start PostgreSQL"
    trap '"$ROOT/scripts/pg-cluster.sh" stop "$T/pg" >/dev/null 2>&1' EXIT
    start_daemon --store "$url"
    wait_for "$TOOL op $ADDR read-all" 30 || fail "the store does not serve: $(cat daemon.log)"
    run_examples
}

# The saga example's process manager killed (kill -9) at 20 random moments and restarted while
# 1,000 transfers run between 10 accounts: afterwards every transfer is debited once and
# credited once, and the balances sum to what the accounts were opened with.
saga_kill_test() {
    sx() { LD_LIBRARY_PATH=$stage/usr/local/lib "$T/saga" --server "$ADDR" --run "k$$" "$@"; }
    started=$(date +%s)
    sx setup 10 || fail "the saga setup failed"
    sx transfers 10 1000 >transfers.log 2>&1 &
    tpid=$!
    for round in $(seq 20); do
        before=$(sx progress) || fail "no progress: $(cat pm.log)"
        # exec: $! is the process manager itself, not a shell around it.
        (LD_LIBRARY_PATH=$stage/usr/local/lib exec "$T/saga" --server "$ADDR" --run "k$$" pm \
            2>>pm.log) &
        pm=$!
        # Until it has credited something (or every debit so far is credited and the transfers
        # are over), then a random moment of up to 100 ms, then kill -9.
        wait_for "[ \$(sx progress) -gt $before ] || ! kill -0 $tpid" 30 ||
            fail "round $round: the process manager made no progress: $(tail -n 5 pm.log)"
        sleep "0.0$(( $(od -An -N1 -tu1 /dev/urandom) % 10 ))" # the random moment
        kill -9 $pm || fail "round $round: the process manager was gone: $(tail -n 5 pm.log)"
        wait $pm 2>/dev/null
        echo "round $round: killed at checkpoint $(sx progress)"
    done
    wait $tpid || fail "the transfers failed: $(cat transfers.log)"
    (LD_LIBRARY_PATH=$stage/usr/local/lib exec "$T/saga" --server "$ADDR" --run "k$$" pm \
        2>>pm.log) &
    pm=$!
    out=$(sx check 10 1000 2>&1)
    rc=$?
    kill $pm 2>/dev/null
    wait $pm 2>/dev/null
    echo "$out"
    [ $rc -eq 0 ] || fail "the saga check exited with $rc"
    echo "$out" | grep -q '^every step behaved$' || fail "the saga check did not finish"
    echo "saga kill test: 20 kills, $(( $(date +%s) - started )) s"
}

test_saga_example_survives_kill_9_of_its_process_manager_on_the_memory_store() {
    build_examples
    start_daemon --store memory
    saga_kill_test
}

test_saga_example_survives_kill_9_of_its_process_manager_on_postgresql() {
    ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
        fail "no PostgreSQL server installed (scripts/install-deps.sh)"
    build_examples
    url=$("$ROOT/scripts/pg-cluster.sh" start "$T/pg") || fail "cannot start PostgreSQL"
    trap '"$ROOT/scripts/pg-cluster.sh" stop "$T/pg" >/dev/null 2>&1' EXIT
    start_daemon --store "$url"
    wait_for "$TOOL op $ADDR read-all" 30 || fail "the store does not serve: $(cat daemon.log)"
    saga_kill_test
}
