/*
** cancel.c: the hook that makes running Lua code raise a cancellation, and
** the protection that holds it back inside the module's own critical Lua
** functions.
**
** Who owns what: cancel() (thread.c) sets the hook on the target's state
** with the target's mu held, while the state is published in t->L; the
** runtime removes it once the thread's main function has ended, after it
** unpublished the state. The hook itself runs only in the target's own OS
** thread, on its own state, and alone touches t->cancel_grace. No hook is
** installed otherwise: a count hook slows every instruction, so it exists
** only once a cancellation is asked for. registry[&protected_key] lists
** the protected Lua functions of a state. No lock is taken here.
*/
#include "runtime.h"

/* registry[&protected_key] = { [function] = PROTECTED | GUARD }: Lua
** functions in which the cancellation hook must not strike (see
** cancel_protect). A GUARD's return also holds the hook back for the
** caller's next instruction: the one that registers the guard it returned
** as a to-be-closed variable. */
static const char protected_key = 'p';
enum { PROTECTED = 1, GUARD = 2 };

/* How the function running at `ar` is protected (0: not at all). */
static int protection(lua_State *L, lua_Debug *ar) {
  int how = 0;
  if (!lua_checkstack(L, 3)) return 0;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (lua_istable(L, -1) && lua_getinfo(L, "f", ar)) {
    lua_rawget(L, -2);
    how = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return how;
}

/*
** Set by cancel() on a running thread's state: raise the cancellation at
** the next instruction, and again at every instruction after that, until
** the thread's main function has ended: a pcall that catches it cannot
** swallow it, as the next instruction of its caller raises it again.
** Inside a protected function (the acquire-call-release of Lock:with, a
** guard's release) the hook holds back until the next instruction
** outside: striking between an acquire and the pcall, or between the pcall
** and the release, would leave the lock held. After a guard returns, one
** more instruction is let through, so that `local _ <close> = l:guard()`
** registers the guard (OP_TBC) before the cancellation can strike; the
** guard's __close then releases the lock on the way out.
*/
static void cancel_hook(lua_State *L, lua_Debug *ar) {
  thread_t *t = runtime_self();
  int how;
  if (t == NULL) return;
  how = protection(L, ar);
  if (ar->event == LUA_HOOKRET) {
    if (how & GUARD) t->cancel_grace = 1;
    return;
  }
  if (how & PROTECTED) return;            /* stays armed: next instruction */
  if (t->cancel_grace > 0) {
    t->cancel_grace--;
    return;
  }
  wait_raise_cancel(L);
}

void cancel_arm(lua_State *L) {
  lua_sethook(L, cancel_hook, LUA_MASKCOUNT | LUA_MASKRET, 1);
}

void cancel_disarm(lua_State *L) {
  lua_sethook(L, NULL, 0, 0);
}

/* Mark the functions at 1..top with protection `how`. */
static int protect(lua_State *L, int how) {
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
    lua_pushinteger(L, how);
    lua_rawset(L, -3);
  }
  return 0;
}

/* threading.core._protect(f, ...): mark Lua functions in which an
** asynchronous cancellation is held back until they return or call out. */
static int cancel_protect(lua_State *L) {
  return protect(L, PROTECTED);
}

/* threading.core._protect_guard(f, ...): protected functions that return
** a guard meant for a to-be-closed variable. */
static int cancel_protect_guard(lua_State *L) {
  return protect(L, PROTECTED | GUARD);
}

void cancel_open(lua_State *L) {
  lua_pushcfunction(L, cancel_protect);
  lua_setfield(L, -2, "_protect");
  lua_pushcfunction(L, cancel_protect_guard);
  lua_setfield(L, -2, "_protect_guard");
}
