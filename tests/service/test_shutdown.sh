# test_shutdown.sh: SIGTERM drains; a second signal exits at once.

test_sigterm_during_append_burst_keeps_every_acknowledged_append() {
    start_daemon
    "$TOOL" burst "$ADDR" 4 "$T/go" >burst.out 2>&1 &
    BURST=$!
    wait_for "[ -f $T/go ]" 10 || fail "the burst did not start: $(cat burst.out)"
    kill -TERM $PID
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "evstored exit status $STATUS: $(tail -n 20 daemon.log)"
    wait $BURST; rc=$?
    cat burst.out
    [ $rc -eq 0 ] || fail "acknowledged appends were lost"
    grep -q 'drained; exiting' daemon.log || fail "no drain: $(cat daemon.log)"
}

test_subscribers_get_a_closing_push() {
    start_daemon
    "$TOOL" watch "$ADDR" >watch.out &
    WATCH=$!
    wait_for "grep -q '\"sub\"=>' watch.out" || fail "no subscribe reply: $(cat watch.out)"
    "$TOOL" op "$ADDR" stats | grep -q '"subscribers"=>1' || fail "subscriber not counted"
    kill -TERM $PID
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
    wait $WATCH
    grep -q '"closing"=>true' watch.out || fail "no closing push: $(cat watch.out)"
    tail -n 1 watch.out | grep -q eof || fail "connection not closed"
}

test_drain_gives_up_after_shutdown_timeout() {
    start_daemon --shutdown-timeout 1
    "$TOOL" stall "$ADDR" >stall.out &
    echo $! >>"$T/pids"
    wait_for "grep -q stalled stall.out" 10 || fail "stall did not start"
    wait_for daemon_output_stuck 10 || fail "the daemon holds no output for the stalled client"
    start=$(date +%s%N)
    kill -TERM $PID
    wait_exit $PID 10
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
    grep -q 'shutdown_timeout passed' daemon.log || fail "no deadline message: $(cat daemon.log)"
    [ $ms -ge 900 ] || fail "exited after $ms ms, before the deadline"
}

test_second_sigterm_exits_at_once() {
    start_daemon --shutdown-timeout 60
    "$TOOL" stall "$ADDR" >stall.out &
    echo $! >>"$T/pids"
    wait_for "grep -q stalled stall.out" 10 || fail "stall did not start"
    wait_for daemon_output_stuck 10 || fail "the daemon holds no output for the stalled client"
    kill -TERM $PID
    wait_for "grep -q draining daemon.log" || fail "no drain"
    sleep 0.5
    kill -0 $PID 2>/dev/null || fail "exited before the second signal"
    kill -TERM $PID
    wait_exit $PID 3
    [ $STATUS -eq 1 ] || fail "exit status $STATUS, expected 1"
    grep -q 'second signal' daemon.log || fail "not logged"
}

test_sigterm_during_append_burst_on_postgresql_commits_every_acknowledged_append() {
    ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 ||
        skip "no PostgreSQL server installed: the PostgreSQL drain is NOT tested"
    url=$("$ROOT/scripts/pg-cluster.sh" start "$T/pg") || fail "cannot start PostgreSQL"
    trap '"$ROOT/scripts/pg-cluster.sh" stop "$T/pg" >/dev/null 2>&1' EXIT
    start_daemon --store "$url"
    wait_for "$TOOL op $ADDR read-all" 30 || fail "the store does not serve: $(cat daemon.log)"
    "$TOOL" burst "$ADDR" 4 "$T/go" >burst.out 2>&1 &
    BURST=$!
    wait_for "[ -f $T/go ]" 20 || fail "the burst did not start: $(cat burst.out)"
    kill -TERM $PID
    wait_exit $PID 20
    [ $STATUS -eq 0 ] || fail "evstored exit status $STATUS: $(tail -n 20 daemon.log)"
    wait $BURST || fail "burst: $(cat burst.out)"
    cat burst.out
    # A new daemon on the same database must find every acknowledged position committed.
    start_daemon --store "$url"
    "$EVSTORE" -s "$ADDR" all | grep -o '"position":[0-9]*' | cut -d: -f2 | sort -n >stored.txt
    sort -n "$T/go.acks" >acked.txt
    missing=$(comm -23 acked.txt stored.txt | wc -l)
    echo "acked $(wc -l <acked.txt), stored $(wc -l <stored.txt), missing $missing"
    [ "$missing" -eq 0 ] || fail "acknowledged appends missing from PostgreSQL"
    [ -s acked.txt ] || fail "nothing was acknowledged"
}
