/*
** wait.h: monotonic deadlines, timed condition waits, cancellation points.
**
** Every blocking call of the module waits through wait_on(), which registers
** what the calling thread is blocked on so that Thread:cancel() can wake it.
** Lock order: an object's mutex, then a waiter's mutex (inside wait_on);
** wait_cancel() never holds the two at once.
*/
#ifndef THREADING_WAIT_H
#define THREADING_WAIT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "object.h"

typedef struct deadline {
  int forever;            /* no timeout: wait until woken */
  struct timespec at;     /* CLOCK_MONOTONIC */
} deadline_t;

enum { WAIT_OK = 0, WAIT_TIMEOUT = 1, WAIT_CANCELLED = 2 };

/* The longest timeout kept as a deadline (about 31 years); a longer one,
** math.huge included, waits forever. threading.TIMEOUT_MAX. */
#define WAIT_TIMEOUT_MAX 1e9

/* What one thread is blocked on; embedded in its thread object. */
typedef struct waiter {
  pthread_mutex_t mu;          /* guards owner, wmu, wcv */
  atomic_int cancelled;        /* cancel requests so far (0: none) */
  atomic_int delivered;        /* `cancelled` when the cancellation was last raised */
  object_t *owner;             /* keeps wmu/wcv alive while registered */
  pthread_mutex_t *wmu;
  pthread_cond_t *wcv;
  const char *what;            /* object type, for diagnostics */
} waiter_t;

TH_HIDDEN void wait_waiter_init(waiter_t *w);
TH_HIDDEN void wait_waiter_destroy(waiter_t *w);

/* Current monotonic time in seconds. */
TH_HIDDEN double wait_now(void);
TH_HIDDEN deadline_t wait_deadline_in(double seconds);
/* Optional timeout argument: none/nil waits forever; a number >= 0 (and
** not NaN) is seconds from now; anything else raises a bad-argument error. */
TH_HIDDEN deadline_t wait_deadline_arg(lua_State *L, int idx);
/* Check a timeout value found somewhere else than an argument slot. */
TH_HIDDEN double wait_check_seconds(lua_State *L, int idx);
TH_HIDDEN int wait_expired(const deadline_t *dl);

/* Condition variables that time out on the monotonic clock. */
TH_HIDDEN void wait_cond_init(pthread_cond_t *cv);
TH_HIDDEN void wait_mutex_init(pthread_mutex_t *mu);

/* Wait on cv (mu held) until signalled, the deadline passes, or the calling
** thread is cancelled. `owner` is the object that holds mu and cv. Spurious
** wakeups return WAIT_OK: callers loop on their own predicate. */
TH_HIDDEN int wait_on(object_t *owner, pthread_mutex_t *mu, pthread_cond_t *cv,
                      const deadline_t *dl);

/* Has the calling thread been asked to stop? (a cheap atomic load) */
/* Is a cancellation requested that no blocking call has raised yet? The
** hook that cancel() sets raises only then, so a hook left pending by a
** cancel that a wait has already raised does not strike again inside the
** error handling (e.g. between pcall and the release in Lock:with). */
TH_HIDDEN int wait_cancel_undelivered(void);
TH_HIDDEN int wait_cancel_pending(void);
/* Ask the thread behind w to stop; wakes it if it is blocked. */
TH_HIDDEN void wait_cancel(waiter_t *w);
/* wait_cancel in two steps, for a caller with work in between: the
** request (visible to the thread at once), then the wake-up. */
TH_HIDDEN void wait_cancel_request(waiter_t *w);
TH_HIDDEN void wait_cancel_wake(waiter_t *w);
/* Raise the cancellation in L (marks the requests so far delivered).
** Never returns. */
TH_HIDDEN int wait_raise_cancel(lua_State *L);
/* Raise the cancellation if one is pending: the check at the top of every
** blocking call. */
TH_HIDDEN void wait_check_cancel(lua_State *L);

/*
** Change notification, for coroutine schedulers (threading.async). A
** scheduler whose tasks all wait on something polls them, and sleeps until
** any object of the module changes state in a way that could unblock a
** waiter (a lock released, a thread or future finished, an item queued...).
** Every such point calls wait_notify_change(): one atomic load while no
** scheduler watches, a generation bump and a broadcast while one does.
** A scheduler calls wait_watch_changes(1) before it first reads the
** generation and polls, so a change made after its poll is never missed.
*/
TH_HIDDEN void wait_notify_change(void);
TH_HIDDEN void wait_watch_changes(int on);
/* The current generation (a counter that only grows). */
TH_HIDDEN unsigned long wait_change_gen(void);
/* Wait until the generation differs from gen, the deadline passes or the
** calling thread is cancelled; returns WAIT_OK, WAIT_TIMEOUT or
** WAIT_CANCELLED. `owner` is registered as what the thread waits on. */
TH_HIDDEN int wait_for_change(object_t *owner, unsigned long gen,
                              const deadline_t *dl);

/* The calling OS thread's waiter; provided by thread.c. NULL if unavailable. */
TH_HIDDEN waiter_t *wait_current(void);

/*
** Ctrl-C in the main thread (interrupt.c). wait_on calls interrupt_begin
** before it blocks: 1 if the wait can be interrupted (the process's main
** thread, a SIGINT handler installed), and then waits in slices up to
** interrupt_slice(dl), checks interrupt_noted() after each, and calls
** interrupt_end() when done: 1 if a SIGINT came, and the wait then ends as
** cancelled. wait_raise_cancel first calls interrupt_raise(L), which
** raises "interrupted!" if that wait was interrupted, and else returns 0.
*/
TH_HIDDEN int interrupt_begin(void);
TH_HIDDEN int interrupt_noted(void);
TH_HIDDEN struct timespec interrupt_slice(const deadline_t *dl);
TH_HIDDEN int interrupt_end(void);
TH_HIDDEN int interrupt_raise(lua_State *L);
/* Block SIGINT in the calling thread (old: the mask to restore), around
** the creation of a worker, which inherits it. */
TH_HIDDEN void interrupt_block_in_workers(sigset_t *old);

/* fork(): the change notifier's lock (see object.h's FORK_* phases). */
TH_HIDDEN void wait_atfork(int phase);

/* abort() with a message: for pthread errors that cannot happen. */
TH_HIDDEN void wait_fatal(const char *what, int err);
#define WAIT_CHECK(call) do { int e_ = (call); if (e_ != 0) wait_fatal(#call, e_); } while (0)

#endif
