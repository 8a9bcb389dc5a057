/*
** future.h: threading.Future as pool.c and future.c share it. future.c
** has the Future itself (its life, its Lua methods) and threading.wait;
** pool.c queues futures as a pool's tasks, hands each to a worker and
** finishes it with the task's outcome. Nothing else in the core sees
** inside a future.
**
** Who owns what:
** - A future is reference counted (object.h): each Lua handle, the pool's
**   queue while it is queued and the worker that runs it hold one each.
** - Fields marked (mu) are read and written under the future's mu; `next`
**   under the mu of the work whose queue holds the future (pool.c); the
**   task's fields belong to the future until a worker moves it to
**   F_RUNNING or a cancel drops them, both under mu.
** - Lock order: a work's mu (pool.c), then a future's mu, then a thread's
**   waiter's mu (inside wait_on). A change of a future is announced to
**   the ports watching it (wait_notify_change) after its mu is released.
**   No buffer is freed, and no Lua runs, while a future's mu is held.
*/
#ifndef THREADING_FUTURE_H
#define THREADING_FUTURE_H

#include <pthread.h>
#include <stdint.h>

#include "object.h"
#include "transfer.h"

/* A future's states; the last three are final. */
enum { F_PENDING, F_RUNNING, F_DONE, F_FAILED, F_CANCELLED };
#define F_FINAL(s) ((s) >= F_DONE)

typedef struct future {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;          /* completion, for result() */
  int state;                  /* (mu) */
  int sleepers;               /* (mu) threads in result()/exception() */
  transfer_t *output;         /* (mu) results or the error, set with a final state */
  const char *reason;         /* (mu) F_FAILED without output: a static message */
  /* The task, owned by the future until a worker moves it to RUNNING or a
  ** cancel drops it (both under mu). */
  transfer_t *fnbuf;          /* a cached function, or NULL */
  uint64_t fnid;              /* its id (0: the function is in input) */
  int fnmap;                  /* fnbuf is a map's function (kept apart by workers) */
  transfer_t *input;          /* [function,] arguments; NULL when none */
  tslot_t *items;             /* a map chunk: the items, one call each */
  int nitems;
  tslot_t *outs;              /* a map chunk's results, published with F_DONE */
  int nouts;
  struct future *next;        /* (work->mu) queue link */
  int standalone;             /* made by threading.Future(): its owner
                                 completes it, no pool does */
  /* A future made through capi.h: completed in C by its maker. */
  const char *completer;      /* why set_result refuses (static), or NULL */
  void (*on_cancel)(void *f); /* told of a cancel while pending, or NULL */
  void *slot;                 /* the maker's (capi.h) */
} future_t;

TH_HIDDEN extern const object_type_t future_type;

/* A new pending future (one reference), or NULL. */
TH_HIDDEN future_t *future_alloc(void);
/* Clear and free an array of n slots (NULL: nothing). */
TH_HIDDEN void slots_free(tslot_t *s, int n);
/* Give f its final state and output (owned by f from now on); wake whoever
** waits on it. Returns 0 (and frees output) if f had ended already. Call
** with no lock held. */
TH_HIDDEN int future_finish(future_t *f, int state, transfer_t *output);
/* Fail f with a static message (no Lua state needed); 0 if it had ended. */
TH_HIDDEN int future_fail_static(future_t *f, const char *reason);
/* Cancel f if it is still pending. Returns 1 if f is cancelled (now or
** before). */
TH_HIDDEN int future_cancel(future_t *f);

#endif
