/*
** shared.c: threading.Value, one value shared by reference between threads.
**
** The value is a transfer slot under a mutex. The mutex is never held while
** Lua runs: a value kept in a buffer is retained under the mutex and
** decoded after it is released.
*/
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define VALUE_MT "threading.Value"

typedef struct value {
  object_t obj;
  pthread_mutex_t mu;
  tslot_t slot;          /* (mu) */
} value_t;

static void value_destroy(object_t *o) {
  value_t *v = (value_t *)o;
  transfer_slot_clear(&v->slot);
  pthread_mutex_destroy(&v->mu);
  free(v);
}

static const object_type_t value_type = { VALUE_MT, value_destroy };

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
  object_sethandle(L, h, &v->obj);
  return 1;
}

/* Value:get() */
static int value_get(lua_State *L) {
  value_t *v = check_value(L, 1);
  tslot_t copy;
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
  }
  WAIT_CHECK(pthread_mutex_unlock(&v->mu));
  if (!is_number) return luaL_argerror(L, 1, "value is not a number");
  transfer_slot_push(L, &result);
  return 1;
}

/* Does the slot hold a value equal to the one at idx? Reads only. */
static int slot_equals(lua_State *L, const tslot_t *s, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return s->tag == TS_NIL;
    case LUA_TBOOLEAN:
      return s->tag == (lua_toboolean(L, idx) ? TS_TRUE : TS_FALSE);
    case LUA_TNUMBER:
#if COMPAT_INTEGERS
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (s->tag == TS_INT) return s->v.u.i == i;
        return s->tag == TS_NUM && s->v.u.n == (lua_Number)i;
      }
      if (s->tag == TS_INT) return (lua_Number)s->v.u.i == lua_tonumber(L, idx);
#endif
      return s->tag == TS_NUM && s->v.u.n == lua_tonumber(L, idx);
    case LUA_TSTRING: {
      size_t len;
      const char *str = lua_tolstring(L, idx, &len);
      return s->tag == TS_STR && s->str.len == len && memcmp(s->str.s, str, len) == 0;
    }
    case LUA_TUSERDATA:
      return s->tag == TS_OBJ && s->v.u.obj == object_test(L, idx);
    default:
      return 0;      /* a table or function is a copy: never the same value */
  }
}

/* Value:compare_and_set(old, new) -> boolean */
static int value_compare_and_set(lua_State *L) {
  value_t *v = check_value(L, 1);
  tslot_t slot, old;
  int equal;
  luaL_checkany(L, 2);
  luaL_checkany(L, 3);
  slot.tag = TS_NIL;
  old.tag = TS_NIL;
  transfer_slot_store(L, 3, &slot, "new");
  WAIT_CHECK(pthread_mutex_lock(&v->mu));
  equal = slot_equals(L, &v->slot, 2);
  if (equal) {
    old = v->slot;
    v->slot = slot;
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
