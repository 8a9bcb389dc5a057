/*
** table.c: threading.Table, a table shared by reference between threads.
**
** A hash map from keys (strings, numbers, booleans) to transfer slots,
** under one mutex per table. Invariants:
** - st->mu guards the map. Nothing is pushed onto a Lua stack, allocated
**   through Lua or raised, and no Lua runs, while it is held: a
**   value is stored into a slot before the mutex is taken, a value read is
**   copied (its buffer or object retained) under the mutex and pushed after
**   it is released, and slots replaced or removed are cleared afterwards
**   (releasing an object may take that object's locks).
** - Keys are normalized as Lua normalizes table keys: a float with an
**   integral value is the integer key (st[1.0] is st[1]); NaN is refused.
**   Strings up to KEY_INLINE bytes live in the entry; longer ones are
**   copied to the heap once, when the key is first set.
** - Open addressing with linear probing; removal shifts the following run
**   back, so there are no tombstones and a lookup stops at the first hole.
** - What is atomic: one read, one write (including deleting with nil), #st,
**   and the snapshot that an iteration starts with. A read-modify-write
**   such as st.n = st.n + 1 is two operations: guard it with a Lock, or use
**   a Value.
*/
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define TABLE_MT "threading.Table"
#define SNAP_MT "threading.Table.snapshot"

#define KEY_INLINE 16
#define MAP_MIN 8            /* first allocation, in entries */

enum { TK_EMPTY, TK_INT, TK_NUM, TK_STR, TK_FALSE, TK_TRUE };

typedef struct tkey {
  unsigned char tag;
  uint32_t hash;
  size_t len;                /* TK_STR */
  union {
    lua_Integer i;
    lua_Number n;
    char *s;                 /* len > KEY_INLINE */
    char in[KEY_INLINE];     /* len <= KEY_INLINE */
  } u;
} tkey_t;

typedef struct tentry {
  tkey_t key;
  tslot_t val;
} tentry_t;

typedef struct stable {
  object_t obj;
  pthread_mutex_t mu;
  size_t count, cap;         /* (mu) cap is 0 or a power of two */
  tentry_t *map;             /* (mu) */
} stable_t;

static void stable_destroy(object_t *o);
static const object_type_t table_type = { TABLE_MT, stable_destroy, NULL, NULL };

/* --------------------------------------------------------------- keys */

static const char *key_bytes(const tkey_t *k) {
  return k->len <= KEY_INLINE ? k->u.in : k->u.s;
}

static void key_free(tkey_t *k) {
  if (k->tag == TK_STR && k->len > KEY_INLINE) free(k->u.s);
  k->tag = TK_EMPTY;
}

static uint32_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

static uint32_t hash_bytes(const char *s, size_t len) {
  uint32_t h = 2166136261u ^ (uint32_t)len;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* The key at idx into *k, without copying a long string (k->u.s then
** points into the Lua string, valid while it stays on the stack). Raises a
** bad-argument error for idx when the key cannot be stored. */
static void key_read(lua_State *L, int idx, tkey_t *k) {
  k->len = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER: {
      lua_Number n;
      if (compat_isinteger(L, idx)) {
        k->tag = TK_INT;
        k->u.i = lua_tointeger(L, idx);
        break;
      }
      n = lua_tonumber(L, idx);
      luaL_argcheck(L, n == n, idx, "table index is NaN");
      /* the float range that converts exactly: [-2^63, 2^63) */
      if (n == floor(n) && n >= -9223372036854775808.0 && n < 9223372036854775808.0) {
        k->tag = TK_INT;
        k->u.i = (lua_Integer)n;
      } else {
        k->tag = TK_NUM;
        k->u.n = n;
      }
      break;
    }
    case LUA_TSTRING: {
      const char *s = lua_tolstring(L, idx, &k->len);
      k->tag = TK_STR;
      if (k->len <= KEY_INLINE) memcpy(k->u.in, s, k->len);
      else k->u.s = (char *)s;
      k->hash = hash_bytes(s, k->len);
      return;
    }
    case LUA_TBOOLEAN:
      k->tag = lua_toboolean(L, idx) ? TK_TRUE : TK_FALSE;
      k->hash = k->tag;
      return;
    default:
      object_typeerror(L, idx, "string, number or boolean key");
  }
  if (k->tag == TK_INT) {
    k->hash = mix64((uint64_t)k->u.i);
  } else {
    uint64_t bits;
    memcpy(&bits, &k->u.n, sizeof bits);
    k->hash = mix64(bits ^ 0x9e3779b97f4a7c15ULL);
  }
}

static int key_equal(const tkey_t *a, const tkey_t *b) {
  if (a->tag != b->tag || a->hash != b->hash) return 0;
  switch (a->tag) {
    case TK_INT: return a->u.i == b->u.i;
    case TK_NUM: return a->u.n == b->u.n;
    case TK_STR:
      return a->len == b->len && memcmp(key_bytes(a), key_bytes(b), a->len) == 0;
    default: return 1;
  }
}

static void key_push(lua_State *L, const tkey_t *k) {
  switch (k->tag) {
    case TK_INT: lua_pushinteger(L, k->u.i); break;
    case TK_NUM: lua_pushnumber(L, k->u.n); break;
    case TK_STR: lua_pushlstring(L, key_bytes(k), k->len); break;
    default: lua_pushboolean(L, k->tag == TK_TRUE); break;
  }
}

/* ---------------------------------------------------------------- map */

/* The entry holding k, or the hole where it would go (mu held, cap > 0). */
static tentry_t *map_find(const stable_t *st, const tkey_t *k) {
  size_t mask = st->cap - 1, i = k->hash & mask;
  for (;;) {
    tentry_t *e = &st->map[i];
    if (e->key.tag == TK_EMPTY || key_equal(&e->key, k)) return e;
    i = (i + 1) & mask;
  }
}

/* Rehash into `cap` entries; 0 when out of memory (the map is unchanged). */
static int map_resize(stable_t *st, size_t cap) {
  tentry_t *old = st->map;
  size_t oldcap = st->cap, i;
  tentry_t *m = (tentry_t *)calloc(cap, sizeof *m);
  if (m == NULL) return 0;
  st->map = m;
  st->cap = cap;
  for (i = 0; i < oldcap; i++)
    if (old[i].key.tag != TK_EMPTY) *map_find(st, &old[i].key) = old[i];
  free(old);
  return 1;
}

/* Remove the entry e (mu held), shifting back the run that follows it so
** that every key stays reachable from its home position. */
static void map_remove(stable_t *st, const tentry_t *e) {
  size_t mask = st->cap - 1, hole = (size_t)(e - st->map), i = hole;
  for (;;) {
    size_t home;
    i = (i + 1) & mask;
    if (st->map[i].key.tag == TK_EMPTY) break;
    home = st->map[i].key.hash & mask;
    /* move i into the hole unless its home lies cyclically in (hole, i] */
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      st->map[hole] = st->map[i];
      hole = i;
    }
  }
  st->map[hole].key.tag = TK_EMPTY;
  st->count--;
}

static int map_has_int(const stable_t *st, lua_Integer i) {
  tkey_t k;
  k.tag = TK_INT;
  k.u.i = i;
  k.hash = mix64((uint64_t)i);
  return st->cap > 0 && map_find(st, &k)->key.tag != TK_EMPTY;
}

/* A border, as Lua's # gives for a table without an array part: st[n] is
** not nil and st[n + 1] is nil (or n is 0 and st[1] is nil). mu held. */
static lua_Integer map_border(const stable_t *st) {
  lua_Integer lo = 0, hi = 1;
  if (!map_has_int(st, 1)) return 0;
  /* double until a hole, then bisect: lo is present, hi absent */
  while (map_has_int(st, hi)) {
    lo = hi;
    if (hi > ((lua_Integer)1 << 52)) {
      while (map_has_int(st, lo + 1)) lo++;     /* sparse giants: walk */
      return lo;
    }
    hi *= 2;
  }
  while (hi - lo > 1) {
    lua_Integer mid = lo + (hi - lo) / 2;
    if (map_has_int(st, mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

static void stable_destroy(object_t *o) {
  stable_t *st = (stable_t *)o;
  size_t i;
  for (i = 0; i < st->cap; i++) {
    if (st->map[i].key.tag != TK_EMPTY) {
      key_free(&st->map[i].key);
      transfer_slot_clear(&st->map[i].val);
    }
  }
  free(st->map);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/* ----------------------------------------------------- get and set */

static stable_t *check_table(lua_State *L, int idx) {
  return (stable_t *)object_self(L, idx, &table_type);
}

/* Push st[key at kidx]. */
static void stable_get(lua_State *L, stable_t *st, int kidx) {
  tkey_t k;
  tslot_t copy;
  copy.tag = TS_NIL;
  key_read(L, kidx, &k);
  WAIT_CHECK(pthread_mutex_lock(&st->mu));
  if (st->cap > 0) {
    tentry_t *e = map_find(st, &k);
    if (e->key.tag != TK_EMPTY) {
      copy = e->val;
      transfer_slot_retain(&copy);
    }
  }
  WAIT_CHECK(pthread_mutex_unlock(&st->mu));
  transfer_slot_take(L, &copy);
}

/* st[key at kidx] = value at vidx (nil removes). `root` names the value in
** a refusal. */
static void stable_set(lua_State *L, stable_t *st, int kidx, int vidx,
                       const char *root) {
  tkey_t k;
  tslot_t val, old;
  int nomem = 0;
  key_read(L, kidx, &k);
  val.tag = TS_NIL;
  old.tag = TS_NIL;
  transfer_slot_store(L, vidx, &val, root);
  WAIT_CHECK(pthread_mutex_lock(&st->mu));
  if (st->cap > 0) {
    tentry_t *e = map_find(st, &k);
    if (e->key.tag != TK_EMPTY) {
      old = e->val;
      if (val.tag == TS_NIL) {
        tkey_t gone = e->key;
        map_remove(st, e);
        /* give memory back once mostly empty (a failure just keeps it) */
        if (st->cap > 64 && st->count * 8 < st->cap) (void)map_resize(st, st->cap / 2);
        WAIT_CHECK(pthread_mutex_unlock(&st->mu));
        key_free(&gone);
        transfer_slot_clear(&old);
        return;
      }
      e->val = val;
      WAIT_CHECK(pthread_mutex_unlock(&st->mu));
      transfer_slot_clear(&old);
      return;
    }
  }
  if (val.tag == TS_NIL) {             /* removing what is not there */
    WAIT_CHECK(pthread_mutex_unlock(&st->mu));
    return;
  }
  /* a new key: keep the load at most 3/4 */
  if ((st->count + 1) * 4 > st->cap * 3 &&
      !map_resize(st, st->cap ? st->cap * 2 : MAP_MIN)) {
    nomem = 1;
  } else if (k.tag == TK_STR && k.len > KEY_INLINE) {
    char *s = (char *)malloc(k.len);
    if (s == NULL) nomem = 1;
    else {
      memcpy(s, k.u.s, k.len);
      k.u.s = s;
    }
  }
  if (!nomem) {
    tentry_t *e = map_find(st, &k);
    e->key = k;
    e->val = val;
    st->count++;
  }
  WAIT_CHECK(pthread_mutex_unlock(&st->mu));
  if (nomem) {
    transfer_slot_clear(&val);
    luaL_error(L, "not enough memory");
  }
}

/* --------------------------------------------------------- snapshots */

/* What an iteration walks: the entries as they were at one instant, keys
** copied and values retained. */
typedef struct snapshot {
  size_t n, pos;
  tentry_t *items;           /* n entries; long keys point into `bytes` */
  char *bytes;
} snapshot_t;

static void snapshot_free(snapshot_t *s) {
  size_t i;
  for (i = 0; i < s->n; i++) transfer_slot_clear(&s->items[i].val);
  free(s->items);
  free(s->bytes);
  s->items = NULL;
  s->bytes = NULL;
  s->n = s->pos = 0;
}

static int snapshot_gc(lua_State *L) {
  snapshot_t *s = (snapshot_t *)lua_touserdata(L, 1);
  if (s != NULL) snapshot_free(s);
  return 0;
}

/* Iterator over a snapshot (argument 1); ignores the control value. */
static int snapshot_next(lua_State *L) {
  snapshot_t *s = (snapshot_t *)luaL_checkudata(L, 1, SNAP_MT);
  tentry_t *e;
  if (s->pos >= s->n) {
    snapshot_free(s);          /* done: give the values back early */
    lua_pushnil(L);
    return 1;
  }
  e = &s->items[s->pos++];
  key_push(L, &e->key);
  transfer_slot_push(L, &e->val);
  return 2;
}

/* Push next, a snapshot of st, nil: the triple a generic for wants. */
static int stable_pairs(lua_State *L, stable_t *st) {
  snapshot_t *s;
  size_t i, j = 0, nbytes = 0;
  lua_pushcfunction(L, snapshot_next);
  s = (snapshot_t *)compat_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_getmetatable(L, SNAP_MT);
  if (lua_isnil(L, -1)) {
    /* a state that received the Table without loading the module */
    lua_pop(L, 1);
    luaL_newmetatable(L, SNAP_MT);
    lua_pushcfunction(L, snapshot_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  WAIT_CHECK(pthread_mutex_lock(&st->mu));
  for (i = 0; i < st->cap; i++)
    if (st->map[i].key.tag == TK_STR && st->map[i].key.len > KEY_INLINE)
      nbytes += st->map[i].key.len;
  if (st->count > 0) {
    size_t at = 0;
    s->items = (tentry_t *)malloc(st->count * sizeof *s->items);
    s->bytes = nbytes > 0 ? (char *)malloc(nbytes) : NULL;
    if (s->items == NULL || (nbytes > 0 && s->bytes == NULL)) {
      WAIT_CHECK(pthread_mutex_unlock(&st->mu));
      snapshot_free(s);
      return luaL_error(L, "not enough memory");
    }
    for (i = 0; i < st->cap; i++) {
      tentry_t *e = &st->map[i];
      if (e->key.tag == TK_EMPTY) continue;
      s->items[j] = *e;
      if (e->key.tag == TK_STR && e->key.len > KEY_INLINE) {
        memcpy(s->bytes + at, e->key.u.s, e->key.len);
        s->items[j].key.u.s = s->bytes + at;
        at += e->key.len;
      }
      transfer_slot_retain(&e->val);
      j++;
    }
  }
  s->n = j;
  WAIT_CHECK(pthread_mutex_unlock(&st->mu));
  lua_pushnil(L);
  return 3;
}

/* ------------------------------------------------------ metamethods */

/* st[k] */
static int table__index(lua_State *L) {
  stable_t *st = check_table(L, 1);
  stable_get(L, st, 2);
  return 1;
}

/* The name of st[key at kidx] in a refusal, pushed: st.name or st[key]. */
static const char *value_name(lua_State *L, const char *root, int kidx) {
  kidx = compat_absindex(L, kidx);
  if (lua_type(L, kidx) == LUA_TSTRING) {
    size_t len, i;
    const char *s = lua_tolstring(L, kidx, &len);
    int ident = len > 0 && len <= 40 && !(s[0] >= '0' && s[0] <= '9');
    for (i = 0; ident && i < len; i++)
      ident = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_';
    if (ident) return lua_pushfstring(L, "%s.%s", root, s);
    lua_pushlstring(L, s, len > 24 ? 24 : len);
    {
      const char *n = lua_pushfstring(L, "%s[\"%s%s\"]", root, lua_tostring(L, -1),
                                      len > 24 ? "..." : "");
      lua_remove(L, -2);
      return n;
    }
  }
  if (lua_type(L, kidx) == LUA_TBOOLEAN)
    return lua_pushfstring(L, "%s[%s]", root, lua_toboolean(L, kidx) ? "true" : "false");
  lua_pushvalue(L, kidx);
  {
    const char *n = lua_pushfstring(L, "%s[%s]", root, lua_tostring(L, -1));
    lua_remove(L, -2);
    return n;
  }
}

/* Raise now if the key at idx is unusable, before naming it. */
static void key_read_check(lua_State *L, int idx) {
  tkey_t k;
  key_read(L, idx, &k);
}

/* Is the value at idx one that might be refused (so worth naming)? */
static int may_refuse(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  return t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING;
}

/* st[k] = v */
static int table__newindex(lua_State *L) {
  stable_t *st = check_table(L, 1);
  const char *root = "value";
  lua_settop(L, 3);
  if (may_refuse(L, 3)) {
    key_read_check(L, 2);
    root = value_name(L, "st", 2);
  }
  stable_set(L, st, 2, 3, root);
  return 0;
}

/* #st */
static int table__len(lua_State *L) {
  stable_t *st = check_table(L, 1);
  lua_Integer n;
  WAIT_CHECK(pthread_mutex_lock(&st->mu));
  n = map_border(st);
  WAIT_CHECK(pthread_mutex_unlock(&st->mu));
  lua_pushinteger(L, n);
  return 1;
}

/* pairs(st) on 5.2+ */
static int table__pairs(lua_State *L) {
  return stable_pairs(L, check_table(L, 1));
}

/* threading.pairs(t): pairs for a shared Table on every Lua version, and
** the plain next-based triple for an ordinary table. */
static int table_pairs(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getglobal(L, "next");
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
  }
  {
    object_t *o = object_test(L, 1);
    if (o == NULL || o->type != &table_type)
      return object_typeerror(L, 1, "table or threading.Table");
    return stable_pairs(L, (stable_t *)o);
  }
}

/* Table([init]): a new shared table, filled with a copy of init's pairs. */
static int table_new(lua_State *L) {
  handle_t *h;
  stable_t *st;
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  h = object_newhandle(L, &table_type);
  st = (stable_t *)calloc(1, sizeof *st);
  if (st == NULL) return luaL_error(L, "not enough memory");
  object_init(&st->obj, &table_type);
  wait_mutex_init(&st->mu);
  object_sethandle(L, h, &st->obj);     /* from here __gc frees st */
  if (lua_istable(L, 1)) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, 1)) {            /* ... handle k v */
      if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER &&
          lua_type(L, -2) != LUA_TBOOLEAN)
        luaL_argerror(L, 1, lua_pushfstring(L, "%s key in init (string, number "
                      "or boolean expected)", luaL_typename(L, -2)));
      if (may_refuse(L, -1)) {
        const char *root = value_name(L, "init", -2);
        stable_set(L, st, lua_gettop(L) - 2, lua_gettop(L) - 1, root);
        lua_pop(L, 1);
      } else {
        stable_set(L, st, lua_gettop(L) - 1, lua_gettop(L), "init");
      }
      lua_pop(L, 1);
    }
    lua_settop(L, t);
  }
  return 1;
}

static const luaL_Reg table_meta[] = {
  {"__index", table__index},
  {"__newindex", table__newindex},
  {"__len", table__len},
  {"__pairs", table__pairs},
  {NULL, NULL}
};

static const luaL_Reg table_funcs[] = {
  {"Table", table_new},
  {"pairs", table_pairs},
  {NULL, NULL}
};

void table_open(lua_State *L) {
  object_newmetatable(L, &table_type, NULL, table_meta);
  luaL_newmetatable(L, SNAP_MT);
  lua_pushcfunction(L, snapshot_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, table_funcs, 0);
}
