# test_health.sh: evstore health and the store's condition in stats, on the memory store and on a
# PostgreSQL address where nothing listens (tests/pg covers the other broken PostgreSQL cases).

test_health_of_a_memory_store_is_ok() {
    start_daemon
    out=$("$EVSTORE" -s "$ADDR" health)
    rc=$?
    [ $rc -eq 0 ] || fail "health exited $rc: $out"
    [ "$out" = "ok" ] || fail "health said: $out"
    "$TOOL" op "$ADDR" health | grep -qF '"status"=>"ok"' || fail "the health op"
    "$TOOL" op "$ADDR" stats | grep -qF '"store_reason"=>""' || fail "stats lack store_reason"
}

test_health_of_an_unreachable_postgresql_is_down() {
    start_daemon --store "postgresql://evstore@127.0.0.1:1/evstore"
    wait_for '"$EVSTORE" -s "$ADDR" health | grep -q "^down: PostgreSQL is not reachable"' ||
        fail "health: $("$EVSTORE" -s "$ADDR" health)"
    "$EVSTORE" -s "$ADDR" health >/dev/null
    rc=$?
    [ $rc -eq 2 ] || fail "health exited $rc"
    "$TOOL" op "$ADDR" stats | grep -qF '"store_reason"=>"PostgreSQL is not reachable' ||
        fail "stats: $("$TOOL" op "$ADDR" stats)"
    [ "$(grep -c 'store: down:' daemon.log)" -eq 1 ] || fail "logged: $(cat daemon.log)"
}

test_health_of_a_daemon_that_does_not_answer_is_down() {
    # Nothing listens on port 1.
    out=$("$EVSTORE" -s 127.0.0.1:1 health)
    rc=$?
    [ $rc -eq 2 ] || fail "health exited $rc: $out"
    case $out in "down: cannot reach the daemon"*) ;; *) fail "health said: $out" ;; esac
}
