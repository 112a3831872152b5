# test_install.sh: `make install` into a DESTDIR, the installed tree, pkg-config, the unit file
# and the man pages. The install uses a plain (not sanitized) build in build/svc-install, so
# that a program linked against the staged libevstore.so runs without the ASan runtime.

# Installs once per run into $STAGE_ROOT/<prefix-name> (make is incremental); sets STAGE.
stage_install() {
    prefix=${1:-/usr/local}
    STAGE=$ROOT/build/svc-install/stage$(echo "$prefix" | tr / _)
    rm -rf "$STAGE"
    make -s -C "$ROOT" BUILD=build/svc-install PREFIX="$prefix" DESTDIR="$STAGE" install \
        >make.log 2>&1 || { tail -n 30 make.log; fail "make install failed"; }
}

test_install_destdir_tree() {
    stage_install
    for f in bin/evstored bin/evstore lib/libevstore.so.1 lib/libevstore.a \
             include/evstore.h include/evstore/event.h include/evstore/errors.h \
             lib/pkgconfig/evstore.pc lib/systemd/system/evstored.service \
             share/doc/evstore/evstored.conf.sample share/man/man8/evstored.8 \
             share/man/man5/evstored.conf.5 share/man/man1/evstore.1 share/man/man3/libevstore.3; do
        [ -f "$STAGE/usr/local/$f" ] || fail "missing /usr/local/$f"
    done
    [ -f "$STAGE/etc/evstore/evstored.conf" ] || fail "missing /etc/evstore/evstored.conf"
    [ "$(readlink "$STAGE/usr/local/lib/libevstore.so")" = libevstore.so.1 ] ||
        fail "libevstore.so is not a link to libevstore.so.1"
    [ -x "$STAGE/usr/local/bin/evstored" ] || fail "evstored not executable"
    objdump -p "$STAGE/usr/local/lib/libevstore.so.1" | grep -q 'SONAME *libevstore.so.1' ||
        fail "wrong SONAME"
    grep -q '^prefix=/usr/local$' "$STAGE/usr/local/lib/pkgconfig/evstore.pc" || fail "pc prefix"
    grep -q '^ExecStart=/usr/local/bin/evstored --config /etc/evstore/evstored.conf$' \
        "$STAGE/usr/local/lib/systemd/system/evstored.service" || fail "unit ExecStart"
    # Nothing escaped DESTDIR into the prefix itself (the stage holds only etc/ and usr/).
    [ "$(ls "$STAGE" | tr '\n' ' ')" = "etc usr " ] || fail "unexpected top-level: $(ls "$STAGE")"
    "$STAGE/usr/local/bin/evstored" --check-config --config "$STAGE/etc/evstore/evstored.conf" ||
        fail "the installed config does not check"
}

test_install_keeps_an_existing_config() {
    stage_install
    echo 'log_level = debug' >"$STAGE/etc/evstore/evstored.conf"
    make -s -C "$ROOT" BUILD=build/svc-install DESTDIR="$STAGE" install >make.log 2>&1 ||
        fail "second install failed"
    [ "$(cat "$STAGE/etc/evstore/evstored.conf")" = 'log_level = debug' ] ||
        fail "make install overwrote the administrator's config"
}

test_install_with_another_prefix() {
    stage_install /opt/evs
    [ -x "$STAGE/opt/evs/bin/evstored" ] || fail "no /opt/evs/bin/evstored"
    grep -q '^prefix=/opt/evs$' "$STAGE/opt/evs/lib/pkgconfig/evstore.pc" || fail "pc prefix"
    grep -q '^ExecStart=/opt/evs/bin/evstored ' "$STAGE/opt/evs/lib/systemd/system/evstored.service" ||
        fail "unit ExecStart"
    [ -f "$STAGE/opt/evs/share/man/man5/evstored.conf.5" ] || fail "man page"
}

test_program_built_with_pkg_config_runs_against_the_daemon() {
    command -v pkg-config >/dev/null || skip "pkg-config is not installed"
    stage_install
    export PKG_CONFIG_PATH=$STAGE/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE
    flags=$(pkg-config --cflags --libs evstore) || fail "pkg-config does not know evstore"
    echo "pkg-config: $flags"
    cp "$ROOT/tests/service/pkgconfig/app.c" "$T/app.c"
    (cd "$T" && cc -std=c11 -Wall -Wextra -Werror app.c $flags -o app) || fail "app.c did not build"
    EVSTORED=$STAGE/usr/local/bin/evstored
    start_daemon
    out=$(LD_LIBRARY_PATH=$STAGE/usr/local/lib ./app "$ADDR") || fail "app failed: $out"
    echo "$out"
    echo "$out" | grep -q 'appended at position 1; entity has 1 event(s), topic order-placed' ||
        fail "unexpected output"
    LD_LIBRARY_PATH=$STAGE/usr/local/lib ldd ./app | grep -q "$STAGE/usr/local/lib/libevstore.so.1" ||
        fail "app did not load the staged libevstore.so.1"
}

test_unit_file_passes_systemd_analyze_verify() {
    command -v systemd-analyze >/dev/null ||
        skip "systemd-analyze is not installed (apt-get install systemd): unit file NOT verified"
    stage_install
    # verify checks that ExecStart's binary exists and that the Documentation= man pages
    # resolve: point both at the stage.
    sed "s|/usr/local/bin/|$STAGE/usr/local/bin/|g" \
        "$STAGE/usr/local/lib/systemd/system/evstored.service" >"$T/evstored.service"
    MANPATH=$STAGE/usr/local/share/man systemd-analyze verify "$T/evstored.service" >verify.out 2>&1
    rc=$?
    cat verify.out
    [ $rc -eq 0 ] || fail "systemd-analyze verify: exit $rc"
    # Unknown keys and bad values are only warnings for verify: fail on any output about it.
    ! grep -q 'evstored.service' verify.out || fail "systemd-analyze verify complained"
}

test_every_option_is_documented_in_evstored_conf_5() {
    keys=$(option_keys)
    [ -n "$keys" ] || fail "no options found in --help"
    missing=""
    for k in $keys; do
        grep -q "^\.BI $k \" = " "$ROOT/man/evstored.conf.5" || missing="$missing $k"
        grep -q "^#*$k = " "$ROOT/systemd/evstored.conf" || missing="$missing $k(sample)"
    done
    [ -z "$missing" ] || fail "options missing from evstored.conf(5) or the sample config:$missing"
}

test_man_pages_render_without_warnings() {
    command -v man >/dev/null || skip "man is not installed"
    for p in evstored.8 evstored.conf.5 evstore.1 libevstore.3; do
        w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$ROOT/man/$p" 2>&1 >/dev/null)
        [ -z "$w" ] || fail "$p: $w"
        LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$ROOT/man/$p" 2>/dev/null | grep -q . || fail "$p is empty"
    done
}

# The text of a man page as man shows it on an 80-column terminal.
render_man() {
    LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$1" 2>/dev/null
}

# The lines of section $1 (a heading such as COMMANDS) of the rendered page on stdin.
man_section() {
    awk -v s="$1" '$0 == s { f = 1; next } /^[A-Z]/ { f = 0 } f'
}

# The commands of `evstore --help`: the first word of each command line ("stats | config": both).
evstore_help_commands() {
    "$EVSTORE" --help | sed -n 's/^  \([a-z][a-z]*\)\( | \([a-z][a-z]*\)\)\{0,1\}.*/\1 \3/p'
}

test_evstore_1_has_a_heading_per_command_of_its_help() {
    command -v man >/dev/null || skip "man is not installed"
    render_man "$ROOT/man/evstore.1" | man_section COMMANDS >commands.txt
    [ -s commands.txt ] || fail "no COMMANDS section"
    grep -E '^   [^ ]' commands.txt | sed 's/^   //' >headings.txt
    cmds=$(evstore_help_commands)
    [ -n "$cmds" ] || fail "no commands in evstore --help"
    for c in $cmds; do
        grep -qx "$c" headings.txt || fail "no heading for $c; headings: $(tr '\n' ' ' <headings.txt)"
        grep -qE "^       evstore +$c( |\$)" commands.txt || fail "no synopsis line for $c"
    done
    for h in $(cat headings.txt); do
        echo " $cmds " | tr '\n' ' ' | grep -q " $h " || fail "heading $h is not a command of --help"
    done
    # An entry heading is a name or a flag, never a piece of a synopsis.
    bad=$(render_man "$ROOT/man/evstore.1" | grep -E '^ {3}[^ ]|^ {7}-' | grep -E '\[|\]|\.\.\.')
    [ -z "$bad" ] || fail "synopsis leftovers in headings: $bad"
}

test_evstore_1_documents_every_flag_of_each_command_under_it() {
    command -v man >/dev/null || skip "man is not installed"
    render_man "$ROOT/man/evstore.1" >page.txt
    # Each command's lines of --help (its line and the indented lines after it).
    "$EVSTORE" --help | awk '/^  [a-z]/ { c = $1 } /^$/ { c = "" } c && /^  / { print c "\t" $0 }' \
        >help.txt
    for c in $(evstore_help_commands); do
        awk -v c="$c" '$0 == "   " c { f = 1; next } /^   [^ ]|^[A-Z]/ { f = 0 } f' page.txt \
            >section.txt
        flags=$(grep "^$c	" help.txt | grep -oE -- '--[a-z][a-z-]*' | sort -u)
        [ "$c" = bench ] && flags=$("$EVSTORE" bench --help | sed 1d |
                                    grep -oE -- '(^|[ ,])--?[a-zA-Z][a-z-]*' | tr -d ' ,' | sort -u)
        for f in $flags; do
            grep -qE -- "^ {7}(-[a-zA-Z], )?$f( |,|\$)" section.txt ||
                fail "evstore $c $f is not an entry under $c in evstore.1"
        done
    done
    grep -qE '^ {7}--prefix E' page.txt || fail "tail --prefix is not documented"
    # The options before the command: the usage line's, the TLS ones, --help and --version.
    man_section OPTIONS <page.txt >options.txt
    for f in -s -t --token --tls-ca --tls-cert --tls-key --tls-server-name --help --version; do
        grep -qE -- "^ {7}(-h, )?$f( |\$)" options.txt || fail "global option $f is not in OPTIONS"
        "$EVSTORE" --help | grep -q -- "$f" || [ "$f" = --help ] || [ "$f" = --version ] ||
            fail "$f is not in evstore --help any more"
    done
}

test_evstored_8_options_are_the_flags_of_evstored_help() {
    command -v man >/dev/null || skip "man is not installed"
    render_man "$ROOT/man/evstored.8" | man_section OPTIONS >options.txt
    [ -s options.txt ] || fail "no OPTIONS section"
    # Entry headings: lines of the left margin of the entries that start with a flag.
    heads=$(grep -oE '^ {7}--[a-z][a-z-]*' options.txt | sed 's/^ *//' | sort -u)
    mode=$("$EVSTORED" --help | sed '/^Options/,$d' | grep -oE '^  --[a-z][a-z-]*' |
           sed 's/^ *//' | sort -u)
    [ -n "$mode" ] || fail "no flags in evstored --help"
    [ "$heads" = "$mode" ] || fail "evstored.8 OPTIONS: $(echo $heads); evstored --help: $(echo $mode)"
    bad=$(grep -E '^ {7}-' options.txt | grep -E '\[|\]')
    [ -z "$bad" ] || fail "synopsis leftovers in headings: $bad"
    # Every option of the table is a flag, and the page says how they are spelt.
    grep -q -- '--max-frame' options.txt || fail "evstored.8 does not show how options are flags"
}
