# How LuaRocks builds threading: the rockspecs' build.type = "make" runs
# `make -f rockspec/luarocks.mk` and then `make -f rockspec/luarocks.mk install`.
#
# The rockspecs pass what LuaRocks knows of the platform (CC, LD, CFLAGS,
# LIBFLAG, LUA_INCDIR), where it found libcurl (CURL_INCDIR, CURL_LIBDIR)
# and the C sources of each module (CORE_SOURCES, HTTP_SOURCES); `install`
# gets INST_LIBDIR, the rock's library directory.
#
# Objects and libraries are built under $(BUILD_DIR), never beside the
# sources, and `install` deletes $(BUILD_DIR) once it has copied the
# libraries, so that `luarocks make` leaves a checkout as it found it.
# (LuaRocks' builtin back-end writes src/*.o and threading/*.so into the
# source tree, with no way to clean up afterwards.)
#
# GNU make 3.81 or later: what LuaRocks runs everywhere (make, or gmake on
# the BSDs).

BUILD_DIR = build/luarocks

CC = cc
LD = $(CC)
CFLAGS = -O2 -fPIC
LIBFLAG = -shared
LUA_INCDIR = /usr/include
CURL_INCDIR = /usr/include
CURL_LIBDIR = /usr/lib
CORE_SOURCES =
HTTP_SOURCES =
INST_LIBDIR =

# The module's own flags come after LuaRocks' CFLAGS, so that they apply
# whatever CFLAGS the user's LuaRocks configuration sets.
MODULE_CFLAGS = -D_GNU_SOURCE -fvisibility=hidden -pthread -Isrc -I"$(LUA_INCDIR)"

HEADERS = $(wildcard src/*.h)
CORE_OBJECTS = $(patsubst src/%.c,$(BUILD_DIR)/core/%.o,$(CORE_SOURCES))
HTTP_OBJECTS = $(patsubst src/%.c,$(BUILD_DIR)/http/%.o,$(HTTP_SOURCES))
CORE_LIB = $(BUILD_DIR)/threading/core.so
HTTP_LIB = $(BUILD_DIR)/threading/http.so
HEADERS_FOUND = $(BUILD_DIR)/headers-found

.PHONY: all install

all: $(CORE_LIB) $(HTTP_LIB)

# Before compiling, say plainly what is missing rather than let the compiler
# stop at an #include. curl/curl.h is looked for the way http.c is compiled:
# in CURL_INCDIR, then on the compiler's own include path, which knows
# Debian's /usr/include/<multiarch> and the macOS SDK. (LuaRocks itself has
# checked for lua.h and found libcurl.)
$(HEADERS_FOUND):
	@test -n "$(CORE_SOURCES)" && test -n "$(HTTP_SOURCES)" || { \
	  echo "Error: CORE_SOURCES and HTTP_SOURCES come from the rockspec's build_variables."; \
	  exit 1; }
	@mkdir -p $(@D)
	@printf '#include <curl/curl.h>\n' | \
	  $(CC) $(CFLAGS) -I"$(CURL_INCDIR)" -E -x c - > /dev/null 2>&1 || { \
	  echo "Error: the compiler finds no curl/curl.h (searched $(CURL_INCDIR) and its default path)."; \
	  echo "Install libcurl's development files (Debian, Ubuntu: libcurl4-openssl-dev;" \
	       "Fedora: libcurl-devel; Alpine: curl-dev) or pass CURL_DIR=<prefix>" \
	       "or CURL_INCDIR=<dir> to luarocks."; \
	  exit 1; }
	@touch $@

$(BUILD_DIR)/core/%.o: src/%.c $(HEADERS) $(HEADERS_FOUND)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MODULE_CFLAGS) -c $< -o $@

$(BUILD_DIR)/http/%.o: src/%.c $(HEADERS) $(HEADERS_FOUND)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MODULE_CFLAGS) -I"$(CURL_INCDIR)" -c $< -o $@

$(CORE_LIB): $(CORE_OBJECTS)
	@mkdir -p $(@D)
	$(LD) $(LIBFLAG) -o $@ $(CORE_OBJECTS) -pthread -ldl

# The run-time path lets a libcurl found outside the loader's default
# directories (CURL_DIR=/opt/curl) load, as LuaRocks' builtin back-end does.
$(HTTP_LIB): $(HTTP_OBJECTS)
	@mkdir -p $(@D)
	$(LD) $(LIBFLAG) -o $@ $(HTTP_OBJECTS) -L"$(CURL_LIBDIR)" -Wl,-rpath,"$(CURL_LIBDIR)" -lcurl -pthread -ldl

install:
	@test -n "$(INST_LIBDIR)" || { echo "Error: INST_LIBDIR is not set."; exit 1; }
	@test -f $(CORE_LIB) && test -f $(HTTP_LIB) || { \
	  echo "Error: nothing to install; the build step has not run."; exit 1; }
	mkdir -p "$(INST_LIBDIR)/threading"
	cp $(CORE_LIB) $(HTTP_LIB) "$(INST_LIBDIR)/threading/"
	rm -rf $(BUILD_DIR)
	@rmdir build 2> /dev/null || true
