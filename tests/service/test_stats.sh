# test_stats.sh: the stats and config operations.

test_stats_counts_requests_appends_conflicts_and_latency() {
    start_daemon
    for i in 1 2 3; do "$EVSTORE" -s "$ADDR" append acct-1 deposited '{"n": 1}' >/dev/null || fail "append"; done
    "$EVSTORE" -s "$ADDR" append acct-1 deposited --version 0 '{"n": 1}' >/dev/null 2>&1 &&
        fail "a stale version was accepted"
    "$TOOL" op "$ADDR" no-such-op >/dev/null 2>&1
    s=$("$TOOL" op "$ADDR" stats) || fail "stats failed: $s"
    echo "$s"
    for want in '"append"=>4' '"events_appended"=>3' '"conflicts"=>1' '"conflict"=>1' \
                '"bad_request"=>1' '"unknown_op"=>1' '"store"=>"memory"' '"store_state"=>"ok"' \
                '"connections"=>1' '"subscribers"=>0' '"draining"=>false' '"uptime_s"=>' \
                '"subscriber_queue_bytes"=>0' '"store_latency_us"=>{"calls"=>' '"p99"=>'; do
        echo "$s" | grep -qF "$want" || fail "stats lack $want"
    done
}

test_config_op_lists_every_option_with_its_value() {
    start_daemon --max-frame 1M
    c=$("$TOOL" op "$ADDR" config) || fail "config failed: $c"
    echo "$c"
    for k in $(option_keys); do
        echo "$c" | grep -qF "\"$k\"=>{\"value\"=>" || fail "config lacks $k"
    done
    echo "$c" | grep -qF '"max_frame"=>{"value"=>"1048576", "default"=>"16777216", "reloadable"=>true}' ||
        fail "max_frame wrong"
    echo "$c" | grep -qF '"listen"=>{"value"=>"'"$ADDR"'", "default"=>"127.0.0.1:7433", "reloadable"=>false}' ||
        fail "listen wrong"
}
