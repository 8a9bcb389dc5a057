/*
** fifo.c: threading.Queue and threading.SimpleQueue, the first-in-first-out
** queues, built so that producers and consumers never take the same lock.
**
** Items live in a linked list of segments of SEG_SLOTS transfer slots. An
** item takes one slot, or a run of consecutive slots for a small table
** (transfer.h), so a table of a few scalar fields is copied into the
** segment itself: no allocation per item, and its memory goes when the
** consumer frees the segment. A run never straddles two segments: a
** producer that finds too few slots left marks the first unused one TS_NIL
** (no item is nil) and starts the next segment.
** - Who owns what: the queue owns its segments, and each published slot
**   owns what it holds (a buffer, an object reference; a run owns nothing)
**   until a consumer copies it out under head_mu, which moves that
**   ownership to the consumer. The queue's memory is its segments alone,
**   so it follows the number of items held: a consumer frees each segment
**   it empties, and destroy or an immediate shutdown frees the rest.
** - Cache lines: what both ends read on every call (shut, the sleeper
**   counts) is written only when a thread sleeps or the queue shuts; the
**   consumer end, the producer end and `puts` each have lines of their own.
** - tail_mu (producers) guards tail and tail_idx. A producer checks room and
**   shutdown, stores its slot and publishes it by counting it in `puts`;
**   slots are filled and published in order under tail_mu, so slot number
**   n is ready once puts > n. The unfinished tasks are puts - done: an
**   item is counted as a task by its publication, so a consumer's
**   task_done never finds it missing, and a put writes no other counter.
** - head_mu (consumers) guards head, head_idx and seen_puts. A consumer
**   takes slot number `gets` while gets < puts, reading `puts` again only
**   when its cached copy is used up: the producer's cache line moves once
**   per batch, not once per item. A consumer frees a segment it emptied; a
**   producer links `next`, and marks the end of the segment it leaves,
**   before it publishes the next segment's first item. A consumer copies
**   the item's slots out under head_mu and decodes them after.
** - Sleeping: a thread about to sleep counts itself (get_sleepers,
**   put_sleepers, joiners) under wait_mu and re-checks its predicate before
**   waiting; the thread that changes the state (puts, gets, done, shut)
**   does so first and then reads the count. Both sides use
**   sequentially consistent operations, so either the sleeper sees the
**   change or the changer sees the sleeper and signals under wait_mu, which
**   the sleeper holds from its check until it waits. A signal is sent only
**   while more threads sleep than signals are on their way (get_signals,
**   put_signals), so a busy queue makes no system calls.
** - Shutdown sets `shut` under tail_mu: once a consumer sees it, every item
**   that will ever be published is already published.
** - Lock order: tail_mu, then head_mu (shutdown only). wait_mu is never
**   held with either; inside wait_on it is followed by the waiter's mutex.
**   Nothing is pushed onto a Lua stack, allocated through Lua or raised,
**   and no Lua runs, while any of them is held: items are encoded before
**   put takes a lock and decoded after get released it, and discarded
**   items are cleared after every lock is released.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "queue.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define QUEUE_MT "threading.Queue"
#define SIMPLE_MT "threading.SimpleQueue"

#if !defined(SEG_SLOTS)
#define SEG_SLOTS 1024
#endif

typedef struct seg {
  _Atomic(struct seg *) next;
  tslot_t slots[SEG_SLOTS];
} seg_t;

/* the longest run fits in an empty segment */
typedef char seg_holds_a_run[SEG_SLOTS >= TSLOT_RUN_MAX ? 1 : -1];

typedef struct fifo {
  object_t obj;
  /* read by both ends on every call, written rarely: a spinning getter
  ** reads shut, every put reads get_sleepers, so nothing written per item
  ** may share their cache line */
  int simple;                /* SimpleQueue: no bound, tasks or shutdown */
  size_t maxsize;            /* 0: unbounded; constant */
  atomic_int shut;           /* written under tail_mu */
  atomic_int get_sleepers, put_sleepers, joiners;
  char pad0[64];
  /* the consumer end */
  pthread_mutex_t head_mu;
  seg_t *head;               /* (head_mu) */
  size_t head_idx;           /* (head_mu) next slot to take in head */
  size_t seen_puts;          /* (head_mu) puts as last read */
  atomic_size_t gets;        /* items taken; written under head_mu */
  atomic_size_t done;        /* tasks done (task_done, immediate shutdown); <= puts */
  char pad1[64];             /* keep the two ends on their own cache lines */
  /* the producer end */
  pthread_mutex_t tail_mu;
  seg_t *tail;               /* (tail_mu) */
  size_t tail_idx;           /* (tail_mu) next slot to fill in tail */
  char pad2[64];             /* consumers read puts: only its line moves */
  atomic_size_t puts;        /* items published; written under tail_mu */
  char pad3[64];
  /* sleeping */
  pthread_mutex_t wait_mu;
  pthread_cond_t get_cv, put_cv, join_cv;
  int get_signals, put_signals;   /* (wait_mu) */
} fifo_t;

static void fifo_destroy(object_t *o);
static int fifo_select_take(lua_State *L, object_t *o);
static int fifo_select_send(lua_State *L, object_t *o, int idx, const char *root);
static const select_ops_t fifo_select = { fifo_select_take, fifo_select_send };
static const object_type_t queue_type = { QUEUE_MT, fifo_destroy, NULL, &fifo_select };
static const object_type_t simple_type = { SIMPLE_MT, fifo_destroy, NULL, &fifo_select };

/* ------------------------------------------------------------ storage */

static seg_t *seg_new(void) {
  seg_t *s = (seg_t *)malloc(sizeof *s);
  if (s != NULL) atomic_init(&s->next, NULL);
  return s;
}

/* Is slot idx of s past the segment's last item? (an item is never nil) */
static int seg_done(const seg_t *s, size_t idx) {
  return idx == SEG_SLOTS || s->slots[idx].tag == TS_NIL;
}

/* Clear `n` items starting at slot `idx` of s, and free the chain. */
static void chain_free(seg_t *s, size_t idx, size_t n) {
  while (s != NULL) {
    seg_t *next = atomic_load(&s->next);
    for (; n > 0 && !seg_done(s, idx); n--) {
      size_t cells = (size_t)transfer_slot_cells(&s->slots[idx]);
      transfer_slot_clear(&s->slots[idx]);
      idx += cells;
    }
    free(s);
    s = next;
    idx = 0;
  }
}

static void fifo_destroy(object_t *o) {
  fifo_t *q = (fifo_t *)o;
  chain_free(q->head, q->head_idx, atomic_load(&q->puts) - atomic_load(&q->gets));
  pthread_mutex_destroy(&q->head_mu);
  pthread_mutex_destroy(&q->tail_mu);
  pthread_mutex_destroy(&q->wait_mu);
  pthread_cond_destroy(&q->get_cv);
  pthread_cond_destroy(&q->put_cv);
  pthread_cond_destroy(&q->join_cv);
  free(q);
}

static size_t fifo_count(fifo_t *q) {
  size_t gets = atomic_load(&q->gets), puts = atomic_load(&q->puts);
  return puts > gets ? puts - gets : 0;
}

static int fifo_has_room(fifo_t *q) {
  return q->maxsize == 0 || fifo_count(q) < q->maxsize;
}

/* Published items not yet taken? (a hint: another consumer may win them) */
static int maybe_items(fifo_t *q) {
  return atomic_load(&q->puts) != atomic_load(&q->gets);
}

static int items_or_shut(void *arg) {
  fifo_t *q = (fifo_t *)arg;
  return maybe_items(q) || atomic_load(&q->shut);
}

/* ------------------------------------------------------------ waking */

/* Wake one sleeper on cv unless enough signals are on their way. Called
** after the state change, with no lock held. */
static void wake_one(fifo_t *q, atomic_int *sleepers, int *signals, pthread_cond_t *cv) {
  if (atomic_load(sleepers) == 0) return;
  WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
  if (atomic_load(sleepers) > *signals) {
    (*signals)++;
    WAIT_CHECK(pthread_cond_signal(cv));
  }
  WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
}

/* After a wait_on (wait_mu held): one signal fewer on its way, never more
** than the sleepers left. */
static void signal_seen(int *signals, int sleepers) {
  if (*signals > 0) (*signals)--;
  if (*signals > sleepers) *signals = sleepers;
}

static deadline_t deadline_for(double tmo) {
  deadline_t dl;
  if (tmo >= 0) return wait_deadline_in(tmo);
  dl.forever = 1;
  dl.at.tv_sec = 0;
  dl.at.tv_nsec = 0;
  return dl;
}

/* ------------------------------------------------------------ put */

/* Publish the item (a run of `cells` slots) unless the queue is shut or
** full; never waits. */
static int fifo_try_push(fifo_t *q, const tslot_t *item, size_t cells) {
  size_t i;
  WAIT_CHECK(pthread_mutex_lock(&q->tail_mu));
  if (atomic_load_explicit(&q->shut, memory_order_relaxed)) {
    WAIT_CHECK(pthread_mutex_unlock(&q->tail_mu));
    return QR_SHUT;
  }
  if (!fifo_has_room(q)) {
    WAIT_CHECK(pthread_mutex_unlock(&q->tail_mu));
    return QR_FULL;
  }
  if (SEG_SLOTS - q->tail_idx < cells) {
    /* a run never straddles two segments */
    seg_t *n = seg_new();
    if (n == NULL) {
      WAIT_CHECK(pthread_mutex_unlock(&q->tail_mu));
      return QR_NOMEM;
    }
    if (q->tail_idx < SEG_SLOTS) q->tail->slots[q->tail_idx].tag = TS_NIL;   /* the end */
    atomic_store_explicit(&q->tail->next, n, memory_order_release);
    q->tail = n;
    q->tail_idx = 0;
  }
  i = q->tail_idx;
  q->tail_idx += cells;
  if (cells == 1) q->tail->slots[i] = *item;
  else memcpy(&q->tail->slots[i], item, cells * sizeof *item);
  /* publishes the slot; seq_cst also orders it before the read of
  ** get_sleepers in wake_one (see the top) */
  atomic_store(&q->puts, atomic_load_explicit(&q->puts, memory_order_relaxed) + 1);
  WAIT_CHECK(pthread_mutex_unlock(&q->tail_mu));
  wake_one(q, &q->get_sleepers, &q->get_signals, &q->get_cv);
  wait_notify_some(&q->obj, WATCH_TAKE, 1);
  return QR_OK;
}

/* Put the item (already encoded, a run of `cells` slots), waiting for room
** up to tmo seconds (< 0: forever) if block. On QR_OK the queue owns it. */
static int fifo_put(fifo_t *q, const tslot_t *item, size_t cells, int block,
                    double tmo) {
  deadline_t dl;
  int r = fifo_try_push(q, item, cells);
  if (r != QR_FULL || !block || tmo == 0) return r;
  dl = deadline_for(tmo);
  for (;;) {
    int w = WAIT_OK;
    WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
    atomic_fetch_add(&q->put_sleepers, 1);
    while (!fifo_has_room(q) && !atomic_load(&q->shut)) {
      w = wait_on(&q->obj, &q->wait_mu, &q->put_cv, &dl);
      signal_seen(&q->put_signals, atomic_load(&q->put_sleepers) - 1);
      if (w != WAIT_OK) break;
    }
    atomic_fetch_sub(&q->put_sleepers, 1);
    if (w == WAIT_CANCELLED) {
      /* pass on a wake-up this thread may have absorbed */
      if (fifo_has_room(q) && atomic_load(&q->put_sleepers) > q->put_signals) {
        q->put_signals++;
        WAIT_CHECK(pthread_cond_signal(&q->put_cv));
      }
      WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
      return QR_CANCEL;
    }
    WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
    r = fifo_try_push(q, item, cells);
    if (r != QR_FULL) return r;
    if (w == WAIT_TIMEOUT) return QR_FULL;
  }
}

/* ------------------------------------------------------------ get */

/* Take the next published item into out[0..TSLOT_RUN_MAX-1]; 0 if there
** is none. */
static int fifo_take(fifo_t *q, tslot_t *out) {
  seg_t *done = NULL;
  size_t gets, cells;
  WAIT_CHECK(pthread_mutex_lock(&q->head_mu));
  gets = atomic_load_explicit(&q->gets, memory_order_relaxed);
  if (gets == q->seen_puts) {
    q->seen_puts = atomic_load_explicit(&q->puts, memory_order_acquire);
    if (gets == q->seen_puts) {
      WAIT_CHECK(pthread_mutex_unlock(&q->head_mu));
      return 0;
    }
  }
  if (seg_done(q->head, q->head_idx)) {
    /* item `gets` is published, so its segment is linked (and this one's
    ** end marked) */
    done = q->head;
    q->head = atomic_load_explicit(&done->next, memory_order_acquire);
    q->head_idx = 0;
  }
  out[0] = q->head->slots[q->head_idx];
  cells = (size_t)transfer_slot_cells(&out[0]);
  if (cells > 1) memcpy(out + 1, &q->head->slots[q->head_idx + 1], (cells - 1) * sizeof *out);
  q->head_idx += cells;
  /* seq_cst where a producer may sleep for room: ordered before the read
  ** of put_sleepers in wake_one; an unbounded queue has no such sleeper */
  if (q->maxsize > 0) atomic_store(&q->gets, gets + 1);
  else atomic_store_explicit(&q->gets, gets + 1, memory_order_release);
  WAIT_CHECK(pthread_mutex_unlock(&q->head_mu));
  free(done);          /* every slot of it was taken; producers left it */
  if (q->maxsize > 0) wake_one(q, &q->put_sleepers, &q->put_signals, &q->put_cv);
  wait_notify_some(&q->obj, WATCH_ROOM, 1);
  return 1;
}

/* Take the next item into *out, waiting up to tmo seconds (< 0: forever)
** if block: QR_OK, QR_EMPTY, QR_SHUT or QR_CANCEL. */
static int fifo_get(fifo_t *q, int block, double tmo, tslot_t *out) {
  deadline_t dl;
  int shut;
  if (fifo_take(q, out)) return QR_OK;
  /* read shut before trying again: once it is set nothing more comes */
  shut = atomic_load(&q->shut);
  if (shut) return fifo_take(q, out) ? QR_OK : QR_SHUT;
  if (!block || tmo == 0) return QR_EMPTY;
  dl = deadline_for(tmo);
  if (queue_spin(items_or_shut, q) && fifo_take(q, out)) return QR_OK;
  for (;;) {
    int w = WAIT_OK;
    WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
    atomic_fetch_add(&q->get_sleepers, 1);
    while (!maybe_items(q) && !atomic_load(&q->shut)) {
      w = wait_on(&q->obj, &q->wait_mu, &q->get_cv, &dl);
      signal_seen(&q->get_signals, atomic_load(&q->get_sleepers) - 1);
      if (w != WAIT_OK) break;
    }
    atomic_fetch_sub(&q->get_sleepers, 1);
    if (w == WAIT_CANCELLED) {
      /* take nothing; pass on a wake-up this thread may have absorbed */
      if (maybe_items(q) && atomic_load(&q->get_sleepers) > q->get_signals) {
        q->get_signals++;
        WAIT_CHECK(pthread_cond_signal(&q->get_cv));
      }
      WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
      return QR_CANCEL;
    }
    WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
    shut = atomic_load(&q->shut);
    /* take even after a timeout: an item that arrived with it is ours */
    if (fifo_take(q, out)) return QR_OK;
    if (shut) return QR_SHUT;
    if (w == WAIT_TIMEOUT) return QR_EMPTY;
  }
}

/* ------------------------------------------------------- Lua methods */

static fifo_t *check_fifo(lua_State *L) {
  return (fifo_t *)queue_check_self(L);
}

/* Put the value at idx (of Lua type `type`, not nil): QR_OK, QR_FULL,
** QR_SHUT or QR_CANCEL; raises for a value that cannot be sent, and
** without memory. */
static int fifo_put_value(lua_State *L, fifo_t *q, int idx, int type, int block, double tmo,
                          const char *root) {
  tslot_t item[TSLOT_RUN_MAX];
  int r, cells;
  item[0].tag = TS_NIL;
  cells = transfer_slot_store_run(L, idx, type, item, root);
  r = fifo_put(q, item, (size_t)cells, block && !q->simple, tmo);
  if (r == QR_OK) return r;
  transfer_slot_clear(&item[0]);
  if (r != QR_FULL && r != QR_SHUT && r != QR_CANCEL) return luaL_error(L, "not enough memory");
  return r;
}

/* A task's call that may wait (task_calling) tries without waiting, and
** waits in its scheduler if it must. */
static int fifo_put_common(lua_State *L, fifo_t *q, int block, double tmo) {
  int type = lua_type(L, 2), r;
  int task = block && tmo != 0 && !q->simple && task_calling(L);
  luaL_argcheck(L, type > LUA_TNIL, 2, "item must not be nil");
  if (block && !q->simple && !task) wait_check_cancel(L);
  r = fifo_put_value(L, q, 2, type, block && !task, tmo, "item");
  switch (r) {
    case QR_OK:
      lua_pushboolean(L, 1);
      return 1;
    case QR_FULL:
      if (task) return task_defer(L, TASK_PUT, NULL, tmo, 2);
      return queue_push_fail(L, "full");
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return wait_raise_cancel(L);
  }
}

static int fifo_get_common(lua_State *L, fifo_t *q, int block, double tmo, int method) {
  tslot_t item[TSLOT_RUN_MAX];
  int r, task = method && block && tmo != 0 && task_calling(L);
  if (block && !task) wait_check_cancel(L);
  r = fifo_get(q, block && !task, tmo, item);
  switch (r) {
    case QR_OK:
      transfer_slot_take(L, item);
      return 1;
    case QR_EMPTY:
      if (task) return task_defer(L, TASK_GET, NULL, tmo, 0);
      return queue_push_fail(L, "empty");
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return wait_raise_cancel(L);
  }
}

/* threading.select's get: the item, or nil, "shutdown" */
static int fifo_select_take(lua_State *L, object_t *o) {
  tslot_t item[TSLOT_RUN_MAX];
  switch (fifo_get((fifo_t *)o, 0, -1, item)) {
    case QR_OK:
      transfer_slot_take(L, item);
      return 1;
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return -1;
  }
}

/* threading.select's send case: true, or nil, "shutdown" */
static int fifo_select_send(lua_State *L, object_t *o, int idx, const char *root) {
  switch (fifo_put_value(L, (fifo_t *)o, idx, lua_type(L, idx), 0, -1, root)) {
    case QR_OK:
      lua_pushboolean(L, 1);
      return 1;
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return -1;
  }
}

/* q:put(item[, block[, timeout]]) or q:put(item, timeout)
**   -> true | nil, "full" | nil, "shutdown"
** A SimpleQueue never waits: block and timeout are checked and ignored. */
static int fifo_put_m(lua_State *L) {
  fifo_t *q = check_fifo(L);
  double tmo;
  int block = queue_block_args(L, 3, &tmo);
  return fifo_put_common(L, q, block, tmo);
}

/* q:put_nowait(item) */
static int fifo_put_nowait(lua_State *L) {
  return fifo_put_common(L, check_fifo(L), 0, -1);
}

/* q:get([block[, timeout]]) or q:get(timeout)
**   -> item | nil, "empty" | nil, "shutdown" */
static int fifo_get_m(lua_State *L) {
  fifo_t *q = check_fifo(L);
  double tmo;
  int block = queue_block_args(L, 2, &tmo);
  return fifo_get_common(L, q, block, tmo, 1);
}

/* q:get_nowait() */
static int fifo_get_nowait(lua_State *L) {
  return fifo_get_common(L, check_fifo(L), 0, -1, 1);
}

/* q:qsize() -> items queued (already stale when it returns) */
static int fifo_qsize(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)fifo_count(check_fifo(L)));
  return 1;
}

static int fifo_empty(lua_State *L) {
  lua_pushboolean(L, fifo_count(check_fifo(L)) == 0);
  return 1;
}

static int fifo_full(lua_State *L) {
  lua_pushboolean(L, !fifo_has_room(check_fifo(L)));
  return 1;
}

/* q:maxsize() -> the bound given at creation, 0 for none */
static int fifo_maxsize(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_fifo(L)->maxsize);
  return 1;
}

/* Items put and not yet matched by task_done. done is read first: it
** never passes puts, which only grows. */
static size_t unfinished(fifo_t *q) {
  size_t done = atomic_load(&q->done);
  return atomic_load(&q->puts) - done;
}

/* Count n tasks as done (at most as many as are unfinished); wakes join
** when none is left. Returns 0 if there was no unfinished task at all. */
static int tasks_done(fifo_t *q, size_t n) {
  size_t done = atomic_load(&q->done), puts, now, left;
  do {
    puts = atomic_load(&q->puts);
    if (puts == done) return 0;
    now = puts - done > n ? done + n : puts;
  } while (!atomic_compare_exchange_weak(&q->done, &done, now));
  left = puts - now;         /* puts may have grown since: then join waits on */
  if (left == 0 && atomic_load(&q->joiners) > 0) {
    WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
    WAIT_CHECK(pthread_cond_broadcast(&q->join_cv));
    WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
  }
  if (left == 0) wait_notify_change(&q->obj);
  return 1;
}

/* q:task_done(): one item got earlier is processed. */
static int fifo_task_done(lua_State *L) {
  fifo_t *q = check_fifo(L);
  if (!tasks_done(q, 1)) return luaL_error(L, "task_done() called too many times");
  return 0;
}

/* q:join([timeout]) -> true | nil, "timeout": every item put is done. */
static int fifo_join(lua_State *L) {
  fifo_t *q = check_fifo(L);
  deadline_t dl;
  int w = WAIT_OK;
  double tmo = lua_isnoneornil(L, 2) ? -1 : wait_check_seconds(L, 2);
  wait_check_cancel(L);
  if (unfinished(q) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (tmo != 0 && task_calling(L)) {  /* a task's join waits in its scheduler */
    return task_defer_done(L, WATCH_DONE, tmo);
  }
  dl = deadline_for(tmo);
  WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
  atomic_fetch_add(&q->joiners, 1);
  while (unfinished(q) > 0) {
    w = wait_on(&q->obj, &q->wait_mu, &q->join_cv, &dl);
    if (w != WAIT_OK) break;
  }
  atomic_fetch_sub(&q->joiners, 1);
  if (unfinished(q) == 0 && w != WAIT_CANCELLED) w = WAIT_OK;
  WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
  if (w == WAIT_CANCELLED) return wait_raise_cancel(L);
  if (w != WAIT_OK) return queue_push_fail(L, "timeout");
  lua_pushboolean(L, 1);
  return 1;
}

/* q:shutdown([immediate]): refuse puts and wake every sleeper; with
** immediate, also discard the items and count them as done. */
static int fifo_shutdown(lua_State *L) {
  fifo_t *q = check_fifo(L);
  int immediate = lua_toboolean(L, 2);
  seg_t *fresh = NULL, *old = NULL;
  size_t old_idx = 0, n = 0;
  if (immediate && (fresh = seg_new()) == NULL) return luaL_error(L, "not enough memory");
  WAIT_CHECK(pthread_mutex_lock(&q->tail_mu));
  atomic_store(&q->shut, 1);
  if (immediate) {
    /* detach every item; consumers start over on an empty segment */
    size_t puts = atomic_load(&q->puts);
    WAIT_CHECK(pthread_mutex_lock(&q->head_mu));
    old = q->head;
    old_idx = q->head_idx;
    n = puts - atomic_load(&q->gets);
    q->head = q->tail = fresh;
    q->head_idx = q->tail_idx = 0;
    q->seen_puts = puts;
    atomic_store(&q->gets, puts);
    WAIT_CHECK(pthread_mutex_unlock(&q->head_mu));
  }
  WAIT_CHECK(pthread_mutex_unlock(&q->tail_mu));
  if (n > 0) (void)tasks_done(q, n);
  WAIT_CHECK(pthread_mutex_lock(&q->wait_mu));
  q->get_signals = atomic_load(&q->get_sleepers);
  q->put_signals = atomic_load(&q->put_sleepers);
  WAIT_CHECK(pthread_cond_broadcast(&q->get_cv));
  WAIT_CHECK(pthread_cond_broadcast(&q->put_cv));
  WAIT_CHECK(pthread_mutex_unlock(&q->wait_mu));
  wait_notify_change(&q->obj);
  chain_free(old, old_idx, n);
  return 0;
}

/* The iterator of q:iter(): upvalue 1 the handle, 2 the timeout or nil. */
static int fifo_iter_next(lua_State *L) {
  handle_t *h = (handle_t *)lua_touserdata(L, lua_upvalueindex(1));
  double tmo = lua_isnil(L, lua_upvalueindex(2)) ? -1 : lua_tonumber(L, lua_upvalueindex(2));
  if (h->obj == NULL) return queue_iter_released(L);
  /* a task's get tries without waiting, and waits in its scheduler */
  if (tmo != 0 && task_calling(L)) {
    if (fifo_get_common(L, (fifo_t *)h->obj, 0, 0, 0) == 1) return 1;
    return queue_iter_wait(L, tmo);
  }
  if (fifo_get_common(L, (fifo_t *)h->obj, 1, tmo, 0) == 1) return 1;
  lua_pushnil(L);
  return 1;
}

/* q:iter([timeout]) -> an iterator for a generic for: it gets items until
** the queue is shut down and drained, or (with a timeout) one get times
** out. A SimpleQueue has no shutdown: without a timeout it never ends. */
static int fifo_iter(lua_State *L) {
  (void)check_fifo(L);
  if (!lua_isnoneornil(L, 2)) (void)wait_check_seconds(L, 2);
  lua_settop(L, 2);
  lua_pushcclosure(L, fifo_iter_next, 2);
  return 1;
}

/* ------------------------------------------------------- constructors */

static int fifo_new(lua_State *L, const object_type_t *type, size_t maxsize) {
  handle_t *h = object_newhandle(L, type);
  fifo_t *q = (fifo_t *)calloc(1, sizeof *q);
  if (q == NULL) return luaL_error(L, "not enough memory");
  q->head = q->tail = seg_new();
  if (q->head == NULL) {
    free(q);
    return luaL_error(L, "not enough memory");
  }
  object_init(&q->obj, type);
  q->simple = type == &simple_type;
  q->maxsize = maxsize;
  wait_mutex_init(&q->head_mu);
  wait_mutex_init(&q->tail_mu);
  wait_mutex_init(&q->wait_mu);
  wait_cond_init(&q->get_cv);
  wait_cond_init(&q->put_cv);
  wait_cond_init(&q->join_cv);
  atomic_init(&q->gets, 0);
  atomic_init(&q->puts, 0);
  atomic_init(&q->shut, 0);
  atomic_init(&q->done, 0);
  atomic_init(&q->get_sleepers, 0);
  atomic_init(&q->put_sleepers, 0);
  atomic_init(&q->joiners, 0);
  object_sethandle(L, h, &q->obj);
  return 1;
}

/* Queue([maxsize]) */
static int fifo_new_queue(lua_State *L) {
  return fifo_new(L, &queue_type, queue_maxsize_arg(L, 1));
}

/* SimpleQueue(): takes no arguments, as in Python. */
static int fifo_new_simple(lua_State *L) {
  luaL_argcheck(L, lua_isnone(L, 1), 1, "no arguments expected");
  return fifo_new(L, &simple_type, 0);
}

static const luaL_Reg queue_methods[] = {
  {"put", fifo_put_m},
  {"put_nowait", fifo_put_nowait},
  {"get", fifo_get_m},
  {"get_nowait", fifo_get_nowait},
  {"qsize", fifo_qsize},
  {"empty", fifo_empty},
  {"full", fifo_full},
  {"maxsize", fifo_maxsize},
  {"task_done", fifo_task_done},
  {"join", fifo_join},
  {"shutdown", fifo_shutdown},
  {"iter", fifo_iter},
  {NULL, NULL}
};

/* Python's SimpleQueue: no bound, no task tracking, no shutdown. */
static const luaL_Reg simple_methods[] = {
  {"put", fifo_put_m},
  {"put_nowait", fifo_put_nowait},
  {"get", fifo_get_m},
  {"get_nowait", fifo_get_nowait},
  {"qsize", fifo_qsize},
  {"empty", fifo_empty},
  {"iter", fifo_iter},
  {NULL, NULL}
};

void fifo_open(lua_State *L) {
  object_newmetatable(L, &queue_type, queue_methods, NULL);
  object_newmetatable(L, &simple_type, simple_methods, NULL);
  lua_pushcfunction(L, fifo_new_queue);
  lua_setfield(L, -2, "Queue");
  lua_pushcfunction(L, fifo_new_simple);
  lua_setfield(L, -2, "SimpleQueue");
}
