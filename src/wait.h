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
  void *acting;                /* the owner token of the coroutine task this
                                  thread runs now, or NULL; the thread's own
                                  (wait_owner) */
  lua_State *acting_L;         /* that task's coroutine while its scheduler
                                  resumes it (task_calling), else NULL */
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
** Change notices, for coroutine schedulers (threading.async). Every state
** change that could let a waiter proceed (a lock released, a thread or
** future finished, an item queued or taken, an event set, a semaphore or
** barrier released) tells the tasks watching the object (port.c), and
** only them. wait_notify_change(changed) posts every task watching
** `changed`. wait_notify_some(changed, kind, n) is for a change that lets
** at most n waiters of one kind proceed (an item put: one WATCH_TAKE
** waiter of the queue; a slot freed: one WATCH_ROOM waiter): it posts the
** n oldest of that kind and every WATCH_ANY one. A task posted so that
** leaves without taking what it was posted for passes it on (port.c).
*/
TH_HIDDEN void wait_notify_change(object_t *changed);
TH_HIDDEN void wait_notify_some_slow(object_t *changed, int kind, long n);
/* Inline, as every release and put calls it: with nobody watching it is a
** few loads. */
static inline void wait_notify_some(object_t *changed, int kind, long n) {
  if (changed != NULL && (kind < 0 || atomic_load(&changed->watches[WATCH_ANY]) != NULL ||
                          atomic_load(&changed->watches[kind]) != NULL))
    wait_notify_some_slow(changed, kind, n);
}

/*
** Ports (port.c): port_fire posts the tasks watching o (kind < 0: all of
** them; else the n oldest of that kind and every WATCH_ANY one);
** port_post_to posts a token to a port directly (a Condition's notify, to
** the task a node belongs to; any lock may be held but a port's);
** port_atfork takes their locks around fork().
*/
TH_HIDDEN void port_fire(object_t *o, int kind, long n);
TH_HIDDEN void port_post_to(object_t *port, long token);
/*
** An OS thread waiting in C on several objects at once (threading.wait)
** uses a port of its own, watched through the same lists as the tasks':
** port_make (NULL without memory; object_release frees it and drops its
** watches), port_watch_obj (the next change of o posts token; 0 without
** memory, which only a token's first watch can need), port_sleep (until
** something is posted, the deadline passes or the thread is cancelled:
** WAIT_OK, WAIT_TIMEOUT, WAIT_CANCELLED; takes nothing) and port_take
** (moves up to cap posted tokens into buf; *everything: some were lost,
** look at every object again). None raises; none holds a lock on return.
** Lock order: a relaying port's mu, then the mu of the port it relays to.
*/
TH_HIDDEN object_t *port_make(void);
TH_HIDDEN int port_watch_obj(object_t *port, object_t *o, long token);
TH_HIDDEN int port_sleep(object_t *port, const deadline_t *dl);
TH_HIDDEN size_t port_take(object_t *port, long *buf, size_t cap, int *everything);
/* From now on every post to `port` is posted to `to` too, with token (a
** task that waits on a set of futures: its scheduler's port); to NULL
** stops it. `to` must relay to no port. */
TH_HIDDEN void port_relay(object_t *port, object_t *to, long token);
/* The port at idx (raises if it is none); threading._port made it. */
TH_HIDDEN object_t *port_check(lua_State *L, int idx);
/* Push a new port's handle (threading._port); raises without memory. */
TH_HIDDEN object_t *port_push_new(lua_State *L);
/* Drop every watch of the port and what was posted (port:close): it then
** serves the next wait as a new port would. */
TH_HIDDEN void port_clear(object_t *port);
TH_HIDDEN void port_atfork(int phase);
TH_HIDDEN void port_open(lua_State *L);

/* The calling OS thread's waiter; provided by runtime.c. NULL if
** unavailable. wait_self is the same once this OS thread has one (NULL
** before): the thread-local read that the hot paths use. */
TH_HIDDEN waiter_t *wait_current(void);
TH_HIDDEN extern __thread waiter_t *wait_self __attribute__((tls_model("initial-exec")));
static inline waiter_t *wait_current_fast(void) {
  waiter_t *w = wait_self;
  return w != NULL ? w : wait_current();
}

/* Who owns what the caller takes (an RLock, a Condition's lock): the task a
** coroutine scheduler is running in this thread (its token, an odd number
** that no waiter's address can be: see port.c), else the thread itself.
** `w` is wait_current_fast() (NULL: no waiter, the owner is NULL). */
static inline void *wait_owner_of(waiter_t *w) {
  return w == NULL ? NULL : w->acting != NULL ? w->acting : (void *)w;
}
static inline void *wait_owner(void) {
  return wait_owner_of(wait_current_fast());
}

/*
** A task's call (task.c). When a coroutine scheduler (threading.async)
** resumes a task, the thread's waiter names the task's coroutine too
** (threading._act). A blocking method called by that very coroutine, not
** by one it made, is a task's call: task_calling(L). Such a call tries its
** non-blocking form in C first, which is all a call that finds its object
** ready costs; when it would have to wait, it returns task_defer(...),
** which hands it to the scheduler's Lua half for `kind`: that half gets
** (try, self, timeout or nil[, the value at extra_idx]), where try is
** try_fn or (NULL) the method running (its closure, upvalues and all;
** the caller must be the method called from Lua), and suspends the
** task until try(self, false) (try(self, item, false) for TASK_PUT) gives
** what the call waits for, or the timeout passes. TASK_DONE (Future:result
** and :exception, Thread:join, a queue's join) retries with try(self, 0),
** which answers nil, "timeout" until the object is done; its extra value
** is what to watch the object for (WATCH_ANY, WATCH_DONE).
** TASK_CONDITION (Condition:wait, and :wait_for with the predicate as its
** extra value) comes after C has checked the arguments and the lock, and
** runs the whole wait in the scheduler; so does TASK_BARRIER
** (Barrier:wait). TASK_ITER is a queue iterator's get, whose try is the
** queue's get method; the half gives the item or nil. TASK_SHUTDOWN is
** Pool:shutdown's wait for the workers to leave, after C has shut the pool
** down; try(self, true) then joins them. TASK_SELECT is threading.select
** (self: the list; try: one pass over it; extra: the objects to watch),
** TASK_WAIT threading.wait (self: the futures; extra: return_when),
** TASK_SLEEP threading.sleep and TASK_NEXT the step of as_completed (a
** completion set's next: future.c). `timeout` < 0 is none.
** It returns the half's results; a yield inside it suspends the task
** (5.2+: lua_callk). Lua 5.1 and LuaJIT cannot continue a C function after
** a yield: there task_calling is always 0, and the scheduler swaps its Lua
** wrappers into the methods tables instead. task_defer holds no lock.
*/
enum { TASK_ACQUIRE = 1, TASK_GET, TASK_PUT, TASK_EVENT_WAIT, TASK_DONE,
       TASK_CONDITION, TASK_BARRIER, TASK_ITER, TASK_SHUTDOWN, TASK_SELECT,
       TASK_WAIT, TASK_SLEEP, TASK_NEXT, TASK_KINDS };
static inline int task_calling(const lua_State *L) {
#if COMPAT_CALLK
  waiter_t *w = wait_self;
  return w != NULL && w->acting_L == L;
#else
  (void)L;
  return 0;
#endif
}
TH_HIDDEN int task_defer(lua_State *L, int kind, lua_CFunction try_fn, double timeout,
                         int extra_idx);
/* task_defer for TASK_DONE: the method running as try, and `watch`
** (WATCH_ANY, WATCH_DONE) as the extra value. */
TH_HIDDEN int task_defer_done(lua_State *L, int watch, double timeout);
/* task_defer with the function at try_idx as try (not a method: a queue's
** iterator, whose try is the queue's get) and no extra value. */
TH_HIDDEN int task_defer_at(lua_State *L, int kind, int try_idx, double timeout);
/* Seconds left until dl (0 once passed); -1 if it waits forever. */
TH_HIDDEN double wait_left(const deadline_t *dl);

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
/* In a fork() child, by the forking thread: it is the main thread now. */
TH_HIDDEN void interrupt_forked(void);


/* abort() with a message: for pthread errors that cannot happen. */
TH_HIDDEN void wait_fatal(const char *what, int err);
#define WAIT_CHECK(call) do { int e_ = (call); if (e_ != 0) wait_fatal(#call, e_); } while (0)

#endif
