/*
** lock.c: threading.Lock and threading.RLock.
**
** A Lock is a word taken with compare-and-swap: the uncontended path never
** touches the mutex. Waiters count themselves in `waiters` under mu before
** their last try; release stores 0 and then reads `waiters`, so either it
** sees the waiter and signals under mu, or the waiter's try sees the 0.
** Any thread may release a Lock (as in Python); an RLock checks its owner.
** The owner is the caller's token (wait_owner): its thread, or the
** coroutine task it runs (threading.async), so that an RLock re-enters, and
** refuses a release, per task as it does per thread.
** Lock order: lk->mu, then a waiter's mu (inside wait_on). Nothing is
** pushed onto a Lua stack, allocated through Lua or raised while lk->mu is
** held.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lock.h"
#include "spin.h"
#include "types.h"
#include "wait.h"

#define LOCK_MT "threading.Lock"
#define RLOCK_MT "threading.RLock"

static void lock_destroy(object_t *o);
static int lock_select_take(lua_State *L, object_t *o);
static const select_ops_t lock_select = { lock_select_take, NULL };
const object_type_t lock_type = { LOCK_MT, lock_destroy, NULL, &lock_select };
const object_type_t rlock_type = { RLOCK_MT, lock_destroy, NULL, &lock_select };

static void lock_destroy(object_t *o) {
  lock_t *lk = (lock_t *)o;
  pthread_mutex_destroy(&lk->mu);
  pthread_cond_destroy(&lk->cv);
  free(lk);
}

/* Taken if seen free (spin_watch's predicate: the lock is not const). */
static int lock_taken(const void *arg) {
  lock_t *lk = (lock_t *)arg;
  return lock_is_free(lk) && lock_try(lk);
}

/* A waiter watches the word for a while before it sleeps and takes it when
** it is seen free, looking less and less often: LOCK_BACKOFF pauses apart
** at most. A waiter that looks all the time pulls the word's cache line
** away from a holder that releases and takes the lock again at once (the
** tutorial's counter), so that each turn moves the lock, and what it
** guards, between CPUs; looking rarely lets the holder run on with warm
** caches, as Python's GIL does. Losing the race for the word watches on
** while the spin lasts: going to sleep would cost the next release a
** wake-up through the kernel. */
#if !defined(LOCK_BACKOFF)
#define LOCK_BACKOFF 64
#endif

int lock_take(lock_t *lk, int blocking, const deadline_t *dl) {
  int r = WAIT_OK;
  if (lock_try(lk)) return LOCK_TAKEN;
  if (!blocking) return LOCK_BUSY;
  /* critical sections are usually short: watch the word a little before
  ** paying for a sleep and a wake-up */
  if (spin_watch(lock_taken, lk, LOCK_BACKOFF)) return LOCK_TAKEN;
  WAIT_CHECK(pthread_mutex_lock(&lk->mu));
  atomic_fetch_add(&lk->waiters, 1);
  while (!lock_try(lk)) {
    r = wait_on(&lk->obj, &lk->mu, &lk->cv, dl);
    if (r != WAIT_OK) {
      /* a release may have raced the timeout: one last try */
      if (r == WAIT_TIMEOUT && lock_try(lk)) r = WAIT_OK;
      break;
    }
  }
  /* leaving without the lock (cancelled, or timed out) may swallow the
  ** signal of a release meant for a waiter: hand it on */
  if (r != WAIT_OK && !atomic_load(&lk->locked) && atomic_load(&lk->waiters) > 1)
    WAIT_CHECK(pthread_cond_signal(&lk->cv));
  atomic_fetch_sub(&lk->waiters, 1);
  WAIT_CHECK(pthread_mutex_unlock(&lk->mu));
  if (r == WAIT_OK) return LOCK_TAKEN;
  return r == WAIT_CANCELLED ? LOCK_CANCELLED : LOCK_BUSY;
}

int lock_give(lock_t *lk) {
  if (!atomic_exchange(&lk->locked, 0)) return 0;
  if (atomic_load(&lk->waiters) > 0) {
    /* passing through mu puts a counted waiter either before its last try
    ** (which sees the 0) or inside its wait (which gets the signal); the
    ** signal itself goes after the unlock, so the woken thread does not
    ** block at once on mu */
    WAIT_CHECK(pthread_mutex_lock(&lk->mu));
    WAIT_CHECK(pthread_mutex_unlock(&lk->mu));
    WAIT_CHECK(pthread_cond_signal(&lk->cv));
  }
  wait_notify_some(&lk->obj, WATCH_TAKE, 1);
  return 1;
}

/* Lock and RLock methods: a live handle of either is known at once. */
static lock_t *lock_self(lua_State *L) {
  handle_t *h = object_handle_fast(L, 1);
  if (h != NULL && (h->type == &lock_type || h->type == &rlock_type) && h->obj != NULL)
    return (lock_t *)h->obj;
  return lock_check_any(L, 1);
}

lock_t *lock_check_any(lua_State *L, int idx) {
  object_t *o = object_test(L, idx);
  if (o == NULL || (o->type != &lock_type && o->type != &rlock_type))
    object_typeerror(L, idx, "threading.Lock or threading.RLock");
  return (lock_t *)o;
}

/* Parse acquire's ([blocking], [timeout]) or (timeout) at idx. */
int lock_acquire_args(lua_State *L, int idx, deadline_t *dl) {
  int blocking = 1;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *dl = wait_deadline_arg(L, idx);
    return 1;
  }
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TBOOLEAN);
    blocking = lua_toboolean(L, idx);
  }
  if (!blocking && !lua_isnoneornil(L, idx + 1))
    luaL_argerror(L, idx + 1, "cannot specify a timeout for a non-blocking call");
  *dl = wait_deadline_arg(L, idx + 1);
  return blocking;
}

static lock_t *lock_new(lua_State *L, const object_type_t *type) {
  handle_t *h = object_newhandle(L, type);
  lock_t *lk = (lock_t *)calloc(1, sizeof *lk);
  if (lk == NULL) luaL_error(L, "not enough memory");
  object_init(&lk->obj, type);
  wait_mutex_init(&lk->mu);
  wait_cond_init(&lk->cv);
  atomic_init(&lk->locked, 0);
  atomic_init(&lk->waiters, 0);
  object_sethandle(L, h, &lk->obj);
  return lk;
}

/* Acquire for the thread `self` (an RLock re-enters).
**
** The owner is stored relaxed, with no fence of its own: the word `locked`
** orders the section (its CAS acquires, its exchange releases), and the
** owner is only ever compared with a thread's own token (an RLock's
** re-entry and release: a thread always sees its own store) or read for
** the diagnostics of threading.waits and deadlocks, which may see it a
** moment late. So the uncontended pair costs one atomic operation each way. */
int lock_acquire_as(lock_t *lk, void *self, int blocking, const deadline_t *dl) {
  int r;
  if (lk->obj.type == &rlock_type &&
      atomic_load_explicit(&lk->owner, memory_order_relaxed) == self) {
    lk->count++;
    return LOCK_TAKEN;
  }
  r = lock_take(lk, blocking, dl);
  if (r == LOCK_TAKEN) {
    lock_set_owner(lk, self, wait_self);
    lk->count = 1;
  }
  return r;
}

/* Release one level; returns 0 if an RLock is not held by self. */
int lock_release_as(lock_t *lk, const void *self) {
  if (lk->obj.type == &rlock_type) {
    if (atomic_load_explicit(&lk->owner, memory_order_relaxed) != self) return 0;
    if (--lk->count > 0) return 1;
  }
  atomic_store_explicit(&lk->owner, NULL, memory_order_relaxed);
  return lock_give(lk);
}

/* Lock:acquire([blocking[, timeout]]) or Lock:acquire(timeout) -> boolean */
static int lock_acquire(lua_State *L) {
  lock_t *lk = lock_self(L);
  deadline_t dl;
  int blocking = 1;
  waiter_t *self = wait_current_fast();
  int r;
  if (lua_gettop(L) > 1) blocking = lock_acquire_args(L, 2, &dl);
  else dl.forever = 1;                 /* the common call: no arguments */
  if (self != NULL && atomic_load(&self->cancelled)) return wait_raise_cancel(L);
  blocking = blocking && !(!dl.forever && wait_expired(&dl));
  /* a task's call waits in its scheduler, not in this thread */
  if (blocking && task_calling(L)) {
    if (lock_acquire_as(lk, wait_owner_of(self), 0, &dl) == LOCK_TAKEN) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return task_defer(L, TASK_ACQUIRE, lock_acquire, wait_left(&dl), 0);
  }
  r = lock_acquire_as(lk, wait_owner_of(self), blocking, &dl);
  if (r == LOCK_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, r == LOCK_TAKEN);
  return 1;
}

/* Lock:release() */
static int lock_release(lua_State *L) {
  lock_t *lk = lock_self(L);
  /* only an RLock asks who is releasing */
  const void *self = lk->obj.type == &rlock_type ? (const void *)wait_owner() : NULL;
  if (!lock_release_as(lk, self))
    return luaL_argerror(L, 1, lk->obj.type == &rlock_type
                                   ? "cannot release un-acquired lock"
                                   : "release unlocked lock");
  return 0;
}

/* A plain Lock's acquire: the common call (no arguments, the lock free, the
** thread not cancelled) is one compare-and-swap and the holder's two
** relaxed stores (from a thread-local read: the tokens for Condition and
** threading.waits); any other goes the general way. */
static int lock_acquire_plain(lua_State *L) {
  handle_t *h = object_handle_fast(L, 1);
  if (h != NULL && h->type == &lock_type && h->obj != NULL && lua_gettop(L) == 1) {
    lock_t *lk = (lock_t *)h->obj;
    waiter_t *self = wait_current_fast();
    int expected = 0;
    if ((self == NULL || !atomic_load_explicit(&self->cancelled, memory_order_relaxed)) &&
        atomic_compare_exchange_strong_explicit(&lk->locked, &expected, 1,
                                                memory_order_acquire, memory_order_relaxed)) {
      lock_set_owner(lk, wait_owner_of(self), self);
      lua_pushboolean(L, 1);
      return 1;
    }
  }
  return lock_acquire(L);
}

/* A plain Lock's release: no owner to ask (any thread may release it). */
static int lock_release_plain(lua_State *L) {
  handle_t *h = object_handle_fast(L, 1);
  lock_t *lk;
  if (h == NULL || h->type != &lock_type || h->obj == NULL) return lock_release(L);
  lk = (lock_t *)h->obj;
  atomic_store_explicit(&lk->owner, NULL, memory_order_relaxed);
  if (!lock_give(lk)) return luaL_argerror(L, 1, "release unlocked lock");
  return 0;
}

/* threading.select: acquired for the caller (an RLock re-enters) -> true */
static int lock_select_take(lua_State *L, object_t *o) {
  deadline_t dl;
  dl.forever = 1;
  if (lock_acquire_as((lock_t *)o, wait_owner(), 0, &dl) != LOCK_TAKEN) return -1;
  lua_pushboolean(L, 1);
  return 1;
}

/* Lock:locked() -> boolean */
static int lock_locked(lua_State *L) {
  lock_t *lk = lock_self(L);
  lua_pushboolean(L, atomic_load(&lk->locked));
  return 1;
}

static int lock_new_lock(lua_State *L) {
  lock_new(L, &lock_type);
  return 1;
}

static int lock_new_rlock(lua_State *L) {
  lock_new(L, &rlock_type);
  return 1;
}

static const luaL_Reg lock_methods[] = {
  {"acquire", lock_acquire_plain},
  {"release", lock_release_plain},
  {"locked", lock_locked},
  {NULL, NULL}
};

static const luaL_Reg rlock_methods[] = {
  {"acquire", lock_acquire},
  {"release", lock_release},
  {"locked", lock_locked},
  {NULL, NULL}
};

void lock_open(lua_State *L) {
  object_newmetatable(L, &lock_type, lock_methods, NULL);
  object_newmetatable(L, &rlock_type, rlock_methods, NULL);
  lua_pushcfunction(L, lock_new_lock);
  lua_setfield(L, -2, "Lock");
  lua_pushcfunction(L, lock_new_rlock);
  lua_setfield(L, -2, "RLock");
}
