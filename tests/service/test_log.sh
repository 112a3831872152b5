# test_log.sh: the daemon's log lines (a time stamp, or the journal's priority when stderr is the
# journal), the memory store's warning under systemd, and the component tags of evstored(8).

# Starts the daemon with stderr on $T/daemon.log, which $JOURNAL_STREAM names, as systemd does
# for StandardError=journal.
start_daemon_on_journal() {
    : >"$T/daemon.log"
    JOURNAL_STREAM=$(stat -c '%d:%i' "$T/daemon.log")
    export JOURNAL_STREAM
    start_daemon "$@"
    unset JOURNAL_STREAM
}

test_log_lines_start_with_the_utc_time_outside_the_journal() {
    unset JOURNAL_STREAM INVOCATION_ID
    start_daemon --store memory
    wait_for "grep -q 'info main: evstored' '$T/daemon.log'" || fail "$(cat "$T/daemon.log")"
    grep -qE '^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9]{3}Z info main: evstored ' \
        "$T/daemon.log" || fail "no time stamp: $(cat "$T/daemon.log")"
    ! grep -vqE '^20[0-9-]{8}T[0-9:]{8}\.[0-9]{3}Z (error|warn|info|debug) [a-z_]+: ' \
        "$T/daemon.log" || fail "a line without the time: $(cat "$T/daemon.log")"
}

test_log_lines_on_the_journal_carry_their_syslog_priority() {
    unset INVOCATION_ID NOTIFY_SOCKET
    printf 'unix = %s\n' "$T/a.sock" >c.conf
    start_daemon_on_journal --config "$T/c.conf"
    wait_for "grep -q '^<6>info main: ready' '$T/daemon.log'" || fail "$(cat "$T/daemon.log")"
    # A warning is <4>: a reload that changes a restart-only option logs one.
    printf 'unix = %s\n' "$T/b.sock" >c.conf
    kill -HUP $PID
    wait_for "grep -q '^<4>warn config: unix changed' '$T/daemon.log'" ||
        fail "no <4> warning: $(cat "$T/daemon.log")"
    ! grep -vqE '^<[3467]>(error|warn|info|debug) [a-z_]+: ' "$T/daemon.log" ||
        fail "a line without a priority: $(cat "$T/daemon.log")"
}

test_memory_store_under_systemd_warns_that_events_are_lost() {
    unset NOTIFY_SOCKET
    INVOCATION_ID=0123456789abcdef0123456789abcdef start_daemon --store memory
    wait_for "grep -q 'warn store: the memory store keeps events only in this process' '$T/daemon.log'" ||
        fail "no warning: $(cat "$T/daemon.log")"
    grep -q 'every event is lost when evstored stops or restarts' "$T/daemon.log" ||
        fail "$(cat "$T/daemon.log")"
}

test_memory_store_outside_systemd_does_not_warn() {
    unset NOTIFY_SOCKET INVOCATION_ID
    start_daemon --store memory
    wait_for "grep -q 'info main: ready' '$T/daemon.log'" || fail "$(cat "$T/daemon.log")"
    ! grep -q 'memory store keeps events' "$T/daemon.log" || fail "warned outside systemd"
}

test_installed_config_uses_the_memory_store_and_says_so() {
    grep -qx 'store = memory' "$ROOT/systemd/evstored.conf" || fail "the sample is not on memory"
    grep -q 'every event is LOST' "$ROOT/systemd/evstored.conf" ||
        fail "the sample does not say that the memory store loses events"
    out=$(INVOCATION_ID=x "$EVSTORED" --check-config --config "$ROOT/systemd/evstored.conf" 2>&1) ||
        fail "$out"
}

# Each tag the code logs with (the first argument of log_error/log_warn/log_info/log_debug) is
# listed in the LOGGING section of evstored(8), and each tag listed there is used.
test_log_tags_of_the_code_are_the_tags_of_evstored_8() {
    calls=$(grep -rhE 'log_(error|warn|info|debug)\(' "$ROOT/server" --include='*.c')
    # A tag must be a literal, or this test could not see it.
    odd=$(echo "$calls" | grep -oE 'log_(error|warn|info|debug)\([^)]?' | grep -vE '\("$')
    [ -z "$odd" ] || fail "a log call whose tag is not a string literal: $odd"
    direct=$(grep -rlE '(^|[^_a-z])log_msg\(' "$ROOT/server" --include='*.c' | grep -v '/log\.c$')
    [ -z "$direct" ] || fail "log_msg called directly (use log_error...log_debug): $direct"
    code=$(echo "$calls" | grep -oE 'log_(error|warn|info|debug)\("[^"]*"' |
           sed 's/.*("//; s/"$//' | sort -u)
    [ -n "$code" ] || fail "no log calls found"
    man=$(sed -n '/^\.SH LOGGING/,/^\.SH /p' "$ROOT/man/evstored.8" |
          grep -A1 '^\.TP' | sed -n 's/^\.B \([a-z_]*\)$/\1/p' | sort -u)
    [ -n "$man" ] || fail "no tags in the LOGGING section of evstored.8"
    missing=$(comm -23 "$(printf '%s\n' "$code" >code.txt; echo code.txt)" \
                       "$(printf '%s\n' "$man" >man.txt; echo man.txt)")
    extra=$(comm -13 code.txt man.txt)
    [ -z "$missing" ] || fail "tags the code uses but evstored.8 does not list:" $missing
    [ -z "$extra" ] || fail "tags evstored.8 lists but the code does not use:" $extra
}
