# evstore: the daemon (evstored), the client library (libevstore) and the CLI (evstore).
#
#   make          build build/bin/evstored, build/bin/evstore, build/lib/libevstore.so.1
#   make run      install missing Debian packages, build, start evstored on 127.0.0.1:7433
#   make test     install missing packages, build with ASan+UBSan into build/san, run every test
#   make bench    the in-memory append benchmark next to redis SET (docs/performance.md)
#   make fuzz     the libFuzzer harnesses of tests/fuzz, FUZZ_SECONDS (default 60) each
#   make deb      the Debian packages (debian/) into build/deb
#
# The caller's CFLAGS are appended to ours.

BUILD   ?= build
SAN     ?= 0
VERSION := 0.1.0
SOVER   := 1
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR ?=

PKGS    := libuv msgpack libpq jansson uuid openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# The daemon's libraries without a pkg-config file: http_parser (the metrics endpoint's parser).
SERVER_LIBS := -lhttp_parser
CRIT_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS   := $(shell pkg-config --libs criterion 2>/dev/null)

CC      ?= cc
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -fPIC \
               -DEVS_VERSION='"$(VERSION)"' -DEVS_SYSCONFDIR='"$(SYSCONFDIR)"' -I$(BUILD)/include $(PKG_CFLAGS)
ifeq ($(SAN),1)
BASE_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
SAN_LDFLAGS := -fsanitize=address,undefined
endif
ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN_LDFLAGS) $(LDFLAGS)

PROTO_SRC  := $(wildcard proto/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c)) $(wildcard server/pg/*.c)
CLIENT_SRC := $(wildcard client/*.c)
CLI_SRC    := $(wildcard client/cli/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
PROTO_OBJ  := $(call obj,$(PROTO_SRC))
SERVER_OBJ := $(call obj,$(SERVER_SRC))
CLIENT_OBJ := $(call obj,$(CLIENT_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))

PROTO_HEADERS  := $(BUILD)/include/evstore/event.h $(BUILD)/include/evstore/errors.h
ASYNC_HEADERS  := $(BUILD)/include/evstore/async.h $(BUILD)/include/evstore/libuv.h
PUBLIC_HEADERS := $(BUILD)/include/evstore.h $(PROTO_HEADERS) $(ASYNC_HEADERS)

EVSTORED := $(BUILD)/bin/evstored
EVSTORE  := $(BUILD)/bin/evstore
BANK_EXAMPLE := $(BUILD)/bin/evstore-bank-example
KANBAN_EXAMPLE := $(BUILD)/bin/evstore-kanban-example
SAGA_EXAMPLE := $(BUILD)/bin/evstore-saga-example
LIBSO    := $(BUILD)/lib/libevstore.so.$(SOVER)
LIBA     := $(BUILD)/lib/libevstore.a
SERVERA  := $(BUILD)/lib/libevstored.a

UNIT_TESTS  := $(BUILD)/tests/unit
STORE_TESTS := $(BUILD)/tests/store
INTEG_TESTS := $(BUILD)/tests/integration
SERVICE_TOOL := $(BUILD)/tests/svc-tool
# tests/common: the helpers every suite, the service tool and the benchmarks share.
TEST_COMMON_OBJ := $(call obj,$(wildcard tests/common/*.c))

.PHONY: all deps deps-run run test tests bench clean install format
all: $(EVSTORED) $(EVSTORE) $(LIBSO) $(BUILD)/lib/libevstore.so $(LIBA) $(BANK_EXAMPLE) $(KANBAN_EXAMPLE) $(SAGA_EXAMPLE)

# `make run` installs only what building and running needs; `make test` adds the test tools.
deps:
	@scripts/install-deps.sh test
deps-run:
	@scripts/install-deps.sh run

run: deps-run
	@$(MAKE) --no-print-directory all
	$(EVSTORED) --listen 127.0.0.1:7433 --store memory

test: deps
	@$(MAKE) --no-print-directory BUILD=build/san SAN=1 all tests
	@scripts/run-tests.sh build/san

tests: $(UNIT_TESTS) $(STORE_TESTS) $(INTEG_TESTS) $(SERVICE_TOOL)

bench: deps-run
	@$(MAKE) --no-print-directory all
	@scripts/bench-memory.sh

$(BUILD)/include/evstore.h: client/evstore.h
	@mkdir -p $(dir $@)
	cp $< $@
# A static pattern rule: make 4.3 does not look for an implicit rule for the fixed
# prerequisites of a pattern rule, so in a fresh build directory these headers must be
# explicit targets (else client/cli objects fail with "evstore.h: No such file").
$(PROTO_HEADERS): $(BUILD)/include/evstore/%.h: proto/%.h
	@mkdir -p $(dir $@)
	cp $< $@
$(ASYNC_HEADERS): $(BUILD)/include/evstore/%.h: client/evstore_%.h
	@mkdir -p $(dir $@)
	cp $< $@

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/client/cli/%.o: client/cli/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/tests/unit/%.o: tests/unit/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CRIT_CFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/tests/integration/%.o: tests/integration/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CRIT_CFLAGS) -MMD -MP -c $< -o $@

# The client library's objects hide every symbol that is not marked EVS_API.
$(BUILD)/obj/client/%.o: client/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -DEVS_BUILDING_LIB -MMD -MP -c $< -o $@
$(BUILD)/obj/libproto/%.o: proto/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fvisibility=hidden -DEVS_BUILDING_LIB -MMD -MP -c $< -o $@
LIBPROTO_OBJ := $(patsubst proto/%.c,$(BUILD)/obj/libproto/%.o,$(PROTO_SRC))

$(SERVERA): $(SERVER_OBJ) $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# --- PostgreSQL store (server/pg/): migrations/*.sql embedded in the daemon, so that an installed
# evstored needs no source tree. scripts/embed-migrations.sh writes them as C strings.
MIGRATIONS     := $(sort $(wildcard migrations/*.sql))
MIGRATIONS_C   := $(BUILD)/gen/migrations_sql.c
MIGRATIONS_OBJ := $(BUILD)/obj/gen/migrations_sql.o
$(MIGRATIONS_C): $(MIGRATIONS) scripts/embed-migrations.sh
	@mkdir -p $(dir $@)
	scripts/embed-migrations.sh $@ $(MIGRATIONS)
$(MIGRATIONS_OBJ): $(MIGRATIONS_C) server/pg/migrations.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I. -c $< -o $@
$(SERVERA): $(MIGRATIONS_OBJ)
# tests/pg: PostgreSQL-specific tests (they need a cluster: scripts/pg-cluster.sh run -- ...).
PG_TESTS := $(BUILD)/tests/pg
tests: $(PG_TESTS)
$(PG_TESTS): $(call obj,$(wildcard tests/pg/*.c)) $(TEST_COMMON_OBJ) $(SERVERA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(SERVER_LIBS) $(CRIT_LIBS) -lm
# The benchmark programs of scripts/bench-*.sh (scripts/bench/*.c): the read half of
# scripts/bench-pg.sh, the subscription benchmark of scripts/bench-subs.sh and the soak benchmark
# of scripts/bench-soak.sh. `tests` builds them too, so that a change that breaks them fails
# `make test`.
BENCH_READS := $(BUILD)/bench/bench-reads
BENCH_SUBS  := $(BUILD)/bench/bench-subs
BENCH_SOAK  := $(BUILD)/bench/bench-soak
tests: $(BENCH_READS) $(BENCH_SUBS) $(BENCH_SOAK)
$(BUILD)/obj/scripts/bench/%.o: scripts/bench/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(BENCH_READS): $(BUILD)/obj/scripts/bench/reads.o $(TEST_COMMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm
$(BENCH_SUBS): $(BUILD)/obj/scripts/bench/subs.o $(TEST_COMMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm
$(BENCH_SOAK): $(BUILD)/obj/scripts/bench/soak.o $(TEST_COMMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm
# --- end of the PostgreSQL store's rules

$(EVSTORED): $(BUILD)/obj/server/main.o $(SERVERA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(SERVER_LIBS) -lm

$(LIBSO): $(CLIENT_OBJ) $(LIBPROTO_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libevstore.so.$(SOVER) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS)
$(BUILD)/lib/libevstore.so: $(LIBSO)
	ln -sf libevstore.so.$(SOVER) $@
$(LIBA): $(CLIENT_OBJ) $(LIBPROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The examples of the domain layer (docs/examples/bank, docs/examples/kanban), linked like a
# program outside the tree would be: only <evstore.h> and the library. tests/service/
# test_examples.sh also builds them from an installed tree with pkg-config.
$(BUILD)/obj/docs/examples/%.o: docs/examples/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(BANK_EXAMPLE): $(BUILD)/obj/docs/examples/bank/main.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm
$(KANBAN_EXAMPLE): $(BUILD)/obj/docs/examples/kanban/main.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm
$(SAGA_EXAMPLE): $(BUILD)/obj/docs/examples/saga/main.o $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm

$(EVSTORE): $(CLI_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $(CLI_OBJ) $(LIBA) $(ALL_LDFLAGS) $(PKG_LIBS) -lm

$(UNIT_TESTS): $(call obj,$(wildcard tests/unit/*.c)) $(SERVERA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(SERVER_LIBS) $(CRIT_LIBS) -lm
$(STORE_TESTS): $(call obj,$(wildcard tests/store/*.c)) $(TEST_COMMON_OBJ) $(SERVERA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(SERVER_LIBS) $(CRIT_LIBS) -lm
$(INTEG_TESTS): $(call obj,$(wildcard tests/integration/*.c)) $(TEST_COMMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) $(CRIT_LIBS) -lm

# ---- service tests: tests/service/run.sh runs tests/service/*.sh, which use this tool.
$(BUILD)/obj/tests/service/%.o: tests/service/%.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
$(SERVICE_TOOL): $(call obj,$(wildcard tests/service/*.c)) $(TEST_COMMON_OBJ) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(ALL_LDFLAGS) $(PKG_LIBS) -lm

# ---- fuzzing (tests/fuzz): libFuzzer harnesses of the parsers of untrusted bytes, built by clang
# from the same sources into $(BUILD)/fuzz (separate from the gcc objects), always with ASan and
# UBSan. `make fuzz` builds them and runs each for FUZZ_SECONDS; `make test` runs each over its
# corpus plus 10 s of new inputs (tests/fuzz/run.sh). The auth_file harness is built once
# server/auth.h exists.
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(BASE_CFLAGS)) $(FUZZ_SAN)
FUZZ_NAMES   := frame_reader request client_reply value config http_request \
                $(if $(wildcard server/auth.h),auth_file)
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
FUZZ_OBJ      = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_SERVER_LIB := $(FUZZ_DIR)/libevstored-fuzz.a
FUZZ_CLIENT_LIB := $(FUZZ_DIR)/libevstore-fuzz.a
.PHONY: fuzz fuzz-build
.PRECIOUS: $(FUZZ_DIR)/obj/%.o
fuzz-build: $(FUZZ_BINS)
tests: fuzz-build
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS)
# The library sources get coverage instrumentation (fuzzer-no-link); the harnesses link libFuzzer.
$(FUZZ_DIR)/obj/%.o: %.c $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_DIR)/obj/gen/migrations_sql.o: $(MIGRATIONS_C) server/pg/migrations.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -c $< -o $@
$(FUZZ_SERVER_LIB): $(call FUZZ_OBJ,$(PROTO_SRC) $(SERVER_SRC)) $(FUZZ_DIR)/obj/gen/migrations_sql.o
	rm -f $@ && ar rcs $@ $^
$(FUZZ_CLIENT_LIB): $(call FUZZ_OBJ,$(PROTO_SRC) $(CLIENT_SRC))
	rm -f $@ && ar rcs $@ $^
# The harnesses of libevstore (the others are of the daemon).
FUZZ_CLIENT_BINS := $(FUZZ_DIR)/fuzz_client_reply $(FUZZ_DIR)/fuzz_value
$(FUZZ_CLIENT_BINS): $(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_CLIENT_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) -lm
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/tests/fuzz/fuzz_%.o $(FUZZ_SERVER_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(PKG_LIBS) $(SERVER_LIBS) -lm

# ---- install: every path under DESTDIR; PREFIX defaults to /usr/local. The config
# directory is /etc whatever the PREFIX (the unit file and evstored's default --config point
# there); an existing evstored.conf is never overwritten (the sample also goes to DOCDIR).
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/evstore
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
UNITDIR    ?= $(PREFIX)/lib/systemd/system
MAN_PAGES  := man/evstored.8 man/evstored.conf.5 man/evstore.1 man/libevstore.3

# Both are written again on every install: they hold PREFIX and SYSCONFDIR.
.PHONY: FORCE
$(BUILD)/evstore.pc: FORCE
	@mkdir -p $(dir $@)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCLUDEDIR)' '' \
	  'Name: evstore' 'Description: client library of the evstore event store' \
	  'Version: $(VERSION)' 'Requires.private: msgpack openssl' 'Libs: -L$${libdir} -levstore' \
	  'Cflags: -I$${includedir}' > $@
$(BUILD)/evstored.service: systemd/evstored.service FORCE
	@mkdir -p $(dir $@)
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/etc/evstore/|$(SYSCONFDIR)/evstore/|g' $< > $@

install: all $(BUILD)/evstore.pc $(BUILD)/evstored.service
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/evstore \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/evstore \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(EVSTORED) $(EVSTORE) $(DESTDIR)$(BINDIR)/
	install -m 755 $(LIBSO) $(DESTDIR)$(LIBDIR)/
	ln -sf libevstore.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libevstore.so
	install -m 644 $(LIBA) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(BUILD)/include/evstore.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(PROTO_HEADERS) $(ASYNC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/evstore/
	install -m 644 $(BUILD)/evstore.pc $(DESTDIR)$(PKGCONFIGDIR)/
	install -m 644 $(BUILD)/evstored.service $(DESTDIR)$(UNITDIR)/
	install -m 644 systemd/evstored.conf $(DESTDIR)$(DOCDIR)/evstored.conf.sample
	[ -e $(DESTDIR)$(SYSCONFDIR)/evstore/evstored.conf ] || \
		install -m 644 systemd/evstored.conf $(DESTDIR)$(SYSCONFDIR)/evstore/evstored.conf
	install -m 644 man/evstore.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/libevstore.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 man/evstored.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 man/evstored.8 $(DESTDIR)$(MANDIR)/man8/

# ---- deb: the Debian packages of debian/ (evstore, libevstore1, libevstore-dev) built from a
# copy of the working tree into $(BUILD)/deb (scripts/build-deb.sh; docs/service.md).
.PHONY: deb
deb:
	@scripts/build-deb.sh $(BUILD)/deb

# `make format` formats every C file as .clang-format says; `make test` checks it
# (scripts/check-format.sh).
format:
	@scripts/check-format.sh --fix

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(FUZZ_DIR)/obj -name '*.d' 2>/dev/null)
