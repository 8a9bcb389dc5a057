/*
** semaphore.c: threading.Semaphore and threading.BoundedSemaphore.
**
** The counter is a word taken with compare-and-swap, so an acquire that
** finds a unit free and a release that nobody waits for never touch the
** mutex (as Lock, lock.c). An acquirer about to sleep counts itself in
** `waiters` under mu before its last try; release adds its units and then
** reads `waiters`, so either it sees the sleeper and signals under mu, or
** the sleeper's try sees the units. release(n) signals one sleeping
** acquirer per unit; an acquirer that wakes and finds the units taken by a
** newcomer sleeps again (no FIFO promise, as in Python). An acquirer that
** leaves on a cancellation while units are free passes its wake-up on, so
** that a signal it consumed is not lost for the others.
**
** Any thread may release (as in Python). Lock order: s->mu, then a waiter's
** mu (inside wait_on). Nothing is pushed onto a Lua stack, allocated
** through Lua or raised, and no Lua runs, while s->mu is held.
*/
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lock.h"
#include "object.h"
#include "types.h"
#include "wait.h"

#define SEM_MT "threading.Semaphore"
#define BSEM_MT "threading.BoundedSemaphore"

/* counts stay exact in a lua_Number on every Lua version */
#define SEM_MAX 9007199254740992.0

typedef struct sem {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Atomic long long value;  /* free units */
  long long bound;          /* BoundedSemaphore: its initial value; else -1 */
  atomic_long waiters;      /* threads asleep in acquire, or about to be (changed under mu) */
} sem_t;

static void sem_destroy(object_t *o) {
  sem_t *s = (sem_t *)o;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

static int sem_select_take(lua_State *L, object_t *o);
static const select_ops_t sem_select = { sem_select_take, NULL };
static const object_type_t sem_type = { SEM_MT, sem_destroy, NULL, &sem_select };
static const object_type_t bsem_type = { BSEM_MT, sem_destroy, NULL, &sem_select };

static sem_t *check_sem(lua_State *L, int idx) {
  handle_t *h = object_handle_fast(L, idx);
  object_t *o;
  if (h != NULL && (h->type == &sem_type || h->type == &bsem_type) && h->obj != NULL)
    return (sem_t *)h->obj;
  o = object_test(L, idx);
  if (o == NULL || (o->type != &sem_type && o->type != &bsem_type))
    object_typeerror(L, idx, SEM_MT);
  return (sem_t *)o;
}

/* Take a unit if one is free. */
static int sem_try(sem_t *s) {
  long long v = atomic_load(&s->value);
  while (v > 0)
    if (atomic_compare_exchange_weak(&s->value, &v, v - 1)) return 1;
  return 0;
}

/* An optional whole-number argument in [min, SEM_MAX]. */
static long long sem_optcount(lua_State *L, int idx, long long def,
                              long long min, const char *msg) {
  lua_Number n;
  if (lua_isnoneornil(L, idx)) return def;
  if (lua_type(L, idx) != LUA_TNUMBER) object_typeerror(L, idx, "number");
  n = lua_tonumber(L, idx);
  luaL_argcheck(L, n >= (lua_Number)min && n <= SEM_MAX && n == floor(n), idx, msg);
  return (long long)n;
}

static int sem_make(lua_State *L, const object_type_t *type) {
  long long value = sem_optcount(L, 1, 1, 0, "value must be a non-negative integer");
  handle_t *h = object_newhandle(L, type);
  sem_t *s = (sem_t *)calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "not enough memory");
  object_init(&s->obj, type);
  wait_mutex_init(&s->mu);
  wait_cond_init(&s->cv);
  atomic_init(&s->value, value);
  atomic_init(&s->waiters, 0);
  s->bound = type == &bsem_type ? value : -1;
  object_sethandle(L, h, &s->obj);
  return 1;
}

/* Semaphore([value = 1]) */
static int sem_new(lua_State *L) {
  return sem_make(L, &sem_type);
}

/* BoundedSemaphore([value = 1]) */
static int sem_new_bounded(lua_State *L) {
  return sem_make(L, &bsem_type);
}

/* Semaphore:acquire([blocking[, timeout]]) or (timeout) -> boolean */
static int sem_acquire(lua_State *L) {
  sem_t *s = check_sem(L, 1);
  deadline_t dl;
  int blocking = lock_acquire_args(L, 2, &dl);
  int r = WAIT_OK, got = 0;
  wait_check_cancel(L);
  got = sem_try(s);
  if (got || !blocking) {             /* the mutex only for a wait */
    lua_pushboolean(L, got);
    return 1;
  }
  /* a task's call waits in its scheduler, not in this thread */
  if (task_calling(L) && !wait_expired(&dl))
    return task_defer(L, TASK_ACQUIRE, sem_acquire, wait_left(&dl), 0);
  WAIT_CHECK(pthread_mutex_lock(&s->mu));
  atomic_fetch_add(&s->waiters, 1);
  for (;;) {
    if (r == WAIT_CANCELLED) break;
    if (sem_try(s)) {                  /* after a timeout too: a unit freed as it passed */
      got = 1;
      break;
    }
    if (r != WAIT_OK) break;
    r = wait_on(&s->obj, &s->mu, &s->cv, &dl);
  }
  atomic_fetch_sub(&s->waiters, 1);
  if (r == WAIT_CANCELLED && atomic_load(&s->value) > 0 && atomic_load(&s->waiters) > 0)
    WAIT_CHECK(pthread_cond_signal(&s->cv));
  WAIT_CHECK(pthread_mutex_unlock(&s->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, got);
  return 1;
}

/* threading.select: a unit taken -> true */
static int sem_select_take(lua_State *L, object_t *o) {
  if (!sem_try((sem_t *)o)) return -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* Semaphore:release([n = 1]): free n units and wake up to n acquirers */
static int sem_release(lua_State *L) {
  sem_t *s = check_sem(L, 1);
  long long n = sem_optcount(L, 2, 1, 1, "count must be a positive integer");
  long long v = atomic_load(&s->value);
  int over;
  do {
    over = s->bound >= 0 ? n > s->bound - v : n > (long long)SEM_MAX - v;
  } while (!over && !atomic_compare_exchange_weak(&s->value, &v, v + n));
  if (!over && atomic_load(&s->waiters) > 0) {
    /* through mu, so that a counted acquirer is either before its last
    ** try (which sees the units) or asleep (and gets the signal) */
    WAIT_CHECK(pthread_mutex_lock(&s->mu));
    long w = atomic_load(&s->waiters);
    if (n >= w) {
      WAIT_CHECK(pthread_cond_broadcast(&s->cv));
    } else {
      long long i;
      for (i = 0; i < n; i++) WAIT_CHECK(pthread_cond_signal(&s->cv));
    }
    WAIT_CHECK(pthread_mutex_unlock(&s->mu));
  }
  if (!over) wait_notify_some(&s->obj, WATCH_TAKE, n > LONG_MAX ? LONG_MAX : (long)n);
  if (over)
    return luaL_argerror(L, 1, s->bound >= 0 ? "semaphore released too many times"
                                             : "semaphore value too large");
  return 0;
}

static const luaL_Reg sem_methods[] = {
  {"acquire", sem_acquire},
  {"release", sem_release},
  {NULL, NULL}
};

void semaphore_open(lua_State *L) {
  object_newmetatable(L, &sem_type, sem_methods, NULL);
  object_newmetatable(L, &bsem_type, sem_methods, NULL);
  lua_pushcfunction(L, sem_new);
  lua_setfield(L, -2, "Semaphore");
  lua_pushcfunction(L, sem_new_bounded);
  lua_setfield(L, -2, "BoundedSemaphore");
}
