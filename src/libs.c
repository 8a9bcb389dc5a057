/*
** libs.c: the standard libraries of a thread's state, opened on first use.
**
** A thread that only waits should not pay for io, os, math and the rest: a
** full set is about 15 KiB of heap on 5.4, three times the bare state. So
** a fresh state gets the base library alone, and three hooks open the
** others when they are first reached, each as luaL_openlibs would have
** (its table in package.loaded and, for most, a global of its name):
** - the globals table's metatable: reading a missing global that names a
**   library (or `require`, `module`, 5.2's `unpack`) opens it first;
** - a stand-in string metatable: `s:format()` (and, on 5.4, arithmetic on
**   strings) opens the string library, whose real metatable replaces it;
** - once package opens, package.preload answers require("io") and the
**   like (and LuaJIT's table.new, string.buffer, jit.util, ffi) for the
**   libraries still closed;
** - setmetatable(_G, mt), which would hide the hook, opens them all first.
** Until package opens, the path and cpath it is to get wait in the
** registry, as pointers to strings that outlive the state. A `libs` list instead opens what it names at start and takes
** the hooks away, so nothing else can appear; "all" opens everything at
** start, as luaL_openlibs does.
**
** Who owns what: everything here lives in one state and is used only by
** the OS thread that runs it (the worker building a spare state, then the
** thread itself). No mutex is taken; nothing is shared.
*/
#include <dlfcn.h>
#include <string.h>

#include "libs.h"
#include "search.h"

typedef struct lib {
  const char *name;
  lua_CFunction open;     /* NULL: looked up at run time (symbol) */
  const char *symbol;
  int global;             /* a global of its name; else only preloaded */
} lib_t;

/* luaL_openlibs's order, package last: it offers, in preload, only the
** libraries still closed when it opens. */
static const lib_t lib_list[] = {
#if COMPAT_COROUTINE_LIB
  {"coroutine", luaopen_coroutine, NULL, 1},
#endif
  {"table", luaopen_table, NULL, 1},
  {"io", luaopen_io, NULL, 1},
  {"os", luaopen_os, NULL, 1},
  {"string", luaopen_string, NULL, 1},
  {"math", luaopen_math, NULL, 1},
#if COMPAT_UTF8_LIB
  {"utf8", luaopen_utf8, NULL, 1},
#endif
  {"debug", luaopen_debug, NULL, 1},
#if COMPAT_BIT32_LINKED
  {"bit32", luaopen_bit32, NULL, 1},
#elif COMPAT_BIT32_LOOKUP
  {"bit32", NULL, "luaopen_bit32", 1},
#endif
#if COMPAT_LUAJIT
  {"bit", luaopen_bit, NULL, 1},
  {"jit", luaopen_jit, NULL, 1},
  {"ffi", luaopen_ffi, NULL, 0},
#endif
  {"package", luaopen_package, NULL, 1},
};
#define NLIBS ((int)(sizeof lib_list / sizeof lib_list[0]))

/* Names a `libs` list may hold that this Lua lacks: ignored, so that one
** list serves every Lua. */
static const char *const other_names[] = {
  "base", "coroutine", "utf8", "bit32", "bit", "jit", "ffi", NULL
};

/* Globals that open a library other than the one of their name. */
static const struct { const char *global, *lib; } aliases[] = {
  {"require", "package"}, {"module", "package"}, {"unpack", "table"},
};

/* LuaJIT modules a library puts in package.preload when it opens. */
static const struct { const char *module, *lib; } submodules[] = {
  {"table.new", "table"}, {"table.clear", "table"}, {"string.buffer", "string"},
  {"jit.util", "jit"}, {"jit.profile", "jit"},
};

typedef struct libs_state {
  unsigned allowed;       /* libraries the state may open */
  unsigned opened;
} libs_state;

static const char state_key = 's', path_key = 'p', cpath_key = 'c';

static lua_CFunction lib_func(int i) {
  const lib_t *lb = &lib_list[i];
  if (lb->open != NULL) return lb->open;
  if (lb->symbol == NULL) return NULL;
  {
    /* an object pointer to a function pointer: POSIX dlsym's contract */
    void *p = dlsym(RTLD_DEFAULT, lb->symbol);
    lua_CFunction f;
    if (p == NULL) return NULL;
    memcpy(&f, &p, sizeof f);
    return f;
  }
}

static int lib_index(const char *name) {
  int i;
  for (i = 0; i < NLIBS; i++)
    if (strcmp(lib_list[i].name, name) == 0) return i;
  return -1;
}

void libs_push_package(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "package");
  lua_remove(L, -2);
}

static libs_state *get_state(lua_State *L) {
  libs_state *s;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &state_key);
  s = (libs_state *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

static void lib_open(lua_State *L, libs_state *s, int i);

/* package.preload[name] = stub for library i, unless something is there. */
static int preload_stub(lua_State *L);

static void offer_preloads(lua_State *L, libs_state *s) {
  int i, j;
  libs_push_package(L);
  lua_getfield(L, -1, "preload");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  for (i = 0; i < NLIBS; i++) {
    const char *names[1 + sizeof submodules / sizeof submodules[0]];
    int n = 0;
    if (!(s->allowed & (1u << i)) || (s->opened & (1u << i)) || lib_func(i) == NULL) continue;
    names[n++] = lib_list[i].name;
    for (j = 0; j < (int)(sizeof submodules / sizeof submodules[0]); j++)
      if (strcmp(submodules[j].lib, lib_list[i].name) == 0) names[n++] = submodules[j].module;
    for (j = 0; j < n; j++) {
      lua_getfield(L, -1, names[j]);
      if (lua_isnil(L, -1)) {
        lua_pushinteger(L, i);
        lua_pushcclosure(L, preload_stub, 1);
        lua_setfield(L, -3, names[j]);
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
}

/* Push the kept path at key as a string, or nil. */
static void push_kept(lua_State *L, const void *key) {
  const char *s;
  compat_rawgetp(L, LUA_REGISTRYINDEX, key);
  s = (const char *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (s != NULL) lua_pushstring(L, s);
  else lua_pushnil(L);
}

/* The kept paths onto package (at -1), then forgotten. */
static void give_paths(lua_State *L) {
  push_kept(L, &path_key);
  if (lua_isstring(L, -1)) lua_setfield(L, -2, "path");
  else lua_pop(L, 1);
  push_kept(L, &cpath_key);
  if (lua_isstring(L, -1)) lua_setfield(L, -2, "cpath");
  else lua_pop(L, 1);
  lua_pushnil(L);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &path_key);
  lua_pushnil(L);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &cpath_key);
}

/* Open library i as luaL_openlibs would (a preloaded-only one: offer it). */
static void lib_open(lua_State *L, libs_state *s, int i) {
  const lib_t *lb = &lib_list[i];
  lua_CFunction f = lib_func(i);
  /* one that is only preloaded (ffi) is offered by offer_preloads */
  if ((s->opened & (1u << i)) || !(s->allowed & (1u << i)) || f == NULL || !lb->global)
    return;
  s->opened |= 1u << i;
  compat_openlib(L, lb->name, f, 1);
  if (strcmp(lb->name, "package") == 0) {
    libs_push_package(L);
    if (lua_istable(L, -1)) give_paths(L);
    lua_pop(L, 1);
    offer_preloads(L, s);
    search_install(L);
  }
}

/* package.preload entry of a closed library (upvalue 1: its index):
** require(name) opens it, then answers as its own loader would. */
static int preload_stub(lua_State *L) {
  libs_state *s = get_state(L);
  int i = (int)lua_tointeger(L, lua_upvalueindex(1));
  const char *name = luaL_checkstring(L, 1);
  if (s == NULL) return 0;
  if (!lib_list[i].global) {        /* ffi: its own opener is the loader */
    lua_pushcfunction(L, lib_func(i));
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    return 1;
  }
  lib_open(L, s, i);
  if (strcmp(name, lib_list[i].name) == 0) {
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, name);
    return 1;
  }
  /* a submodule: the library has put its real loader in preload now */
  libs_push_package(L);
  lua_getfield(L, -1, "preload");
  lua_getfield(L, -1, name);
  if (!lua_isfunction(L, -1) || lua_tocfunction(L, -1) == preload_stub) return 0;
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

/* Take _G's metatable away if it is still ours (and unchanged). */
static void drop_globals_hook(lua_State *L) {
  compat_pushglobals(L);
  if (lua_getmetatable(L, -1)) {
    compat_rawgetp(L, -1, &state_key);
    if (lua_toboolean(L, -1)) {
      lua_pushnil(L);
      lua_setmetatable(L, -4);
    }
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

static unsigned global_libs(void) {
  unsigned m = 0;
  int i;
  for (i = 0; i < NLIBS; i++)
    if (lib_list[i].global) m |= 1u << i;
  return m;
}

/* __index of _G (upvalue 1: the state): a library's name, or an alias,
** opens it. */
static int globals_index(lua_State *L) {
  libs_state *s = (libs_state *)lua_touserdata(L, lua_upvalueindex(1));
  const char *k;
  int i, a;
  if (lua_type(L, 2) != LUA_TSTRING) return 0;
  k = lua_tostring(L, 2);
  i = lib_index(k);
  for (a = 0; i < 0 && a < (int)(sizeof aliases / sizeof aliases[0]); a++)
    if (strcmp(aliases[a].global, k) == 0) i = lib_index(aliases[a].lib);
  if (i < 0 || !lib_list[i].global || (s->opened & (1u << i))) return 0;
  lib_open(L, s, i);
  if ((s->opened & s->allowed) == (s->allowed & global_libs())) drop_globals_hook(L);
  lua_settop(L, 2);
  lua_rawget(L, 1);
  return 1;
}

/* setmetatable (upvalue 1: base's): a metatable of the user's for _G
** would hide the libraries still closed, so they open first. */
static int globals_setmetatable(lua_State *L) {
  int hooked = 0;
  compat_pushglobals(L);
  if (lua_rawequal(L, 1, -1) && lua_getmetatable(L, 1)) {
    compat_rawgetp(L, -1, &state_key);
    hooked = lua_toboolean(L, -1);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
  if (hooked) {
    libs_state *s = get_state(L);
    int i;
    for (i = 0; s != NULL && i < NLIBS; i++) lib_open(L, s, i);
    drop_globals_hook(L);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static void open_string(lua_State *L) {
  libs_state *s = get_state(L);
  int i = lib_index("string");
  if (s != NULL && i >= 0) lib_open(L, s, i);
}

/* __index of the stand-in string metatable: open the string library
** (which sets the real metatable), then index again. */
static int string_index(lua_State *L) {
  open_string(L);
  lua_settop(L, 2);
  lua_gettable(L, 1);
  return 1;
}

#if COMPAT_STRING_ARITH
/* The stand-in's arithmetic (upvalue 1: the operator): open, then redo. */
static int string_arith(lua_State *L) {
  int op = (int)lua_tointeger(L, lua_upvalueindex(1));
  open_string(L);
  lua_settop(L, op == LUA_OPUNM ? 1 : 2);
  if (op == LUA_OPUNM) lua_pushvalue(L, 1);  /* lua_arith wants two for unm */
  lua_arith(L, op);
  return 1;
}

static const struct { const char *event; int op; } string_events[] = {
  {"__add", LUA_OPADD}, {"__sub", LUA_OPSUB}, {"__mul", LUA_OPMUL},
  {"__mod", LUA_OPMOD}, {"__pow", LUA_OPPOW}, {"__div", LUA_OPDIV},
  {"__idiv", LUA_OPIDIV}, {"__unm", LUA_OPUNM},
};
#endif

static void set_string_metatable(lua_State *L, int stand_in) {
  lua_pushliteral(L, "");
  if (stand_in) {
    lua_createtable(L, 0, 9);
    lua_pushcfunction(L, string_index);
    lua_setfield(L, -2, "__index");
#if COMPAT_STRING_ARITH
    {
      int e;
      for (e = 0; e < (int)(sizeof string_events / sizeof string_events[0]); e++) {
        lua_pushinteger(L, string_events[e].op);
        lua_pushcclosure(L, string_arith, 1);
        lua_setfield(L, -2, string_events[e].event);
      }
    }
#endif
  } else {
    lua_pushnil(L);
  }
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
}

void libs_prepare(lua_State *L) {
  libs_state *s;
  int i;
  compat_openbase(L);
  lua_getglobal(L, "setmetatable");
  lua_pushcclosure(L, globals_setmetatable, 1);
  lua_setglobal(L, "setmetatable");
  s = (libs_state *)compat_newuserdata(L, sizeof *s);
  s->allowed = s->opened = 0;
  for (i = 0; i < NLIBS; i++)
    if (lib_func(i) != NULL) s->allowed |= 1u << i;
  compat_pushglobals(L);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, -3);
  lua_pushcclosure(L, globals_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 1);            /* marks the metatable as this file's */
  compat_rawsetp(L, -2, &state_key);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
  set_string_metatable(L, 1);
  /* the paths' places made now, so that keeping them later (on the thread's
  ** own start) grows no table */
  lua_pushboolean(L, 0);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &path_key);
  lua_pushboolean(L, 0);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &cpath_key);
}

void libs_apply(lua_State *L, unsigned libs) {
  libs_state *s = get_state(L);
  int i;
  if (libs == LIBS_LAZY || s == NULL) return;
  if (libs != LIBS_ALL) s->allowed &= libs;
  for (i = 0; i < NLIBS; i++)
    if (s->allowed & (1u << i)) lib_open(L, s, i);
  drop_globals_hook(L);
  if (!(s->opened & (1u << lib_index("string")))) set_string_metatable(L, 0);
}

unsigned libs_check(lua_State *L, int idx, int arg) {
  unsigned libs = LIBS_LIST;
  int n, k;
  idx = compat_absindex(L, idx);
  if (lua_isnil(L, idx)) return LIBS_LAZY;
  if (lua_type(L, idx) == LUA_TSTRING && strcmp(lua_tostring(L, idx), "all") == 0)
    return LIBS_ALL;
  if (!lua_istable(L, idx))
    luaL_argerror(L, arg, "field 'libs' must be \"all\" or a list of library names");
  n = (int)compat_rawlen(L, idx);
  for (k = 1; k <= n; k++) {
    const char *name;
    int i, o;
    lua_rawgeti(L, idx, k);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L, "field 'libs[%d]' must be a string", k));
    name = lua_tostring(L, -1);
    i = lib_index(name);
    for (o = 0; i < 0 && other_names[o] != NULL; o++)
      if (strcmp(other_names[o], name) == 0) break;
    if (i < 0 && other_names[o] == NULL)
      luaL_argerror(L, arg, lua_pushfstring(L, "field 'libs[%d]': no standard library '%s'", k, name));
    if (i >= 0) libs |= 1u << i;
    lua_pop(L, 1);
  }
  return libs;
}

void libs_set_paths(lua_State *L, const char *path, const char *cpath) {
  libs_push_package(L);
  if (lua_istable(L, -1)) {
    if (path != NULL) {
      lua_pushstring(L, path);
      lua_setfield(L, -2, "path");
    }
    if (cpath != NULL) {
      lua_pushstring(L, cpath);
      lua_setfield(L, -2, "cpath");
    }
  } else {
    /* kept as the caller's strings, not copied: most threads never open
    ** package */
    if (path != NULL) {
      lua_pushlightuserdata(L, (void *)path);
      compat_rawsetp(L, LUA_REGISTRYINDEX, &path_key);
    }
    if (cpath != NULL) {
      lua_pushlightuserdata(L, (void *)cpath);
      compat_rawsetp(L, LUA_REGISTRYINDEX, &cpath_key);
    }
  }
  lua_pop(L, 1);
}

void libs_push_paths(lua_State *L) {
  libs_push_package(L);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "cpath");
  } else {
    push_kept(L, &path_key);
    push_kept(L, &cpath_key);
  }
  lua_remove(L, -3);
}

void libs_require(lua_State *L, const char *name, size_t len) {
  lua_getglobal(L, "require");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    lua_pushlstring(L, name, len);
    luaL_error(L, "module '%s' is needed, but this thread has no 'require' "
               "(its libs leave out 'package')", lua_tostring(L, -1));
  }
  lua_pushlstring(L, name, len);
  lua_call(L, 1, 1);
}
