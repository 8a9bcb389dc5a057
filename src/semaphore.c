/*
** semaphore.c: threading.Semaphore and threading.BoundedSemaphore.
**
** A counter under a mutex. release(n) signals one sleeping acquirer per
** unit; an acquirer that wakes and finds the counter taken by a newcomer
** sleeps again (no FIFO promise, as in Python). An acquirer that leaves on
** a cancellation while units are free passes its wake-up on, so that a
** signal it consumed is not lost for the others.
**
** Any thread may release (as in Python). Lock order: s->mu, then a waiter's
** mu (inside wait_on). Nothing is pushed onto a Lua stack, allocated
** through Lua or raised, and no Lua runs, while s->mu is held.
*/
#include <limits.h>
#include <math.h>
#include <pthread.h>
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
  long long value;      /* (mu) free units */
  long long bound;      /* BoundedSemaphore: its initial value; else -1 */
  long waiters;         /* (mu) threads asleep in acquire */
} sem_t;

static void sem_destroy(object_t *o) {
  sem_t *s = (sem_t *)o;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

static const object_type_t sem_type = { SEM_MT, sem_destroy, NULL };
static const object_type_t bsem_type = { BSEM_MT, sem_destroy, NULL };

static sem_t *check_sem(lua_State *L, int idx) {
  object_t *o = object_test(L, idx);
  if (o == NULL || (o->type != &sem_type && o->type != &bsem_type))
    object_typeerror(L, idx, SEM_MT);
  return (sem_t *)o;
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
  s->value = value;
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
  int r = WAIT_OK, got;
  wait_check_cancel(L);
  WAIT_CHECK(pthread_mutex_lock(&s->mu));
  if (s->value == 0 && blocking) {
    s->waiters++;
    while (s->value == 0 && r == WAIT_OK)
      r = wait_on(&s->obj, &s->mu, &s->cv, &dl);
    s->waiters--;
  }
  /* a unit freed as the deadline passed is still taken */
  got = s->value > 0 && r != WAIT_CANCELLED;
  if (got) s->value--;
  else if (r == WAIT_CANCELLED && s->value > 0 && s->waiters > 0)
    WAIT_CHECK(pthread_cond_signal(&s->cv));
  WAIT_CHECK(pthread_mutex_unlock(&s->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, got);
  return 1;
}

/* Semaphore:release([n = 1]): free n units and wake up to n acquirers */
static int sem_release(lua_State *L) {
  sem_t *s = check_sem(L, 1);
  long long n = sem_optcount(L, 2, 1, 1, "count must be a positive integer");
  int over;
  WAIT_CHECK(pthread_mutex_lock(&s->mu));
  over = s->bound >= 0 ? n > s->bound - s->value : n > (long long)SEM_MAX - s->value;
  if (!over) {
    s->value += n;
    if (s->waiters > 0) {
      if (n >= s->waiters) {
        WAIT_CHECK(pthread_cond_broadcast(&s->cv));
      } else {
        long long i;
        for (i = 0; i < n; i++) WAIT_CHECK(pthread_cond_signal(&s->cv));
      }
    }
  }
  WAIT_CHECK(pthread_mutex_unlock(&s->mu));
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
