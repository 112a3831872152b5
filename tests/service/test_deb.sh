# test_deb.sh: the Debian packages (debian/, `make deb`) built, checked by lintian, installed on
# this machine with dpkg, used, and purged. It needs root (dpkg -i) and a machine without evstore
# installed; whatever happens, it leaves the machine as it found it (packages purged, the user
# removed if it created it). systemd need not run: the packages' scripts enable the unit and
# start it only where systemd runs, and this test never starts it.

DEB_PACKAGES="evstore libevstore1 libevstore-dev"
# Where Debian puts each file (docs/service.md, "Debian package").
DEB_MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
DEB_FILES_evstore="/usr/bin/evstored /usr/bin/evstore /lib/systemd/system/evstored.service
    /etc/evstore/evstored.conf /usr/share/doc/evstore/evstored.conf.sample
    /usr/share/doc/evstore/copyright /usr/share/doc/evstore/README.Debian
    /usr/share/man/man1/evstore.1.gz /usr/share/man/man5/evstored.conf.5.gz
    /usr/share/man/man8/evstored.8.gz"
DEB_FILES_libevstore1="/usr/lib/$DEB_MULTIARCH/libevstore.so.1"
DEB_FILES_libevstore_dev="/usr/include/evstore.h /usr/include/evstore/event.h
    /usr/include/evstore/errors.h /usr/include/evstore/async.h /usr/include/evstore/libuv.h
    /usr/lib/$DEB_MULTIARCH/libevstore.so /usr/lib/$DEB_MULTIARCH/libevstore.a
    /usr/lib/$DEB_MULTIARCH/pkgconfig/evstore.pc /usr/share/man/man3/libevstore.3.gz"
DEB_ENABLED_LINK=/etc/systemd/system/multi-user.target.wants/evstored.service

# Purges what this test installed and removes the user and group if it created them. Runs on
# every exit of the test's subshell (trap), so a failure half-way leaves nothing behind.
deb_restore() {
    dpkg --purge $DEB_PACKAGES >>"$T/purge.log" 2>&1
    if [ "$DEB_HAD_USER" = no ] && getent passwd evstore >/dev/null; then
        deluser --system --quiet evstore >>"$T/purge.log" 2>&1 || userdel evstore
    fi
    if [ "$DEB_HAD_GROUP" = no ] && getent group evstore >/dev/null; then
        delgroup --system --quiet evstore >>"$T/purge.log" 2>&1 || groupdel evstore
    fi
}

# Refuses to run where it could change something it did not make: without root, with evstore
# installed (as packages or by make install), or with /etc/evstore present.
deb_preconditions() {
    command -v dpkg-buildpackage >/dev/null ||
        skip "dpkg-buildpackage is not installed (scripts/install-deps.sh test): packages NOT tested"
    [ "$(id -u)" -eq 0 ] || skip "not root: dpkg -i needs it; packages NOT tested"
    for p in $DEB_PACKAGES; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed'; then
            skip "$p is installed on this machine: not touching it; packages NOT tested"
        fi
    done
    for f in /etc/evstore /usr/bin/evstored /usr/bin/evstore "$DEB_ENABLED_LINK"; do
        [ ! -e "$f" ] || skip "$f exists on this machine: not touching it; packages NOT tested"
    done
}

test_deb_packages_build_install_and_purge() {
    deb_preconditions
    DEB_HAD_USER=no DEB_HAD_GROUP=no
    getent passwd evstore >/dev/null && DEB_HAD_USER=yes
    getent group evstore >/dev/null && DEB_HAD_GROUP=yes
    trap deb_restore EXIT
    trap 'exit 1' INT TERM

    # ---- build (from a copy of the tree, into $BUILD/deb)
    out=$BUILD/deb
    t0=$(date +%s)
    make -C "$ROOT" --no-print-directory BUILD="$BUILD" deb >build.log 2>&1 ||
        { tail -n 40 build.log; fail "make deb failed"; }
    echo "make deb: $(( $(date +%s) - t0 )) s"
    version=$(dpkg-parsechangelog -l "$ROOT/debian/changelog" -S Version)
    arch=$(dpkg-architecture -qDEB_HOST_ARCH)
    for p in $DEB_PACKAGES; do
        [ -f "$out/${p}_${version}_$arch.deb" ] || fail "no $out/${p}_${version}_$arch.deb"
    done
    # The source package too, and nothing written into the tree itself.
    [ -f "$out/evstore_$version.dsc" ] || fail "no .dsc"
    [ -z "$(cd "$ROOT" && ls ../evstore_* ../libevstore* 2>/dev/null)" ] ||
        fail "dpkg-buildpackage wrote next to the repository"
    # The symbols file lists exactly the library's symbols: one that disappeared fails the
    # build itself; a new one must be added with the version that brings it.
    if grep -q 'dpkg-gensymbols: warning' build.log; then
        sed -n '/dpkg-gensymbols: warning/,/^ dh_/p' build.log
        fail "debian/libevstore1.symbols does not match the library: add the new symbols" \
            "(dpkg-gensymbols prints them above, with the version that brings them)"
    fi

    # ---- lintian: no error (the warnings left are listed in docs/service.md)
    command -v lintian >/dev/null || skip "lintian is not installed: packages NOT checked"
    lintian -I --fail-on error "$out/evstore_${version}_$arch.changes" >lintian.out 2>&1
    rc=$?
    cat lintian.out
    [ $rc -eq 0 ] && ! grep -q '^E:' lintian.out || fail "lintian found errors"
    # Built with dpkg-buildflags' hardening (debian/rules), not with flags from elsewhere.
    ! grep -q 'hardening-no-' lintian.out || fail "binaries built without the hardening flags"

    # ---- install
    DEBIAN_FRONTEND=noninteractive dpkg -i "$out/evstore_${version}_$arch.deb" \
        "$out/libevstore1_${version}_$arch.deb" "$out/libevstore-dev_${version}_$arch.deb" \
        >install.log 2>&1 || { cat install.log; fail "dpkg -i failed"; }
    cat install.log
    installed=""
    for p in $DEB_PACKAGES; do
        eval "want=\$DEB_FILES_$(echo "$p" | tr - _)"
        dpkg -L "$p" >"files.$p" || fail "dpkg -L $p"
        installed="$installed $(cat "files.$p" | tr '\n' ' ')"
        for f in $want; do
            grep -qx "$f" "files.$p" || fail "$p does not hold $f"
            [ -e "$f" ] || fail "$f is not on disk"
        done
    done
    [ "$(readlink "/usr/lib/$DEB_MULTIARCH/libevstore.so")" = libevstore.so.1 ] ||
        fail "libevstore.so is not a link to libevstore.so.1"

    /usr/bin/evstored --version | grep -qx "evstored ${version%-*}" || fail "evstored --version"
    /usr/bin/evstore --help >help.out 2>&1 || { cat help.out; fail "evstore --help"; }
    /usr/bin/evstored --check-config --config /etc/evstore/evstored.conf ||
        fail "the packaged config does not check"
    grep -q '^ExecStart=/usr/bin/evstored --config /etc/evstore/evstored.conf$' \
        /lib/systemd/system/evstored.service || fail "the unit's ExecStart= is not /usr/bin"

    # The system user and group of the unit, without a home or a login shell.
    entry=$(getent passwd evstore) || fail "no user evstore"
    echo "user: $entry"
    case $entry in *:/nonexistent:/usr/sbin/nologin) ;; *) fail "user evstore: $entry" ;; esac
    getent group evstore >/dev/null || fail "no group evstore"

    # The config is a conffile; the unit is enabled (and was not started: no systemd here).
    dpkg-query -W -f='${Conffiles}\n' evstore | grep -q '^ /etc/evstore/evstored.conf [0-9a-f]' ||
        fail "/etc/evstore/evstored.conf is not a conffile"
    [ -L "$DEB_ENABLED_LINK" ] || fail "evstored.service is not enabled"

    # A program built against the installed dev package, with pkg-config, runs against the
    # installed daemon and loads the installed library.
    unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
    flags=$(pkg-config --cflags --libs evstore) || fail "pkg-config does not know evstore"
    echo "pkg-config: $flags"
    cp "$ROOT/tests/service/pkgconfig/app.c" app.c
    cc -std=c11 -Wall -Wextra -Werror app.c $flags -o app || fail "app.c did not build"
    # (/lib is /usr/lib on a merged-/usr system: ldd may name either)
    ldd ./app | grep -Eq "=> (/usr)?/lib/$DEB_MULTIARCH/libevstore.so.1 " ||
        fail "app does not load the installed libevstore.so.1: $(ldd ./app)"
    EVSTORED=/usr/bin/evstored
    start_daemon
    out=$(./app "$ADDR") || fail "app failed: $out"
    echo "$out" | grep -q 'appended at position 1' || fail "unexpected output: $out"
    kill -TERM $PID
    wait_exit $PID

    # ---- purge: every file gone, /etc/evstore and the unit's enablement too; the user stays
    # (README.Debian says why).
    dpkg --purge $DEB_PACKAGES >purge.out 2>&1 || { cat purge.out; fail "dpkg --purge failed"; }
    cat purge.out
    left=""
    for f in $installed; do
        [ -d "$f" ] && continue   # shared directories such as /usr/bin stay
        [ -e "$f" ] || [ -L "$f" ] && left="$left $f"
    done
    [ -z "$left" ] || fail "left after purge:$left"
    for d in /etc/evstore /usr/include/evstore /usr/share/doc/evstore; do
        [ ! -e "$d" ] || fail "$d is left after purge"
    done
    [ ! -L "$DEB_ENABLED_LINK" ] || fail "evstored.service is still enabled after purge"
    ! grep -rqs evstored /var/lib/systemd/deb-systemd-helper-enabled ||
        fail "deb-systemd-helper still remembers evstored.service after purge"
    getent passwd evstore >/dev/null || fail "the user evstore was removed (documented: kept)"
}
