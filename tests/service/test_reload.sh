# test_reload.sh: SIGHUP re-reads the config file; an invalid one keeps the running config.

# Prints the "value" of option $1 from the daemon's config op.
config_value() {
    "$TOOL" op "$ADDR" config | grep -o "\"$1\"=>{\"value\"=>\"[^\"]*\"" | sed 's/.*"value"=>"//; s/"$//'
}

test_reload_valid_config_applies_it() {
    printf 'max_frame = 16M\nlog_level = info\n' >evstored.conf
    start_daemon --config "$T/evstored.conf"
    [ "$(config_value max_frame)" = 16777216 ] || fail "max_frame before: $(config_value max_frame)"
    printf '# smaller frames\nmax_frame = 1k\nlog_level = debug\n' >evstored.conf
    kill -HUP $PID
    wait_for "grep -q 'reloaded: 2 options changed' daemon.log" || fail "no reload: $(cat daemon.log)"
    [ "$(config_value max_frame)" = 1024 ] || fail "max_frame after: $(config_value max_frame)"
    [ "$(config_value log_level)" = debug ] || fail "log_level after: $(config_value log_level)"
}

test_reload_invalid_config_keeps_the_old_one() {
    printf 'max_frame = 64k\n' >evstored.conf
    start_daemon --config "$T/evstored.conf"
    printf 'max_frame = 1k\nno_such_option = 1\n' >evstored.conf
    kill -HUP $PID
    wait_for "grep -q 'reload failed' daemon.log" || fail "no failed reload: $(cat daemon.log)"
    grep -q 'evstored.conf:2: unknown option "no_such_option"' daemon.log || fail "reason not logged"
    [ "$(config_value max_frame)" = 65536 ] || fail "max_frame changed to $(config_value max_frame)"
    "$TOOL" op "$ADDR" stats | grep -q '"reloads_failed"=>1' || fail "reloads_failed not counted"
    "$TOOL" op "$ADDR" ping >/dev/null || fail "daemon stopped serving"
}

test_reload_that_leaves_max_event_over_max_frame_keeps_the_old_config() {
    printf 'max_frame = 64k\nmax_event = 60k\n' >evstored.conf
    start_daemon --config "$T/evstored.conf"
    printf 'max_frame = 32k\nmax_event = 60k\n' >evstored.conf
    kill -HUP $PID
    wait_for "grep -q 'reload failed' daemon.log" || fail "no failed reload: $(cat daemon.log)"
    grep -q 'max_event (61440) is over max_frame (32768)' daemon.log || fail "reason not logged"
    [ "$(config_value max_frame)" = 65536 ] || fail "max_frame changed to $(config_value max_frame)"
    "$TOOL" op "$ADDR" ping >/dev/null || fail "daemon stopped serving"
}

test_reload_of_a_restart_option_is_logged_and_ignored() {
    printf 'listen = 127.0.0.1:1\n' >evstored.conf
    start_daemon --config "$T/evstored.conf"   # --listen wins over the file
    printf 'unix = %s/sock\n' "$T" >evstored.conf
    kill -HUP $PID
    wait_for "grep -q 'unix changed from' daemon.log" || fail "no restart warning: $(cat daemon.log)"
    grep -q 'restart evstored to apply it' daemon.log || fail "warning does not say to restart"
    [ ! -e "$T/sock" ] || fail "the Unix socket was created by a reload"
    [ -z "$(config_value unix)" ] || fail "unix changed at run time"
}

test_reload_keeps_command_line_flags_on_top() {
    printf 'output_limit = 8M\n' >evstored.conf
    start_daemon --config "$T/evstored.conf" --output-limit 1M
    [ "$(config_value output_limit)" = 1048576 ] || fail "flag lost at start"
    printf 'output_limit = 4M\n' >evstored.conf
    kill -HUP $PID
    wait_for "grep -q 'reloaded' daemon.log" || fail "no reload"
    [ "$(config_value output_limit)" = 1048576 ] || fail "flag lost on reload: $(config_value output_limit)"
}
