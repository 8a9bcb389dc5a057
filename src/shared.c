/*
** shared.c: threading.Value, one value shared by reference between threads.
**
** The value is a transfer slot under a mutex. Nothing is pushed onto a Lua
** stack, allocated through Lua or raised, and no Lua runs, while the mutex
** is held: a value kept in a buffer is retained under the mutex and decoded
** after it is released, and compare_and_set reads its Lua argument before
** it locks, comparing in pure C under the lock.
**
** Reading a scalar takes no lock. Every writer (holding the mutex) also
** publishes the value's kind and, for a number, its bits, in a sequence
** lock: seq is odd while they change. Value:get reads seq, the kind and the
** bits, and seq again; equal and even, the copy is whole and get pushes it.
** A string, a table or an object (kind SCALAR_NONE), or a writer in the
** middle, sends get to the mutex. Writers keep the mutex: a lock-free add
** would need the kind and the bits in one compare-and-swap, 16 bytes wide,
** which C11 does not promise.
**
** Lock order: the mutex is a leaf. Who owns what: the slot and what it
** holds are the Value's, under the mutex; seq, kind and bits are written
** only under it.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define VALUE_MT "threading.Value"

#define SCALAR_NONE (-1)     /* kind: read the slot under the mutex */

typedef struct value {
  object_t obj;
  pthread_mutex_t mu;
  tslot_t slot;          /* (mu) */
  atomic_uint seq;       /* odd while a writer changes kind and bits */
  atomic_int kind;       /* TS_NIL .. TS_NUM, or SCALAR_NONE */
  _Atomic int64_t bits;  /* TS_INT: the integer; TS_NUM: the float's bytes */
} value_t;

/* Publish the slot's value for Value:get (mu held). */
static void publish(value_t *v) {
  unsigned s = atomic_load_explicit(&v->seq, memory_order_relaxed);
  int kind = SCALAR_NONE;
  int64_t bits = 0;
  switch (v->slot.tag) {
    case TS_NIL: case TS_FALSE: case TS_TRUE: kind = v->slot.tag; break;
    case TS_INT: kind = TS_INT; bits = (int64_t)v->slot.v.u.i; break;
    case TS_NUM: kind = TS_NUM; memcpy(&bits, &v->slot.v.u.n, sizeof bits); break;
    default: break;
  }
  /* release stores, not fences (which ThreadSanitizer does not model): a
  ** reader that sees either new field sees seq odd after it */
  atomic_store_explicit(&v->seq, s + 1, memory_order_relaxed);
  atomic_store_explicit(&v->kind, kind, memory_order_release);
  atomic_store_explicit(&v->bits, bits, memory_order_release);
  atomic_store_explicit(&v->seq, s + 2, memory_order_release);
}

/* Push the value if a whole copy of a scalar was read without the lock;
** 0 if get must take it. */
static int push_published(lua_State *L, value_t *v) {
  unsigned s = atomic_load_explicit(&v->seq, memory_order_acquire);
  int kind;
  int64_t bits;
  if (s & 1) return 0;
  kind = atomic_load_explicit(&v->kind, memory_order_acquire);
  bits = atomic_load_explicit(&v->bits, memory_order_acquire);
  if (atomic_load_explicit(&v->seq, memory_order_relaxed) != s) return 0;
  switch (kind) {
    case TS_NIL: lua_pushnil(L); return 1;
    case TS_FALSE: case TS_TRUE: lua_pushboolean(L, kind == TS_TRUE); return 1;
    case TS_INT: lua_pushinteger(L, (lua_Integer)bits); return 1;
    case TS_NUM: {
      lua_Number n;
      memcpy(&n, &bits, sizeof n);
      lua_pushnumber(L, n);
      return 1;
    }
    default: return 0;
  }
}

static void value_destroy(object_t *o) {
  value_t *v = (value_t *)o;
  transfer_slot_clear(&v->slot);
  pthread_mutex_destroy(&v->mu);
  free(v);
}

static const object_type_t value_type = { VALUE_MT, value_destroy, NULL, NULL };

static value_t *check_value(lua_State *L, int idx) {
  return (value_t *)object_check(L, idx, &value_type);
}

/* Value([initial]) */
static int value_new(lua_State *L) {
  handle_t *h;
  value_t *v;
  tslot_t slot;
  slot.tag = TS_NIL;
  lua_settop(L, 1);
  h = object_newhandle(L, &value_type);
  transfer_slot_store(L, 1, &slot, "initial");
  v = (value_t *)calloc(1, sizeof *v);
  if (v == NULL) {
    transfer_slot_clear(&slot);
    return luaL_error(L, "not enough memory");
  }
  object_init(&v->obj, &value_type);
  wait_mutex_init(&v->mu);
  v->slot = slot;
  atomic_init(&v->seq, 0);
  atomic_init(&v->kind, SCALAR_NONE);
  atomic_init(&v->bits, 0);
  publish(v);                   /* no other thread sees it yet */
  object_sethandle(L, h, &v->obj);
  return 1;
}

/* Value:get() */
static int value_get(lua_State *L) {
  value_t *v = check_value(L, 1);
  tslot_t copy;
  if (push_published(L, v)) return 1;
  WAIT_CHECK(pthread_mutex_lock(&v->mu));
  copy = v->slot;
  transfer_slot_retain(&copy);
  WAIT_CHECK(pthread_mutex_unlock(&v->mu));
  transfer_slot_take(L, &copy);
  return 1;
}

/* Value:set(x) */
static int value_set(lua_State *L) {
  value_t *v = check_value(L, 1);
  tslot_t slot, old;
  slot.tag = TS_NIL;
  luaL_checkany(L, 2);
  transfer_slot_store(L, 2, &slot, "value");
  WAIT_CHECK(pthread_mutex_lock(&v->mu));
  old = v->slot;
  v->slot = slot;
  publish(v);
  WAIT_CHECK(pthread_mutex_unlock(&v->mu));
  transfer_slot_clear(&old);
  return 0;
}

/* Value:add([n = 1]) -> the new value; atomic. */
static int value_add(lua_State *L) {
  value_t *v = check_value(L, 1);
  int is_number;
  tslot_t result;
  lua_Number dn = luaL_optnumber(L, 2, 1);
#if COMPAT_INTEGERS
  int int_delta = lua_isnoneornil(L, 2) || lua_isinteger(L, 2);
  lua_Integer di = int_delta ? luaL_optinteger(L, 2, 1) : 0;
#endif
  WAIT_CHECK(pthread_mutex_lock(&v->mu));
  is_number = v->slot.tag == TS_INT || v->slot.tag == TS_NUM;
  if (is_number) {
#if COMPAT_INTEGERS
    if (v->slot.tag == TS_INT && int_delta) {
      /* wrap around like Lua's own integer arithmetic */
      v->slot.v.u.i = (lua_Integer)((lua_Unsigned)v->slot.v.u.i + (lua_Unsigned)di);
    } else {
      lua_Number cur = v->slot.tag == TS_INT ? (lua_Number)v->slot.v.u.i : v->slot.v.u.n;
      v->slot.v.tag = TS_NUM;
      v->slot.v.u.n = cur + dn;
    }
#else
    v->slot.v.u.n += dn;
#endif
    result = v->slot;
    publish(v);
  }
  WAIT_CHECK(pthread_mutex_unlock(&v->mu));
  if (!is_number) return luaL_argerror(L, 1, "value is not a number");
  transfer_slot_push(L, &result);
  return 1;
}

/* The expected value of a compare_and_set, read off the Lua stack before
** the Value's lock is taken: under the lock only pure C runs. */
typedef struct expected {
  int tag;                 /* a TS_* tag; TS_BUF: equal to nothing stored */
  lua_Integer i;           /* TS_INT */
  lua_Number n;            /* TS_NUM */
  const char *s;           /* TS_STR, any length: the argument's own bytes */
  size_t len;
  object_t *obj;           /* TS_OBJ */
} expected_t;

static void expected_read(lua_State *L, int idx, expected_t *x) {
  x->tag = TS_BUF;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: x->tag = TS_NIL; break;
    case LUA_TBOOLEAN: x->tag = lua_toboolean(L, idx) ? TS_TRUE : TS_FALSE; break;
    case LUA_TNUMBER:
#if COMPAT_INTEGERS
      if (lua_isinteger(L, idx)) {
        x->tag = TS_INT;
        x->i = lua_tointeger(L, idx);
        break;
      }
#endif
      x->tag = TS_NUM;
      x->n = lua_tonumber(L, idx);
      break;
    case LUA_TSTRING:
      /* stays valid while the argument is on the stack */
      x->tag = TS_STR;
      x->s = lua_tolstring(L, idx, &x->len);
      break;
    case LUA_TUSERDATA:
      x->obj = object_test(L, idx);
      if (x->obj != NULL) x->tag = TS_OBJ;
      break;
    default:
      break;      /* a table or function is stored as a copy: never the same value */
  }
}

/* Is the slot's value equal to x, as Lua's == sees it? Pure C. */
static int slot_equals(const tslot_t *s, const expected_t *x) {
  switch (x->tag) {
    case TS_NIL: case TS_FALSE: case TS_TRUE: return s->tag == x->tag;
    case TS_INT:
      if (s->tag == TS_INT) return s->v.u.i == x->i;
#if COMPAT_INTEGERS
      if (s->tag == TS_NUM) return transfer_cmp_int_num(x->i, s->v.u.n) == 0;
#endif
      return 0;
    case TS_NUM:
      if (s->tag == TS_NUM) return s->v.u.n == x->n;
#if COMPAT_INTEGERS
      if (s->tag == TS_INT) return transfer_cmp_int_num(s->v.u.i, x->n) == 0;
#endif
      return 0;
    case TS_STR: {
      const char *str = NULL;
      size_t len = 0;
      if (s->tag == TS_STR) {
        str = s->str.s;
        len = s->str.len;
      } else if (s->tag == TS_BUF) {
        str = transfer_string(s->v.u.buf, &len);
      }
      return str != NULL && len == x->len && memcmp(str, x->s, len) == 0;
    }
    case TS_OBJ: return s->tag == TS_OBJ && s->v.u.obj == x->obj;
    default: return 0;
  }
}

/* Value:compare_and_set(old, new) -> boolean */
static int value_compare_and_set(lua_State *L) {
  value_t *v = check_value(L, 1);
  tslot_t slot, old;
  expected_t x;
  int equal;
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  expected_read(L, 2, &x);
  slot.tag = TS_NIL;
  old.tag = TS_NIL;
  transfer_slot_store(L, 3, &slot, "new");
  WAIT_CHECK(pthread_mutex_lock(&v->mu));
  equal = slot_equals(&v->slot, &x);
  if (equal) {
    old = v->slot;
    v->slot = slot;
    publish(v);
  }
  WAIT_CHECK(pthread_mutex_unlock(&v->mu));
  transfer_slot_clear(equal ? &old : &slot);
  lua_pushboolean(L, equal);
  return 1;
}

static const luaL_Reg value_methods[] = {
  {"get", value_get},
  {"set", value_set},
  {"add", value_add},
  {"compare_and_set", value_compare_and_set},
  {NULL, NULL}
};

void shared_open(lua_State *L) {
  object_newmetatable(L, &value_type, value_methods, NULL);
  lua_pushcfunction(L, value_new);
  lua_setfield(L, -2, "Value");
}
