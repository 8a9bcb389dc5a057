/*
** select.c: threading.select(waitables[, timeout]), and the one pass over
** the waitables that a task's select shares (threading.async).
**
** Each waitable's type says how to take, without waiting, what a wait on
** it is for (select_ops_t, object.h): a queue's item, a lock or a
** semaphore acquired, an event seen set, a future's result, a thread's
** join. A send case, the plain table { queue, item }, puts the item. A
** call tries the waitables in order and takes the first one ready, and
** only that one. If none is, a task's call (task_calling, Lua 5.2+) hands
** the wait to its scheduler with the list of objects to watch, and
** otherwise the calling thread watches every object on a
** port (port.c), tries them all once more (so a change made in between is
** not missed), and sleeps until one of them changes; it then watches that
** one again (a watch fires once) and tries it.
**
** Who owns what: the waitables and the send items are copied onto the
** stack for the call, so that nothing (a finalizer emptying the list) can
** free one while it is used. The port is kept between calls, one per
** state, at registry[&spare_key], and taken out while in use: a call made
** during another's wait (a finalizer's) makes its own. An error raised
** while a port is out leaves it to the collector, which drops its watches.
**
** Lock order: none of its own. The ports and the objects take theirs
** inside the calls made here, and none is held on return from one, so
** the takers push, allocate and raise with no lock held.
*/
#include <stdarg.h>
#include <stdio.h>

#include "object.h"
#include "types.h"
#include "wait.h"

/* registry[&spare_key]: the port the next call may use */
static const char spare_key = 's';

/* The most tokens taken from the port at a time (more come next time). */
#define SELECT_TOKENS 64

/* Raise "<where>bad argument ..." for the function `level` calls up. */
static int select_error(lua_State *L, int level, const char *fmt, ...) {
  va_list ap;
  luaL_where(L, level);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_concat(L, 2);
  return lua_error(L);
}

/* The object at idx if its type is one select waits on, else NULL. */
static object_t *waitable(lua_State *L, int idx) {
  object_t *o = object_test(L, idx);
  return o != NULL && o->type->select != NULL ? o : NULL;
}

/* Copy the waitables of the list at `list` onto the stack, two slots each
** from the returned base: the object (a send case's queue), then the item
** to send or nil. Checks the list and the timeout at list + 1; errors are
** raised for the function `level` calls up. Returns how many. */
static int select_cases(lua_State *L, int list, int level, int *base) {
  int n, i;
  if (lua_type(L, list) != LUA_TTABLE)
    select_error(L, level, "bad argument #1 to 'select' (table expected, got %s)",
                 luaL_typename(L, list));
  n = (int)compat_rawlen(L, list);
  if (n == 0) select_error(L, level, "bad argument #1 to 'select' (no waitables given)");
  if (n > (1 << 24) || !lua_checkstack(L, 2 * n + LUA_MINSTACK))
    select_error(L, level, "bad argument #1 to 'select' (too many waitables)");
  *base = lua_gettop(L) + 1;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, list, i);
    if (waitable(L, -1) != NULL) {
      lua_pushnil(L);
      continue;
    }
    if (lua_type(L, -1) == LUA_TTABLE) {
      object_t *q = NULL;
      if (lua_getmetatable(L, -1)) {
        lua_pop(L, 1);                /* a table with a metatable is no send case */
      } else {
        lua_rawgeti(L, -1, 1);
        q = waitable(L, -1);
        if (q == NULL || q->type->select->send == NULL) {
          q = NULL;
          lua_pop(L, 1);
        }
      }
      if (q != NULL) {
        lua_rawgeti(L, -2, 2);
        if (lua_isnil(L, -1))
          select_error(L, level, "bad argument #1 to 'select' (waitables[%d]: send case "
                       "{ queue, item } without an item)", i);
        lua_remove(L, -3);            /* the queue, the item */
        continue;
      }
    }
    select_error(L, level, "bad argument #1 to 'select' (waitables[%d]: queue, event, future, "
                 "thread, lock, semaphore or { queue, item } expected, got %s)", i,
                 luaL_typename(L, -1));
  }
  if (!lua_isnoneornil(L, list + 1) &&
      (lua_type(L, list + 1) != LUA_TNUMBER || !(lua_tonumber(L, list + 1) >= 0)))
    select_error(L, level, "bad argument #2 to 'select' (timeout must be a non-negative number)");
  return n;
}

static object_t *case_object(lua_State *L, int base, int i) {
  return object_test(L, base + 2 * (i - 1));
}

/* Try waitable i: if it is ready, take it and push i and what taking it
** gave, returning how many values; else push nothing and return 0. */
static int select_try(lua_State *L, int base, int i) {
  int at = base + 2 * (i - 1), n;
  object_t *o = object_test(L, at);
  if (o == NULL) return luaL_error(L, "waitables[%d] was released", i);
  lua_pushinteger(L, i);
  if (lua_isnil(L, at + 1)) {
    n = o->type->select->take(L, o);
  } else {
    char root[48];
    snprintf(root, sizeof root, "waitables[%d][2]", i);
    n = o->type->select->send(L, o, at + 1, root);
  }
  if (n < 0) {
    lua_pop(L, 1);
    return 0;
  }
  return n + 1;
}

/* One pass, in order: what select_try gives for the first ready one. */
static int select_try_all(lua_State *L, int base, int n) {
  int i;
  for (i = 1; i <= n; i++) {
    int r = select_try(L, base, i);
    if (r > 0) return r;
  }
  return 0;
}

/* Watch waitable i (token i) on the port. */
static void select_watch(lua_State *L, object_t *port, int base, int i) {
  if (!port_watch_obj(port, case_object(L, base, i), i)) {
    port_clear(port);
    luaL_error(L, "not enough memory");
  }
}

/* Wait until one is ready or the deadline passes; the port's handle is at
** pidx. Returns what select_try gives, or 0 on timeout. Raises the
** thread's cancellation and Ctrl-C (after dropping the port's watches). */
static int select_wait(lua_State *L, object_t *port, int base, int n, const deadline_t *dl) {
  long tokens[SELECT_TOKENS];
  int i, r;
  for (i = 1; i <= n; i++) select_watch(L, port, base, i);
  r = select_try_all(L, base, n);         /* every watch is armed: nothing is missed */
  while (r == 0) {
    size_t got, k;
    int everything, w = port_sleep(port, dl);
    if (w == WAIT_TIMEOUT) break;
    if (w == WAIT_CANCELLED) {
      port_clear(port);
      return wait_raise_cancel(L);
    }
    got = port_take(port, tokens, SELECT_TOKENS, &everything);
    if (everything) {                     /* some tokens were lost: look at all */
      for (i = 1; i <= n; i++) select_watch(L, port, base, i);
      r = select_try_all(L, base, n);
    }
    for (k = 0; k < got && r == 0; k++) {
      long t = tokens[k];
      if (t < 1 || t > n) continue;
      select_watch(L, port, base, (int)t);  /* a watch fires once: again before the try */
      r = select_try(L, base, (int)t);
    }
  }
  return r;
}

static int select_try_m(lua_State *L);

/* threading.select(waitables[, timeout]) -> index, what taking it gave |
** nil, "timeout" */
static int select_select(lua_State *L) {
  int base, n, r;
  lua_settop(L, 2);
  n = select_cases(L, 1, 1, &base);
  if ((r = select_try_all(L, base, n)) > 0) return r;
  if (lua_isnil(L, 2) || lua_tonumber(L, 2) > 0) {
    deadline_t dl = wait_deadline_arg(L, 2);
    object_t *port;
    int pidx;
    if (task_calling(L)) {   /* a task watches them all from its scheduler */
      int i;
      lua_createtable(L, n, 0);
      for (i = 1; i <= n; i++) {
        lua_pushvalue(L, base + 2 * (i - 1));
        lua_rawseti(L, -2, i);
      }
      return task_defer(L, TASK_SELECT, select_try_m, wait_left(&dl), lua_gettop(L));
    }
    compat_rawgetp(L, LUA_REGISTRYINDEX, &spare_key);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      port = port_push_new(L);
    } else {
      port = port_check(L, -1);
      lua_pushnil(L);
      compat_rawsetp(L, LUA_REGISTRYINDEX, &spare_key);
    }
    pidx = lua_gettop(L);
    r = select_wait(L, port, base, n, &dl);
    port_clear(port);
    lua_pushvalue(L, pidx);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &spare_key);
    if (r > 0) return r;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

/* threading._select_check(list, timeout[, level]) -> how many: the checks
** of select, raising for the function `level` calls up (default 1) */
static int select_check_m(lua_State *L) {
  int base, level = (int)luaL_optinteger(L, 3, 1);
  lua_settop(L, 2);
  lua_pushinteger(L, select_cases(L, 1, level, &base));
  return 1;
}

/* threading._select_try(list) -> index, what taking it gave | nothing:
** one pass without waiting (a task's select retries it when woken) */
static int select_try_m(lua_State *L) {
  int base, n;
  lua_settop(L, 1);
  lua_pushnil(L);                   /* no timeout to check */
  n = select_cases(L, 1, 1, &base);
  return select_try_all(L, base, n);
}

/* threading._select_objects(list) -> { object... }: what a task's select
** watches (a send case's queue) */
static int select_objects_m(lua_State *L) {
  int base, n, i;
  lua_settop(L, 1);
  lua_pushnil(L);
  n = select_cases(L, 1, 1, &base);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, base + 2 * (i - 1));
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static const luaL_Reg select_funcs[] = {
  {"select", select_select},
  {"_select_check", select_check_m},
  {"_select_try", select_try_m},
  {"_select_objects", select_objects_m},
  {NULL, NULL}
};

void select_open(lua_State *L) {
  luaL_setfuncs(L, select_funcs, 0);
}
