/*
** lock.h: Lock and RLock, shared with Condition (which waits on either).
*/
#ifndef THREADING_LOCK_H
#define THREADING_LOCK_H

#include <pthread.h>
#include <stdatomic.h>

#include "object.h"
#include "wait.h"

typedef struct lock {
  object_t obj;
  atomic_int locked;            /* 1 while held */
  atomic_int waiters;           /* threads in the slow path */
  _Atomic(void *) owner;        /* holder's owner token (wait_owner: its
                                   thread's waiter_t, or its task's token);
                                   RLock and Condition check it */
  _Atomic(void *) thread;       /* the waiter_t of the thread the holder runs
                                   in: for the diagnostics only */
  long count;                   /* RLock depth; touched by the owner only */
  pthread_mutex_t mu;           /* only for sleeping and waking */
  pthread_cond_t cv;
} lock_t;

TH_HIDDEN extern const object_type_t lock_type, rlock_type;

enum { LOCK_TAKEN, LOCK_BUSY, LOCK_CANCELLED };

/* One try at the lock word (no owner bookkeeping, no waiting). */
static inline int lock_try(lock_t *lk) {
  int expected = 0;
  return atomic_compare_exchange_strong(&lk->locked, &expected, 1);
}
/* Is the lock word free? A spin's predicate: a hint, the try decides. */
static inline int lock_is_free(const void *arg) {
  return !atomic_load_explicit(&((const lock_t *)arg)->locked, memory_order_relaxed);
}

/* Record the holder: its owner token and its thread's waiter `w`. Relaxed,
** with no fence of its own (see lock_acquire_as in lock.c). */
static inline void lock_set_owner(lock_t *lk, void *owner, waiter_t *w) {
  atomic_store_explicit(&lk->owner, owner, memory_order_relaxed);
  atomic_store_explicit(&lk->thread, (void *)w, memory_order_relaxed);
}

/* Take the lock word (no owner bookkeeping); LOCK_BUSY on timeout. */
TH_HIDDEN int lock_take(lock_t *lk, int blocking, const deadline_t *dl);
/* Clear the lock word and wake one waiter; 0 if it was not locked. */
TH_HIDDEN int lock_give(lock_t *lk);
/* `self` is the caller's owner token (wait_owner()). */
TH_HIDDEN int lock_acquire_as(lock_t *lk, void *self, int blocking,
                              const deadline_t *dl);
TH_HIDDEN int lock_release_as(lock_t *lk, const void *self);
TH_HIDDEN lock_t *lock_check_any(lua_State *L, int idx);
TH_HIDDEN int lock_acquire_args(lua_State *L, int idx, deadline_t *dl);

#endif
