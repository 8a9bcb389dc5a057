/*
** wait.c: deadlines on CLOCK_MONOTONIC and cancellable condition waits
** (which a SIGINT interrupts in the main thread: see interrupt.c).
**
** Lock order: the caller's object mutex, then a waiter's mu (wait_on);
** wait_cancel_wake takes the two apart. Nothing here pushes onto a Lua
** stack or raises while holding either: the raising functions take no lock.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "wait.h"

void wait_fatal(const char *what, int err) {
  fprintf(stderr, "threading: fatal: %s failed (%d)\n", what, err);
  abort();
}

void wait_mutex_init(pthread_mutex_t *mu) {
  WAIT_CHECK(pthread_mutex_init(mu, NULL));
}

void wait_cond_init(pthread_cond_t *cv) {
  pthread_condattr_t attr;
  WAIT_CHECK(pthread_condattr_init(&attr));
  WAIT_CHECK(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC));
  WAIT_CHECK(pthread_cond_init(cv, &attr));
  pthread_condattr_destroy(&attr);
}

void wait_waiter_init(waiter_t *w) {
  wait_mutex_init(&w->mu);
  atomic_init(&w->cancelled, 0);
  atomic_init(&w->delivered, 0);
  w->owner = NULL;
  w->wmu = NULL;
  w->wcv = NULL;
  w->what = NULL;
  w->acting = NULL;
  w->acting_L = NULL;
}

void wait_waiter_destroy(waiter_t *w) {
  pthread_mutex_destroy(&w->mu);
}

double wait_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double wait_left(const deadline_t *dl) {
  struct timespec now;
  double left;
  if (dl->forever) return -1;
  clock_gettime(CLOCK_MONOTONIC, &now);
  left = (double)(dl->at.tv_sec - now.tv_sec) + (double)(dl->at.tv_nsec - now.tv_nsec) * 1e-9;
  return left > 0 ? left : 0;
}

deadline_t wait_deadline_in(double seconds) {
  deadline_t dl;
  dl.forever = 0;
  clock_gettime(CLOCK_MONOTONIC, &dl.at);
  if (seconds > WAIT_TIMEOUT_MAX) {   /* beyond any real wait: forever */
    dl.forever = 1;
    return dl;
  }
  {
    double whole = floor(seconds);
    long nsec = dl.at.tv_nsec + (long)((seconds - whole) * 1e9);
    dl.at.tv_sec += (time_t)whole + nsec / 1000000000L;
    dl.at.tv_nsec = nsec % 1000000000L;
  }
  return dl;
}

double wait_check_seconds(lua_State *L, int idx) {
  double s = luaL_checknumber(L, idx);
  luaL_argcheck(L, s >= 0, idx, "timeout must be a non-negative number");
  return s;
}

deadline_t wait_deadline_arg(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) {
    deadline_t dl;
    dl.forever = 1;
    dl.at.tv_sec = 0;
    dl.at.tv_nsec = 0;
    return dl;
  }
  return wait_deadline_in(wait_check_seconds(L, idx));
}

int wait_expired(const deadline_t *dl) {
  struct timespec now;
  if (dl->forever) return 0;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return now.tv_sec > dl->at.tv_sec ||
         (now.tv_sec == dl->at.tv_sec && now.tv_nsec >= dl->at.tv_nsec);
}

int wait_cancel_pending(void) {
  waiter_t *w = wait_current_fast();
  return w != NULL && atomic_load(&w->cancelled);
}

int wait_cancel_undelivered(void) {
  waiter_t *w = wait_current_fast();
  return w != NULL && atomic_load(&w->cancelled) > atomic_load(&w->delivered);
}

int wait_on(object_t *owner, pthread_mutex_t *mu, pthread_cond_t *cv,
            const deadline_t *dl) {
  waiter_t *w = wait_current_fast();
  int rc, interruptible = 0;
  if (w != NULL) {
    interruptible = interrupt_begin();
    WAIT_CHECK(pthread_mutex_lock(&w->mu));
    w->owner = owner;
    w->wmu = mu;
    w->wcv = cv;
    w->what = owner != NULL ? owner->type->name : NULL;
    WAIT_CHECK(pthread_mutex_unlock(&w->mu));
    /* wait_cancel stores the flag before it reads the registration: either
    ** it sees us registered and signals cv under mu, or we see the flag. */
    if (atomic_load(&w->cancelled)) {
      rc = ECANCELED;
      goto unregister;
    }
  }
  if (interruptible) {
    /* a slice at a time: the SIGINT handler can only leave a note */
    struct timespec at = interrupt_slice(dl);
    rc = interrupt_noted() ? 0 : pthread_cond_timedwait(cv, mu, &at);
    if (rc == ETIMEDOUT && !wait_expired(dl)) rc = 0;   /* a slice ended */
  } else if (dl->forever) {
    rc = pthread_cond_wait(cv, mu);
  } else {
    rc = pthread_cond_timedwait(cv, mu, &dl->at);
  }
  if (rc != 0 && rc != ETIMEDOUT) wait_fatal("pthread_cond_wait", rc);
  if (w == NULL) return rc == ETIMEDOUT ? WAIT_TIMEOUT : WAIT_OK;
unregister:
  WAIT_CHECK(pthread_mutex_lock(&w->mu));
  w->owner = NULL;
  w->wmu = NULL;
  w->wcv = NULL;
  w->what = NULL;
  WAIT_CHECK(pthread_mutex_unlock(&w->mu));
  if (interruptible && interrupt_end()) return WAIT_CANCELLED;
  if (atomic_load(&w->cancelled)) return WAIT_CANCELLED;
  return rc == ETIMEDOUT ? WAIT_TIMEOUT : WAIT_OK;
}

void wait_cancel(waiter_t *w) {
  wait_cancel_request(w);
  wait_cancel_wake(w);
}

void wait_cancel_request(waiter_t *w) {
  atomic_fetch_add(&w->cancelled, 1);
}

void wait_cancel_wake(waiter_t *w) {
  object_t *owner;
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  WAIT_CHECK(pthread_mutex_lock(&w->mu));
  owner = w->owner != NULL ? object_retain(w->owner) : NULL;
  mu = w->wmu;
  cv = w->wcv;
  WAIT_CHECK(pthread_mutex_unlock(&w->mu));
  if (owner == NULL) return;
  WAIT_CHECK(pthread_mutex_lock(mu));
  WAIT_CHECK(pthread_cond_broadcast(cv));
  WAIT_CHECK(pthread_mutex_unlock(mu));
  object_release(owner);
}

int wait_raise_cancel(lua_State *L) {
  waiter_t *w = wait_current_fast();
  interrupt_raise(L);
  if (w != NULL) atomic_store(&w->delivered, atomic_load(&w->cancelled));
  lua_pushliteral(L, "cancelled");
  return lua_error(L);
}

void wait_check_cancel(lua_State *L) {
  if (wait_cancel_pending()) wait_raise_cancel(L);
}

/* ---------------------------------------------------- change notices */

/* A state change that could let a waiter of `changed` proceed: the tasks
** watching it are posted to (port.c). A few atomic loads while nobody
** watches. */
static int watched(object_t *o, int kind) {
  if (kind >= 0) {
    return atomic_load(&o->watches[WATCH_ANY]) != NULL ||
           atomic_load(&o->watches[kind]) != NULL;
  }
  for (kind = 0; kind < WATCH_KINDS; kind++)
    if (atomic_load(&o->watches[kind]) != NULL) return 1;
  return 0;
}

void wait_notify_change(object_t *changed) {
  if (changed != NULL && watched(changed, -1)) port_fire(changed, -1, 0);
}

void wait_notify_some_slow(object_t *changed, int kind, long n) {
  if (changed != NULL && watched(changed, kind)) port_fire(changed, kind, n);
}
