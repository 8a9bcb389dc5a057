/*
** threading.c: luaopen_threading_core, the module's only exported symbol.
**
** Safe to run in many states at once and more than once per state: all
** process-wide set-up goes through pthread_once. This file takes no lock.
*/
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "search.h"
#include "thread.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#include "version.h"

static pthread_once_t pin_once = PTHREAD_ONCE_INIT;

/* Threads may run this library's code after the state that loaded it has
** closed it (daemon threads, a thread finishing its last release): load it
** once more with RTLD_NODELETE so it is never unmapped. */
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void *)&pin_library, &info) && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}

/* threading.monotonic() -> seconds on a clock that never goes back */
static int threading_monotonic(lua_State *L) {
  lua_pushnumber(L, wait_now());
  return 1;
}

/* threading.cpu_count() -> online processors */
static int threading_cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

/* threading.testcancel(): raise the cancellation if the calling thread has
** one pending. A cancellation point for a loop that never blocks (LuaJIT
** runs no hook in compiled code; a C function such as this one is never
** compiled). */
static int threading_check_cancel(lua_State *L) {
  wait_check_cancel(L);
  return 0;
}

/* core._wait_point([phase]): for the waits of modules built apart from the
** core (threading.http), which wait in loops of their own. Phase 1 before
** the wait: in the process's main thread, Ctrl-C then interrupts it (see
** interrupt.c). No phase, between rounds of the wait: a cancellation point,
** which also raises "interrupted!" once a SIGINT came. Phase 2 after the
** wait: raises "interrupted!" if a SIGINT came since the last round. */
static int threading_wait_point(lua_State *L) {
  lua_Integer phase = luaL_optinteger(L, 1, 0);
  if (phase == 1) {
    (void)interrupt_begin();
    return 0;
  }
  if (phase == 2 || interrupt_noted()) {
    if (interrupt_end()) return interrupt_raise(L);
    if (phase == 2) return 0;
  }
  wait_check_cancel(L);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"_wait_point", threading_wait_point},
  {"testcancel", threading_check_cancel},
  {"_register_class", transfer_register_class},
  {"monotonic", threading_monotonic},
  {"cpu_count", threading_cpu_count},
  {NULL, NULL}
};

__attribute__((visibility("default"))) int luaopen_threading_core(lua_State *L);

int luaopen_threading_core(lua_State *L) {
  pthread_once(&pin_once, pin_library);
  lua_newtable(L);
  luaL_setfuncs(L, funcs, 0);
  thread_open(L);
  search_open(L);
  lock_open(L);
  shared_open(L);
  condition_open(L);
  semaphore_open(L);
  event_open(L);
  barrier_open(L);
  queue_open(L);
  table_open(L);
  fifo_open(L);
  future_open(L);
  pool_open(L);
  port_open(L);
  select_open(L);
  task_open(L);
  lua_pushliteral(L, THREADING_VERSION);
  lua_setfield(L, -2, "_VERSION");
  thread_register_state(L);
  return 1;
}
