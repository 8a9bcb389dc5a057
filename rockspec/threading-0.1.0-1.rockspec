rockspec_format = "3.0"
package = "threading"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/lua-threading/threading.git",
  tag = "v0.1.0",
}
description = {
  summary = "Python-style threads, locks, queues and pools for Lua on native pthreads",
  detailed = [[
Threads that each run their own lua_State on a pthread (no global lock, so
CPU-bound Lua scales with cores), with Lock/RLock, Condition, Semaphore,
Event, Barrier, Timer, queues, shared values and an HTTP client over
libcurl, following Python's threading, queue and concurrent.futures.]],
  homepage = "https://github.com/lua-threading/threading",
  license = "MIT",
}
-- POSIX threads and dlfcn: no Windows
supported_platforms = { "unix" }
dependencies = {
  "lua >= 5.1, < 5.5",
}
-- Only the library is looked for, not curl/curl.h. LuaRocks looks for a
-- header in <prefix>/include alone, but Debian and Ubuntu keep curl's under
-- /usr/include/<multiarch>/curl (the library is in /usr/lib/<multiarch>,
-- which LuaRocks does search), and macOS keeps it in the SDK. The compiler
-- finds the header in every such layout through its own default include
-- path, so the build asks the compiler (rockspec/luarocks.mk names the
-- missing package if it cannot). What LuaRocks finds:
--   Debian, Ubuntu: /usr/lib/<multiarch>/libcurl.so
--   Fedora:         /usr/lib64/libcurl.so
--   Alpine:         /usr/lib/libcurl.so
--   macOS:          the SDK's usr/lib/libcurl.tbd (LuaRocks 3.9 or later),
--                   with curl/curl.h in the same SDK
-- CURL_DIR=<prefix> (e.g. "$(brew --prefix curl)"), or CURL_INCDIR and
-- CURL_LIBDIR, still override: CURL_INCDIR comes first on the compiler's
-- include path and CURL_LIBDIR on the linker's.
external_dependencies = {
  CURL = { library = "curl" },
}

-- The C files of threading.core, one per line: add a new src/*.c here
-- (`make lint` fails when one is missing). src/http.c and src/http_io.c are threading.http.
local core_sources = {
  "src/threading.c",
  "src/object.c",
  "src/transfer.c",
  "src/wait.c",
  "src/thread.c",
  "src/runtime.c",
  "src/alloc.c",
  "src/libs.c",
  "src/search.c",
  "src/cancel.c",
  "src/interrupt.c",
  "src/port.c",
  "src/diag.c",
  "src/lock.c",
  "src/shared.c",
  "src/condition.c",
  "src/semaphore.c",
  "src/event.c",
  "src/barrier.c",
  "src/queue.c",
  "src/fifo.c",
  "src/table.c",
  "src/future.c",
  "src/select.c",
  "src/task.c",
  "src/pool.c",
}
-- a rockspec runs without the standard library: no table.concat
local function words(list)
  local s = ""
  for i = 1, #list do
    s = s .. (i > 1 and " " or "") .. list[i]
  end
  return s
end

-- The make back-end, not builtin: builtin compiles src/*.o and links
-- threading/*.so inside the source tree and leaves them there;
-- rockspec/luarocks.mk builds under build/luarocks and removes it once
-- installed, so `luarocks make` leaves the checkout clean.
build = {
  type = "make",
  makefile = "rockspec/luarocks.mk",
  build_variables = {
    CC = "$(CC)",
    LD = "$(LD)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    CURL_INCDIR = "$(CURL_INCDIR)",
    CURL_LIBDIR = "$(CURL_LIBDIR)",
    CORE_SOURCES = words(core_sources),
    HTTP_SOURCES = "src/http.c src/http_io.c",
  },
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
  },
  -- the Lua side, laid out as in lua/ (threading/init.lua is
  -- require("threading")); `make lint` checks that every file is here
  install = {
    lua = {
      ["threading.init"] = "lua/threading/init.lua",
      ["threading.sync"] = "lua/threading/sync.lua",
      ["threading.timer"] = "lua/threading/timer.lua",
      ["threading.pool"] = "lua/threading/pool.lua",
      ["threading.async"] = "lua/threading/async.lua",
      ["threading.async.luv"] = "lua/threading/async/luv.lua",
      ["threading.async.wrappers"] = "lua/threading/async/wrappers.lua",
    },
  },
}
test = {
  type = "busted",
}
