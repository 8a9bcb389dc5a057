/*
** queue.h: what the two queue files share. fifo.c has Queue and
** SimpleQueue (producers and consumers on separate locks); queue.c has
** LifoQueue and PriorityQueue (one mutex) and these helpers.
*/
#ifndef THREADING_QUEUE_H
#define THREADING_QUEUE_H

#include "compat.h"

#if !defined(QUEUE_SPIN_US)
#define QUEUE_SPIN_US 20     /* how long a getter spins before it sleeps */
#endif

/* Outcomes of the C-level put and get. */
enum { QR_OK, QR_EMPTY, QR_FULL, QR_SHUT, QR_CANCEL, QR_NOMEM };

/* The object behind the handle at index 1 for a method whose metatable is
** its upvalue 1; raises "<type> expected, got ..." naming that type. */
TH_HIDDEN void *queue_check_self(lua_State *L);
/* Parse ([block[, timeout]]) or (timeout) at idx: returns block, sets *tmo
** (< 0: forever). As in Python, a non-blocking call ignores its timeout. */
TH_HIDDEN int queue_block_args(lua_State *L, int idx, double *tmo);
/* The optional maxsize argument at idx: an integer >= 0, 0 if absent. */
TH_HIDDEN size_t queue_maxsize_arg(lua_State *L, int idx);
/* Push nil, why; returns 2. */
TH_HIDDEN int queue_push_fail(lua_State *L, const char *why);
/* Raise the error of an iterator whose queue handle was collected. */
TH_HIDDEN int queue_iter_released(lua_State *L);
/* A queue iterator's get in a task (task_calling), after a try without
** waiting left nil and why on the stack: an empty queue's is handed to the
** scheduler (task.c), with the queue's get method as the retry; a shut
** down queue's gives nil, the end of the iteration. */
TH_HIDDEN int queue_iter_wait(lua_State *L, double tmo);
/* Before a getter sleeps it watches its queue for QUEUE_SPIN_US (with more
** than one CPU) until ready(arg); returns whether ready() became true. */
TH_HIDDEN int queue_spin(int (*ready)(void *), void *arg);

#endif
