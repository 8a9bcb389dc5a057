/*
** object.c: reference counting and Lua handles for shared objects.
**
** types_mu guards the table of registered types; it is held only to copy
** an entry, never while Lua runs, allocates or raises. object_pushguarded
** is how the rest of the core pushes a string that a mutex guards.
*/
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs.h"
#include "object.h"

/*
** Metatables are made on demand: a state that receives an object of a type
** it has not seen (a new thread's state, say) builds only that type's
** metatable from what object_newmetatable recorded, without loading the
** whole module. Methods written in Lua are added by the module itself
** (lua/threading/init.lua); the methods table of an on-demand metatable
** loads the module the first time a name is missing from it.
*/
#if !defined(OBJECT_MAX_TYPES)
#define OBJECT_MAX_TYPES 64
#endif
typedef struct type_record {
  const object_type_t *type;
  const luaL_Reg *methods, *meta;
} type_record;
static pthread_mutex_t types_mu = PTHREAD_MUTEX_INITIALIZER;
static type_record types[OBJECT_MAX_TYPES];    /* (types_mu) */
static int ntypes;                             /* (types_mu) */

/* registry[&box_key]: the metatable of resource boxes */
static const char box_key = 'b';

/* registry[&handles_key]: weak-valued { [lightuserdata obj] = handle } */
static const char handles_key = 'h';
/* metatable[&type_key] = lightuserdata(object_type_t) marks our metatables */
static const char type_key = 't';

void object_atfork(int phase) {
  if (phase == FORK_PREPARE) {
    if (pthread_mutex_lock(&types_mu) != 0) abort();
  } else if (pthread_mutex_unlock(&types_mu) != 0) {
    abort();
  }
}

void object_init(object_t *o, const object_type_t *type) {
  int k;
  atomic_init(&o->refs, 1);
  o->type = type;
  for (k = 0; k < WATCH_KINDS; k++) atomic_init(&o->watches[k], NULL);
}

object_t *object_retain(object_t *o) {
  atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
  return o;
}

int object_tryretain(object_t *o) {
  long n = atomic_load_explicit(&o->refs, memory_order_relaxed);
  while (n > 0)
    if (atomic_compare_exchange_weak_explicit(&o->refs, &n, n + 1, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  return 0;
}

void object_release(object_t *o) {
  if (o == NULL) return;
  /* acq_rel: every write made while holding a reference happens before destroy */
  if (atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
    o->type->destroy(o);
}

static int object_tostring(lua_State *L) {
  handle_t *h = (handle_t *)lua_touserdata(L, 1);
  object_t *o = object_test(L, 1);
  if (o == NULL) lua_pushliteral(L, "threading object (released)");
  else lua_pushfstring(L, "%s: %p", o->type->name, (void *)h->obj);
  return 1;
}

static int object_eq(lua_State *L) {
  lua_pushboolean(L, object_test(L, 1) != NULL &&
                         object_test(L, 1) == object_test(L, 2));
  return 1;
}

int object_gc(lua_State *L) {
  handle_t *h = (handle_t *)lua_touserdata(L, 1);
  if (h != NULL && h->obj != NULL) {
    object_t *o = h->obj;
    h->obj = NULL;
    object_release(o);
  }
  return 0;
}

static void push_handles(lua_State *L) {
  compat_rawgetp(L, LUA_REGISTRYINDEX, &handles_key);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &handles_key);
}

static void record_type(const object_type_t *type, const luaL_Reg *methods,
                        const luaL_Reg *meta) {
  int i;
  pthread_mutex_lock(&types_mu);
  for (i = 0; i < ntypes && types[i].type != type; i++) {}
  if (i == ntypes && ntypes < OBJECT_MAX_TYPES) {
    types[i].type = type;
    types[i].methods = methods;
    types[i].meta = meta;
    ntypes++;
  }
  pthread_mutex_unlock(&types_mu);
}

/* __index of an on-demand methods table (upvalue 1: the metatable): load
** the module, which replaces the metatable's methods, and look there. */
static int methods_fallback(lua_State *L) {
  libs_require(L, "threading", 9);
  lua_pop(L, 1);
  lua_getfield(L, lua_upvalueindex(1), "methods");
  if (lua_rawequal(L, -1, 1)) return 0;      /* nothing new was added */
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  return 1;
}

void object_newmetatable(lua_State *L, const object_type_t *type,
                         const luaL_Reg *methods, const luaL_Reg *meta) {
  int has_index = 0, has_tostring = 0;
  const luaL_Reg *r;
  record_type(type, methods, meta);
  luaL_newmetatable(L, type->name);
  lua_pushstring(L, type->name);
  lua_setfield(L, -2, "__name");
  lua_pushlightuserdata(L, (void *)type);
  compat_rawsetp(L, -2, &type_key);
  for (r = meta; r != NULL && r->name != NULL; r++) {
    if (strcmp(r->name, "__index") == 0) has_index = 1;
    if (strcmp(r->name, "__tostring") == 0) has_tostring = 1;
  }
  if (meta != NULL) {
    lua_pushvalue(L, -1);
    luaL_setfuncs(L, meta, 1);
  }
  if (!has_tostring) {
    lua_pushcfunction(L, object_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pushcfunction(L, object_eq);
  lua_setfield(L, -2, "__eq");
  lua_getfield(L, -1, "__gc");
  if (lua_isnil(L, -1)) {
    lua_pushcfunction(L, object_gc);
    lua_setfield(L, -3, "__gc");
  }
  lua_pop(L, 1);
  /* methods live in their own table, kept in the metatable as `methods`;
  ** their upvalues: the metatable, and the type (so that a method shared
  ** between types tells its own from a handle's type field, with no Lua
  ** call: queue_check_self) */
  lua_newtable(L);
  if (methods != NULL) {
    lua_pushvalue(L, -2);
    lua_pushlightuserdata(L, (void *)type);
    luaL_setfuncs(L, methods, 2);
  }
  if (!has_index) {
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__index");
  }
  lua_setfield(L, -2, "methods");
  lua_pop(L, 1);
}

handle_t *object_newhandle(lua_State *L, const object_type_t *type) {
  handle_t *h = (handle_t *)compat_newuserdata(L, sizeof(handle_t));
  h->obj = NULL;
  h->type = type;
  luaL_getmetatable(L, type->name);
  if (lua_isnil(L, -1)) {
    /* a state that has not loaded the module receives an object */
    const luaL_Reg *methods = NULL, *meta = NULL;
    int i, found = 0;
    lua_pop(L, 1);
    pthread_mutex_lock(&types_mu);
    for (i = 0; i < ntypes; i++) {
      if (types[i].type == type) {
        methods = types[i].methods;
        meta = types[i].meta;
        found = 1;
      }
    }
    pthread_mutex_unlock(&types_mu);
    if (!found) luaL_error(L, "type %s is not registered", type->name);
    object_newmetatable(L, type, methods, meta);
    luaL_getmetatable(L, type->name);
    lua_getfield(L, -1, "methods");
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, -3);
    lua_pushcclosure(L, methods_fallback, 1);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
  lua_setmetatable(L, -2);
  return h;
}

void object_sethandle(lua_State *L, handle_t *h, object_t *o) {
  h->obj = o;
  push_handles(L);
  lua_pushlightuserdata(L, o);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}

void object_push(lua_State *L, object_t *o) {
  handle_t *h;
  push_handles(L);
  lua_pushlightuserdata(L, o);
  lua_rawget(L, -2);
  h = (handle_t *)lua_touserdata(L, -1);
  if (h != NULL && h->obj == o) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 2);
  h = object_newhandle(L, o->type);
  object_sethandle(L, h, object_retain(o));
}

object_t *object_test(lua_State *L, int idx) {
  handle_t *h = (handle_t *)lua_touserdata(L, idx);
  const void *type;
  if (h == NULL || !lua_getmetatable(L, idx)) return NULL;
  compat_rawgetp(L, -1, &type_key);
  type = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return type != NULL ? h->obj : NULL;
}

int object_isreleased(lua_State *L, int idx) {
  handle_t *h = (handle_t *)lua_touserdata(L, idx);
  int ours = 0;
  if (h == NULL || lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return 0;
  compat_rawgetp(L, -1, &type_key);
  ours = lua_touserdata(L, -1) != NULL;
  lua_pop(L, 2);
  return ours && h->obj == NULL;
}

int object_typeerror(lua_State *L, int idx, const char *expected) {
  const char *got;
  object_t *o;
  if (object_isreleased(L, idx)) return luaL_argerror(L, idx, "handle already released");
  o = object_test(L, idx);
  if (o != NULL) got = o->type->name;
  else if (lua_isnoneornil(L, idx) && lua_gettop(L) < idx) got = "no value";
  else got = luaL_typename(L, idx);
  return luaL_argerror(L, idx,
                       lua_pushfstring(L, "%s expected, got %s", expected, got));
}

object_t *object_check_slow(lua_State *L, int idx, const object_type_t *type) {
  handle_t *h = (handle_t *)lua_touserdata(L, idx);
  if (h != NULL && lua_getmetatable(L, idx)) {
    const void *t;
    compat_rawgetp(L, -1, &type_key);
    t = lua_touserdata(L, -1);
    lua_pop(L, 2);
    if (t == (const void *)type) {
      if (h->obj == NULL) luaL_argerror(L, idx, "handle already released");
      return h->obj;
    }
  }
  object_typeerror(L, idx, type->name);
  return NULL;
}

int object_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  if (luaL_getmetafield(L, idx, "__call")) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

char *object_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = (char *)malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

void object_pushguarded(lua_State *L, pthread_mutex_t *mu, char *const *src) {
  char small[128];
  char *buf = small;
  size_t cap = sizeof small;
  for (;;) {
    size_t n = 0;
    int is_null, fits;
    if (pthread_mutex_lock(mu) != 0) abort();
    is_null = *src == NULL;
    if (!is_null) n = strlen(*src);
    fits = n < cap;
    if (fits && !is_null) memcpy(buf, *src, n);
    if (pthread_mutex_unlock(mu) != 0) abort();
    if (fits) {
      if (is_null) lua_pushnil(L);
      else lua_pushlstring(L, buf, n);
      if (buf != small) lua_remove(L, -2);     /* the box */
      return;
    }
    /* too long for the buffer: a bigger one, owned by Lua (so a raise
    ** frees it), made with no lock held; then look again */
    if (buf != small) lua_pop(L, 1);
    cap = n + 1;
    buf = (char *)compat_newuserdata(L, cap);
  }
}

typedef struct box {
  void *p;
  void (*fn)(void *);
} box_t;

void object_box_free(lua_State *L, int idx) {
  box_t *b = (box_t *)lua_touserdata(L, idx);
  if (b != NULL && b->p != NULL) {
    void *p = b->p;
    b->p = NULL;
    b->fn(p);
  }
}

static int box_gc(lua_State *L) {
  object_box_free(L, 1);
  return 0;
}

void object_pushgcmt(lua_State *L, const void *key, lua_CFunction gc,
                     const luaL_Reg *methods) {
  compat_rawgetp(L, LUA_REGISTRYINDEX, key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (methods != NULL) {
      lua_newtable(L);
      for (; methods->name != NULL; methods++) {
        lua_pushcfunction(L, methods->func);
        lua_setfield(L, -2, methods->name);
      }
      lua_setfield(L, -2, "__index");
    }
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, key);
  }
}

void *object_checkgcmt(lua_State *L, int idx, const void *key, const char *name) {
  void *p = lua_touserdata(L, idx);
  int ok = p != NULL && lua_getmetatable(L, idx);
  if (ok) {
    compat_rawgetp(L, LUA_REGISTRYINDEX, key);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!ok) object_typeerror(L, idx, name);
  return p;
}

void **object_newbox(lua_State *L, void (*fn)(void *)) {
  box_t *b = (box_t *)compat_newuserdata(L, sizeof *b);
  b->p = NULL;
  b->fn = fn;
  object_pushgcmt(L, &box_key, box_gc, NULL);
  lua_setmetatable(L, -2);
  return &b->p;
}

/* More values than any Lua stack takes (5.2+ stops at 1,000,000 slots). */
#if !defined(OBJECT_MAX_ARGS)
#define OBJECT_MAX_ARGS 1000000
#endif

int object_pushargs(lua_State *L, int t, int arg, const char *field) {
  lua_Number n;
  int i, count;
  t = compat_absindex(L, t);
  lua_getfield(L, t, "n");
  if (lua_isnil(L, -1)) {
    n = (lua_Number)compat_rawlen(L, t);
  } else {
    n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 0) || (n <= OBJECT_MAX_ARGS && n != floor(n)))
      luaL_argerror(L, arg, lua_pushfstring(L, "field '%s.n' must be a non-negative integer", field));
  }
  lua_pop(L, 1);
  /* compared as a number first: no conversion to int can overflow */
  if (n > OBJECT_MAX_ARGS || !lua_checkstack(L, (int)n + 8))
    luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' has too many values", field));
  count = (int)n;
  for (i = 1; i <= count; i++) lua_rawgeti(L, t, i);
  return count;
}
