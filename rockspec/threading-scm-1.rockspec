rockspec_format = "3.0"
package = "threading"
version = "scm-1"
source = {
  url = "git+file:///threading",
}
description = {
  summary = "Python-style threads, locks, queues and pools for Lua on native pthreads",
  detailed = [[
Threads that each run their own lua_State on a pthread (no global lock, so
CPU-bound Lua scales with cores), with Lock/RLock, Condition, Semaphore,
Event, Barrier, Timer, queues, shared values and an HTTP client over
libcurl, following Python's threading, queue and concurrent.futures.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  CURL = { header = "curl/curl.h", library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    ["threading.core"] = {
      sources = {
        "src/threading.c", "src/object.c", "src/transfer.c", "src/wait.c",
        "src/thread.c", "src/runtime.c", "src/cancel.c", "src/diag.c", "src/lock.c", "src/shared.c", "src/condition.c",
        "src/semaphore.c", "src/event.c", "src/barrier.c", "src/queue.c",
        "src/fifo.c", "src/table.c", "src/pool.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "src" },
      libraries = { "pthread", "dl" },
    },
    ["threading.http"] = {
      sources = { "src/http.c" },
      defines = { "_GNU_SOURCE" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl", "dl" },
    },
    ["threading"] = "lua/threading/init.lua",
    ["threading.sync"] = "lua/threading/sync.lua",
    ["threading.timer"] = "lua/threading/timer.lua",
    ["threading.pool"] = "lua/threading/pool.lua",
    ["threading.async"] = "lua/threading/async.lua",
  },
}
