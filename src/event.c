/*
** event.c: threading.Event, a flag that threads wait for.
**
** The flag is written under mu and read anywhere (it is atomic), so is_set
** and a wait on a set flag take no mutex. Each set() that raises the flag
** bumps `sets`: a waiter returns true once the flag is up or `sets` moved
** since it began, so a set() followed at once by clear() still wakes every
** thread that was waiting, as in Python. A waiter watches both for a few
** microseconds (spin.h) before it sleeps on the condvar.
**
** Lock order: e->mu, then a waiter's mu (inside wait_on). Nothing is pushed
** onto a Lua stack, allocated through Lua or raised, and no Lua runs, while
** e->mu is held.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "object.h"
#include "spin.h"
#include "types.h"
#include "wait.h"

#define EVENT_MT "threading.Event"

typedef struct event {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int flag;          /* written under mu */
  atomic_ulong sets;        /* written under mu: times the flag went up */
  long waiters;             /* (mu) threads asleep in wait */
} event_t;

static void event_destroy(object_t *o) {
  event_t *e = (event_t *)o;
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  free(e);
}

static int event_select_take(lua_State *L, object_t *o);
static const select_ops_t event_select = { event_select_take, NULL };
static const object_type_t event_type = { EVENT_MT, event_destroy, NULL, &event_select };

static event_t *check_event(lua_State *L, int idx) {
  return (event_t *)object_check(L, idx, &event_type);
}

/* Event() -> a new Event, not set */
static int event_new(lua_State *L) {
  handle_t *h = object_newhandle(L, &event_type);
  event_t *e = (event_t *)calloc(1, sizeof *e);
  if (e == NULL) return luaL_error(L, "not enough memory");
  object_init(&e->obj, &event_type);
  wait_mutex_init(&e->mu);
  wait_cond_init(&e->cv);
  atomic_init(&e->flag, 0);
  object_sethandle(L, h, &e->obj);
  return 1;
}

/* Event:set(): raise the flag and wake every waiting thread */
static int event_set(lua_State *L) {
  event_t *e = check_event(L, 1);
  if (atomic_load(&e->flag)) return 0;
  WAIT_CHECK(pthread_mutex_lock(&e->mu));
  if (!atomic_load(&e->flag)) {
    atomic_store(&e->flag, 1);
    atomic_fetch_add(&e->sets, 1);
    if (e->waiters > 0) WAIT_CHECK(pthread_cond_broadcast(&e->cv));
  }
  WAIT_CHECK(pthread_mutex_unlock(&e->mu));
  wait_notify_change(&e->obj);
  return 0;
}

/* Event:clear(): lower the flag */
static int event_clear(lua_State *L) {
  event_t *e = check_event(L, 1);
  if (!atomic_load(&e->flag)) return 0;
  WAIT_CHECK(pthread_mutex_lock(&e->mu));
  atomic_store(&e->flag, 0);
  WAIT_CHECK(pthread_mutex_unlock(&e->mu));
  return 0;
}

/* Event:is_set() -> boolean */
static int event_is_set(lua_State *L) {
  event_t *e = check_event(L, 1);
  lua_pushboolean(L, atomic_load(&e->flag));
  return 1;
}

/* threading.select: set -> true (nothing is taken: it stays set) */
static int event_select_take(lua_State *L, object_t *o) {
  if (!atomic_load(&((event_t *)o)->flag)) return -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* Event:_sets() -> how many times the flag went up: a coroutine task that
** saw a count waits until the flag is up or the count moved, as event_came
** does for threads (threading.async) */
static int event_sets(lua_State *L) {
  event_t *e = check_event(L, 1);
  lua_pushinteger(L, (lua_Integer)(atomic_load(&e->sets) & 0x7fffffffUL));
  return 1;
}

typedef struct ewatch {
  event_t *e;
  unsigned long sets;       /* e->sets when the wait began */
} ewatch_t;

/* Has the event been set since the wait began? */
static int event_came(const void *arg) {
  const ewatch_t *w = (const ewatch_t *)arg;
  return atomic_load(&w->e->flag) || atomic_load(&w->e->sets) != w->sets;
}

/* Event:wait([timeout]) -> true once set, false on timeout */
static int event_wait(lua_State *L) {
  event_t *e = check_event(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  int r = WAIT_OK, set;
  ewatch_t w;
  if (task_calling(L)) {
    /* a task's wait suspends it in its scheduler, which retries it with
    ** the count seen now (a set since the wait began counts, even if
    ** cleared at once) */
    lua_Integer sets = (lua_Integer)(atomic_load(&e->sets) & 0x7fffffffUL);
    if (atomic_load(&e->flag) || wait_expired(&dl)) {
      lua_pushboolean(L, atomic_load(&e->flag));
      return 1;
    }
    lua_pushinteger(L, sets);
    return task_defer(L, TASK_EVENT_WAIT, event_is_set, wait_left(&dl), lua_gettop(L));
  }
  wait_check_cancel(L);
  w.e = e;
  w.sets = atomic_load(&e->sets);
  if (atomic_load(&e->flag) || (!wait_expired(&dl) && spin_until(event_came, &w))) {
    lua_pushboolean(L, 1);
    return 1;
  }
  WAIT_CHECK(pthread_mutex_lock(&e->mu));
  e->waiters++;
  while (!event_came(&w) && r == WAIT_OK)
    r = wait_on(&e->obj, &e->mu, &e->cv, &dl);
  e->waiters--;
  set = event_came(&w);
  WAIT_CHECK(pthread_mutex_unlock(&e->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, set);
  return 1;
}

static const luaL_Reg event_methods[] = {
  {"set", event_set},
  {"clear", event_clear},
  {"is_set", event_is_set},
  {"wait", event_wait},
  {"_sets", event_sets},
  {NULL, NULL}
};

void event_open(lua_State *L) {
  object_newmetatable(L, &event_type, event_methods, NULL);
  lua_pushcfunction(L, event_new);
  lua_setfield(L, -2, "Event");
}
