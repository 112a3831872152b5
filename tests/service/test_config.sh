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
    grep -q 'store: "bogus"' out.txt || fail "$(cat out.txt)"
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
