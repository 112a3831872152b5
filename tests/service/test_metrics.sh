# test_metrics.sh: the Prometheus endpoint (metrics_listen): what it shows, parsed as Prometheus
# parses it (prometheus_client, through scrape.py), and how it treats broken and hostile clients.

SCRAPE="/usr/bin/python3 $ROOT/tests/service/scrape.py"

# Scrapes the endpoint into $T/metrics.txt (scrape.py list: one line per family and sample).
scrape() {
    $SCRAPE list "$METRICS_URL" >"$T/metrics.txt" || fail "scrape failed: $(cat "$T/metrics.txt")"
}

# The value of the sample written exactly as $1 (NAME{labels}) in the last scrape.
metric() {
    awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"
}

# Fails unless the sample $1 has the value $2.
expect_metric() {
    got=$(metric "$1")
    [ "$got" = "$2" ] || { cat "$T/metrics.txt"; fail "$1 is '$got', expected '$2'"; }
}

test_metrics_show_requests_errors_latency_subscribers_and_consumer_lag() {
    WITH_METRICS=1 start_daemon
    for i in 1 2 3; do "$EVSTORE" -s "$ADDR" append acct-1 deposited '{"n": 1}' >/dev/null || fail "append"; done
    "$EVSTORE" -s "$ADDR" append acct-1 deposited --version 0 '{"n": 1}' >/dev/null 2>&1 &&
        fail "a stale version was accepted"
    "$TOOL" op "$ADDR" no-such-op >/dev/null 2>&1
    "$EVSTORE" -s "$ADDR" get acct-1 --limit 10 >/dev/null || fail "get"
    "$EVSTORE" -s "$ADDR" all --limit 10 >/dev/null || fail "all"

    # A consumer that checkpoints the three events, then stops; two more events make its lag 2.
    "$EVSTORE" -s "$ADDR" tail --consumer billing >tail.out 2>&1 &
    tail_pid=$!
    wait_for "\"$EVSTORE\" -s $ADDR consumers | grep -q '\"consumer\":\"billing\",\"position\":3'" 10 ||
        fail "the consumer did not checkpoint: $("$EVSTORE" -s "$ADDR" consumers)"
    kill $tail_pid; wait $tail_pid 2>/dev/null
    for i in 1 2; do "$EVSTORE" -s "$ADDR" append acct-2 opened '{}' >/dev/null || fail "append"; done
    "$TOOL" watch "$ADDR" >watch.out &
    echo $! >>"$T/pids"
    wait_for "grep -q '\"sub\"' watch.out" || fail "the watcher did not subscribe"

    # The consumers' copy is refreshed in the background when a scrape finds it old.
    wait_for "scrape; [ \"\$(metric 'evstore_consumer_lag{consumer=billing}')\" = 2 ] &&
              [ \"\$(metric 'evstore_subscriptions{}')\" = 1 ]" 10 ||
        { cat "$T/metrics.txt"; fail "consumer lag or subscriptions never right"; }
    for f in 'evstore_requests counter' 'evstore_errors counter' \
             'evstore_request_duration_seconds histogram' 'evstore_events_appended counter' \
             'evstore_connections gauge' 'evstore_subscriptions gauge' \
             'evstore_subscriber_queued_bytes gauge' 'evstore_store_up gauge' \
             'evstore_store_state gauge' 'evstore_head_position gauge' \
             'evstore_consumer_lag gauge' 'evstore_consumer_position gauge' \
             'evstore_reloads counter' 'evstore_reloads_failed counter' \
             'evstore_subscription_lag_max gauge' 'evstore_info gauge'; do
        grep -qx "family $f" metrics.txt || { cat metrics.txt; fail "no family $f"; }
    done
    expect_metric 'evstore_events_appended_total{}' 5
    expect_metric 'evstore_requests_total{op=append}' 6
    expect_metric 'evstore_requests_total{op=unknown_op}' 1
    expect_metric 'evstore_errors_total{code=conflict,op=append}' 1
    expect_metric 'evstore_errors_total{code=bad_request,op=unknown_op}' 1
    expect_metric 'evstore_request_duration_seconds_count{op=append}' 6
    expect_metric 'evstore_request_duration_seconds_bucket{le=+Inf,op=append}' 6
    expect_metric 'evstore_request_duration_seconds_count{op=get-by-entity}' 1
    expect_metric 'evstore_head_position{}' 5
    expect_metric 'evstore_consumer_position{consumer=billing}' 3
    expect_metric 'evstore_consumer_active{consumer=billing}' 0
    expect_metric 'evstore_store_up{}' 1
    expect_metric 'evstore_store_state{state=ok}' 1
    expect_metric 'evstore_subscription_lag_max{}' 0
    expect_metric 'evstore_reloads_total{}' 0
    # The stats op agrees.
    s=$("$TOOL" op "$ADDR" stats)
    for want in '"events_appended"=>5' '"head"=>5' '"subscription_lag_max"=>0' \
                '"subscriptions"=>[{"sub"=>' '"consumer"=>nil, "position"=>5, "head"=>5, "lag"=>0, "live"=>true'; do
        echo "$s" | grep -qF "$want" || fail "stats lack $want: $s"
    done
}

test_metrics_counts_reloads() {
    printf 'log_level = info\n' >evstored.conf
    WITH_METRICS=1 start_daemon --config "$T/evstored.conf"
    kill -HUP $PID
    wait_for "scrape; [ \"\$(metric 'evstore_reloads_total{}')\" = 1 ]" ||
        { cat "$T/metrics.txt"; fail "reload not counted"; }
}

test_metrics_answers_404_405_400_431_and_survives_garbage() {
    WITH_METRICS=1 start_daemon --metrics-max-request 1k
    s=$(printf 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n' | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 404 Not Found" ] || fail "other path: $s"
    s=$(printf 'POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi' | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 405 Method Not Allowed" ] || fail "POST: $s"
    s=$(printf 'HEAD /metrics HTTP/1.0\r\n\r\n' | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 200 OK" ] || fail "HEAD: $s"
    s=$(head -c 3000 /dev/urandom | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 400 Bad Request" ] || [ "$s" = closed ] || fail "garbage: $s"
    s=$(printf 'GARBAGE\r\n\r\n' | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 400 Bad Request" ] || fail "a bad request line: $s"
    s=$( (printf 'GET /metrics HTTP/1.1\r\n'; for i in $(seq 100); do printf 'X-Pad: %050d\r\n' 0; done;
          printf '\r\n') | $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 431 Request Header Fields Too Large" ] || [ "$s" = closed ] ||
        fail "oversized headers: $s"
    s=$( (printf 'GET /'; head -c 2000 /dev/zero | tr '\0' a; printf ' HTTP/1.1\r\n\r\n') |
         $SCRAPE raw $METRICS_PORT)
    [ "$s" = "HTTP/1.1 431 Request Header Fields Too Large" ] || [ "$s" = closed ] ||
        fail "an oversized URL: $s"
    scrape
    expect_metric 'evstore_store_up{}' 1
    "$TOOL" op "$ADDR" ping >/dev/null || fail "the daemon stopped serving"
}

test_metrics_closes_slow_clients_and_caps_connections() {
    WITH_METRICS=1 start_daemon --metrics-timeout 1 --metrics-max-connections 2
    # Two clients that send nothing hold both slots; a third is refused with 503.
    $SCRAPE idle $METRICS_PORT >slow1.out &
    echo $! >>"$T/pids"
    $SCRAPE idle $METRICS_PORT >slow2.out &
    echo $! >>"$T/pids"
    wait_for "grep -q connected slow1.out && grep -q connected slow2.out" ||
        fail "the slow clients did not connect"
    s=
    for i in $(seq 100); do
        s=$(printf 'GET /metrics HTTP/1.1\r\n\r\n' | $SCRAPE raw $METRICS_PORT)
        [ "$s" = "HTTP/1.1 503 Service Unavailable" ] && break
    done
    [ "$s" = "HTTP/1.1 503 Service Unavailable" ] || fail "no 503 with two slow clients: $s"
    # metrics_timeout closes the slow ones without an answer; then scrapes work again.
    wait_for "grep -qx closed slow1.out && grep -qx closed slow2.out" 10 ||
        fail "slow clients not closed: $(cat slow1.out slow2.out)"
    scrape
    [ "$(metric 'evstore_metrics_refused_total{}')" -ge 1 ] || fail "refusal not counted"
}
