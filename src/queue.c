/*
** queue.c: threading.LifoQueue and threading.PriorityQueue, and the helpers
** every queue shares (queue.h). Queue and SimpleQueue, first in first out,
** are in fifo.c, where producers and consumers take separate locks; a
** stack or a heap has one end, so here one mutex guards everything.
**
** One struct serves both kinds. Invariants:
** - q->mu guards every field marked (mu). Nothing is pushed onto a Lua
**   stack, allocated through Lua or raised, and no Lua runs, while it is
**   held: an item is stored into a slot (encoded) before the mutex is
**   taken, and pushed (decoded) after it is released. Slots leaving the
**   queue in bulk (immediate shutdown, destroy) are cleared with no lock
**   held, since releasing a module object may take that object's locks.
** - Items are transfer slots: numbers, booleans, short strings and module
**   objects live inline, so a LifoQueue put/get allocates nothing once its
**   array has grown. A PriorityQueue keeps a binary heap of entries that add
**   the key and an insertion number (ties come out in insertion order).
** - Wake-ups cost a syscall only when someone sleeps: sleepers count
**   themselves (getters, putters, joiners) and a producer signals only while
**   more getters sleep than signals are in flight (get_signals). Every
**   return from wait_on consumes one in-flight signal, and the count never
**   exceeds the sleepers, so it can only undercount (an extra signal), never
**   leave an item beside a sleeping getter.
** - Lock order: q->mu, then the calling thread's waiter (inside wait_on).
*/
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "object.h"
#include "queue.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define LIFO_MT "threading.LifoQueue"
#define PRIO_MT "threading.PriorityQueue"

#define RING_MIN 16          /* first allocation, in slots */
#define RING_SHRINK 1024     /* never shrink below this many slots */

enum { Q_LIFO, Q_PRIO };

/* PriorityQueue keys: a number, the item's own inline string, or a copy. */
enum { PK_INT, PK_NUM, PK_ITEMSTR, PK_STR };

typedef struct pentry {
  tslot_t item;
  uint64_t seq;              /* insertion order, for equal keys */
  size_t klen;               /* PK_STR */
  union { lua_Integer i; lua_Number n; char *s; } k;
  unsigned char ktag;
} pentry_t;

typedef struct queue {
  object_t obj;
  int kind;
  size_t maxsize;            /* 0: unbounded; constant */
  pthread_mutex_t mu;
  pthread_cond_t not_empty;  /* getters sleep here */
  pthread_cond_t not_full;   /* putters sleep here */
  pthread_cond_t all_done;   /* join sleeps here */
  size_t count;              /* (mu) items held */
  atomic_size_t visible;     /* count, mirrored for getters that spin */
  size_t head, cap;          /* (mu) ring: cap is 0 or a power of two */
  tslot_t *ring;             /* (mu) LifoQueue */
  pentry_t *heap;            /* (mu) PriorityQueue, cap entries */
  uint64_t seq;              /* (mu) next insertion number */
  size_t unfinished;         /* (mu) puts not yet matched by task_done */
  int shut;                  /* (mu) shutdown() was called */
  int getters, get_signals;  /* (mu) sleeping getters, signals in flight */
  int putters, put_signals;  /* (mu) the same for putters */
  int joiners;               /* (mu) threads in join() */
} queue_t;

static void queue_destroy(object_t *o);
static int queue_select_take(lua_State *L, object_t *o);
static int queue_select_send(lua_State *L, object_t *o, int idx, const char *root);
static const select_ops_t queue_select = { queue_select_take, queue_select_send };
static const object_type_t lifo_type = { LIFO_MT, queue_destroy, NULL, &queue_select };
static const object_type_t prio_type = { PRIO_MT, queue_destroy, NULL, &queue_select };

/* ------------------------------------------------------------ storage */

static void pentry_clear(pentry_t *e) {
  transfer_slot_clear(&e->item);
  if (e->ktag == PK_STR) free(e->k.s);
  e->ktag = PK_INT;
}

/* Detach every item (mu held); the caller clears them with no lock held. */
typedef struct spill {
  tslot_t *ring;
  pentry_t *heap;
  size_t head, count, cap;
} spill_t;

static spill_t queue_spill(queue_t *q) {
  spill_t s;
  s.ring = q->ring;
  s.heap = q->heap;
  s.head = q->head;
  s.count = q->count;
  s.cap = q->cap;
  q->ring = NULL;
  q->heap = NULL;
  q->head = q->count = q->cap = 0;
  atomic_store_explicit(&q->visible, 0, memory_order_relaxed);
  return s;
}

static void spill_clear(spill_t *s) {
  size_t i;
  if (s->heap != NULL) {
    for (i = 0; i < s->count; i++) pentry_clear(&s->heap[i]);
  } else {
    for (i = 0; i < s->count; i++)
      transfer_slot_clear(&s->ring[(s->head + i) & (s->cap - 1)]);
  }
  free(s->ring);
  free(s->heap);
}

static void queue_destroy(object_t *o) {
  queue_t *q = (queue_t *)o;
  spill_t s = queue_spill(q);
  spill_clear(&s);
  pthread_mutex_destroy(&q->mu);
  pthread_cond_destroy(&q->not_empty);
  pthread_cond_destroy(&q->not_full);
  pthread_cond_destroy(&q->all_done);
  free(q);
}

/* Move the ring into `cap` slots (a power of two >= count), in order. */
static int ring_resize(queue_t *q, size_t cap) {
  tslot_t *r = (tslot_t *)malloc(cap * sizeof *r);
  size_t i;
  if (r == NULL) return 0;
  for (i = 0; i < q->count; i++) r[i] = q->ring[(q->head + i) & (q->cap - 1)];
  free(q->ring);
  q->ring = r;
  q->head = 0;
  q->cap = cap;
  return 1;
}

/* Halve a ring that has become mostly empty, so memory follows the load. */
static void ring_maybe_shrink(queue_t *q) {
  if (q->cap > RING_SHRINK && q->count < q->cap / 8) (void)ring_resize(q, q->cap / 2);
}

/* Two number keys as Lua's < and == see them (exactly, also an integer
** against a float): -1, 0 or 1. NaN keys are refused by put. */
static int key_cmp_numbers(const pentry_t *a, const pentry_t *b) {
  if (a->ktag == PK_INT && b->ktag == PK_INT)
    return a->k.i < b->k.i ? -1 : a->k.i > b->k.i;
#if COMPAT_INTEGERS
  if (a->ktag == PK_INT) return transfer_cmp_int_num(a->k.i, b->k.n);
  if (b->ktag == PK_INT) return -transfer_cmp_int_num(b->k.i, a->k.n);
#endif
  return a->k.n < b->k.n ? -1 : a->k.n > b->k.n;
}

/* Does a come out before b? Numbers before strings, then by value; equal
** keys by insertion. */
static int pentry_less(const pentry_t *a, const pentry_t *b) {
  int astr = a->ktag >= PK_ITEMSTR, bstr = b->ktag >= PK_ITEMSTR;
  if (astr != bstr) return bstr;
  if (!astr) {
    int c = key_cmp_numbers(a, b);
    if (c != 0) return c < 0;
  } else {
    const char *sa = a->ktag == PK_ITEMSTR ? a->item.str.s : a->k.s;
    const char *sb = b->ktag == PK_ITEMSTR ? b->item.str.s : b->k.s;
    size_t la = a->ktag == PK_ITEMSTR ? a->item.str.len : a->klen;
    size_t lb = b->ktag == PK_ITEMSTR ? b->item.str.len : b->klen;
    int c = memcmp(sa, sb, la < lb ? la : lb);
    if (c != 0) return c < 0;
    if (la != lb) return la < lb;
  }
  return a->seq < b->seq;
}

static void heap_push(queue_t *q, const pentry_t *e) {
  size_t i = q->count;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!pentry_less(e, &q->heap[parent])) break;
    q->heap[i] = q->heap[parent];
    i = parent;
  }
  q->heap[i] = *e;
}

static void heap_pop(queue_t *q, pentry_t *out) {
  size_t n = q->count - 1, i = 0;
  pentry_t last = q->heap[n];
  *out = q->heap[0];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && pentry_less(&q->heap[child + 1], &q->heap[child])) child++;
    if (!pentry_less(&q->heap[child], &last)) break;
    q->heap[i] = q->heap[child];
    i = child;
  }
  if (n > 0) q->heap[i] = last;
}

/* Make room for one more item (mu held); 0 when out of memory. */
static int queue_reserve(queue_t *q) {
  if (q->count < q->cap) return 1;
  if (q->kind == Q_PRIO) {
    size_t cap = q->cap ? q->cap * 2 : RING_MIN;
    pentry_t *h = (pentry_t *)realloc(q->heap, cap * sizeof *h);
    if (h == NULL) return 0;
    q->heap = h;
    q->cap = cap;
    return 1;
  }
  {
    /* realloc can grow in place (mremap for big rings): no copy, no peak
    ** of old plus new. The ring is full, so the part that wrapped around,
    ** [0, head), moves to just after the old end. */
    size_t cap = q->cap ? q->cap * 2 : RING_MIN;
    tslot_t *r = (tslot_t *)realloc(q->ring, cap * sizeof *r);
    if (r == NULL) return 0;
    if (q->head > 0) memcpy(r + q->cap, r, q->head * sizeof *r);
    q->ring = r;
    q->cap = cap;
    return 1;
  }
}

/* ------------------------------------------------------------ waiting */

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int many_cpus(void) {
  static atomic_int ncpu;
  int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
  if (n == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 0 ? (int)c : 1;
    atomic_store_explicit(&ncpu, n, memory_order_relaxed);
  }
  return n > 1;
}

/*
** Why spin: a producer on another CPU is usually about to put, and a getter
** that sleeps costs both sides a futex call and itself a scheduler wake-up
** (W5's round trip: about 13 us sleeping, well under 1 us watching). Why
** yield after SPIN_PAUSE_US: when other processes keep a CPU busy, the
** producer may be waiting for the very CPU this getter spins on; yielding
** lets it run (measured with such a process running: W5 25-50 us spinning
** with pauses only, 6-9 us yielding after 2 us; Python 33-40 us). A budget
** that shrank after failed watches was tried too, and did worse than a
** fixed watch.
*/
#define SPIN_PAUSE_US 2

int queue_spin(int (*ready)(void *), void *arg) {
  double start, until;
  int i = 0;
  if (!many_cpus()) return 0;
  start = wait_now();
  until = start + QUEUE_SPIN_US * 1e-6;
  for (;;) {
    if (ready(arg)) return 1;
    if ((++i & 7) == 0) {
      double now = wait_now();
      if (now > until) return 0;
      if (now > start + SPIN_PAUSE_US * 1e-6) sched_yield();
    }
    cpu_relax();
  }
}

/* The deadline of a blocking call, computed on its first wait only, so
** that the uncontended path never reads the clock. tmo < 0: forever. */
typedef struct lazy_deadline {
  double tmo;
  int set;
  deadline_t dl;
} lazy_deadline;

static int lazy_wait(queue_t *q, pthread_cond_t *cv, lazy_deadline *ld) {
  if (!ld->set) {
    ld->set = 1;
    if (ld->tmo < 0) {
      ld->dl.forever = 1;
      ld->dl.at.tv_sec = 0;
      ld->dl.at.tv_nsec = 0;
    } else {
      ld->dl = wait_deadline_in(ld->tmo);
    }
  }
  return wait_on(&q->obj, &q->mu, cv, &ld->dl);
}

static int has_items(void *arg) {
  return atomic_load_explicit(&((queue_t *)arg)->visible, memory_order_relaxed) > 0;
}

/* Watch an empty queue for a moment before sleeping (see queue_spin).
** Called and returns with mu held; the caller re-checks its predicate. */
static void spin_for_item(queue_t *q) {
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  (void)queue_spin(has_items, q);
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
}

/* One item in, one sleeping getter woken if none is on its way (mu held). */
static void wake_getter(queue_t *q) {
  if (q->getters > q->get_signals) {
    q->get_signals++;
    WAIT_CHECK(pthread_cond_signal(&q->not_empty));
  }
}

static void wake_putter(queue_t *q) {
  if (q->putters > q->put_signals) {
    q->put_signals++;
    WAIT_CHECK(pthread_cond_signal(&q->not_full));
  }
}

static int queue_has_room(const queue_t *q) {
  return q->maxsize == 0 || q->count < q->maxsize;
}

/* Put *e (its item already encoded) into q. On QR_OK the queue owns it. */
static int queue_put_entry(queue_t *q, pentry_t *e, int block, double tmo) {
  int r = WAIT_OK;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  if (q->shut) goto shut;
  if (!queue_has_room(q)) {
    lazy_deadline ld;
    if (!block || tmo == 0) goto full;
    ld.tmo = tmo;
    ld.set = 0;
    q->putters++;
    while (!queue_has_room(q) && !q->shut) {
      r = lazy_wait(q, &q->not_full, &ld);
      if (q->put_signals > 0) q->put_signals--;
      if (r != WAIT_OK) break;
    }
    q->putters--;
    if (q->put_signals > q->putters) q->put_signals = q->putters;
    if (r == WAIT_CANCELLED) {
      /* pass on a wake-up this thread may have absorbed */
      if (queue_has_room(q) || q->shut) wake_putter(q);
      WAIT_CHECK(pthread_mutex_unlock(&q->mu));
      return QR_CANCEL;
    }
    if (q->shut) goto shut;
    if (!queue_has_room(q)) goto full;
  }
  if (!queue_reserve(q)) {
    WAIT_CHECK(pthread_mutex_unlock(&q->mu));
    return QR_NOMEM;
  }
  if (q->kind == Q_PRIO) {
    e->seq = q->seq++;
    heap_push(q, e);
  } else {
    q->ring[(q->head + q->count) & (q->cap - 1)] = e->item;
  }
  q->count++;
  atomic_store_explicit(&q->visible, q->count, memory_order_relaxed);
  q->unfinished++;
  wake_getter(q);
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  wait_notify_some(&q->obj, WATCH_TAKE, 1);
  return QR_OK;
full:
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  return QR_FULL;
shut:
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  return QR_SHUT;
}

/* Take the next item into *out (which then owns it). */
static int queue_get_item(queue_t *q, int block, double tmo, tslot_t *out,
                          char **key) {
  int r = WAIT_OK;
  *key = NULL;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  if (q->count == 0) {
    lazy_deadline ld;
    if (q->shut) goto shut;
    if (!block || tmo == 0) goto empty;
    spin_for_item(q);
    ld.tmo = tmo;
    ld.set = 0;
    q->getters++;
    while (q->count == 0 && !q->shut) {
      r = lazy_wait(q, &q->not_empty, &ld);
      if (q->get_signals > 0) q->get_signals--;
      if (r != WAIT_OK) break;
    }
    q->getters--;
    if (q->get_signals > q->getters) q->get_signals = q->getters;
    if (r == WAIT_CANCELLED) {
      if (q->count > 0) wake_getter(q);
      WAIT_CHECK(pthread_mutex_unlock(&q->mu));
      return QR_CANCEL;
    }
    if (q->count == 0) {
      if (q->shut) goto shut;
      goto empty;
    }
  }
  switch (q->kind) {
    case Q_PRIO: {
      pentry_t e;
      heap_pop(q, &e);
      *out = e.item;
      if (e.ktag == PK_STR) *key = e.k.s;    /* freed by the caller */
      break;
    }
    default:
      *out = q->ring[(q->head + q->count - 1) & (q->cap - 1)];
      break;
  }
  q->count--;
  atomic_store_explicit(&q->visible, q->count, memory_order_relaxed);
  if (q->kind != Q_PRIO) ring_maybe_shrink(q);
  wake_putter(q);
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  wait_notify_some(&q->obj, WATCH_ROOM, 1);
  return QR_OK;
empty:
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  return QR_EMPTY;
shut:
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  return QR_SHUT;
}

/* -------------------------------------------------------- Lua helpers */

/* Methods are shared between the types of a file: the type a method
** belongs to is its second upvalue (object_newmetatable), and the live
** handle of that type is recognised by its type field, with no Lua call;
** any other self goes through its metatable. The type named in an error is
** the method's own. */
void *queue_check_self(lua_State *L) {
  handle_t *h = object_handle_fast(L, 1);
  const char *name;
  if (h != NULL && h->obj != NULL &&
      (const void *)h->type == lua_touserdata(L, lua_upvalueindex(2)))
    return h->obj;
  h = (handle_t *)lua_touserdata(L, 1);
  if (h != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
    if (same) {
      if (h->obj == NULL) luaL_argerror(L, 1, "handle already released");
      return h->obj;
    }
  }
  lua_getfield(L, lua_upvalueindex(1), "__name");
  name = lua_tostring(L, -1);   /* stays alive in the metatable */
  lua_pop(L, 1);
  object_typeerror(L, 1, name != NULL ? name : "threading queue");
  return NULL;
}

static queue_t *check_queue(lua_State *L) {
  return (queue_t *)queue_check_self(L);
}

int queue_block_args(lua_State *L, int idx, double *tmo) {
  *tmo = -1;
  if (lua_gettop(L) < idx) return 1;     /* the common call: no arguments */
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *tmo = wait_check_seconds(L, idx);
    return 1;
  }
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TBOOLEAN);
    if (!lua_toboolean(L, idx)) {
      if (!lua_isnoneornil(L, idx + 1)) (void)luaL_checknumber(L, idx + 1);
      return 0;
    }
  }
  if (!lua_isnoneornil(L, idx + 1)) *tmo = wait_check_seconds(L, idx + 1);
  return 1;
}

int queue_push_fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

int queue_iter_released(lua_State *L) {
  return luaL_error(L, "cannot iterate: the queue's handle was already released");
}

int queue_iter_wait(lua_State *L, double tmo) {
  if (strcmp(lua_tostring(L, -1), "empty") != 0) {   /* shut down */
    lua_pushnil(L);
    return 1;
  }
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));       /* self: the queue's handle */
  if (!lua_getmetatable(L, 1)) return luaL_error(L, "cannot iterate: not a queue");
  lua_getfield(L, 2, "methods");
  lua_getfield(L, 3, "get");
  return task_defer_at(L, TASK_ITER, 4, tmo);
}

/* A bad item for a PriorityQueue: a bad-argument error of put's, or, for
** the item of a select's send case (root: where it was), of select's. */
static int prio_refuse(lua_State *L, int idx, const char *root, const char *msg) {
  if (root == NULL) return luaL_argerror(L, idx, msg);
  return luaL_error(L, "bad argument #1 to 'select' (%s: %s)", root, msg);
}

/* Check the PriorityQueue key of the item at idx and fill e's key from it,
** all but a string's copy (PK_STR with k.s NULL: see prio_key_copy). Pushes
** the key. Raises a bad-argument error when the item has no usable key
** (root: as for prio_refuse). */
static void prio_key(lua_State *L, int idx, pentry_t *e, const char *root) {
  int t = lua_type(L, idx);
  if (t == LUA_TTABLE) {
    lua_rawgeti(L, idx, 1);
    t = lua_type(L, -1);
    if (t != LUA_TNUMBER && t != LUA_TSTRING)
      prio_refuse(L, idx, root, lua_pushfstring(L,
                  "priority expected at item[1] (number or string), got %s",
                  luaL_typename(L, -1)));
  } else if (t == LUA_TNUMBER || t == LUA_TSTRING) {
    lua_pushvalue(L, idx);
  } else {
    prio_refuse(L, idx, root, lua_pushfstring(L,
                "number, string or table with a priority at [1] expected, got %s",
                luaL_typename(L, idx)));
  }
  if (t == LUA_TNUMBER) {
    if (compat_isinteger(L, -1)) {
      e->ktag = PK_INT;
      e->k.i = lua_tointeger(L, -1);
    } else {
      e->ktag = PK_NUM;
      e->k.n = lua_tonumber(L, -1);
      if (e->k.n != e->k.n) prio_refuse(L, idx, root, "priority is NaN");
    }
  } else {
    /* a short string item is its own key: its slot keeps the bytes */
    e->ktag = lua_type(L, idx) == LUA_TSTRING && compat_rawlen(L, idx) <= TSLOT_SHORT
                  ? PK_ITEMSTR : PK_STR;
    e->k.s = NULL;
  }
}

/* Copy a PK_STR key (at the top of the stack) once the item is stored;
** 0 when out of memory. */
static int prio_key_copy(lua_State *L, pentry_t *e) {
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  e->k.s = (char *)malloc(len ? len : 1);
  if (e->k.s == NULL) return 0;
  memcpy(e->k.s, s, len);
  e->klen = len;
  return 1;
}

/* Put the value at idx (not nil): QR_OK, QR_FULL, QR_SHUT or QR_CANCEL;
** raises for a value that cannot be sent (root: as for prio_refuse, and
** NULL names it "item" in a refused transfer), and without memory. Leaves
** the stack as it found it. */
static int queue_put_value(lua_State *L, queue_t *q, int idx, int block, double tmo,
                           const char *root) {
  pentry_t e;
  int r, top = lua_gettop(L);
  e.ktag = PK_INT;
  if (q->kind == Q_PRIO) prio_key(L, idx, &e, root);
  if (block) wait_check_cancel(L);
  /* nothing is allocated before the item is stored: a refusal leaks nothing */
  e.item.tag = TS_NIL;
  transfer_slot_store(L, idx, &e.item, root != NULL ? root : "item");
  if (e.ktag == PK_STR && !prio_key_copy(L, &e)) {
    transfer_slot_clear(&e.item);
    return luaL_error(L, "not enough memory");
  }
  lua_settop(L, top);
  r = queue_put_entry(q, &e, block, tmo);
  if (r == QR_OK) return r;
  pentry_clear(&e);
  if (r != QR_FULL && r != QR_SHUT && r != QR_CANCEL) return luaL_error(L, "not enough memory");
  return r;
}

/* A task's call that may wait (task_calling) tries without waiting, and
** waits in its scheduler if it must. */
static int queue_put_common(lua_State *L, queue_t *q, int block, double tmo) {
  int task = block && tmo != 0 && task_calling(L);
  luaL_argcheck(L, !lua_isnoneornil(L, 2), 2, "item must not be nil");
  switch (queue_put_value(L, q, 2, block && !task, tmo, NULL)) {
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

/* threading.select's send case: true, or nil, "shutdown" */
static int queue_select_send(lua_State *L, object_t *o, int idx, const char *root) {
  switch (queue_put_value(L, (queue_t *)o, idx, 0, -1, root)) {
    case QR_OK:
      lua_pushboolean(L, 1);
      return 1;
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return -1;
  }
}

/* threading.select's get: the item, or nil, "shutdown" */
static int queue_select_take(lua_State *L, object_t *o) {
  tslot_t item;
  char *key;
  switch (queue_get_item((queue_t *)o, 0, -1, &item, &key)) {
    case QR_OK:
      free(key);
      transfer_slot_take(L, &item);
      return 1;
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return -1;
  }
}

/* The next item onto L (1 result) or nil plus the reason (2 results). */
static int queue_get_common(lua_State *L, queue_t *q, int block, double tmo, int method) {
  tslot_t item;
  char *key;
  int r, task = method && block && tmo != 0 && task_calling(L);
  if (block && !task) wait_check_cancel(L);
  r = queue_get_item(q, block && !task, tmo, &item, &key);
  switch (r) {
    case QR_OK:
      free(key);
      transfer_slot_take(L, &item);
      return 1;
    case QR_EMPTY:
      if (task) return task_defer(L, TASK_GET, NULL, tmo, 0);
      return queue_push_fail(L, "empty");
    case QR_SHUT: return queue_push_fail(L, "shutdown");
    default: return wait_raise_cancel(L);
  }
}

/* ------------------------------------------------------------ methods */

/* q:put(item[, block[, timeout]]) or q:put(item, timeout)
**   -> true | nil, "full" | nil, "shutdown" */
static int queue_put(lua_State *L) {
  queue_t *q = check_queue(L);
  double tmo;
  int block = queue_block_args(L, 3, &tmo);
  return queue_put_common(L, q, block, tmo);
}

/* q:put_nowait(item) */
static int queue_put_nowait(lua_State *L) {
  return queue_put_common(L, check_queue(L), 0, -1);
}

/* q:get([block[, timeout]]) or q:get(timeout)
**   -> item | nil, "empty" | nil, "shutdown" */
static int queue_get(lua_State *L) {
  queue_t *q = check_queue(L);
  double tmo;
  int block = queue_block_args(L, 2, &tmo);
  return queue_get_common(L, q, block, tmo, 1);
}

/* q:get_nowait() */
static int queue_get_nowait(lua_State *L) {
  return queue_get_common(L, check_queue(L), 0, -1, 1);
}

/* q:qsize() -> number of items (already stale when it returns) */
static int queue_qsize(lua_State *L) {
  queue_t *q = check_queue(L);
  size_t n;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  n = q->count;
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int queue_empty(lua_State *L) {
  queue_t *q = check_queue(L);
  int empty;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  empty = q->count == 0;
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  lua_pushboolean(L, empty);
  return 1;
}

static int queue_full(lua_State *L) {
  queue_t *q = check_queue(L);
  int full;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  full = !queue_has_room(q);
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  lua_pushboolean(L, full);
  return 1;
}

/* q:maxsize() -> the bound given at creation, 0 for none */
static int queue_maxsize(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_queue(L)->maxsize);
  return 1;
}

/* q:task_done(): one fetched item is processed. */
static int queue_task_done(lua_State *L) {
  queue_t *q = check_queue(L);
  int ok, all;
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  ok = q->unfinished > 0;
  all = ok && --q->unfinished == 0;
  if (all && q->joiners > 0) WAIT_CHECK(pthread_cond_broadcast(&q->all_done));
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  if (!ok) return luaL_error(L, "task_done() called too many times");
  if (all) wait_notify_change(&q->obj);
  return 0;
}

/* q:join([timeout]) -> true | nil, "timeout": every item put is done. */
static int queue_join(lua_State *L) {
  queue_t *q = check_queue(L);
  lazy_deadline ld;
  int r = WAIT_OK;
  ld.tmo = lua_isnoneornil(L, 2) ? -1 : wait_check_seconds(L, 2);
  ld.set = 0;
  wait_check_cancel(L);
  if (ld.tmo != 0 && task_calling(L)) {  /* a task's join waits in its scheduler */
    size_t busy;
    WAIT_CHECK(pthread_mutex_lock(&q->mu));
    busy = q->unfinished;
    WAIT_CHECK(pthread_mutex_unlock(&q->mu));
    if (busy > 0) {
      return task_defer_done(L, WATCH_DONE, ld.tmo);
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  q->joiners++;
  while (q->unfinished > 0) {
    r = lazy_wait(q, &q->all_done, &ld);
    if (r != WAIT_OK) break;
  }
  q->joiners--;
  if (q->unfinished == 0 && r != WAIT_CANCELLED) r = WAIT_OK;
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  if (r != WAIT_OK) return queue_push_fail(L, "timeout");
  lua_pushboolean(L, 1);
  return 1;
}

/* q:shutdown([immediate]): refuse puts; wake every sleeper. With
** immediate, discard the items and count them as done. */
static int queue_shutdown(lua_State *L) {
  queue_t *q = check_queue(L);
  int immediate = lua_toboolean(L, 2);
  spill_t s;
  memset(&s, 0, sizeof s);
  WAIT_CHECK(pthread_mutex_lock(&q->mu));
  q->shut = 1;
  if (immediate) {
    size_t n = q->count;
    s = queue_spill(q);
    q->unfinished = q->unfinished > n ? q->unfinished - n : 0;
    if (q->joiners > 0) WAIT_CHECK(pthread_cond_broadcast(&q->all_done));
  }
  if (q->getters > 0) {
    q->get_signals = q->getters;
    WAIT_CHECK(pthread_cond_broadcast(&q->not_empty));
  }
  if (q->putters > 0) {
    q->put_signals = q->putters;
    WAIT_CHECK(pthread_cond_broadcast(&q->not_full));
  }
  WAIT_CHECK(pthread_mutex_unlock(&q->mu));
  wait_notify_change(&q->obj);
  spill_clear(&s);
  return 0;
}

/* The iterator of q:iter(): upvalue 1 the handle, 2 the timeout or nil. */
static int queue_iter_next(lua_State *L) {
  handle_t *h = (handle_t *)lua_touserdata(L, lua_upvalueindex(1));
  double tmo = lua_isnil(L, lua_upvalueindex(2)) ? -1 : lua_tonumber(L, lua_upvalueindex(2));
  if (h->obj == NULL) return queue_iter_released(L);
  /* a task's get tries without waiting, and waits in its scheduler */
  if (tmo != 0 && task_calling(L)) {
    if (queue_get_common(L, (queue_t *)h->obj, 0, 0, 0) == 1) return 1;
    return queue_iter_wait(L, tmo);
  }
  if (queue_get_common(L, (queue_t *)h->obj, 1, tmo, 0) == 1) return 1;
  lua_pushnil(L);
  return 1;
}

/* q:iter([timeout]) -> an iterator for a generic for: it gets items until
** the queue is shut down and drained, or (with a timeout) one get times out. */
static int queue_iter(lua_State *L) {
  (void)check_queue(L);
  if (!lua_isnoneornil(L, 2)) (void)wait_check_seconds(L, 2);
  lua_settop(L, 2);
  lua_pushcclosure(L, queue_iter_next, 2);
  return 1;
}

/* ------------------------------------------------------- constructors */

/* A producer and a consumer take the mutex millions of times a second and
** hold it for a few dozen instructions: an adaptive mutex spins briefly
** before sleeping, which avoids a futex round trip per collision (measured
** on W4 when this file still served Queue: about 1.2x the throughput). */
static void queue_mutex_init(pthread_mutex_t *mu) {
  pthread_mutexattr_t a;
  WAIT_CHECK(pthread_mutexattr_init(&a));
#if defined(__GLIBC__)
  WAIT_CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP));
#endif
  WAIT_CHECK(pthread_mutex_init(mu, &a));
  pthread_mutexattr_destroy(&a);
}

size_t queue_maxsize_arg(lua_State *L, int idx) {
  lua_Number n;
  if (lua_isnoneornil(L, idx)) return 0;
  n = luaL_checknumber(L, idx);
  luaL_argcheck(L, n >= 0, idx, "maxsize must not be negative");
  luaL_argcheck(L, n == floor(n), idx, "maxsize must be an integer");
  luaL_argcheck(L, n <= 9007199254740992.0, idx, "maxsize too large");   /* 2^53 */
  return (size_t)n;
}

static int queue_new(lua_State *L, const object_type_t *type, int kind) {
  handle_t *h;
  queue_t *q;
  size_t maxsize = queue_maxsize_arg(L, 1);
  h = object_newhandle(L, type);
  q = (queue_t *)calloc(1, sizeof *q);
  if (q == NULL) return luaL_error(L, "not enough memory");
  object_init(&q->obj, type);
  q->kind = kind;
  q->maxsize = maxsize;
  atomic_init(&q->visible, 0);
  queue_mutex_init(&q->mu);
  wait_cond_init(&q->not_empty);
  wait_cond_init(&q->not_full);
  wait_cond_init(&q->all_done);
  object_sethandle(L, h, &q->obj);
  return 1;
}

static int queue_new_lifo(lua_State *L) { return queue_new(L, &lifo_type, Q_LIFO); }
static int queue_new_prio(lua_State *L) { return queue_new(L, &prio_type, Q_PRIO); }

static const luaL_Reg queue_methods[] = {
  {"put", queue_put},
  {"put_nowait", queue_put_nowait},
  {"get", queue_get},
  {"get_nowait", queue_get_nowait},
  {"qsize", queue_qsize},
  {"empty", queue_empty},
  {"full", queue_full},
  {"maxsize", queue_maxsize},
  {"task_done", queue_task_done},
  {"join", queue_join},
  {"shutdown", queue_shutdown},
  {"iter", queue_iter},
  {NULL, NULL}
};

static const luaL_Reg queue_funcs[] = {
  {"LifoQueue", queue_new_lifo},
  {"PriorityQueue", queue_new_prio},
  {NULL, NULL}
};

void queue_open(lua_State *L) {
  object_newmetatable(L, &lifo_type, queue_methods, NULL);
  object_newmetatable(L, &prio_type, queue_methods, NULL);
  luaL_setfuncs(L, queue_funcs, 0);
}
