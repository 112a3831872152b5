# test_config.sh: --check-config, the file format, precedence of file, environment and flags.

test_check_config_accepts_the_sample() {
    "$EVSTORED" --check-config --config "$ROOT/systemd/evstored.conf" >out.txt 2>&1 ||
        fail "$(cat out.txt)"
    grep -q 'configuration OK' out.txt || fail "$(cat out.txt)"
}

test_check_config_reports_a_bad_value_with_its_line() {
    printf '# comment\n\nlisten = 127.0.0.1:7433\nmax_frame = 12\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1 && fail "accepted a bad file"
    grep -q 'bad.conf:4: max_frame: "12" is not a size' out.txt || fail "$(cat out.txt)"
}

test_check_config_refuses_a_max_event_a_reply_cannot_carry() {
    printf 'max_frame = 1M\nmax_event = 1M\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "exit status $rc: $(cat out.txt)"
    grep -q 'max_event (1048576) is over max_frame (1048576) minus 64' out.txt || fail "$(cat out.txt)"
    "$EVSTORED" --max-frame 1M --max-event 1M >out.txt 2>&1 && fail "the daemon started"
    grep -q 'max_event (1048576) is over max_frame' out.txt || fail "$(cat out.txt)"
    printf 'max_frame = 1M\nmax_event = 1048512\n' >ok.conf
    "$EVSTORED" --check-config --config ok.conf >out.txt 2>&1 || fail "$(cat out.txt)"
}

test_check_config_reports_an_unknown_key() {
    printf 'lisen = 127.0.0.1:7433\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "exit status $rc"
    grep -q 'bad.conf:1: unknown option "lisen"' out.txt || fail "$(cat out.txt)"
}

test_check_config_reports_a_bad_listen_address() {
    printf 'listen = localhost\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1 && fail "accepted"
    grep -q 'listen: "localhost" is not HOST:PORT' out.txt || fail "$(cat out.txt)"
}

test_check_config_fails_on_a_missing_file() {
    "$EVSTORED" --check-config --config "$T/nope.conf" >out.txt 2>&1 && fail "accepted"
    grep -q 'nope.conf: No such file' out.txt || fail "$(cat out.txt)"
}

test_config_file_syntax_quotes_dashes_suffixes() {
    printf '  ; semicolon comment\nmax-frame = "2M"\nrequest_timeout = 5s\nstore="memory"\n' >ok.conf
    start_daemon --config "$T/ok.conf"
    "$TOOL" op "$ADDR" config | grep -q '"max_frame"=>{"value"=>"2097152"' || fail "max-frame"
    "$TOOL" op "$ADDR" config | grep -q '"request_timeout"=>{"value"=>"5"' || fail "request_timeout"
}

test_bad_flag_is_a_usage_error() {
    "$EVSTORED" --max-frame 3 >out.txt 2>&1; rc=$?
    [ $rc -eq 2 ] || fail "exit status $rc"
    grep -q -- '--max-frame: "3" is not a size' out.txt || fail "$(cat out.txt)"
}

test_store_precedence_file_env_flag() {
    printf 'store = memory\n' >s.conf
    EVSTORE_STORE=bogus "$EVSTORED" --check-config --config s.conf >out.txt 2>&1 &&
        fail "EVSTORE_STORE did not override the file"
    grep -q '^\$EVSTORE_STORE: "bogus" is neither' out.txt || fail "$(cat out.txt)"
    EVSTORE_STORE=bogus "$EVSTORED" --check-config --config s.conf --store memory >out.txt 2>&1 ||
        fail "--store did not override EVSTORE_STORE: $(cat out.txt)"
}

test_every_original_flag_still_works() {
    "$EVSTORED" --version | grep -q '^evstored [0-9]' || fail "--version"
    "$EVSTORED" --help | grep -q -- '--request-timeout SECONDS' || fail "--help"
    start_daemon --unix "$T/evstored.sock" --store memory --max-frame 65536 --output-limit 8192 \
        --request-timeout 7 --log-level warn
    [ -S "$T/evstored.sock" ] || fail "no Unix socket"
    "$TOOL" op "$T/evstored.sock" ping >/dev/null || fail "ping over the Unix socket"
    c=$("$TOOL" op "$ADDR" config)
    for kv in 'unix"=>{"value"=>"'"$T"'/evstored.sock"' 'max_frame"=>{"value"=>"65536"' \
              'output_limit"=>{"value"=>"8192"' 'request_timeout"=>{"value"=>"7"' \
              'log_level"=>{"value"=>"warn"'; do
        echo "$c" | grep -qF "$kv" || fail "config lacks $kv: $c"
    done
}

test_check_config_reports_every_error_each_with_its_line() {
    printf '%s\n' 'max_frame = 12' 'lisen = 127.0.0.1:1' 'listen = localhost' \
        'store = host=db bogusparam=1' 'log_level = loud' 'unix_mode = 999' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "exit status $rc: $(cat out.txt)"
    for l in 'bad.conf:1: max_frame: ' 'bad.conf:2: unknown option "lisen"' \
             'bad.conf:3: listen: "localhost" is not HOST:PORT' \
             'bad.conf:4: store: not a PostgreSQL connection string libpq accepts: invalid connection option "bogusparam"' \
             'bad.conf:5: log_level: ' 'bad.conf:6: unix_mode: ' \
             'evstored: 6 errors in the configuration'; do
        grep -qF -- "$l" out.txt || fail "no line '$l' in: $(cat out.txt)"
    done
}

test_check_config_refuses_a_postgresql_string_libpq_would_refuse() {
    for s in 'host=db bogusparam=1|invalid connection option "bogusparam"' \
             'port=notaport|port: "notaport" is not a port number from 1 to 65535' \
             'postgresql://db:99999/evstore|port: "99999" is not a port number' \
             'postgresql://db/evstore?bogus=1|invalid URI query parameter: "bogus"' \
             "host='db|unterminated quoted string" \
             'host=a,b port=1,2,3|3 ports for 2 hosts' \
             'postgresql://db/evstore?sslmode=sometimes|sslmode: "sometimes" is not one of' \
             'host=db connect_timeout=soon|connect_timeout: "soon" is not a whole number'; do
        value=${s%%|*} want=${s#*|}
        printf 'store = "%s"\n' "$value" >bad.conf
        "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1; rc=$?
        [ $rc -eq 1 ] || fail "$value: exit status $rc: $(cat out.txt)"
        grep -qF "bad.conf:1: store: " out.txt && grep -qF -- "$want" out.txt ||
            fail "$value: expected '$want' in: $(cat out.txt)"
    done
    for ok in 'postgresql://evstore:pw@db:5432,db2:5433/evstore?sslmode=require&connect_timeout=5' \
              'host=db port=5432 dbname=evstore user=evstore application_name=evstored'; do
        "$EVSTORED" --check-config --store "$ok" >out.txt 2>&1 || fail "$ok refused: $(cat out.txt)"
    done
}

test_check_config_names_the_flag_or_the_environment_of_an_error() {
    printf 'max_frame = 12\n' >bad.conf
    EVSTORE_STORE='host=db port=0' "$EVSTORED" --check-config --config bad.conf \
        --unix-mode 8 --max-frame 3 >out.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "exit status $rc: $(cat out.txt)"
    for l in 'bad.conf:1: max_frame: "12"' '$EVSTORE_STORE: port: "0" is not a port number' \
             '--unix-mode: "8" is not an octal mode' '--max-frame: "3" is not a size' \
             'evstored: 4 errors in the configuration'; do
        grep -qF -- "$l" out.txt || fail "no line '$l' in: $(cat out.txt)"
    done
    # Each error once: the flags are not reported again by the flag parser.
    [ "$(grep -c -- '--max-frame' out.txt)" -eq 1 ] || fail "reported twice: $(cat out.txt)"
}

test_start_refuses_what_check_config_refuses_with_the_same_messages() {
    printf 'store = host=db bogusparam=1\nmax_frame = 12\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >check.txt 2>&1
    "$EVSTORED" --config bad.conf >start.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "the daemon exited $rc: $(cat start.txt)"
    diff check.txt start.txt || fail "different messages"
    EVSTORE_STORE='port=notaport' "$EVSTORED" --listen 127.0.0.1:0 >start.txt 2>&1; rc=$?
    [ $rc -eq 1 ] || fail "the daemon exited $rc on port=notaport: $(cat start.txt)"
    grep -qF '$EVSTORE_STORE: port: "notaport"' start.txt || fail "$(cat start.txt)"
}

test_inline_comments_end_unquoted_values() {
    printf '%s\n' 'listen = 127.0.0.1:7433   # the port' 'store = memory # for now' \
        'max_frame = 2M#no blank: part of the value' >c.conf
    "$EVSTORED" --check-config --config c.conf >out.txt 2>&1 && fail "accepted 2M#no..."
    grep -qF 'c.conf:3: max_frame: "2M#no blank: part of the value"' out.txt || fail "$(cat out.txt)"
    [ "$(grep -c 'c.conf' out.txt)" -eq 1 ] || fail "lines 1 and 2 refused: $(cat out.txt)"
    printf '%s\n' 'unix_group = "a #b" # a group with a blank and a hash' \
        'listen = 127.0.0.1:7433 # x' 'store = "memory"# x' >c.conf
    start_daemon --config "$T/c.conf"
    "$TOOL" op "$ADDR" config | grep -qF '"store"=>{"value"=>"memory"' || fail "store"
    "$TOOL" op "$ADDR" config | grep -qF '"unix_group"=>{"value"=>"a #b"' || fail "unix_group"
    printf 'store = "memory" trailing\n' >bad.conf
    "$EVSTORED" --check-config --config bad.conf >out.txt 2>&1 && fail "accepted text after a quote"
    grep -qF 'bad.conf:1: store: text after the closing quote: trailing' out.txt || fail "$(cat out.txt)"
}

test_reload_with_a_bad_store_string_keeps_the_running_configuration() {
    printf 'store = memory\nmax_subscriptions = 5\n' >c.conf
    start_daemon --config "$T/c.conf"
    printf 'store = host=db bogusparam=1\nmax_subscriptions = 6\n' >c.conf
    kill -HUP $PID
    wait_for "grep -q 'reload failed' '$T/daemon.log'" || fail "$(cat "$T/daemon.log")"
    grep -q 'error config: reload: .*c.conf:1: store: .*invalid connection option "bogusparam"' \
        "$T/daemon.log" || fail "$(cat "$T/daemon.log")"
    "$TOOL" op "$ADDR" config | grep -qF '"max_subscriptions"=>{"value"=>"5"' ||
        fail "the running configuration changed"
    "$TOOL" op "$ADDR" ping >/dev/null || fail "the daemon stopped"
}
