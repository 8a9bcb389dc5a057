/*
** task.c: a coroutine task's blocking calls, handed from C to the
** scheduler (threading.async).
**
** While a scheduler resumes a task, the thread's waiter names the task's
** coroutine (threading._act, port.c). A blocking method called by that
** coroutine (task_calling, wait.h) first tries its non-blocking form in C:
** a call that finds its object ready (a free lock, a queued item, room in
** a queue, a set event) returns from there, as fast as in a thread, with
** no Lua in between. Only a call that would wait comes here: task_defer
** calls the scheduler's Lua half for its kind (registered by
** threading._defer), which suspends the task until the object lets the
** call proceed, and returns what the half returns. The half yields across
** the C method through lua_callk, so this exists on Lua 5.2+ only: on 5.1
** and LuaJIT, threading._defer is absent and the scheduler keeps its Lua
** wrappers in the methods tables (async.lua).
**
** Who owns what: the halves are the state's, in a table at
** registry[&halves_key]. Locks: none is taken here, and a method calls
** task_defer with none held (the non-blocking try has released its own).
*/
#include "compat.h"
#include "types.h"
#include "wait.h"

#if COMPAT_CALLK
static const char halves_key = 'h';
#endif

/* Call the half for `kind` with (try, self, timeout[, extra]): try is
** try_fn, else the value at try_idx, else (both 0) the method running. */
static int defer_call(lua_State *L, int kind, lua_CFunction try_fn, int try_idx, double timeout,
                      int extra_idx) {
#if COMPAT_CALLK
  int base = lua_gettop(L), nargs = 3;
  luaL_checkstack(L, 6, NULL);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &halves_key);
  if (lua_istable(L, -1)) lua_rawgeti(L, -1, kind);
  else lua_pushnil(L);
  lua_remove(L, -2);
  /* only async.lua names a task's coroutine, and it registers every half
  ** when it loads */
  if (lua_type(L, -1) != LUA_TFUNCTION)
    return luaL_error(L, "threading.async: a task's wait of kind %d has no scheduler half", kind);
  if (try_fn != NULL) {
    lua_pushcfunction(L, try_fn);
  } else if (try_idx != 0) {
    lua_pushvalue(L, try_idx);
  } else {                  /* the method itself, with its upvalues */
    lua_Debug ar;
    if (!lua_getstack(L, 0, &ar) || !lua_getinfo(L, "f", &ar))
      return luaL_error(L, "threading.async: a task's wait found no method to retry");
  }
  lua_pushvalue(L, 1);
  if (timeout < 0) lua_pushnil(L);
  else lua_pushnumber(L, (lua_Number)timeout);
  if (extra_idx != 0) {
    lua_pushvalue(L, extra_idx);
    nargs++;
  }
  return compat_call_yieldable(L, nargs, base);
#else
  (void)try_fn;
  (void)try_idx;
  (void)timeout;
  (void)extra_idx;
  return luaL_error(L, "threading.async: a task's wait of kind %d needs Lua 5.2+", kind);
#endif
}

int task_defer(lua_State *L, int kind, lua_CFunction try_fn, double timeout, int extra_idx) {
  return defer_call(L, kind, try_fn, 0, timeout, extra_idx);
}

int task_defer_done(lua_State *L, int watch, double timeout) {
  lua_pushinteger(L, watch);
  return defer_call(L, TASK_DONE, NULL, 0, timeout, lua_gettop(L));
}

int task_defer_at(lua_State *L, int kind, int try_idx, double timeout) {
  return defer_call(L, kind, NULL, try_idx, timeout, 0);
}

#if COMPAT_CALLK
/* threading._defer(kind, half): the scheduler's Lua half for a task's
** calls of that kind (TASK_ACQUIRE...; see task_defer) */
static int task_register(lua_State *L) {
  lua_Integer kind = luaL_checkinteger(L, 1);
  luaL_argcheck(L, kind >= 1 && kind < TASK_KINDS, 1, "not a kind of task wait");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &halves_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, TASK_KINDS, 0);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &halves_key);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, (int)kind);
  return 0;
}
#endif

void task_open(lua_State *L) {
#if COMPAT_CALLK
  lua_pushcfunction(L, task_register);
  lua_setfield(L, -2, "_defer");
#else
  (void)L;
#endif
}
