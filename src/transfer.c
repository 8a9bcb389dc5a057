/*
** transfer.c: Lua value graph <-> self-contained buffer.
**
** No lock is taken here: callers encode before they lock what will hold a
** buffer, and decode after they unlock it. Nothing here is shared between
** threads but a buffer's reference count; a run (a small table kept in
** slots, see "small tables") owns nothing at all.
**
** Encoding runs inside lua_pcall so that a refusal or a memory error frees
** the partial buffer (and the object references it took) before the error
** reaches the caller. Tables and Lua functions get ids in the order they are
** first met, so cycles, shared sub-tables and recursive functions come out
** with the same shape; the decoder hands out ids in the same order. Where
** the Lua version can tell upvalues apart, an upvalue that an earlier
** function of the same value graph shares is sent as a reference to that
** function's upvalue, and the decoder joins the two.
**
** Buffer layout: a sequence of tagged values.
**   T_NIL T_FALSE T_TRUE
**   T_INT  lua_Integer            T_NUM  lua_Number
**   T_STR  size_t len, bytes
**   T_TABLE size_t narr, size_t nrec, {key value}* T_END, u8 has_mt, [mt]
**   T_FUNC size_t len, bytecode, u16 nups, upvalue*, [u8 env, [env]]
**          (the environment only where functions have one: Lua 5.1, LuaJIT;
**          see encode_env)
**   T_UPREF size_t id, u16 n      (as an upvalue: upvalue n of function id)
**   T_REF  size_t id              (a table or function met before)
**   T_GLOBALS                     (the sender's globals -> the receiver's)
**   T_NAMED size_t len, "module" or "module\nfield"
**   T_CLASS size_t len, name      (a registered class's metatable)
**   T_OBJECT size_t index into objs
*/
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "libs.h"
#include "object.h"
#include "transfer.h"

enum {
  T_NIL, T_FALSE, T_TRUE, T_INT, T_NUM, T_STR, T_TABLE, T_END, T_FUNC,
  T_REF, T_GLOBALS, T_NAMED, T_OBJECT, T_UPREF, T_CLASS
};

#if !defined(TRANSFER_INLINE)
#define TRANSFER_INLINE 96     /* bytes kept inside the buffer's own block */
#endif

struct transfer {
  atomic_long refs;
  unsigned char *data;       /* `small`, until the value outgrows it */
  size_t len, cap;
  object_t **objs;
  size_t nobjs, capobjs;
  int count;
  int has_refs;              /* a T_REF or T_UPREF occurs: the decoder keeps ids */
  unsigned char small[TRANSFER_INLINE];
};

/* registry[&names_key] = { [value] = "module" | "module\nfield" | {refusal},
**                         [&names_key] = the loaded_sig it was built for } */
static const char names_key = 'n';
/* registry[&classes_key] = { [metatable] = name, [name] = metatable | false } */
static const char classes_key = 'c';

enum { P_KEY, P_KEYOF, P_UPVALUE, P_META, P_ENV };

typedef struct path_elem {
  int kind;
  int idx;              /* stack index of the key (P_KEY, P_KEYOF) */
  const char *name;     /* upvalue name (P_UPVALUE) */
} path_elem;

typedef struct encoder {
  lua_State *L;
  transfer_t *buf;
  /* stack slots of helpers made on first use: negative until then */
  int seen;             /* { [value] = id } */
  int first_seen;       /* the first table or function (id 1) */
  int names;            /* the name map */
  int names_fresh;      /* the map was rebuilt during this encode */
  int globals;          /* the sender's globals */
  int classes;          /* the registered classes (nil when none) */
  int upvalues;         /* { [upvalue id] = function id * 2^16 + n } */
  int first_func;       /* the first Lua function with upvalues... */
  size_t first_fid;     /* ...and its id, until `upvalues` is made */
  int nextid;
  int depth;
  int number_depth;     /* the depth of the last number written... */
  size_t number_index;  /* ...and its value as an array index 1..KEY_MAX, or 0 */
  const char *root;
  int first, current;   /* naming of the top-level values */
  path_elem path[TRANSFER_MAX_DEPTH + 4];
} encoder;

static void encode_value(encoder *e, int idx);

/* ---------------------------------------------------------------- buffer */

static void buf_reserve(encoder *e, size_t n) {
  transfer_t *b = e->buf;
  if (b->cap - b->len < n) {
    size_t cap = b->cap;
    unsigned char *p;
    while (cap - b->len < n) {
      if (cap > SIZE_MAX / 2) luaL_error(e->L, "not enough memory");
      cap *= 2;
    }
    if (b->data == b->small) {
      p = (unsigned char *)malloc(cap);
      if (p != NULL) memcpy(p, b->small, b->len);
    } else {
      p = (unsigned char *)realloc(b->data, cap);
    }
    if (p == NULL) luaL_error(e->L, "not enough memory");
    b->data = p;
    b->cap = cap;
  }
}

static void put_bytes(encoder *e, const void *p, size_t n) {
  buf_reserve(e, n);
  memcpy(e->buf->data + e->buf->len, p, n);
  e->buf->len += n;
}

static void put_tag(encoder *e, unsigned char tag) {
  put_bytes(e, &tag, 1);
}

static void put_size(encoder *e, size_t n) {
  put_bytes(e, &n, sizeof n);
}

static void put_lstring(encoder *e, const char *s, size_t len) {
  put_size(e, len);
  put_bytes(e, s, len);
}

/* --------------------------------------------------------------- refusals */

static int is_identifier(const char *s, size_t len) {
  size_t i;
  if (len == 0 || len > 40 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

static void add_key(luaL_Buffer *b, lua_State *L, int idx) {
  char tmp[64];
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (is_identifier(s, len)) {
        luaL_addchar(b, '.');
        luaL_addlstring(b, s, len);
      } else {
        luaL_addstring(b, "[\"");
        luaL_addlstring(b, s, len > 24 ? 24 : len);
        luaL_addstring(b, len > 24 ? "...\"]" : "\"]");
      }
      return;
    }
    case LUA_TNUMBER:
      if (compat_isinteger(L, idx) ||
          lua_tonumber(L, idx) == (double)(long long)lua_tonumber(L, idx))
        snprintf(tmp, sizeof tmp, "[%lld]", (long long)lua_tonumber(L, idx));
      else
        snprintf(tmp, sizeof tmp, "[%.14g]", (double)lua_tonumber(L, idx));
      luaL_addstring(b, tmp);
      return;
    case LUA_TBOOLEAN:
      luaL_addstring(b, lua_toboolean(L, idx) ? "[true]" : "[false]");
      return;
    default:
      snprintf(tmp, sizeof tmp, "[<%s>]", luaL_typename(L, idx));
      luaL_addstring(b, tmp);
  }
}

static void add_elem(luaL_Buffer *b, lua_State *L, const path_elem *p) {
  switch (p->kind) {
    case P_KEY: add_key(b, L, p->idx); break;
    case P_KEYOF: luaL_addstring(b, ".<key>"); break;
    case P_UPVALUE:
      luaL_addstring(b, "<upvalue ");
      luaL_addstring(b, p->name[0] ? p->name : "?");
      luaL_addchar(b, '>');
      break;
    case P_ENV: luaL_addstring(b, "<environment>"); break;
    default: luaL_addstring(b, ".<metatable>"); break;
  }
}

/* Raise "cannot transfer value at <path>: <what>". */
static int refuse(encoder *e, const char *what) {
  lua_State *L = e->L;
  luaL_Buffer b;
  int i;
  lua_checkstack(L, 4);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "cannot transfer value at ");
  if (e->first < 0 && e->current == 0) luaL_addstring(&b, "target");
  else luaL_addstring(&b, e->root);
  if (e->first < 0 && e->current > 0) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "[%d]", e->current);
    luaL_addstring(&b, tmp);
  } else if (e->first > 0) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "[%d]", e->first + e->current);
    luaL_addstring(&b, tmp);
  }
  for (i = 0; i < e->depth; i++) {
    if (e->depth > 16 && i == 8) {
      luaL_addstring(&b, "...");
      i = e->depth - 5;
      continue;
    }
    add_elem(&b, L, &e->path[i]);
  }
  luaL_addstring(&b, ": ");
  luaL_addstring(&b, what);
  luaL_pushresult(&b);
  return lua_error(L);
}

static void path_push(encoder *e, int kind, int idx, const char *name) {
  path_elem *p;
  if (e->depth >= TRANSFER_MAX_DEPTH) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "nesting deeper than %d levels",
             TRANSFER_MAX_DEPTH);
    refuse(e, tmp);
  }
  p = &e->path[e->depth++];
  p->kind = kind;
  p->idx = idx;
  p->name = name;
}

/* ------------------------------------------------------------- name map */

/* What the name map was built from: package.loaded's names and values. A
** count alone misses a module replaced by another, or removed while another
** is added; the map keeps every value it names alive, so an address seen
** again is the same value. */
typedef struct loaded_sig {
  size_t count;
  uint64_t sum;          /* of a hash of each (name, value) pair */
} loaded_sig;

static uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  return x ^ (x >> 33);
}

static loaded_sig sign_loaded(lua_State *L, int loaded) {
  loaded_sig sig;
  sig.count = 0;
  sig.sum = 0;
  lua_pushnil(L);
  while (lua_next(L, loaded)) {
    uint64_t h = 14695981039346656037ULL;          /* FNV-1a of the name */
    if (lua_type(L, -2) == LUA_TSTRING) {
      size_t len, i;
      const char *name = lua_tolstring(L, -2, &len);
      for (i = 0; i < len; i++) h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    }
    sig.sum += mix64(h ^ (uint64_t)(uintptr_t)lua_topointer(L, -1));
    sig.count++;
    lua_pop(L, 1);
  }
  return sig;
}

/*
** The standard libraries, in the order that decides which of their names a
** C function or a module table travels by; then the module's own core,
** whose functions `threading` re-exports.
*/
static const char *const std_modules[] = {
  "_G", "string", "table", "math", "io", "os", "coroutine", "debug",
  "package", "utf8", "bit32", "bit", "jit", "ffi", "threading.core", NULL
};
#define OWN_CORE "threading.core"

/*
** Facts about this Lua, taken once per process (probe_once) from a fresh
** state made for the purpose: the names its standard libraries give their
** C functions and, on 5.1 and LuaJIT, the opcodes that access globals.
**
** Only what a fresh state's standard libraries hold names a function: a
** program may add to the standard tables (`printf = string.format` in _G,
** a compatibility `table.unpack` on 5.1), and a receiver's libraries lack
** what it added. Each state keeps the list ("module\nfield" for each C
** function) as a set in its registry.
*/
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static char **pristine;          /* written once, under probe_once */
static size_t npristine;
/* registry[&pristine_key] = { ["module\nfield"] = true } */
static const char pristine_key = 'p';

static int collect_pristine(lua_State *L) {
  int i;
  luaL_openlibs(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  for (i = 0; std_modules[i] != NULL; i++) {
    lua_getfield(L, -1, std_modules[i]);
    if (lua_istable(L, -1)) {
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        size_t len, mlen = strlen(std_modules[i]);
        const char *k;
        char *name, **grown;
        if (lua_type(L, -2) != LUA_TSTRING || !lua_iscfunction(L, -1)) {
          lua_pop(L, 1);
          continue;
        }
        k = lua_tolstring(L, -2, &len);
        name = (char *)malloc(mlen + 1 + len + 1);
        grown = (char **)realloc(pristine, (npristine + 1) * sizeof *grown);
        if (name == NULL || grown == NULL) {
          free(name);
          if (grown != NULL) pristine = grown;
          return 0;
        }
        pristine = grown;
        memcpy(name, std_modules[i], mlen);
        name[mlen] = '\n';
        memcpy(name + mlen + 1, k, len);
        name[mlen + 1 + len] = '\0';
        pristine[npristine++] = name;
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  return 0;
}

#if COMPAT_HAS_FENV
static int find_global_ops(lua_State *L);
#endif

static void probe_fresh_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return;           /* then no standard entry names a function */
  lua_pushcfunction(L, collect_pristine);
  (void)lua_pcall(L, 0, 0, 0);
#if COMPAT_HAS_FENV
  lua_pushcfunction(L, find_global_ops);
  (void)lua_pcall(L, 0, 0, 0);
#endif
  lua_close(L);
}

/* Push this state's set of pristine names. */
static void push_pristine(lua_State *L) {
  size_t i;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &pristine_key);
  if (lua_istable(L, -1)) return;
  lua_pop(L, 1);
  pthread_once(&probe_once, probe_fresh_state);
  lua_createtable(L, 0, (int)npristine);
  for (i = 0; i < npristine; i++) {
    lua_pushstring(L, pristine[i]);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  lua_pushvalue(L, -1);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &pristine_key);
}

static int is_std_module(const char *name) {
  int i;
  for (i = 0; std_modules[i] != NULL; i++)
    if (strcmp(name, std_modules[i]) == 0) return 1;
  return 0;
}

/* Is the name at a to be preferred to the one at b? Shorter, then bytewise. */
static int name_better(lua_State *L, int a, int b) {
  size_t la, lb;
  const char *sa = lua_tolstring(L, a, &la), *sb = lua_tolstring(L, b, &lb);
  int c;
  if (la != lb) return la < lb;
  c = memcmp(sa, sb, la);
  return c < 0;
}

/* The tables build_names works with, by stack index. */
typedef struct namer {
  int map;      /* the result: value -> name, or {refusal} */
  int cand;     /* non-standard names: value -> the best name so far */
  int home;     /* value -> the module table (or function) of that name */
  int multi;    /* value -> true: two different modules hold it */
  int other;    /* for those: the best name held by another module */
  int pristine; /* the set of a fresh state's standard names */
} namer;

static int rawget_is(lua_State *L, int t, int key, int value) {
  int same;
  lua_pushvalue(L, key);
  lua_rawget(L, t);
  same = lua_rawequal(L, -1, value);
  lua_pop(L, 1);
  return same;
}

static void rawset_to(lua_State *L, int t, int key, int value) {
  lua_pushvalue(L, key);
  lua_pushvalue(L, value);
  lua_rawset(L, t);
}

/* Offer the name at the top of the stack (popped) for the value at v, held
** by module `mod` (a table, or v itself). A standard module's name is
** taken unless an earlier standard module named v; another module's name
** only counts when no standard module holds v. */
static void offer_name(lua_State *L, const namer *n, int v, int mod, int std) {
  int name = lua_gettop(L);
  lua_pushvalue(L, v);
  lua_rawget(L, n->map);
  if (std) {
    if (lua_isnil(L, -1)) {
      rawset_to(L, n->map, v, name);
      rawset_to(L, n->home, v, mod);
    } else if (lua_type(L, -1) == LUA_TSTRING && rawget_is(L, n->home, v, mod) &&
               name_better(L, name, -1)) {
      rawset_to(L, n->map, v, name);     /* two keys of one library */
    }
  } else if (lua_isnil(L, -1)) {
    lua_pushvalue(L, v);
    lua_rawget(L, n->cand);
    if (lua_isnil(L, -1)) {
      rawset_to(L, n->cand, v, name);
      rawset_to(L, n->home, v, mod);
    } else {
      if (!rawget_is(L, n->home, v, mod)) {
        lua_pushvalue(L, v);
        lua_pushboolean(L, 1);
        lua_rawset(L, n->multi);
      }
      if (name_better(L, name, -1)) {
        rawset_to(L, n->cand, v, name);
        rawset_to(L, n->home, v, mod);
      }
    }
  }
  lua_settop(L, name - 1);
}

/* Push "module\nfield" for the module name at modname and the key at k. */
static void push_field_name(lua_State *L, int modname, int k) {
  lua_pushvalue(L, modname);
  lua_pushliteral(L, "\n");
  lua_pushvalue(L, k);
  lua_concat(L, 3);
}

/* Offer the names of package.loaded[modname] (at mod) and of the C
** functions in it. */
static void offer_module(lua_State *L, const namer *n, int modname, int mod,
                         int std) {
  /* of a standard library, only what a fresh state's holds */
  int only = std && strcmp(lua_tostring(L, modname), OWN_CORE) != 0 ? n->pristine : 0;
  if (lua_iscfunction(L, mod)) {
    if (only) return;
    lua_pushvalue(L, modname);
    offer_name(L, n, mod, mod, std);
    return;
  }
  if (!lua_istable(L, mod)) return;
  lua_pushvalue(L, modname);
  offer_name(L, n, mod, mod, std);
  lua_pushnil(L);
  while (lua_next(L, mod)) {               /* k v */
    int k = lua_gettop(L) - 1;
    if (lua_type(L, k) == LUA_TSTRING && lua_iscfunction(L, k + 1)) {
      push_field_name(L, modname, k);
      if (only) {
        lua_pushvalue(L, -1);
        lua_rawget(L, only);
        if (!lua_toboolean(L, -1)) {
          lua_settop(L, k);
          continue;
        }
        lua_pop(L, 1);
      }
      offer_name(L, n, k + 1, mod, std);
    }
    lua_settop(L, k);
  }
}

/* For find_others: offer the name at the top of the stack (popped) for the
** value at v, held by `mod`. */
static void offer_other(lua_State *L, const namer *n, int v, int mod) {
  int name = lua_gettop(L);
  lua_pushvalue(L, v);
  lua_rawget(L, n->multi);
  if (lua_toboolean(L, -1) && !rawget_is(L, n->home, v, mod)) {
    lua_pushvalue(L, v);
    lua_rawget(L, n->other);
    if (lua_isnil(L, -1) || name_better(L, name, -1)) rawset_to(L, n->other, v, name);
  }
  lua_settop(L, name - 1);
}

/* For each value two modules hold, find the best name held by a module
** other than the one its best name comes from. */
static void find_others(lua_State *L, const namer *n, int loaded) {
  lua_pushnil(L);
  while (lua_next(L, loaded)) {            /* modname mod */
    int modname = lua_gettop(L) - 1, mod = modname + 1;
    if (lua_type(L, modname) == LUA_TSTRING && !is_std_module(lua_tostring(L, modname))) {
      if (lua_iscfunction(L, mod)) {
        lua_pushvalue(L, modname);
        offer_other(L, n, mod, mod);
      } else if (lua_istable(L, mod)) {
        lua_pushnil(L);
        while (lua_next(L, mod)) {         /* k v */
          int k = lua_gettop(L) - 1;
          if (lua_type(L, k) == LUA_TSTRING && lua_iscfunction(L, k + 1)) {
            push_field_name(L, modname, k);
            offer_other(L, n, k + 1, mod);
          }
          lua_settop(L, k);
        }
      }
    }
    lua_settop(L, modname);
  }
}

/* Push "module.field" for a name "module\nfield" at idx. */
static void push_dotted(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) (void)luaL_gsub(L, lua_tostring(L, idx), "\n", ".");
  else lua_pushliteral(L, "another module");
}

/* Build the name map over package.loaded (pushes it). The standard
** libraries' names come first, in std_modules' order; a value held only by
** other modules takes the shortest (then bytewise first) of their names when
** they are one table under several names, and is refused when two
** different tables hold it: the receiver could resolve either name to
** something else. */
static void build_names(lua_State *L, int loaded, const loaded_sig *sig) {
  namer n;
  int i, ambiguous = 0;
  luaL_checkstack(L, 24, "not enough stack to name C functions");
  lua_newtable(L);
  n.map = lua_gettop(L);
  lua_newtable(L);
  n.cand = n.map + 1;
  lua_newtable(L);
  n.home = n.map + 2;
  lua_newtable(L);
  n.multi = n.map + 3;
  lua_newtable(L);
  n.other = n.map + 4;
  push_pristine(L);
  n.pristine = n.map + 5;
  for (i = 0; std_modules[i] != NULL; i++) {
    lua_pushstring(L, std_modules[i]);
    lua_pushvalue(L, -1);
    lua_rawget(L, loaded);
    offer_module(L, &n, lua_gettop(L) - 1, lua_gettop(L), 1);
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, loaded)) {            /* modname mod */
    int modname = lua_gettop(L) - 1;
    if (lua_type(L, modname) == LUA_TSTRING && !is_std_module(lua_tostring(L, modname)))
      offer_module(L, &n, modname, modname + 1, 0);
    lua_settop(L, modname);
  }
  lua_pushnil(L);
  if (lua_next(L, n.multi)) {
    lua_pop(L, 2);
    ambiguous = 1;
    find_others(L, &n, loaded);
  }
  lua_pushnil(L);
  while (lua_next(L, n.cand)) {            /* value name */
    int v = lua_gettop(L) - 1;
    lua_pushvalue(L, v);
    lua_rawget(L, n.multi);
    if (ambiguous && lua_toboolean(L, -1)) {
      lua_pushvalue(L, v);
      lua_createtable(L, 1, 0);
      lua_pushliteral(L, "C function (ambiguous: reachable as both ");
      push_dotted(L, v + 1);
      lua_pushliteral(L, " and ");
      lua_pushvalue(L, v);
      lua_rawget(L, n.other);
      push_dotted(L, -1);
      lua_remove(L, -2);
      lua_pushliteral(L, ")");
      lua_concat(L, 5);
      lua_rawseti(L, -2, 1);
      lua_rawset(L, n.map);
    } else {
      rawset_to(L, n.map, v, v + 1);
    }
    lua_settop(L, v);
  }
  lua_settop(L, n.map);
  lua_pushlstring(L, (const char *)sig, sizeof *sig);
  compat_rawsetp(L, n.map, &names_key);
  lua_pushvalue(L, n.map);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &names_key);
}

/* Make e->names a map valid for the current package.loaded. `force`
** rebuilds it even if package.loaded looks as it did. */
static void ensure_names(encoder *e, int force) {
  lua_State *L = e->L;
  int loaded;
  loaded_sig sig;
  if (e->names > 0 && (!force || e->names_fresh)) return;
  if (e->names < 0) e->names = -e->names;
  lua_checkstack(L, 12);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_replace(L, e->names);
    e->names_fresh = 1;
    return;
  }
  loaded = lua_gettop(L);
  sig = sign_loaded(L, loaded);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &names_key);
  if (!force && lua_istable(L, -1)) {
    size_t len;
    const char *old;
    compat_rawgetp(L, -1, &names_key);
    old = lua_tolstring(L, -1, &len);
    if (old != NULL && len == sizeof sig && memcmp(old, &sig, sizeof sig) == 0) {
      lua_pop(L, 1);
      lua_replace(L, e->names);
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  build_names(L, loaded, &sig);
  lua_replace(L, e->names);
  lua_pop(L, 1);
  e->names_fresh = 1;
}

/* Push the name of the value at idx (or nil) */
static void lookup_name(encoder *e, int idx) {
  lua_pushvalue(e->L, idx);
  lua_rawget(e->L, e->names);
}

/* -------------------------------------------------------------- encoding */

static void put_ref(encoder *e, size_t id) {
  put_tag(e, T_REF);
  put_size(e, id);
  e->buf->has_refs = 1;
}

/* Emit a T_REF if the value at idx was met before; otherwise give it the
** next id and return 0. The first table or function is only kept in its
** slot: the id table is made when a second one comes (a {i, "x"} item
** never needs it). */
static int seen_before(encoder *e, int idx) {
  lua_State *L = e->L;
  if (e->nextid == 0) {
    lua_pushvalue(L, idx);
    lua_replace(L, e->first_seen);
    e->nextid = 1;
    return 0;
  }
  if (e->seen < 0) {
    if (lua_rawequal(L, idx, e->first_seen)) {
      put_ref(e, 1);
      return 1;
    }
    e->seen = -e->seen;
    lua_newtable(L);
    lua_pushvalue(L, e->first_seen);
    lua_pushinteger(L, 1);
    lua_rawset(L, -3);
    lua_replace(L, e->seen);
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, e->seen);
  if (!lua_isnil(L, -1)) {
    size_t id = (size_t)lua_tonumber(L, -1);
    lua_pop(L, 1);
    put_ref(e, id);
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, ++e->nextid);
  lua_rawset(L, e->seen);
  return 0;
}

static int is_globals(encoder *e, int idx) {
  if (e->globals < 0) {
    e->globals = -e->globals;
    compat_pushglobals(e->L);
    lua_replace(e->L, e->globals);
  }
  return lua_rawequal(e->L, idx, e->globals);
}

#if COMPAT_HAS_FENV
/* ------------------------------------------------- environments (5.1) */

/*
** Does a function name a global? On 5.2+ one that names none has no _ENV
** upvalue, so nothing of its environment travels. On 5.1 and LuaJIT every
** function has an environment; one that names no global, and makes no
** function that does, has no use for it (a spec's function under busted,
** say, whose environment holds the test run). Its dump tells: the opcodes
** that read and write a global (taken once from "g = g") in its bytecode or
** its nested functions'. A dump that cannot be read counts as naming one.
*/
static int op_getglobal = -1, op_setglobal = -1;   /* written under probe_once */

typedef struct dump_reader {
  const unsigned char *p, *end;
} dump_reader;

/* Called with each instruction's opcode; returns 1 to stop the scan. */
typedef int (*opcode_fn)(void *ud, int op);

static int rd_skip(dump_reader *r, size_t n) {
  if ((size_t)(r->end - r->p) < n) return 0;
  r->p += n;
  return 1;
}

#if COMPAT_LUAJIT
/* LuaJIT: a header, then each prototype (children first) with its length. */
static int rd_uleb(dump_reader *r, size_t *out) {
  size_t v = 0;
  int shift = 0;
  for (;;) {
    unsigned char b;
    if (r->p >= r->end || shift > 56) return 0;
    b = *r->p++;
    v |= (size_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) break;
    shift += 7;
  }
  *out = v;
  return 1;
}

/* -1: unreadable; 1: fn stopped it; 0: every opcode seen. */
static int scan_dump(const unsigned char *p, size_t len, opcode_fn fn, void *ud) {
  dump_reader r;
  size_t flags, n;
  r.p = p;
  r.end = p + len;
  if (len < 4 || p[0] != 0x1b || p[1] != 'L' || p[2] != 'J') return -1;
  r.p += 4;
  if (!rd_uleb(&r, &flags)) return -1;
  if (!(flags & 2) && (!rd_uleb(&r, &n) || !rd_skip(&r, n))) return -1;  /* chunk name */
  for (;;) {
    size_t plen, sizebc, ignored, i;
    const unsigned char *end;
    if (!rd_uleb(&r, &plen)) return -1;
    if (plen == 0) return 0;
    if ((size_t)(r.end - r.p) < plen) return -1;
    end = r.p + plen;
    if (!rd_skip(&r, 4) || !rd_uleb(&r, &ignored) || !rd_uleb(&r, &ignored) ||
        !rd_uleb(&r, &sizebc))
      return -1;
    if (!(flags & 2)) {
      size_t sizedbg;
      if (!rd_uleb(&r, &sizedbg)) return -1;
      if (sizedbg && (!rd_uleb(&r, &ignored) || !rd_uleb(&r, &ignored))) return -1;
    }
    if ((size_t)(end - r.p) / 4 < sizebc) return -1;
    for (i = 0; i < sizebc; i++, r.p += 4)
      if (fn(ud, (flags & 1) ? r.p[3] : r.p[0])) return 1;    /* big endian */
    r.p = end;
  }
}
#else
/* Lua 5.1: a header giving the sizes, then the main function, nested. */
static int rd_mem(dump_reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) return 0;
  memcpy(out, r->p, n);
  r->p += n;
  return 1;
}

typedef struct dump51 {
  dump_reader r;
  size_t sint, ssize, snum;
} dump51;

static int rd_count(dump51 *d, size_t *out) {
  int n;
  if (d->sint != sizeof n || !rd_mem(&d->r, &n, sizeof n) || n < 0) return 0;
  *out = (size_t)n;
  return 1;
}

static int rd_string(dump51 *d) {
  size_t n;
  return d->ssize == sizeof n && rd_mem(&d->r, &n, sizeof n) && rd_skip(&d->r, n);
}

static int scan_function51(dump51 *d, opcode_fn fn, void *ud, int depth) {
  size_t n, i;
  if (depth > 250 || !rd_string(d) || !rd_skip(&d->r, 2 * d->sint + 4)) return -1;
  if (!rd_count(d, &n)) return -1;
  for (i = 0; i < n; i++) {
    uint32_t ins;
    if (!rd_mem(&d->r, &ins, sizeof ins)) return -1;
    if (fn(ud, (int)(ins & 0x3f))) return 1;
  }
  if (!rd_count(d, &n)) return -1;
  for (i = 0; i < n; i++) {                       /* constants */
    unsigned char t;
    if (!rd_mem(&d->r, &t, 1)) return -1;
    if ((t == LUA_TBOOLEAN && !rd_skip(&d->r, 1)) ||
        (t == LUA_TNUMBER && !rd_skip(&d->r, d->snum)) ||
        (t == LUA_TSTRING && !rd_string(d)) ||
        (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING))
      return -1;
  }
  if (!rd_count(d, &n)) return -1;
  for (i = 0; i < n; i++) {                       /* nested functions */
    int rc = scan_function51(d, fn, ud, depth + 1);
    if (rc != 0) return rc;
  }
  if (!rd_count(d, &n) || !rd_skip(&d->r, n * d->sint)) return -1;   /* lines */
  if (!rd_count(d, &n)) return -1;
  for (i = 0; i < n; i++)                         /* locals */
    if (!rd_string(d) || !rd_skip(&d->r, 2 * d->sint)) return -1;
  if (!rd_count(d, &n)) return -1;
  for (i = 0; i < n; i++)                         /* upvalue names */
    if (!rd_string(d)) return -1;
  return 0;
}

/* -1: unreadable; 1: fn stopped it; 0: every opcode seen. */
static int scan_dump(const unsigned char *p, size_t len, opcode_fn fn, void *ud) {
  dump51 d;
  if (len < 12 || memcmp(p, "\x1bLua\x51", 5) != 0 || p[9] != 4) return -1;
  d.r.p = p + 12;
  d.r.end = p + len;
  d.sint = p[7];
  d.ssize = p[8];
  d.snum = p[10];
  return scan_function51(&d, fn, ud, 0);
}
#endif

static int is_global_op(void *ud, int op) {
  (void)ud;
  return op == op_getglobal || op == op_setglobal;
}

/* Does the dumped function name a global (or cannot it be told)? */
static int names_globals(const unsigned char *dump, size_t len) {
  pthread_once(&probe_once, probe_fresh_state);
  if (op_getglobal < 0) return 1;
  return scan_dump(dump, len, is_global_op, NULL) != 0;
}

typedef struct first_ops {
  int n, op[2];
} first_ops;

static int keep_first_ops(void *ud, int op) {
  first_ops *f = (first_ops *)ud;
  f->op[f->n++] = op;
  return f->n == 2;
}

static int dump_to_buffer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  luaL_addlstring((luaL_Buffer *)ud, (const char *)p, sz);
  return 0;
}

/* In the fresh state: "g = g" reads a global, then writes one. */
static int find_global_ops(lua_State *L) {
  luaL_Buffer b;
  first_ops f;
  size_t len;
  const char *dump;
  if (luaL_loadstring(L, "g = g") != 0) return 0;
  luaL_buffinit(L, &b);
  if (compat_dump(L, dump_to_buffer, &b) != 0) return 0;
  luaL_pushresult(&b);
  dump = lua_tolstring(L, -1, &len);
  f.n = 0;
  if (scan_dump((const unsigned char *)dump, len, keep_first_ops, &f) == 1 && f.op[0] != f.op[1]) {
    op_getglobal = f.op[0];
    op_setglobal = f.op[1];
  }
  return 0;
}
#endif

/* ------------------------------------------------------------- classes */

/* The stack slot of this state's class registry, or 0 when it has none. */
static int classes(encoder *e) {
  if (e->classes < 0) {
    e->classes = -e->classes;
    compat_rawgetp(e->L, LUA_REGISTRYINDEX, &classes_key);
    lua_replace(e->L, e->classes);
  }
  return lua_istable(e->L, e->classes) ? e->classes : 0;
}

/* Push the class name of the table at idx and return 1 (movable) or -1
** (bound to its state); push nothing and return 0 if it is no class. */
static int class_of(encoder *e, int idx) {
  lua_State *L = e->L;
  int c = classes(e), movable;
  if (c == 0) return 0;
  lua_pushvalue(L, idx);
  lua_rawget(L, c);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushvalue(L, -1);
  lua_rawget(L, c);
  movable = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return movable ? 1 : -1;
}

static int refuse_class(encoder *e) {
  lua_pushliteral(e->L, " (cannot leave its state)");
  lua_concat(e->L, 2);
  return refuse(e, lua_tostring(e->L, -1));
}

/* A registered class travels by name: write it and return 1 if the table
** at idx is one (refusing one bound to its state), else return 0. Asked
** where a class is met (a metatable, an upvalue: the functions of the
** module's Lua side hold theirs), not of every table: plain data never
** pays for it. */
static int encode_class(encoder *e, int idx) {
  size_t len;
  const char *name;
  int k = class_of(e, idx);
  if (k == 0) return 0;
  if (k < 0) refuse_class(e);
  name = lua_tolstring(e->L, -1, &len);
  put_tag(e, T_CLASS);
  put_lstring(e, name, len);
  lua_pop(e->L, 1);
  return 1;
}

/* -------------------------------------------------------------- tables */

/*
** Sizing the receiver's table from what was written, never from #t: the
** border of a sparse table can be far beyond its number of entries. Keys
** 1..KEY_MAX that are integers may go to the array part, as Lua decides:
** the largest n = 2^i such that more than n/2 of the keys 1..n are present.
** A table whose integer keys fill more than half of 1..max (any list) gets
** an array part of exactly max without counting more; only a sparse one is
** walked a second time to find its n.
*/
#define KEY_BUCKETS 31
#define KEY_MAX ((size_t)1 << (KEY_BUCKETS - 1))

/* The key at idx as an array index 1..KEY_MAX, or 0. */
static size_t array_key(lua_State *L, int idx) {
  if (lua_type(L, idx) != LUA_TNUMBER) return 0;
#if COMPAT_INTEGERS
  {
    lua_Integer i;
    if (!lua_isinteger(L, idx)) return 0;    /* integral floats are integers here */
    i = lua_tointeger(L, idx);
    return i >= 1 && (lua_Unsigned)i <= KEY_MAX ? (size_t)i : 0;
  }
#else
  {
    lua_Number n = lua_tonumber(L, idx);
    return n >= 1 && n <= (lua_Number)KEY_MAX && (lua_Number)(size_t)n == n ? (size_t)n : 0;
  }
#endif
}

/* bucket[i] counts the keys k with 2^(i-1) < k <= 2^i (bucket 0: k = 1) */
static int key_bucket(size_t k) {
  int b = 0;
  for (k -= 1; k != 0; k >>= 1) b++;
  return b;
}

/* The array part for the sparse table at idx with nint array keys; *in_array
** gets how many of them it holds. */
static size_t sparse_array_size(lua_State *L, int idx, size_t nint, size_t *in_array) {
  size_t bucket[KEY_BUCKETS], below = 0, n = 0, twotoi = 1;
  int i;
  memset(bucket, 0, sizeof bucket);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t k = array_key(L, -2);
    if (k != 0) bucket[key_bucket(k)]++;
    lua_pop(L, 1);
  }
  *in_array = 0;
  for (i = 0; i < KEY_BUCKETS && twotoi / 2 < nint; i++, twotoi *= 2) {
    below += bucket[i];
    if (below > twotoi / 2) {
      n = twotoi;
      *in_array = below;
    }
  }
  return n;
}

static void encode_table(encoder *e, int idx) {
  lua_State *L = e->L;
  size_t nint = 0, kmax = 0, nkeys = 0, narr, inarr, nrec, at;
  int mt = 0;
  if (is_globals(e, idx)) {
    put_tag(e, T_GLOBALS);
    return;
  }
  if (!lua_checkstack(L, 8)) refuse(e, "nesting too deep for the Lua stack");
  if (lua_getmetatable(L, idx)) {
    int k;
    mt = lua_gettop(L);
    k = class_of(e, mt);         /* pushes the class's name */
    if (k < 0) refuse_class(e);  /* an instance bound to its state */
    if (k > 0) lua_pop(L, 1);
  }
  if (seen_before(e, idx)) {
    if (mt) lua_pop(L, 1);
    return;
  }
  put_tag(e, T_TABLE);
  at = e->buf->len;
  put_size(e, 0);                /* narr and nrec, known once the keys are */
  put_size(e, 0);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int key = lua_gettop(L) - 1;
    size_t k;
    path_push(e, P_KEYOF, key, NULL);
    /* encode_value notes a number met at this depth: the key itself, not
    ** one inside it (those are deeper); no second look at the key */
    e->number_depth = -1;
    encode_value(e, key);
    k = e->number_depth == e->depth ? e->number_index : 0;
    e->depth--;
    if (k != 0) {
      nint++;
      if (k > kmax) kmax = k;
    }
    path_push(e, P_KEY, key, NULL);
    encode_value(e, key + 1);
    e->depth--;
    lua_pop(L, 1);
    nkeys++;
  }
  if (nint == 0 || nint > kmax / 2) {
    narr = kmax;
    inarr = nint;
  } else {
    narr = sparse_array_size(L, idx, nint, &inarr);
  }
  nrec = nkeys - inarr;
  memcpy(e->buf->data + at, &narr, sizeof narr);
  memcpy(e->buf->data + at + sizeof narr, &nrec, sizeof nrec);
  put_tag(e, T_END);
  if (mt) {
    put_tag(e, 1);
    path_push(e, P_META, 0, NULL);
    if (!encode_class(e, mt)) encode_value(e, mt);
    e->depth--;
    lua_pop(L, 1);
  } else {
    put_tag(e, 0);
  }
}

/* ----------------------------------------------------------- functions */

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L;
  put_bytes((encoder *)ud, p, sz);
  return 0;
}

static void encode_named(encoder *e) {
  size_t len;
  const char *name = lua_tolstring(e->L, -1, &len);
  put_tag(e, T_NAMED);
  put_lstring(e, name, len);
}

static int count_upvalues(lua_State *L, int idx) {
  int n;
  for (n = 0; lua_getupvalue(L, idx, n + 1) != NULL; n++) lua_pop(L, 1);
  return n;
}

#if COMPAT_HAS_UPVALUEID
/* Upvalue n of function fid, as kept in e->upvalues. */
#define UPVALUE_KEY(fid, n) ((lua_Number)(fid) * 65536 + (n))

/* The first function met with upvalue n of the function at f (id fid):
** its UPVALUE_KEY, recorded as (fid, n) when it is this one. */
static lua_Number upvalue_owner(encoder *e, int f, size_t fid, int n) {
  lua_State *L = e->L;
  void *id = compat_upvalueid(L, f, n);
  lua_Number key;
  lua_pushlightuserdata(L, id);
  lua_rawget(L, e->upvalues);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    key = UPVALUE_KEY(fid, n);
    lua_pushlightuserdata(L, id);
    lua_pushnumber(L, key);
    lua_rawset(L, e->upvalues);
    return key;
  }
  key = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return key;
}

/* Write upvalue n of the function at f (id fid) as a T_UPREF and return 1
** if an earlier function has it; else return 0. */
static int joined_upvalue(encoder *e, int f, size_t fid, int n) {
  lua_Number key = upvalue_owner(e, f, fid, n);
  size_t ofid;
  uint16_t on;
  if (key == UPVALUE_KEY(fid, n)) return 0;
  ofid = (size_t)(key / 65536);
  on = (uint16_t)(key - (lua_Number)ofid * 65536);
  put_tag(e, T_UPREF);
  put_size(e, ofid);
  put_bytes(e, &on, sizeof on);
  e->buf->has_refs = 1;
  return 1;
}

/* Called for each Lua function with upvalues, before they are written. The
** first one is only kept aside: the upvalue map is made when a second one
** comes (a single function, a thread's target say, never needs it), and
** then gets the first one's upvalues, written or still to be. */
static void track_upvalues(encoder *e, int f, size_t fid) {
  lua_State *L = e->L;
  int i, n;
  if (e->first_fid == 0) {
    lua_pushvalue(L, f);
    lua_replace(L, e->first_func);
    e->first_fid = fid;
    return;
  }
  if (e->upvalues > 0) return;
  e->upvalues = -e->upvalues;
  lua_newtable(L);
  lua_replace(L, e->upvalues);
  n = count_upvalues(L, e->first_func);
  for (i = 1; i <= n; i++) (void)upvalue_owner(e, e->first_func, e->first_fid, i);
}
#endif

#if COMPAT_HAS_FENV
/* A function's environment (setfenv): 0, the globals, stay the receiver's
** globals; 1, a loaded module (`module(...)` code), binds to the receiver's
** module; 1, any other table (a sandbox), is copied with the function;
** 2, that of a function that names no global, becomes an empty table: it
** is never the receiver's full globals unless it was the sender's. */
static void encode_env(encoder *e, int f, int uses) {
  lua_State *L = e->L;
  int env;
  compat_getfenv(L, f);
  env = lua_gettop(L);
  if (is_globals(e, env)) {
    put_tag(e, 0);
  } else if (!uses) {
    put_tag(e, 2);
  } else {
    put_tag(e, 1);
    path_push(e, P_ENV, 0, NULL);
    ensure_names(e, 0);
    lookup_name(e, env);
    if (lua_type(L, -1) == LUA_TSTRING) encode_named(e);
    else encode_value(e, env);
    lua_pop(L, 1);
    e->depth--;
  }
  lua_pop(L, 1);
}
#endif

static void encode_cfunction(encoder *e, int idx) {
  lua_State *L = e->L;
  ensure_names(e, 0);
  lookup_name(e, idx);
  if (lua_isnil(L, -1)) {          /* loaded since the map was built? */
    lua_pop(L, 1);
    ensure_names(e, 1);
    lookup_name(e, idx);
  }
  if (lua_istable(L, -1)) {        /* ambiguous: the map holds the refusal */
    lua_rawgeti(L, -1, 1);
    refuse(e, lua_tostring(L, -1));
  }
  if (lua_isnil(L, -1))
    refuse(e, "C function (not reachable by name from package.loaded)");
  encode_named(e);
  lua_pop(L, 1);
}

static void encode_function(encoder *e, int idx) {
  lua_State *L = e->L;
  size_t at, len, fid;
  int nups, i;
#if COMPAT_HAS_FENV
  int uses_env;
#endif
  if (lua_iscfunction(L, idx)) {
    encode_cfunction(e, idx);
    return;
  }
  if (seen_before(e, idx)) return;
  fid = (size_t)e->nextid;
  if (!lua_checkstack(L, 8)) refuse(e, "nesting too deep for the Lua stack");
  put_tag(e, T_FUNC);
  at = e->buf->len;
  put_size(e, 0);
  lua_pushvalue(L, idx);
  if (compat_dump(L, dump_writer, e) != 0) refuse(e, "function cannot be dumped");
  lua_pop(L, 1);
  len = e->buf->len - at - sizeof(size_t);
  memcpy(e->buf->data + at, &len, sizeof len);
#if COMPAT_HAS_FENV
  uses_env = names_globals(e->buf->data + at + sizeof(size_t), len);
#endif
  nups = count_upvalues(L, idx);
  {
    uint16_t n16 = (uint16_t)nups;
    put_bytes(e, &n16, sizeof n16);
  }
#if COMPAT_HAS_UPVALUEID
  if (nups > 0) track_upvalues(e, idx, fid);
#else
  (void)fid;
#endif
  for (i = 1; i <= nups; i++) {
    const char *name;
    int v;
#if COMPAT_HAS_UPVALUEID
    if (e->upvalues > 0 && joined_upvalue(e, idx, fid, i)) continue;
#endif
    name = lua_getupvalue(L, idx, i);
    v = lua_gettop(L);
    path_push(e, P_UPVALUE, 0, name);
    if (lua_istable(L, v) && !is_globals(e, v)) {
      /* a loaded module captured as an upvalue binds to the receiver's copy */
      ensure_names(e, 0);
      lookup_name(e, v);
      if (lua_type(L, -1) == LUA_TSTRING) encode_named(e);
      else if (!encode_class(e, v)) encode_value(e, v);
      lua_pop(L, 1);
    } else {
      encode_value(e, v);
    }
    e->depth--;
    lua_pop(L, 1);
  }
#if COMPAT_HAS_FENV
  encode_env(e, idx, uses_env);
#endif
}

static void encode_value(encoder *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_tag(e, T_NIL); break;
    case LUA_TBOOLEAN: put_tag(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      /* as a key, it may be an array index: see encode_table */
      e->number_depth = e->depth;
#if COMPAT_INTEGERS
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        put_tag(e, T_INT);
        put_bytes(e, &i, sizeof i);
        e->number_index = i >= 1 && (lua_Unsigned)i <= KEY_MAX ? (size_t)i : 0;
        break;
      }
      e->number_index = 0;       /* an integral float is an integer here */
#endif
      {
        lua_Number n = lua_tonumber(L, idx);
        put_tag(e, T_NUM);
        put_bytes(e, &n, sizeof n);
#if !COMPAT_INTEGERS
        e->number_index = n >= 1 && n <= (lua_Number)KEY_MAX &&
                          (lua_Number)(size_t)n == n ? (size_t)n : 0;
#endif
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_tag(e, T_STR);
      put_lstring(e, s, len);
      break;
    }
    case LUA_TTABLE: encode_table(e, idx); break;
    case LUA_TFUNCTION: encode_function(e, idx); break;
    case LUA_TUSERDATA: {
      object_t *o = object_test(L, idx);
      transfer_t *b = e->buf;
      if (o == NULL)
        refuse(e, object_isreleased(L, idx) ? "threading object (handle already released)"
                                            : "userdata (not a threading object)");
      if (b->nobjs == b->capobjs) {
        size_t cap = b->capobjs ? b->capobjs * 2 : 4;
        object_t **p = (object_t **)realloc(b->objs, cap * sizeof *p);
        if (p == NULL) luaL_error(L, "not enough memory");
        b->objs = p;
        b->capobjs = cap;
      }
      b->objs[b->nobjs] = object_retain(o);
      put_tag(e, T_OBJECT);
      put_size(e, b->nobjs++);
      break;
    }
    case LUA_TLIGHTUSERDATA: refuse(e, "light userdata"); break;
    case LUA_TTHREAD: refuse(e, "coroutine"); break;
    default: refuse(e, luaL_typename(L, idx)); break;
  }
}

static int encode_body(lua_State *L) {
  encoder *e = (encoder *)lua_touserdata(L, 1);
  int n = lua_gettop(L) - 1, i;
  e->L = L;
  /* fixed slots for the lazily made helpers, below any table being walked */
  lua_settop(L, n + 8);
  e->seen = -(n + 2);
  e->globals = -(n + 3);
  e->names = -(n + 4);
  e->first_seen = n + 5;
  e->classes = -(n + 6);
  e->upvalues = -(n + 7);
  e->first_func = n + 8;
  for (i = 0; i < n; i++) {
    e->current = i;
    encode_value(e, i + 2);
  }
  return 0;
}

transfer_t *transfer_encode(lua_State *L, int idx, int n, const char *root,
                            int first) {
  encoder e;
  transfer_t *buf = (transfer_t *)calloc(1, sizeof *buf);
  int i;
  if (buf == NULL) luaL_error(L, "not enough memory");
  atomic_init(&buf->refs, 1);
  buf->data = buf->small;
  buf->cap = sizeof buf->small;
  idx = compat_absindex(L, idx);
  if (!lua_checkstack(L, n + 10)) {
    free(buf);
    luaL_error(L, "too many values to transfer");
  }
  memset(&e, 0, sizeof e - sizeof e.path);
  e.buf = buf;
  e.root = root;
  e.first = first;
  buf->count = n;
  lua_pushcfunction(L, encode_body);
  lua_pushlightuserdata(L, &e);
  for (i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  if (lua_pcall(L, n + 1, 0, 0) != 0) {
    transfer_free(buf);
    lua_error(L);
  }
  return buf;
}

/* -------------------------------------------------------------- decoding */

typedef struct decoder {
  lua_State *L;
  const transfer_t *buf;
  const unsigned char *p;
  int ids;              /* stack slot of { [id] = value }; negative until made */
  int nextid;
} decoder;

static void get_bytes(decoder *d, void *out, size_t n) {
  memcpy(out, d->p, n);
  d->p += n;
}

static size_t get_size(decoder *d) {
  size_t n;
  get_bytes(d, &n, sizeof n);
  return n;
}

static void remember(decoder *d, int idx) {
  lua_State *L = d->L;
  if (!d->buf->has_refs) return;     /* nothing will ask for it */
  if (d->ids < 0) {
    d->ids = -d->ids;
    lua_newtable(L);
    lua_replace(L, d->ids);
  }
  lua_pushvalue(L, idx);
  lua_rawseti(L, d->ids, ++d->nextid);
}

typedef struct reader_state {
  const char *p;
  size_t len;
} reader_state;

static const char *chunk_reader(lua_State *L, void *ud, size_t *size) {
  reader_state *r = (reader_state *)ud;
  (void)L;
  *size = r->len;
  r->len = 0;
  return *size ? r->p : NULL;
}

static void decode_named(decoder *d) {
  lua_State *L = d->L;
  size_t len = get_size(d);
  const char *name = (const char *)d->p;
  const char *nl = (const char *)memchr(name, '\n', len);
  size_t modlen = nl ? (size_t)(nl - name) : len;
  d->p += len;
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_pushlstring(L, name, modlen);
  lua_rawget(L, -2);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    libs_require(L, name, modlen);
  }
  lua_remove(L, -2);
  if (nl != NULL) {
    lua_pushlstring(L, nl + 1, len - modlen - 1);
    lua_gettable(L, -2);       /* not raw: _G opens a library on first use */
    if (lua_isnil(L, -1)) {
      lua_pushlstring(L, name, modlen);
      lua_pushlstring(L, nl + 1, len - modlen - 1);
      luaL_error(L, "cannot receive function %s.%s: not found in this state",
                 lua_tostring(L, -2), lua_tostring(L, -1));
    }
    lua_remove(L, -2);
  }
}

/* Push the class registered under name in this state; 0 if there is none. */
static int push_class(lua_State *L, const char *name, size_t len) {
  compat_rawgetp(L, LUA_REGISTRYINDEX, &classes_key);
  if (lua_istable(L, -1)) {
    lua_pushlstring(L, name, len);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (lua_istable(L, -1)) return 1;
  }
  lua_pop(L, 1);
  return 0;
}

/* A class's metatable: this state's class of the same name, loading the
** module that registers it (the name up to its last dot) if need be. */
static void decode_class(decoder *d) {
  lua_State *L = d->L;
  size_t len = get_size(d), modlen;
  const char *name = (const char *)d->p;
  d->p += len;
  if (push_class(L, name, len)) return;
  for (modlen = len; modlen > 0 && name[modlen - 1] != '.'; modlen--) {}
  modlen = modlen > 0 ? modlen - 1 : len;
  libs_require(L, name, modlen);
  lua_pop(L, 1);
  if (push_class(L, name, len)) return;
  lua_pushlstring(L, name, len);
  luaL_error(L, "cannot receive a %s: no such class in this state", lua_tostring(L, -1));
}

static void decode_value(decoder *d) {
  lua_State *L = d->L;
  unsigned char tag = *d->p++;
  if (!lua_checkstack(L, 6)) luaL_error(L, "value too deeply nested to receive");
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
#if COMPAT_INTEGERS
    case T_INT: {
      lua_Integer i;
      get_bytes(d, &i, sizeof i);
      lua_pushinteger(L, i);
      break;
    }
#endif
    case T_NUM: {
      lua_Number n;
      get_bytes(d, &n, sizeof n);
      lua_pushnumber(L, n);
      break;
    }
    case T_STR: {
      size_t len = get_size(d);
      lua_pushlstring(L, (const char *)d->p, len);
      d->p += len;
      break;
    }
    case T_TABLE: {
      size_t narr = get_size(d), nrec = get_size(d);
      int t;
      lua_createtable(L, narr > 1 << 24 ? 1 << 24 : (int)narr,
                      nrec > 1 << 24 ? 1 << 24 : (int)nrec);
      t = lua_gettop(L);
      remember(d, t);
      while (*d->p != T_END) {
        decode_value(d);
        decode_value(d);
        lua_rawset(L, t);
      }
      d->p++;
      if (*d->p++) {
        decode_value(d);
        lua_setmetatable(L, t);
      }
      break;
    }
    case T_FUNC: {
      reader_state r;
      uint16_t nups, i;
      int f;
      r.len = get_size(d);
      r.p = (const char *)d->p;
      d->p += r.len;
      if (compat_load(L, chunk_reader, &r, "=(transfer)") != 0) lua_error(L);
      f = lua_gettop(L);
      remember(d, f);
      get_bytes(d, &nups, sizeof nups);
      for (i = 1; i <= nups; i++) {
#if COMPAT_HAS_UPVALUEID
        if (*d->p == T_UPREF) {
          /* shared with a function made before: it exists, even if its
          ** own upvalue is still to be set */
          size_t id;
          uint16_t n;
          d->p++;
          id = get_size(d);
          get_bytes(d, &n, sizeof n);
          lua_rawgeti(L, d->ids, (int)id);
          compat_upvaluejoin(L, f, i, -1, n);
          lua_pop(L, 1);
          continue;
        }
#endif
        decode_value(d);
        (void)lua_setupvalue(L, f, i);
      }
#if COMPAT_HAS_FENV
      switch (*d->p++) {
        case 1: decode_value(d); (void)compat_setfenv(L, f); break;
        case 2: lua_newtable(L); (void)compat_setfenv(L, f); break;
        default: break;       /* loaded here: the receiver's globals already */
      }
#endif
      break;
    }
    case T_REF: {
      size_t id = get_size(d);
      lua_rawgeti(L, d->ids, (int)id);
      break;
    }
    case T_GLOBALS: compat_pushglobals(L); break;
    case T_NAMED: decode_named(d); break;
    case T_CLASS: decode_class(d); break;
    case T_OBJECT: object_push(L, d->buf->objs[get_size(d)]); break;
    default: luaL_error(L, "corrupt transfer buffer (tag %d)", (int)tag);
  }
}

int transfer_decode(lua_State *L, const transfer_t *buf) {
  decoder d;
  int i, base = lua_gettop(L);
  d.L = L;
  d.buf = buf;
  d.p = buf->data;
  d.nextid = 0;
  if (!lua_checkstack(L, buf->count + 8)) luaL_error(L, "too many values to receive");
  lua_pushnil(L);                 /* the id table's slot, filled on first use */
  d.ids = -(base + 1);
  for (i = 0; i < buf->count; i++) decode_value(&d);
  lua_remove(L, base + 1);
  return buf->count;
}

int transfer_count(const transfer_t *buf) {
  return buf->count;
}

size_t transfer_size(const transfer_t *buf) {
  return buf->len;
}

const char *transfer_string(const transfer_t *buf, size_t *len) {
  size_t n;
  if (buf->count != 1 || buf->len < 1 + sizeof n || buf->data[0] != T_STR) return NULL;
  memcpy(&n, buf->data + 1, sizeof n);
  if (buf->len != 1 + sizeof n + n) return NULL;
  *len = n;
  return (const char *)buf->data + 1 + sizeof n;
}

/* core._register_class(mt, name[, movable = true]): mt (a metatable of the
** module's Lua-side types) travels as `name`, to the receiver's class of
** that name, instead of being copied; a class that is not movable (its
** instances belong to their state) is refused by name. */
int transfer_register_class(lua_State *L) {
  int movable = 1;
  luaL_checktype(L, 1, LUA_TTABLE);
  (void)luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    movable = lua_toboolean(L, 3);
  }
  lua_settop(L, 2);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &classes_key);
  if (!lua_istable(L, 3)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &classes_key);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_rawset(L, 3);
  lua_pushvalue(L, 2);
  if (movable) lua_pushvalue(L, 1);
  else lua_pushboolean(L, 0);
  lua_rawset(L, 3);
  return 0;
}

transfer_t *transfer_retain(transfer_t *buf) {
  atomic_fetch_add_explicit(&buf->refs, 1, memory_order_relaxed);
  return buf;
}

void transfer_free(transfer_t *buf) {
  size_t i;
  if (buf == NULL) return;
  if (atomic_fetch_sub_explicit(&buf->refs, 1, memory_order_acq_rel) != 1) return;
  for (i = 0; i < buf->nobjs; i++) object_release(buf->objs[i]);
  free(buf->objs);
  if (buf->data != buf->small) free(buf->data);
  free(buf);
}

/* ------------------------------------------------------------ small tables */

/*
** A small table as a run of slots (transfer.h), written in one walk and
** read back into a table created at its final size. Its bytes:
**   [0] TS_SMALL  [1] slots in the run  [2] narr  [3] nrec
**   [4] nseq: the first entries are t[1..nseq], their keys left out
**   [5] nhash: then this many key value pairs
** each key or value a tag and its payload:
**   SM_FALSE SM_TRUE   SM_INT lua_Integer   SM_NUM lua_Number
**   SM_STR u8 len, bytes
** narr and nrec are what the general path would write (encode_table), so a
** table comes out the same whichever path it took.
*/
enum { SM_FALSE, SM_TRUE, SM_INT, SM_NUM, SM_STR };
#define SMALL_HEAD 6

/* the bound TSLOT_RUN_MAX is computed from: a number fits where a string does */
typedef char small_number_fits[1 + TRANSFER_SMALL_STR >= sizeof(lua_Number) &&
                               1 + TRANSFER_SMALL_STR >= sizeof(lua_Integer) &&
                               TRANSFER_SMALL_STR <= 255 && TRANSFER_SMALL_FIELDS <= 255
                               ? 1 : -1];

/* Append the key or value at idx; NULL if a run cannot hold it. *index
** gets what array_key would say of it (one look at the value, not two).
** A key needs one call fewer: a float key with an integral value is an
** integer key on 5.3+ (Lua converts it), so lua_tointegerx alone tells an
** integer key. */
static inline __attribute__((always_inline)) unsigned char *
small_put(lua_State *L, int idx, unsigned char *p, size_t *index, int is_key) {
  *index = 0;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      *p++ = lua_toboolean(L, idx) ? SM_TRUE : SM_FALSE;
      return p;
    case LUA_TNUMBER:
#if COMPAT_INTEGERS
    {
      int isint;
      lua_Integer i = 0;
      if (is_key) i = lua_tointegerx(L, idx, &isint);
      else if ((isint = lua_isinteger(L, idx)) != 0) i = lua_tointeger(L, idx);
      if (isint) {
        *p++ = SM_INT;
        memcpy(p, &i, sizeof i);
        if (i >= 1 && (lua_Unsigned)i <= KEY_MAX) *index = (size_t)i;
        return p + sizeof i;
      }
    }
#else
      (void)is_key;
#endif
      {
        lua_Number n = lua_tonumber(L, idx);
        *p++ = SM_NUM;
        memcpy(p, &n, sizeof n);
#if !COMPAT_INTEGERS
        if (n >= 1 && n <= (lua_Number)KEY_MAX && (lua_Number)(size_t)n == n) *index = (size_t)n;
#endif
        return p + sizeof n;
      }
    case LUA_TSTRING: {
      size_t len;
      const char *str = lua_tolstring(L, idx, &len);
      if (len > TRANSFER_SMALL_STR) return NULL;
      *p++ = SM_STR;
      *p++ = (unsigned char)len;
      memcpy(p, str, len);
      return p + len;
    }
    default: return NULL;
  }
}

/* Write the table at idx as a run if it is small; returns the slots used,
** or 0 (nothing written that needs releasing: take the general path).
** Never raises, never allocates; leaves the stack as it found it. Uses 3
** stack slots above the top, which any C function has (LUA_MINSTACK). */
static int small_store(lua_State *L, int idx, tslot_t *run) {
  unsigned char *base = (unsigned char *)run, *p = base + SMALL_HEAD, *q;
  size_t keys[TRANSFER_SMALL_FIELDS], nint = 0, kmax = 0, narr, inarr;
  int n = 0, nseq = 0, is_g;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t k, ignored;
    if (n == TRANSFER_SMALL_FIELDS || (q = small_put(L, -2, p, &k, 1)) == NULL) goto general;
    if (nseq == n && k == (size_t)n + 1) nseq++;   /* its key is left out */
    else p = q;
    if ((q = small_put(L, -1, p, &ignored, 0)) == NULL) goto general;
    p = q;
    if (k != 0) {
      keys[nint++] = k;
      if (k > kmax) kmax = k;
    }
    n++;
    lua_pop(L, 1);
  }
  /* the array part as encode_table sizes it: Lua's own rule, over at most
  ** TRANSFER_SMALL_FIELDS keys */
  if (nint == 0 || nint > kmax / 2) {
    narr = kmax;
    inarr = nint;
  } else {
    size_t twotoi, i;
    narr = inarr = 0;
    for (twotoi = 1; twotoi / 2 < nint; twotoi *= 2) {
      size_t below = 0;
      for (i = 0; i < nint; i++) below += keys[i] <= twotoi;
      if (below > twotoi / 2) {
        narr = twotoi;
        inarr = below;
      }
    }
  }
  /* the sender's globals become the receiver's (T_GLOBALS), never a copy */
  compat_pushglobals(L);
  is_g = lua_topointer(L, -1) == lua_topointer(L, idx);
  lua_pop(L, 1);
  if (is_g) return 0;
  base[0] = TS_SMALL;
  base[1] = (unsigned char)(((size_t)(p - base) + sizeof *run - 1) / sizeof *run);
  base[2] = (unsigned char)narr;
  base[3] = (unsigned char)((size_t)n - inarr);
  base[4] = (unsigned char)nseq;
  base[5] = (unsigned char)(n - nseq);
  return base[1];
general:
  lua_pop(L, 2);
  return 0;
}

static const unsigned char *small_push(lua_State *L, const unsigned char *p) {
  switch (*p++) {
    case SM_FALSE: lua_pushboolean(L, 0); return p;
    case SM_TRUE: lua_pushboolean(L, 1); return p;
#if COMPAT_INTEGERS
    case SM_INT: {
      lua_Integer i;
      memcpy(&i, p, sizeof i);
      lua_pushinteger(L, i);
      return p + sizeof i;
    }
#endif
    case SM_NUM: {
      lua_Number n;
      memcpy(&n, p, sizeof n);
      lua_pushnumber(L, n);
      return p + sizeof n;
    }
    default: {                    /* SM_STR */
      size_t len = *p++;
      lua_pushlstring(L, (const char *)p, len);
      return p + len;
    }
  }
}

/* Push the table of a run (its tag is not read). Raises only when Lua runs
** out of memory. */
static void small_push_table(lua_State *L, const tslot_t *run) {
  const unsigned char *base = (const unsigned char *)run, *p = base + SMALL_HEAD;
  int nseq = base[4], nhash = base[5], i;
  if (!lua_checkstack(L, 3)) luaL_error(L, "too many values to receive");
  lua_createtable(L, base[2], base[3]);
  for (i = 1; i <= nseq; i++) {
    p = small_push(L, p);
    lua_rawseti(L, -2, i);
  }
  for (i = 0; i < nhash; i++) {
    p = small_push(L, p);
    p = small_push(L, p);
    lua_rawset(L, -3);
  }
}

/* ----------------------------------------------------------------- slots */

/* Both stores: with `runs`, a small table becomes a run. Returns the slots
** used. (A queue's put comes here directly: it is the hot path.) */
static int slot_store(lua_State *L, int idx, int type, tslot_t *slot, const char *root,
                      int runs) {
  switch (type) {
    case LUA_TNIL: slot->tag = TS_NIL; return 1;
    case LUA_TBOOLEAN: slot->tag = lua_toboolean(L, idx) ? TS_TRUE : TS_FALSE; return 1;
    case LUA_TNUMBER:
#if COMPAT_INTEGERS
      if (lua_isinteger(L, idx)) {
        slot->v.tag = TS_INT;
        slot->v.u.i = lua_tointeger(L, idx);
        return 1;
      }
#endif
      slot->v.tag = TS_NUM;
      slot->v.u.n = lua_tonumber(L, idx);
      return 1;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (len <= TSLOT_SHORT) {
        slot->str.tag = TS_STR;
        slot->str.len = (unsigned char)len;
        memcpy(slot->str.s, s, len);
        return 1;
      }
      break;
    }
    case LUA_TTABLE:
      if (runs) {
        int n = small_store(L, idx, slot);
        if (n > 0) return n;
      }
      break;
    case LUA_TUSERDATA: {
      object_t *o = object_test(L, idx);
      if (o != NULL) {
        slot->v.tag = TS_OBJ;
        slot->v.u.obj = object_retain(o);
        return 1;
      }
      break;
    }
    default: break;
  }
  {
    transfer_t *buf = transfer_encode(L, idx, 1, root, 0);
    slot->v.tag = TS_BUF;
    slot->v.u.buf = buf;
  }
  return 1;
}

void transfer_slot_store(lua_State *L, int idx, tslot_t *slot, const char *root) {
  (void)slot_store(L, idx, lua_type(L, idx), slot, root, 0);
}

int transfer_slot_store_run(lua_State *L, int idx, int type, tslot_t *run,
                            const char *root) {
  return slot_store(L, idx, type, run, root, 1);
}

void transfer_slot_push(lua_State *L, const tslot_t *slot) {
  switch (slot->tag) {
    case TS_NIL: lua_pushnil(L); break;
    case TS_FALSE: lua_pushboolean(L, 0); break;
    case TS_TRUE: lua_pushboolean(L, 1); break;
    case TS_INT: lua_pushinteger(L, slot->v.u.i); break;
    case TS_NUM: lua_pushnumber(L, slot->v.u.n); break;
    case TS_STR: lua_pushlstring(L, slot->str.s, slot->str.len); break;
    case TS_OBJ: object_push(L, slot->v.u.obj); break;
    case TS_SMALL: small_push_table(L, slot); break;
    default: transfer_decode(L, slot->v.u.buf); break;
  }
}

void transfer_slot_retain(const tslot_t *slot) {
  if (slot->tag == TS_OBJ) object_retain(slot->v.u.obj);
  else if (slot->tag == TS_BUF) transfer_retain(slot->v.u.buf);
}

void transfer_slot_clear(tslot_t *slot) {
  if (slot->tag == TS_OBJ) object_release(slot->v.u.obj);
  else if (slot->tag == TS_BUF) transfer_free(slot->v.u.buf);
  slot->tag = TS_NIL;
}

static int decode_body(lua_State *L) {
  const transfer_t *buf = (const transfer_t *)lua_touserdata(L, 1);
  lua_pop(L, 1);
  return transfer_decode(L, buf);
}

void transfer_slot_take(lua_State *L, tslot_t *slot) {
  switch (slot->tag) {
    case TS_BUF: {
      transfer_t *buf = slot->v.u.buf;
      int top = lua_gettop(L);
      slot->tag = TS_NIL;
      lua_pushcfunction(L, decode_body);
      lua_pushlightuserdata(L, buf);
      if (lua_pcall(L, 1, LUA_MULTRET, 0) != 0) {
        transfer_free(buf);
        lua_error(L);
      }
      transfer_free(buf);
      lua_settop(L, top + 1);
      return;
    }
    case TS_OBJ:
      transfer_slot_push(L, slot);
      transfer_slot_clear(slot);
      return;
    case TS_SMALL:
      slot->tag = TS_NIL;        /* owns nothing; TS_NIL even if Lua raises */
      small_push_table(L, slot);
      return;
    default:                     /* the rest own nothing */
      transfer_slot_push(L, slot);
      slot->tag = TS_NIL;
      return;
  }
}
