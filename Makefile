# threading for Lua: build, test, check, benchmark.
#
#   make                 build for LUA=5.4 (or 5.1, 5.2, 5.3, jit)
#   make demo            install what is missing, build, run the examples
#   make test            install what is missing, build, run the specs on 5.4
#   make test-all        the specs on 5.1, 5.2, 5.3, 5.4 and LuaJIT
#   make lint            luacheck and cppcheck, zero findings; the packaging agrees
#   make dist            the release's source rock, build/threading-<version>-1.src.rock
#   make rocks           that rock installed and loaded for every Lua
#   make asan|tsan       the whole spec suite on a sanitized build
#   make valgrind        the whole spec suite under memcheck
#   make bench           each workload beside its Python counterpart and its floor
#   make bench-report    the whole bench; its report and chart copied to doc/bench

LUA ?= 5.4
VERSIONS := 5.1 5.2 5.3 5.4 jit

ifeq ($(LUA),jit)
LUA_BIN := luajit
LUA_INC := /usr/include/luajit-2.1
else
LUA_BIN := lua$(LUA)
LUA_INC := /usr/include/lua$(LUA)
endif

SANITIZE ?=
BUILD := build/$(LUA)$(if $(SANITIZE),-$(SANITIZE))
CC ?= cc
OPT ?= -O2
WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
        -Wpointer-arith -Wundef -Wwrite-strings -Wredundant-decls \
        -Wnested-externs -Wformat=2 -Wvla -Werror
ifeq ($(SANITIZE),asan)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_PRELOAD := $(shell $(CC) -print-file-name=libasan.so)
endif
ifeq ($(SANITIZE),tsan)
SAN_FLAGS := -fsanitize=thread -fno-omit-frame-pointer
SAN_PRELOAD := $(shell $(CC) -print-file-name=libtsan.so)
endif

CFLAGS_ALL := -std=c99 -D_GNU_SOURCE $(OPT) -g -fPIC -fvisibility=hidden \
        $(WARN) -I$(LUA_INC) $(SAN_FLAGS) $(CFLAGS)
LDFLAGS_ALL := -shared -pthread $(SAN_FLAGS) $(LDFLAGS)
LIBS := -ldl

# every C file but the HTTP binding (HTTP_SRC) goes into threading/core.so
HTTP_SRC := src/http.c src/http_io.c
CORE_SRC := $(filter-out $(HTTP_SRC),$(wildcard src/*.c))
CORE_OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(CORE_SRC))
CORE_SO := $(BUILD)/threading/core.so
HEADERS := $(wildcard src/*.h)

LUA_PATH_DEV := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;$(CURDIR)/spec/support/?.lua;;
LUA_CPATH_DEV := $(CURDIR)/$(BUILD)/?.so;;
RUN := env -u LUA_PATH_5_2 -u LUA_PATH_5_3 -u LUA_PATH_5_4 \
       -u LUA_CPATH_5_2 -u LUA_CPATH_5_3 -u LUA_CPATH_5_4 \
       LUA_PATH='$(LUA_PATH_DEV)' LUA_CPATH='$(LUA_CPATH_DEV)'
BUSTED := /usr/bin/busted
BUSTED_ARGS ?=

.PHONY: all build deps test test-all check demo lint asan tsan valgrind rocks dist stress bench clean

all: build

build: $(CORE_SO)

$(BUILD)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(CORE_SO): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CORE_OBJ) $(LIBS)

# threading.http: its own module over libcurl (core.so never links curl),
# and the local HTTP server the specs, examples and benchmarks start. The
# server does not depend on the Lua version: one binary in build/tools.
HTTP_SO := $(BUILD)/threading/http.so
HTTP_SERVER := build/tools/http_server
build: $(HTTP_SO) $(HTTP_SERVER)

$(HTTP_SO): $(patsubst src/%.c,$(BUILD)/obj/%.o,$(HTTP_SRC))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcurl $(LIBS)

$(HTTP_SERVER): spec/support/http_server.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -D_GNU_SOURCE -O2 -g $(WARN) $< -o $@.$$$$ -lm && mv -f $@.$$$$ $@

# Debian packages the project needs; installs only what is missing.
DEB_PKGS := lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
            lua5.4 liblua5.4-dev luajit libluajit-5.1-dev luarocks lua-busted \
            lua-check cppcheck valgrind gcc make python3 libcurl4-openssl-dev \
            openssl ca-certificates lua-luv
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: deps
	$(MAKE) check LUA=5.4

# A host program embedding two Lua states, for the specs (linked with the
# Lua library of the build).
ifeq ($(LUA),jit)
LUA_LIB := -lluajit-5.1
else
LUA_LIB := -llua$(LUA)
endif
EMBED := $(BUILD)/embed
$(EMBED): spec/support/embed.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -fPIC,$(CFLAGS_ALL)) -o $@ $< $(SAN_FLAGS) $(LUA_LIB)

# A C module giving the specs fork(), waitpid() and _exit().
TESTFORK := $(BUILD)/testfork.so
$(TESTFORK): spec/support/testfork.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $<

# the spec suite on one build (LUA, SANITIZE) without touching packages
check: build $(EMBED) $(TESTFORK)
	$(RUN) THREADING_EMBED=$(CURDIR)/$(EMBED) $(SAN_ENV) $(WRAP) $(LUA_BIN) $(BUSTED) $(BUSTED_ARGS)

test-all: deps
	@set -e; for v in $(VERSIONS); do $(MAKE) --no-print-directory check LUA=$$v; done

asan: deps
	$(MAKE) check SANITIZE=asan OPT=-O1 \
	  SAN_ENV="LD_PRELOAD=$(shell $(CC) -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"

# ThreadSanitizer cannot be preloaded into the shells that io.popen starts,
# so the specs run in a small host program that links the runtime itself.
TSAN_HOST := build/5.4-tsan/lua-host
$(TSAN_HOST): spec/support/host.c
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -O1 -g -fsanitize=thread -fPIE -pie $(WARN) -I/usr/include/lua5.4 \
	  -o $@ $< -llua5.4

tsan: deps
	$(MAKE) $(TSAN_HOST)
	$(MAKE) check SANITIZE=tsan OPT=-O1 LUA_BIN=$(CURDIR)/$(TSAN_HOST) \
	  SAN_ENV="THREADING_LUA=$(CURDIR)/$(TSAN_HOST) TSAN_OPTIONS=halt_on_error=1:exitcode=66:second_deadlock_stack=1:die_after_fork=0:suppressions=$(CURDIR)/.ci/tsan.supp"

valgrind: deps
	$(MAKE) check OPT=-O1 \
	  WRAP="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --suppressions=$(CURDIR)/.ci/valgrind.supp"

demo: deps build
	$(RUN) $(LUA_BIN) examples/01_threads.lua
	$(RUN) $(LUA_BIN) examples/02_lock_counter.lua
	$(RUN) $(LUA_BIN) examples/02_lock_counter.lua --no-lock
	$(RUN) $(LUA_BIN) examples/03_io_bound.lua --compare
	@set -e; for f in examples/0[4-9]_*.lua examples/1[0-9]_*.lua; do \
	  echo "== $$f"; $(RUN) $(LUA_BIN) $$f; done

# Long checks that prove nothing is lost; STRESS_SCALE=10 for a longer run.
STRESS_SCALE ?= 1
STRESS_TIMEOUT ?= 600
stress: deps build $(TESTFORK)
	@set -e; for f in stress/*.lua; do \
	  $(RUN) STRESS_SCALE=$(STRESS_SCALE) timeout -k 10 $(STRESS_TIMEOUT) $(LUA_BIN) $$f \
	    || { echo "$$f failed (status $$?; 124: still running after $(STRESS_TIMEOUT) s)"; exit 1; }; \
	done

# The floors (bench/floor, bench/README.md): C programs that measure the
# least the hardware and the OS take for a workload's work, run by
# bench/run.lua beside it. Those that hold Lua are built for the LUA of the
# run: state_openlibs links that Lua's static library, as the interpreters
# link it, and floor_cmethod.so is a module loaded by the interpreter.
FLOOR_DIR := build/bench/floor
FLOOR_CFLAGS := -std=c99 -O2 -pthread $(WARN)
FLOOR_PROGS := $(addprefix $(FLOOR_DIR)/,pthread_create_join mutex_pair futex_pingpong)
FLOOR_LUA := $(FLOOR_DIR)/$(LUA)/state_openlibs $(FLOOR_DIR)/$(LUA)/floor_cmethod.so
FLOOR_DEPS := bench/floor/floor.h

.PHONY: bench-floors bench-report
bench-floors: $(FLOOR_PROGS) $(FLOOR_LUA)

$(FLOOR_DIR)/%: bench/floor/%.c $(FLOOR_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(FLOOR_CFLAGS) -o $@ $<

$(FLOOR_DIR)/$(LUA)/state_openlibs: bench/floor/state_openlibs.c $(FLOOR_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(FLOOR_CFLAGS) -I$(LUA_INC) -o $@ $< -Wl,-Bstatic $(LUA_LIB) -Wl,-Bdynamic -lm -ldl

$(FLOOR_DIR)/$(LUA)/floor_cmethod.so: bench/floor/cmethod.c
	@mkdir -p $(dir $@)
	$(CC) $(FLOOR_CFLAGS) -fPIC -shared -I$(LUA_INC) -o $@ $<

bench: deps build bench-floors
	$(RUN) $(LUA_BIN) bench/run.lua

# The whole bench, whatever BENCH says, and its report copied to doc/bench,
# the committed copy the README shows.
bench-report: deps build bench-floors
	$(RUN) BENCH= $(LUA_BIN) bench/run.lua
	@mkdir -p doc/bench
	cp build/bench/report.md build/bench/report.svg doc/bench/

# The release. The version lives in src/version.h; make dist packs
# build/threading-$(VERSION)-1.src.rock from HEAD without a network: the
# release rockspec names the project's repository and the tag v$(VERSION),
# so a bare repository under build/dist holds HEAD as that tag, git is told
# to clone it in the repository's place, and luarocks pack makes the same
# source rock it makes from the published tag.
VERSION := $(shell sed -n 's/.*THREADING_VERSION "\([^"]*\)".*/\1/p' src/version.h)
RELEASE_ROCKSPEC := rockspec/threading-$(VERSION)-1.rockspec
SRC_ROCK := threading-$(VERSION)-1.src.rock
ROCK_REPO = $(shell sed -n 's/^ *url = "git+\([^"]*\)".*/\1/p' $(RELEASE_ROCKSPEC))
# proves "no network" where a network namespace can be made (root)
OFFLINE = $(shell unshare -n true 2> /dev/null && echo unshare -n)

dist:
	@test -n "$(VERSION)" || { echo "src/version.h defines no THREADING_VERSION"; exit 1; }
	@git diff --quiet HEAD || echo "make dist: uncommitted changes are not in the rock (it is packed from HEAD)"
	rm -rf build/dist build/$(SRC_ROCK)
	mkdir -p build/dist
	git init -q --bare build/dist/threading.git
	git push -q build/dist/threading.git HEAD:refs/tags/v$(VERSION)
	git show HEAD:$(RELEASE_ROCKSPEC) > build/dist/$(notdir $(RELEASE_ROCKSPEC))
	cd build/dist && GIT_CONFIG_COUNT=1 \
	  GIT_CONFIG_KEY_0="url.file://$(CURDIR)/build/dist/threading.git.insteadOf" \
	  GIT_CONFIG_VALUE_0="$(ROCK_REPO)" \
	  $(OFFLINE) luarocks pack $(notdir $(RELEASE_ROCKSPEC)) > pack.log 2>&1 || { cat pack.log; exit 1; }
	mv build/dist/$(SRC_ROCK) build/$(SRC_ROCK)
	rm -rf build/dist
	@echo "built build/$(SRC_ROCK) from $$(git rev-parse --short HEAD)"

# Install that source rock with luarocks for every Lua into build/rocks-<v>,
# offline, and load it from a plain interpreter outside the checkout.
ROCK_SMOKE := local t = require("threading"); \
  assert(t._VERSION == "$(VERSION)", t._VERSION); \
  assert(select(2, t.start(function() return 42 end):join(10)) == 42); \
  assert(require("threading.http").get); \
  print("rock ok: " .. (jit and jit.version or _VERSION) .. ", threading " .. t._VERSION)
rocks: deps dist
	@set -e; for v in $(VERSIONS); do \
	  if [ $$v = jit ]; then lv=5.1; bin=luajit; inc="LUA_INCDIR=/usr/include/luajit-2.1"; \
	  else lv=$$v; bin=lua$$v; inc=; fi; \
	  tree=$(CURDIR)/build/rocks-$$v; rm -rf $$tree; \
	  (cd build && $(OFFLINE) luarocks --lua-version=$$lv --tree=$$tree install ./$(SRC_ROCK) $$inc) \
	    > build/rocks-$$v.log 2>&1 || { cat build/rocks-$$v.log; exit 1; }; \
	  (unset LUA_PATH_5_2 LUA_PATH_5_3 LUA_PATH_5_4 LUA_CPATH_5_2 LUA_CPATH_5_3 LUA_CPATH_5_4; \
	   eval "$$(luarocks --lua-version=$$lv --tree=$$tree path)"; cd /tmp && $$bin -e '$(ROCK_SMOKE)'); \
	done

ROCKSPECS := rockspec/threading-scm-1.rockspec $(RELEASE_ROCKSPEC)
lint: deps
	lua5.4 .ci/check-packaging.lua
	@for f in $(ROCKSPECS); do luarocks lint $$f || exit 1; done
	luacheck --quiet lua spec examples bench stress .ci
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --std=c99 --inline-suppr --suppress=missingIncludeSystem -I src src

clean:
	rm -rf build
