# lib.sh: helpers for the service tests (sourced by run.sh). $T is the test's directory.

EVSTORED=$BUILD/bin/evstored
EVSTORE=$BUILD/bin/evstore
TOOL=$BUILD/tests/svc-tool
# ASan: a leak makes the daemon exit 23 instead of 0, and the drain tests check for 0.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}exitcode=23"

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "$*"; exit 77; }

# The key of every option, from the flags evstored --help lists (the option migrate's flag is
# --migrate-mode: --migrate alone applies the migrations and exits).
option_keys() {
    "$EVSTORED" --help | sed -n '/^Options/,$p' | grep -o '^  --[a-z-]*' |
        sed 's/^  --//; s/-/_/g; s/^migrate_mode$/migrate/'
}

# Waits up to $2 (default 5) seconds for the command $1 to succeed.
wait_for() {
    i=0 n=$(( ${2:-5} * 20 ))
    while [ $i -lt $n ]; do
        eval "$1" >/dev/null 2>&1 && return 0
        sleep 0.05; i=$((i + 1))
    done
    return 1
}

# Starts evstored in the background with the given arguments on a free port: sets PORT, ADDR,
# PID; stderr goes to $T/daemon.log. Waits until it answers a ping. With WITH_METRICS=1 it also
# serves metrics on another free port: sets METRICS_PORT and METRICS_URL.
start_daemon() {
    for attempt in 1 2 3 4 5; do
        PORT=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom) % 30000 ))
        ADDR=127.0.0.1:$PORT
        METRICS_ARGS=
        if [ -n "${WITH_METRICS:-}" ]; then
            # Another port than PORT: PORT plus 1 to 29999, modulo the range.
            METRICS_PORT=$(( 20000 + (PORT - 20000 + 1 + $(od -An -N2 -tu2 /dev/urandom) % 29999) % 30000 ))
            METRICS_URL=http://127.0.0.1:$METRICS_PORT/metrics
            METRICS_ARGS="--metrics-listen 127.0.0.1:$METRICS_PORT"
        fi
        # shellcheck disable=SC2086 # METRICS_ARGS is a flag and its value, or nothing
        "$EVSTORED" --listen "$ADDR" $METRICS_ARGS "$@" 2>>"$T/daemon.log" &
        PID=$!
        echo $PID >>"$T/pids"
        if wait_for "$TOOL op $ADDR ping" 5; then return 0; fi
        kill -9 $PID 2>/dev/null; wait $PID 2>/dev/null
        grep -q "address already in use" "$T/daemon.log" || break
    done
    cat "$T/daemon.log"
    fail "evstored did not start"
}

# True when a connection on the daemon's TCP port $PORT holds bytes the daemon has sent and the
# client has not read (its tx_queue in /proc/net/tcp): a client stopped reading.
daemon_output_stuck() {
    awk -v port=":$(printf '%04X' "$PORT")" '
        $2 ~ port "$" && $4 == "01" { split($5, q, ":"); if (q[1] != "00000000") stuck = 1 }
        END { exit !stuck }' /proc/net/tcp
}

# Waits for process $1 to exit (up to $2 seconds, default 15) and sets STATUS to its status.
wait_exit() {
    i=0 n=$(( ${2:-15} * 20 ))
    while kill -0 "$1" 2>/dev/null && [ $i -lt $n ]; do sleep 0.05; i=$((i + 1)); done
    kill -0 "$1" 2>/dev/null && fail "process $1 did not exit"
    wait "$1"; STATUS=$?
}

# Starts the fake systemd notification socket at $T/notify.sock; its datagrams go to
# $T/notify.log, one per line.
start_notify() {
    NOTIFY_SOCKET=${1:-$T/notify.sock}
    "$TOOL" notify-listen "$NOTIFY_SOCKET" >"$T/notify.log" &
    echo $! >>"$T/pids"
    wait_for "grep -q listening $T/notify.log" || fail "notify-listen did not start"
    export NOTIFY_SOCKET
}

# Waits until the notification log has a line matching the extended regex $1 (count $2).
wait_notify() {
    wait_for "[ \$(grep -cE '$1' $T/notify.log) -ge ${2:-1} ]" 10 || {
        cat "$T/notify.log"; fail "no notification matching '$1' (x${2:-1})"; }
}

cleanup_daemons() {
    [ -f "$T/pids" ] || return 0
    for p in $(cat "$T/pids"); do kill -9 "$p" 2>/dev/null; done
}
