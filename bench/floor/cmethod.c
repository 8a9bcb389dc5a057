/*
** cmethod.c: the floor of calling two C methods from Lua, W3's floor.
**
** A C module, floor_cmethod, loaded by the interpreter being benchmarked
** (bench/floor/cmethod.lua drives it), so the calls go through that very
** interpreter, LuaJIT's too. It makes a full userdata whose metatable's
** __index is a table holding two C functions, `a` and `b`, the cheapest
** dispatch a method of a C type gets. Their bodies only fetch the
** userdata's address: no type check, no lock, no result. `obj:a() obj:b()`
** in a loop is therefore what `lock:acquire() lock:release()` costs before
** a lock does anything.
**
**   floor_cmethod.new()     -> userdata with methods a and b
**   floor_cmethod.clock()   -> seconds on CLOCK_MONOTONIC
*/
#define _GNU_SOURCE
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

int luaopen_floor_cmethod(lua_State *L);

static int obj_method(lua_State *L) {
  (void)lua_touserdata(L, 1);
  return 0;
}

/* new() -> userdata; the metatable is the function's upvalue */
static int obj_new(lua_State *L) {
  (void)lua_newuserdata(L, sizeof(int));
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setmetatable(L, -2);
  return 1;
}

static int obj_clock(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
  return 1;
}

int luaopen_floor_cmethod(lua_State *L) {
  lua_newtable(L);                          /* module */
  lua_newtable(L);                          /* module, metatable */
  lua_newtable(L);                          /* module, metatable, methods */
  lua_pushcfunction(L, obj_method);
  lua_setfield(L, -2, "a");
  lua_pushcfunction(L, obj_method);
  lua_setfield(L, -2, "b");
  lua_setfield(L, -2, "__index");           /* module, metatable */
  lua_pushcclosure(L, obj_new, 1);          /* module, new */
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, obj_clock);
  lua_setfield(L, -2, "clock");
  return 1;
}
