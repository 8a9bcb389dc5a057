/*
** compat.h: every difference between Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.1.
** No other file tests LUA_VERSION_NUM; they call the names defined here.
*/
#ifndef THREADING_COMPAT_H
#define THREADING_COMPAT_H

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#if defined(__GNUC__)
#define TH_HIDDEN __attribute__((visibility("hidden")))
#define TH_UNUSED __attribute__((unused))
#else
#define TH_HIDDEN
#define TH_UNUSED
#endif

/* 5.3+ numbers have an integer subtype (lua_Integer, lua_isinteger) */
#if LUA_VERSION_NUM >= 503
#define COMPAT_INTEGERS 1
#define compat_isinteger(L, i) lua_isinteger(L, i)
#else
#define COMPAT_INTEGERS 0
#define compat_isinteger(L, i) 0
#endif

#if LUA_VERSION_NUM >= 502
#define compat_rawlen(L, i) lua_rawlen(L, i)
#define compat_pushglobals(L) lua_pushglobaltable(L)
/* 5.2+ upvalue that a loaded chunk binds to the globals */
#define COMPAT_HAS_ENV_UPVALUE 1
#else
#define compat_rawlen(L, i) lua_objlen(L, i)
#define compat_pushglobals(L) lua_pushvalue(L, LUA_GLOBALSINDEX)
#define COMPAT_HAS_ENV_UPVALUE 0
#endif

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, sz) lua_newuserdatauv(L, sz, 0)
#define compat_dump(L, w, d) lua_dump(L, w, d, 0)
#elif LUA_VERSION_NUM == 503
#define compat_newuserdata(L, sz) lua_newuserdata(L, sz)
#define compat_dump(L, w, d) lua_dump(L, w, d, 0)
#else
#define compat_newuserdata(L, sz) lua_newuserdata(L, sz)
#define compat_dump(L, w, d) lua_dump(L, w, d)
#endif

#if LUA_VERSION_NUM >= 502
#define compat_load(L, r, d, name) lua_load(L, r, d, name, "b")
#else
#define compat_load(L, r, d, name) lua_load(L, r, d, name)
#endif

/* lua_rawgetp/lua_rawsetp exist from 5.2 on; LuaJIT lacks them too. */
#if LUA_VERSION_NUM >= 502
#define compat_rawgetp(L, i, p) ((void)lua_rawgetp(L, i, p))
#define compat_rawsetp(L, i, p) lua_rawsetp(L, i, p)
#else
static TH_UNUSED void compat_rawgetp(lua_State *L, int i, const void *p) {
  i = (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, i);
}
static TH_UNUSED void compat_rawsetp(lua_State *L, int i, const void *p) {
  i = (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, i);
}
#endif

/* compat_call_yieldable(L, nargs, base): call the function below the
** nargs values on top of the stack as lua_call would, with every result
** (LUA_MULTRET), and return how many values the stack holds above `base`
** once it has returned. The called function may yield (Lua 5.2+, through
** lua_callk): the calling C function must then return what this returns
** (`return compat_call_yieldable(...)`), and its caller gets the results
** when the coroutine is resumed and the function returns. 5.1 and LuaJIT
** cannot continue a C function after a yield: COMPAT_CALLK is 0 there,
** and no code calls this. */
#if LUA_VERSION_NUM >= 503
#define COMPAT_CALLK 1
static inline int compat_callk_done_(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}
static inline int compat_call_yieldable(lua_State *L, int nargs, int base) {
  lua_callk(L, nargs, LUA_MULTRET, (lua_KContext)base, compat_callk_done_);
  return lua_gettop(L) - base;
}
#elif LUA_VERSION_NUM == 502
#define COMPAT_CALLK 1
static inline int compat_callk_done_(lua_State *L) {
  int base = 0;
  (void)lua_getctx(L, &base);
  return lua_gettop(L) - base;
}
static inline int compat_call_yieldable(lua_State *L, int nargs, int base) {
  lua_callk(L, nargs, LUA_MULTRET, base, compat_callk_done_);
  return lua_gettop(L) - base;
}
#else
#define COMPAT_CALLK 0
#endif

/* LuaJIT 2.1 has luaL_setfuncs, luaL_traceback and luaL_testudata already. */
#if LUA_VERSION_NUM == 501 && !defined(LUA_JITLIBNAME)
static TH_UNUSED void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define COMPAT_NEED_TRACEBACK 1
#endif

/* Upvalue identity (lua_upvalueid/lua_upvaluejoin): Lua 5.2+ and LuaJIT 2.1.
** PUC Lua 5.1 cannot tell two closures' upvalues apart. */
#if LUA_VERSION_NUM >= 502 || defined(LUA_JITLIBNAME)
#define COMPAT_HAS_UPVALUEID 1
#define compat_upvalueid(L, f, n) lua_upvalueid(L, f, n)
#define compat_upvaluejoin(L, f1, n1, f2, n2) lua_upvaluejoin(L, f1, n1, f2, n2)
#else
#define COMPAT_HAS_UPVALUEID 0
#endif

/* Lua 5.1 and LuaJIT give each function an environment table (setfenv).
** Their lua_dump formats differ: COMPAT_LUAJIT tells which one to read. */
#if LUA_VERSION_NUM == 501
#define COMPAT_HAS_FENV 1
#define compat_getfenv(L, i) lua_getfenv(L, i)
#define compat_setfenv(L, i) lua_setfenv(L, i)
#else
#define COMPAT_HAS_FENV 0
#endif
#if LUA_VERSION_NUM == 501 && defined(LUA_JITLIBNAME)
#define COMPAT_LUAJIT 1
#else
#define COMPAT_LUAJIT 0
#endif

/* Hook events the cancellation needs besides count and return: LuaJIT
** reaches a classic C function called from compiled code only through the
** call part of its dispatch table. */
#if COMPAT_LUAJIT
#define COMPAT_CANCEL_CALLS LUA_MASKCALL
#else
#define COMPAT_CANCEL_CALLS 0
#endif

#if LUA_VERSION_NUM == 501
#define compat_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#else
#define compat_absindex(L, i) lua_absindex(L, i)
#endif

#if defined(COMPAT_NEED_TRACEBACK)
/* Lua 5.1 has no luaL_traceback: the same text through debug.traceback. */
static TH_UNUSED void compat_traceback(lua_State *L, lua_State *L1,
                                       const char *msg, int level) {
  lua_getglobal(L, "debug");
  if (lua_istable(L, -1)) lua_getfield(L, -1, "traceback");
  else lua_pushnil(L);
  if (lua_isfunction(L, -1) && L == L1) {
    lua_pushstring(L, msg);
    lua_pushinteger(L, level + 1);
    lua_call(L, 2, 1);
  } else {
    lua_pop(L, 1);
    lua_pushstring(L, msg);
  }
  lua_remove(L, -2);
}
#else
#define compat_traceback(L, L1, msg, level) luaL_traceback(L, L1, msg, level)
#endif

/* The standard libraries besides base, as luaL_openlibs opens them.
** compat_openlib opens one into the registry's _LOADED (and a global of
** its name when glb), pushing nothing. 5.1 and LuaJIT openers register
** themselves (and their global) by the name they are called with; Lua 5.1
** keeps coroutine in base. bit32 is 5.2's and, when the Lua was built with
** 5.2 compatibility, 5.3's (looked up at run time there: it may be
** absent). Lua 5.4's string library also makes arithmetic on strings work,
** through metamethods. */
#if LUA_VERSION_NUM >= 502
#define COMPAT_COROUTINE_LIB 1
#define COMPAT_SEARCHERS "searchers"
#define compat_openlib(L, name, f, glb) (luaL_requiref(L, name, f, glb), lua_pop(L, 1))
#else
#define COMPAT_COROUTINE_LIB 0
#define COMPAT_SEARCHERS "loaders"
static TH_UNUSED void compat_openlib(lua_State *L, const char *name, lua_CFunction f, int glb) {
  (void)glb;
  lua_pushcfunction(L, f);
  lua_pushstring(L, name);
  lua_call(L, 1, 0);
}
#endif
#define COMPAT_UTF8_LIB (LUA_VERSION_NUM >= 503)
#define COMPAT_BIT32_LINKED (LUA_VERSION_NUM == 502)
#define COMPAT_BIT32_LOOKUP (LUA_VERSION_NUM == 503)
#define COMPAT_STRING_ARITH (LUA_VERSION_NUM >= 504)
#define compat_openbase(L) \
  compat_openlib(L, LUA_VERSION_NUM >= 502 ? "_G" : "", luaopen_base, 1)

/* Push `name` as a module's value, as require does (errors propagate). */
static TH_UNUSED void compat_require(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

#endif
