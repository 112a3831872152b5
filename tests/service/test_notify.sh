# test_notify.sh: the systemd readiness protocol, against a NOTIFY_SOCKET the test owns.

test_notify_ready_then_stopping_on_sigterm() {
    start_notify
    start_daemon
    wait_notify '^READY=1 STATUS=serving'
    kill -TERM $PID
    wait_notify '^STOPPING=1 STATUS=draining'
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
    ready=$(grep -n '^READY=1' notify.log | head -n 1 | cut -d: -f1)
    stopping=$(grep -n '^STOPPING=1' notify.log | cut -d: -f1)
    [ "$ready" -lt "$stopping" ] || fail "STOPPING=1 came before READY=1"
}

test_notify_reloading_then_ready_on_sighup() {
    printf 'log_level = info\n' >evstored.conf
    start_notify
    start_daemon --config "$T/evstored.conf"
    wait_notify '^READY=1'
    kill -HUP $PID
    wait_notify '^READY=1' 2
    lines=$(grep -E '^(READY|RELOADING)=1' notify.log | cut -c1-11 | tr '\n' ' ')
    case $lines in "READY=1 STA RELOADING=1 READY=1 STA ") ;;
        *) cat notify.log; fail "expected READY, RELOADING, READY; got: $lines" ;; esac
    grep -q '^RELOADING=1 MONOTONIC_USEC=[0-9]*$' notify.log || fail "RELOADING=1 without MONOTONIC_USEC"
}

test_notify_abstract_socket_name() {
    start_notify "@evstore-test-$$-$(date +%s%N)"
    start_daemon
    wait_notify '^READY=1'
}

test_notify_status_lines_repeat() {
    start_notify
    start_daemon --status-interval 1
    wait_notify '^READY=1'
    wait_notify '^STATUS=serving; [0-9]+ connections' 2
}

test_no_notify_socket_is_fine() {
    unset NOTIFY_SOCKET
    start_daemon
    kill -TERM $PID
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
    ! grep -q 'notify' daemon.log || fail "complained about notifications: $(cat daemon.log)"
}

test_notify_not_ready_while_the_store_cannot_serve() {
    start_notify
    # Nothing listens on port 1: the PostgreSQL store keeps retrying and never serves.
    start_daemon --store postgresql://evstore@127.0.0.1:1/evstore --request-timeout 1
    wait_notify '^STATUS=waiting for the store'
    sleep 1.5
    ! grep -q 'READY=1' notify.log || fail "READY=1 sent while the store cannot serve"
    "$TOOL" op "$ADDR" stats | grep -q '"store_state"=>"unavailable"' || fail "store_state"
    kill -TERM $PID
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
}

test_notify_ready_again_after_a_failed_reload() {
    printf 'log_level = info\n' >evstored.conf
    start_notify
    start_daemon --config "$T/evstored.conf"
    wait_notify '^READY=1'
    printf 'log_level = loud\n' >evstored.conf
    kill -HUP $PID
    wait_notify '^READY=1' 2
    grep -q '^RELOADING=1' notify.log || fail "no RELOADING=1"
    grep -q 'reload failed' daemon.log || fail "reload did not fail: $(cat daemon.log)"
}

# WatchdogSec=: systemd sets WATCHDOG_USEC and expects WATCHDOG=1 from the loop at least that
# often (evstored sends it every half of it).
test_notify_watchdog_keep_alives_repeat() {
    start_notify
    t0=$(date +%s%N)
    WATCHDOG_USEC=400000 start_daemon
    wait_notify '^READY=1'
    wait_notify '^WATCHDOG=1$' 5
    t1=$(date +%s%N)
    n=$(grep -c '^WATCHDOG=1$' notify.log)
    # One at start, then one every 200 ms: a slow machine sends fewer, never more. The bound
    # allows 150 ms (the loop's clock is in whole milliseconds).
    most=$(( (t1 - t0) / 150000000 + 1 ))
    [ "$n" -le "$most" ] ||
        fail "$n keep-alives in $(( (t1 - t0) / 1000000 )) ms: more often than every 200 ms"
    grep -q 'systemd watchdog: WATCHDOG=1 every 200 ms' daemon.log ||
        fail "no log line: $(cat daemon.log)"
    kill -TERM $PID
    wait_exit $PID
    [ $STATUS -eq 0 ] || fail "exit status $STATUS"
}

# $WATCHDOG_PID names the process systemd watches. Started by exec from a shell, the daemon has
# the shell's pid, so WATCHDOG_PID=$$ there is its own.
test_notify_watchdog_when_watchdog_pid_is_ours() {
    printf '#!/bin/sh\nWATCHDOG_PID=$$ exec %s "$@"\n' "$EVSTORED" >own-pid.sh
    chmod +x own-pid.sh
    start_notify
    EVSTORED=$T/own-pid.sh WATCHDOG_USEC=400000 start_daemon
    wait_notify '^WATCHDOG=1$' 2
}

test_notify_no_watchdog_for_another_pid() {
    start_notify
    WATCHDOG_USEC=400000 WATCHDOG_PID=1 start_daemon --status-interval 1
    wait_notify '^READY=1'
    wait_notify '^STATUS=serving; [0-9]+ connections' 2
    ! grep -q '^WATCHDOG=1' notify.log || fail "WATCHDOG=1 sent for another pid"
}

test_notify_no_watchdog_without_watchdog_usec() {
    unset WATCHDOG_USEC WATCHDOG_PID
    start_notify
    start_daemon --status-interval 1
    wait_notify '^READY=1'
    wait_notify '^STATUS=serving; [0-9]+ connections' 2
    ! grep -q '^WATCHDOG=1' notify.log || fail "WATCHDOG=1 sent though systemd asked for none"
}
