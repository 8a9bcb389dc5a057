/*
** cancel.c: the hook that makes running Lua code raise a cancellation, and
** the protection that holds it back inside the module's own critical Lua
** functions.
**
** Who owns what: cancel() (thread.c) sets the hook on the target's state
** with the target's mu held, while the state is published in t->L; the
** hook itself then runs only in the target's own OS thread, on its own
** state. No hook is installed otherwise: a count hook slows every
** instruction, so it exists only once a cancellation is asked for.
** registry[&protected_key] lists the protected Lua functions of a state.
** No lock is taken here.
*/
#include "runtime.h"

/* registry[&protected_key] = { [function] = true }: Lua functions in which
** the cancellation hook must not strike (see cancel_protect). */
static const char protected_key = 'p';

/* Is the function running at `ar` one of the protected ones? */
static int in_protected(lua_State *L, lua_Debug *ar) {
  int hit = 0;
  if (!lua_checkstack(L, 3)) return 0;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (lua_istable(L, -1) && lua_getinfo(L, "f", ar)) {
    lua_rawget(L, -2);
    hit = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return hit;
}

/* Set by cancel() on a running thread's state: raise the cancellation at
** the next instruction, unless a blocking call has raised it meanwhile.
** Inside a protected function (the acquire-call-release of Lock:with, a
** guard's release) it waits for the next instruction outside: striking
** between an acquire and the pcall, or between the pcall and the release,
** would leave the lock held. */
static void cancel_hook(lua_State *L, lua_Debug *ar) {
  if (!wait_cancel_undelivered()) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (in_protected(L, ar)) return;     /* stays armed: try again next instruction */
  lua_sethook(L, NULL, 0, 0);
  wait_raise_cancel(L);
}

void cancel_arm(lua_State *L) {
  lua_sethook(L, cancel_hook, LUA_MASKCOUNT, 1);
}

/* threading.core._protect(f, ...): mark Lua functions in which an
** asynchronous cancellation is held back until they return or call out. */
static int cancel_protect(lua_State *L) {
  int i, n = lua_gettop(L);
  for (i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &protected_key);
  }
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  return 0;
}

void cancel_open(lua_State *L) {
  lua_pushcfunction(L, cancel_protect);
  lua_setfield(L, -2, "_protect");
}
