/*
** pool.c: threading.Pool, its queue of tasks and its workers. The futures
** that stand for the tasks, and threading.wait, are in future.c; the two
** share future.h.
**
** A Pool is two objects. The Pool that users hold is a thin owner of a
** work_t (the task queue and the workers' bookkeeping); the workers hold
** only the work_t. So the Pool dies when the last user handle (or queue,
** value, buffer) lets go of it, whatever the workers still hold, and its
** destroy shuts the work down without waiting: queued tasks still run,
** then the workers leave. Nothing in __gc ever blocks.
**
** Workers are threading Threads started from C (thread_spawn) whose main is
** pool_worker: each has its own lua_State for its whole life (standard
** libraries, package paths of the state that made the pool, the
** initializer run once) and runs task after task. They are started lazily
** by submit, up to the pool's size, when no idle worker is there to take
** the task. However a worker ends (cancelled before it ran, in a task, or
** leaving), the runtime calls worker_ended, which alone counts it out: the
** pool never waits for a worker that is gone, fails the task the worker was
** running, and starts another if tasks are left. The work registers an
** exit node: when its main state closes, the pool is shut down whatever
** still holds it (a task that kept it in a worker's globals).
**
** A task is a Future in the queue. Its function and arguments are encoded
** at submit (a refusal raises there, and nothing is queued). A Lua function
** without upvalues (other than the globals) is encoded once per submitting
** state and carries an id; each worker keeps the functions it has loaded by
** id, so a hot function costs neither a dump nor a load per task. A task
** of Pool:map carries a chunk of items as transfer slots instead of
** arguments, and its results come back as slots (Future:_into); its
** function is encoded once per map (_map_fn) and kept apart by workers.
** The queue holds one reference to each queued future, which moves to the
** worker that takes it (its slot's current task) and is dropped when the
** worker is done with it.
**
** Lock order: work->mu, then a future's mu (fork() locks them all, in that
** order), then a waiter's mu (inside wait_on). A future is finished (which
** takes its mu, then, once that is released, port.c's locks to post the
** waits watching it: see future.c) with no work->mu held, and a worker
** that leaves is announced to the tasks watching the pool (a task's
** shutdown) once work->mu is released. Nothing is pushed onto a Lua
** stack, allocated through Lua or raised, and no Lua runs, while any of
** them is held; nor is a buffer freed (that may release objects and take
** their locks).
*/
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "future.h"
#include "libs.h"
#include "object.h"
#include "options.h"
#include "thread.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define POOL_MT "threading.Pool"
#define WORK_MT "threading.PoolQueue"       /* a pool's queue, as workers see it */

#if !defined(POOL_IDLE_GC_SECONDS)
#define POOL_IDLE_GC_SECONDS 1.0   /* an idle worker collects its garbage after this */
#endif
#if !defined(POOL_FNCACHE_MAX)
#define POOL_FNCACHE_MAX 256       /* functions a worker keeps loaded */
#endif

/* ------------------------------------------------------------- types */

typedef struct wslot {
  object_t *thread;           /* the worker's Thread (retained), NULL until started */
  void *token;                /* its thread_current() once running */
  future_t *current;          /* the task it runs (retained), or NULL */
} wslot_t;

typedef struct work {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;          /* (mu) a task arrived, or shutdown */
  pthread_cond_t exit_cv;     /* (mu) a worker left, or a start settled */
  future_t *head, *tail;      /* (mu) the queue; it owns one reference each */
  size_t nqueued;             /* (mu) */
  int max;                    /* pool size; constant */
  int nidle;                  /* (mu) workers waiting for a task */
  int nthreads;               /* (mu) workers started or being started, not left */
  int starting;               /* (mu) starts whose Thread is not recorded yet */
  int shutdown;               /* (mu) */
  char *broken;               /* (mu) why the pool is broken, or NULL */
  wslot_t *slots;             /* (mu) one per worker ever started */
  int nslots, capslots;       /* (mu) */
  transfer_t *init_fn;        /* initializer and its arguments; constant */
  transfer_t *init_args;
  char *prefix;               /* worker name prefix; constant */
  char *path, *cpath;         /* package paths of the creating state; constant */
  unsigned libs;              /* the workers' standard libraries (libs.h); constant */
  long root;                  /* the main state that shuts it down at exit */
  exit_node_t exit;           /* registered while the work lives */
} work_t;

typedef struct pool {
  object_t obj;
  work_t *work;
} pool_t;

static void work_destroy(object_t *o);
static void pool_destroy(object_t *o);

/* A task watching a Pool watches its work: a worker that leaves (or a
** start that settles) announces a change of the work. */
static object_t *pool_watch_target(object_t *o) {
  return &((pool_t *)o)->work->obj;
}

static const object_type_t work_type = { WORK_MT, work_destroy, NULL, NULL };
static const object_type_t pool_type = { POOL_MT, pool_destroy, pool_watch_target, NULL };

static atomic_long pool_count;        /* for "Pool-N" */
static atomic_ullong fn_next_id;      /* ids of cached functions */

static deadline_t forever(void) {
  deadline_t dl;
  memset(&dl, 0, sizeof dl);
  dl.forever = 1;
  return dl;
}

/* ---------------------------------------------------------- work queue */

static void work_destroy(object_t *o) {
  work_t *wk = (work_t *)o;
  future_t *f = wk->head;
  int i;
  thread_on_exit_remove(&wk->exit);
  while (f != NULL) {             /* no worker is left to run these */
    future_t *next = f->next;
    future_cancel(f);
    object_release(&f->obj);
    f = next;
  }
  for (i = 0; i < wk->nslots; i++) object_release(wk->slots[i].thread);
  free(wk->slots);
  transfer_free(wk->init_fn);
  transfer_free(wk->init_args);
  free(wk->broken);
  free(wk->prefix);
  free(wk->path);
  free(wk->cpath);
  pthread_mutex_destroy(&wk->mu);
  pthread_cond_destroy(&wk->cv);
  pthread_cond_destroy(&wk->exit_cv);
  free(wk);
}

/* Stop taking tasks; with `cancel`, cancel the queued ones (also when no
** worker is left to run them: all were cancelled). Never blocks on workers. */
static void work_shutdown(work_t *wk, int cancel) {
  future_t *list = NULL;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  wk->shutdown = 1;
  if (cancel || (wk->nthreads == 0 && wk->starting == 0)) {
    list = wk->head;
    wk->head = wk->tail = NULL;
    wk->nqueued = 0;
  }
  WAIT_CHECK(pthread_cond_broadcast(&wk->cv));
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  while (list != NULL) {
    future_t *next = list->next;
    future_cancel(list);
    object_release(&list->obj);
    list = next;
  }
}

static void pool_destroy(object_t *o) {
  pool_t *p = (pool_t *)o;
  if (p->work != NULL) {
    work_shutdown(p->work, 0);
    object_release(&p->work->obj);
  }
  free(p);
}

/* The calling thread's slot in wk, or -1. */
static int work_self_index(work_t *wk) {
  void *self = thread_current();
  int i, found = -1;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  for (i = 0; i < wk->nslots && found < 0; i++)
    if (self != NULL && wk->slots[i].token == self) found = i;
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  return found;
}

/* ------------------------------------------------------------- worker */

static const char fncache_key = 'f';

static int worker_msgh(lua_State *L) {
  if (wait_cancel_pending()) return 1;   /* the cancellation, as it is */
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    compat_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* registry[&mapfn_key] = { id, function }: the function of the map last
** run here, kept apart from the cache so that one big closure (say over a
** large table) is held once, not among 256. */
static const char mapfn_key = 'M';

/* Push the map function with id `id`, loading it from buf if it is not the
** one already here. */
static void push_map_fn(lua_State *L, transfer_t *buf, uint64_t id) {
  compat_rawgetp(L, LUA_REGISTRYINDEX, &mapfn_key);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 1);
    if (lua_tonumber(L, -1) == (lua_Number)id) {
      lua_rawgeti(L, -2, 2);
      lua_replace(L, -3);
      lua_pop(L, 1);
      return;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  transfer_decode(L, buf);
  lua_createtable(L, 2, 0);
  lua_pushnumber(L, (lua_Number)id);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 2);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &mapfn_key);
}

/* Push the cached function with id `id`, loading it from buf if needed. */
static void push_cached_fn(lua_State *L, transfer_t *buf, uint64_t id) {
  int cache;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &fncache_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &fncache_key);
  }
  cache = lua_gettop(L);
  lua_pushnumber(L, (lua_Number)id);
  lua_rawget(L, cache);
  if (lua_isnil(L, -1)) {
    lua_Integer n;
    lua_pop(L, 1);
    lua_getfield(L, cache, "n");
    n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (n >= POOL_FNCACHE_MAX) {        /* full: start over */
      lua_newtable(L);
      lua_replace(L, cache);
      lua_pushvalue(L, cache);
      compat_rawsetp(L, LUA_REGISTRYINDEX, &fncache_key);
      n = 0;
    }
    transfer_decode(L, buf);
    lua_pushnumber(L, (lua_Number)id);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
    lua_pushinteger(L, n + 1);
    lua_setfield(L, cache, "n");
  }
  lua_remove(L, cache);
}

typedef struct task {
  transfer_t *fnbuf, *input;
  uint64_t fnid;
  int fnmap;
  tslot_t *items, *outs;      /* a map chunk */
  int nitems;
} task_t;

/* Protected: call the function on each item of a map chunk, keeping the
** first result of each call in t->outs. */
static int chunk_call(lua_State *L) {
  task_t *t = (task_t *)lua_touserdata(L, 1);
  int i;
  lua_settop(L, 0);
  if (t->fnbuf != NULL && t->fnmap) push_map_fn(L, t->fnbuf, t->fnid);
  else if (t->fnbuf != NULL) push_cached_fn(L, t->fnbuf, t->fnid);
  else transfer_decode(L, t->input);
  t->outs = (tslot_t *)calloc((size_t)t->nitems, sizeof *t->outs);   /* all TS_NIL */
  if (t->outs == NULL) return luaL_error(L, "not enough memory");
  for (i = 0; i < t->nitems; i++) {
    lua_pushvalue(L, 1);
    transfer_slot_push(L, &t->items[i]);
    lua_call(L, 1, 1);
    transfer_slot_store(L, -1, &t->outs[i], "result");
    lua_pop(L, 1);
  }
  return 0;
}

/* Protected: load the task and call it; returns its results. */
static int task_call(lua_State *L) {
  task_t *t = (task_t *)lua_touserdata(L, 1);
  int n;
  lua_settop(L, 0);
  if (t->fnbuf != NULL && t->fnmap) push_map_fn(L, t->fnbuf, t->fnid);
  else if (t->fnbuf != NULL) push_cached_fn(L, t->fnbuf, t->fnid);
  if (t->input != NULL) transfer_decode(L, t->input);
  n = lua_gettop(L);
  lua_call(L, n - 1, LUA_MULTRET);
  return lua_gettop(L);
}

typedef struct encode_req {
  transfer_t *out;
  int n;
  const char *root;
  int first;
} encode_req;

static int encode_call(lua_State *L) {
  encode_req *r = (encode_req *)lua_touserdata(L, 1);
  r->out = transfer_encode(L, 2, r->n, r->root, r->first);
  return 0;
}

/* Encode the n values at the top of L; NULL with the error message pushed
** if they cannot move. The values stay on the stack. */
static transfer_t *try_encode(lua_State *L, int n, const char *root, int first) {
  encode_req r;
  int i, base = lua_gettop(L) - n;
  r.out = NULL;
  r.n = n;
  r.root = root;
  r.first = first;
  lua_pushcfunction(L, encode_call);
  lua_pushlightuserdata(L, &r);
  for (i = 1; i <= n; i++) lua_pushvalue(L, base + i);
  if (lua_pcall(L, n + 1, 0, 0) != 0) return NULL;
  return r.out;
}

/* The error at the top of L as a buffer (its text if it cannot move). */
static transfer_t *encode_error(lua_State *L) {
  transfer_t *out = try_encode(L, 1, "error", 0);
  if (out == NULL) {
    const char *msg;
    lua_pop(L, 1);                      /* the refusal */
    msg = lua_tostring(L, -1);
    if (msg != NULL) lua_pushstring(L, msg);
    else lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    out = try_encode(L, 1, "error", 0);
    if (out == NULL) lua_pop(L, 1);
    lua_pop(L, 1);
  }
  return out;
}

/* Fail f with a string message (used for broken pools). */
static void future_fail_text(lua_State *L, future_t *f, const char *msg) {
  transfer_t *out;
  lua_pushstring(L, msg);
  out = try_encode(L, 1, "error", 0);
  if (out == NULL) lua_pop(L, 1);
  lua_pop(L, 1);
  future_finish(f, F_FAILED, out);
}

/* Run one task (f is RUNNING and its buffers are in t). Returns 0, or 1 if
** the worker was cancelled while running it. */
static int run_task(lua_State *L, future_t *f, task_t *t) {
  int msgh, rc;
  lua_pushcfunction(L, worker_msgh);
  msgh = lua_gettop(L);
  lua_pushcfunction(L, t->items != NULL ? chunk_call : task_call);
  lua_pushlightuserdata(L, t);
  rc = lua_pcall(L, 1, LUA_MULTRET, msgh);
  if (rc == 0 && t->items != NULL) {
    lua_settop(L, msgh - 1);
    f->outs = t->outs;                   /* published by future_finish's lock */
    f->nouts = t->nitems;
    t->outs = NULL;
    future_finish(f, F_DONE, NULL);
    return 0;
  }
  slots_free(t->outs, t->nitems);
  t->outs = NULL;
  if (rc == 0) {
    int n = lua_gettop(L) - msgh;
    transfer_t *out = NULL;
    if (n > 0) {
      out = try_encode(L, n, "results", 1);
      if (out == NULL) {                 /* a result cannot move: that is the error */
        out = encode_error(L);
        lua_settop(L, msgh - 1);
        future_finish(f, F_FAILED, out);
        return 0;
      }
    }
    lua_settop(L, msgh - 1);
    future_finish(f, F_DONE, out);
    return 0;
  }
  if (wait_cancel_pending()) {
    /* the worker is cancelled: its task was cut short, it did not finish */
    lua_settop(L, msgh - 1);
    future_fail_static(f, "cancelled");
    return 1;
  }
  {
    transfer_t *out = encode_error(L);
    lua_settop(L, msgh - 1);
    future_finish(f, F_FAILED, out);
  }
  return 0;
}

/* Protected: call the pool's initializer. */
static int init_call(lua_State *L) {
  work_t *wk = (work_t *)lua_touserdata(L, 1);
  int n;
  lua_settop(L, 0);
  transfer_decode(L, wk->init_fn);
  if (wk->init_args != NULL) transfer_decode(L, wk->init_args);
  n = lua_gettop(L);
  lua_call(L, n - 1, 0);
  return 0;
}

/* The initializer failed with the error at the top of L: break the pool
** (as Python does) and fail everything queued. */
static void work_break(lua_State *L, work_t *wk) {
  const char *err = lua_tostring(L, -1);
  future_t *list;
  char *why;
  lua_pushfstring(L, "pool is broken: its initializer failed: %s",
                  err != NULL ? err : luaL_typename(L, -2));
  why = object_strdup(lua_tostring(L, -1));
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  if (wk->broken == NULL) {
    wk->broken = why;
    why = NULL;
  }
  list = wk->head;
  wk->head = wk->tail = NULL;
  wk->nqueued = 0;
  WAIT_CHECK(pthread_cond_broadcast(&wk->cv));
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  free(why);
  while (list != NULL) {
    future_t *next = list->next;
    int pending;
    WAIT_CHECK(pthread_mutex_lock(&list->mu));
    pending = list->state == F_PENDING;
    WAIT_CHECK(pthread_mutex_unlock(&list->mu));
    if (pending) future_fail_text(L, list, lua_tostring(L, -1));
    object_release(&list->obj);
    list = next;
  }
  lua_pop(L, 1);
}

static int gc_call(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}

/* Take the next task for worker `idx`, recording it as the worker's
** current one: NULL when the worker should leave (shutdown with an empty
** queue, a broken pool, or cancellation; *cancelled says which). Collects
** the state's garbage once after a busy spell, so a pool whose last handle
** sits in a worker's dead values still dies. */
static future_t *work_next(lua_State *L, work_t *wk, int idx, int *ran, int *cancelled) {
  future_t *f = NULL;
  int r = WAIT_OK;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  for (;;) {
    deadline_t dl;
    if (r == WAIT_CANCELLED || wait_cancel_pending()) {
      *cancelled = 1;                    /* a cancelled worker takes no more */
      break;
    }
    if (wk->head != NULL && wk->broken == NULL) {
      f = wk->head;
      wk->head = f->next;
      if (wk->head == NULL) wk->tail = NULL;
      f->next = NULL;
      wk->nqueued--;
      wk->slots[idx].current = f;        /* the queue's reference moves here */
      break;
    }
    if (wk->shutdown || wk->broken != NULL) break;
    if (r == WAIT_TIMEOUT && *ran) {
      *ran = 0;
      WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
      lua_pushcfunction(L, gc_call);
      if (lua_pcall(L, 0, 0, 0) != 0) lua_pop(L, 1);
      WAIT_CHECK(pthread_mutex_lock(&wk->mu));
      r = WAIT_OK;
      continue;
    }
    if (*ran) dl = wait_deadline_in(POOL_IDLE_GC_SECONDS);
    else dl = forever();
    wk->nidle++;
    r = wait_on(&wk->obj, &wk->mu, &wk->cv, &dl);
    wk->nidle--;
  }
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  return f;
}

/* The worker is done with its current task. */
static void work_done_with(work_t *wk, int idx) {
  future_t *f;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  f = wk->slots[idx].current;
  wk->slots[idx].current = NULL;
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  object_release(&f->obj);
}

/* pool_worker(queue, index): the main function of a pool's worker Thread
** (started from C, see spawn_worker). Runs the initializer, then tasks
** until the pool shuts down or the worker is cancelled. However the
** worker ends, worker_ended does the pool's bookkeeping. */
static int pool_worker(lua_State *L) {
  work_t *wk = (work_t *)object_check(L, 1, &work_type);
  int idx = (int)luaL_checkinteger(L, 2), ran = 0, cancelled = 0;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  wk->slots[idx].token = thread_current();
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  lua_settop(L, 1);              /* keep the queue's handle: the reference */
  if (wk->init_fn != NULL) {
    int msgh, rc;
    lua_pushcfunction(L, worker_msgh);
    msgh = lua_gettop(L);
    lua_pushcfunction(L, init_call);
    lua_pushlightuserdata(L, wk);
    rc = lua_pcall(L, 1, 0, msgh);
    if (rc != 0 && wait_cancel_pending()) {
      cancelled = 1;
    } else if (rc != 0) {
      work_break(L, wk);
    }
    lua_settop(L, 1);
  }
  while (!cancelled) {
    future_t *f = work_next(L, wk, idx, &ran, &cancelled);
    task_t t;
    int state;
    if (f == NULL) break;
    WAIT_CHECK(pthread_mutex_lock(&f->mu));
    state = f->state;
    if (state == F_PENDING) {
      f->state = F_RUNNING;
      t.fnbuf = f->fnbuf;
      t.fnid = f->fnid;
      t.fnmap = f->fnmap;
      t.input = f->input;
      t.items = f->items;
      t.nitems = f->nitems;
      t.outs = NULL;
      f->fnbuf = f->input = NULL;
      f->items = NULL;
      f->nitems = 0;
    }
    WAIT_CHECK(pthread_mutex_unlock(&f->mu));
    if (state == F_PENDING) {          /* not cancelled while queued */
      ran = 1;
      cancelled = run_task(L, f, &t);
      transfer_free(t.fnbuf);
      transfer_free(t.input);
      slots_free(t.items, t.nitems);
    }
    work_done_with(wk, idx);
    lua_settop(L, 1);
    /* Lua steps its collector only at its own allocation points, and a
    ** task loaded with lua_load that allocates nothing through the VM
    ** passes none on 5.4: the heap of a busy worker grew without bound.
    ** Making a table is such a point; it steps only when the debt says so. */
    lua_createtable(L, 0, 0);
    lua_pop(L, 1);
  }
  if (cancelled) return wait_raise_cancel(L);
  return 0;
}

/* ---------------------------------------------------- starting workers */

static void worker_ended(object_t *arg, lua_Integer iarg);

/* Start one more worker for wk (its count already reserved in nthreads
** and starting). 0, or an errno (the reservation then undone). */
static int spawn_worker(work_t *wk) {
  int idx, err = 0;
  object_t *th = NULL;
  size_t namelen = strlen(wk->prefix) + 16;
  char *name = (char *)malloc(namelen);
  thread_spec_t spec;
  if (name == NULL) err = ENOMEM;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  if (err == 0 && wk->nslots == wk->capslots) {
    int cap = wk->capslots ? wk->capslots * 2 : 4;
    wslot_t *sl = (wslot_t *)realloc(wk->slots, (size_t)cap * sizeof *sl);
    if (sl == NULL) {
      err = ENOMEM;
    } else {
      wk->slots = sl;
      wk->capslots = cap;
    }
  }
  idx = wk->nslots;
  if (err == 0) {
    wk->nslots++;
    memset(&wk->slots[idx], 0, sizeof wk->slots[idx]);
  }
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  if (err == 0) {
    snprintf(name, namelen, "%s_%d", wk->prefix, idx);
    memset(&spec, 0, sizeof spec);
    spec.name = name;
    spec.root = wk->root;
    spec.path = wk->path;
    spec.cpath = wk->cpath;
    spec.libs = wk->libs;
    spec.main = pool_worker;
    spec.arg = &wk->obj;
    spec.iarg = idx;
    spec.on_end = worker_ended;
    th = thread_spawn(&spec, &err);
  }
  free(name);
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  if (th != NULL) wk->slots[idx].thread = th;   /* spawn's reference */
  wk->starting--;
  if (th == NULL) wk->nthreads--;
  WAIT_CHECK(pthread_cond_broadcast(&wk->exit_cv));
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  wait_notify_change(&wk->obj);
  return th != NULL ? 0 : err;
}

/* Reserve a worker start if queued tasks outnumber idle workers and the
** pool may grow (mu held); 1 if the caller must spawn_worker. */
static int work_needs_worker(work_t *wk) {
  if (wk->broken != NULL || wk->nidle >= (int)wk->nqueued || wk->nthreads >= wk->max)
    return 0;
  wk->nthreads++;
  wk->starting++;
  return 1;
}

/* Nobody will run the queued tasks of wk (no worker is left and none can
** start): fail them. */
static void work_orphaned(work_t *wk, const char *reason) {
  future_t *list = NULL;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  if (wk->nthreads == 0) {
    list = wk->head;
    wk->head = wk->tail = NULL;
    wk->nqueued = 0;
  }
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  while (list != NULL) {
    future_t *next = list->next;
    future_fail_static(list, reason);
    object_release(&list->obj);
    list = next;
  }
}

/* on_end of a worker Thread, however it ended (cancelled before it ran,
** in a task, idle, or when the pool shut down): count it out, fail the
** task it was running, if any, with "cancelled" (it was cut short), and
** start another worker if queued tasks are left without one. */
static void worker_ended(object_t *arg, lua_Integer iarg) {
  work_t *wk = (work_t *)arg;
  int idx = (int)iarg, spawn;
  future_t *cur;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  cur = wk->slots[idx].current;
  wk->slots[idx].current = NULL;
  wk->slots[idx].token = NULL;
  wk->nthreads--;
  spawn = work_needs_worker(wk);
  WAIT_CHECK(pthread_cond_broadcast(&wk->exit_cv));
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  wait_notify_change(&wk->obj);   /* a task in shutdown watches the pool */
  if (cur != NULL) {
    future_fail_static(cur, "cancelled");
    object_release(&cur->obj);
  }
  if (spawn && spawn_worker(wk) != 0) work_orphaned(wk, "cannot start a pool worker");
}

/* ----------------------------------------------------------- Lua API */

static pool_t *check_pool(lua_State *L, int idx) {
  return (pool_t *)object_self(L, idx, &pool_type);
}

/* registry[&fnbox_key]: weak-keyed { [function] = fnbox } for this state */
static const char fnbox_key = 'b';
static const char fnbox_mt_key = 'm';

typedef struct fnbox {
  transfer_t *buf;
  uint64_t id;
} fnbox_t;

static void free_buffer(void *p) {
  transfer_free((transfer_t *)p);
}

static int fnbox_gc(lua_State *L) {
  fnbox_t *b = (fnbox_t *)lua_touserdata(L, 1);
  if (b != NULL) {
    transfer_free(b->buf);
    b->buf = NULL;
  }
  return 0;
}

/* Push a box owning buf (or freeing it, if the box cannot be made) with a
** fresh id. */
static fnbox_t *push_fnbox(lua_State *L, transfer_t *buf) {
  void **slot = object_newbox(L, free_buffer);     /* owns buf meanwhile */
  fnbox_t *b;
  *slot = buf;
  b = (fnbox_t *)compat_newuserdata(L, sizeof *b);
  b->buf = NULL;
  b->id = atomic_fetch_add(&fn_next_id, 1) + 1;
  object_pushgcmt(L, &fnbox_mt_key, fnbox_gc, NULL);
  lua_setmetatable(L, -2);
  b->buf = buf;                 /* the fnbox owns it from here */
  *slot = NULL;
  lua_remove(L, -2);
  return b;
}

/* Can the function at idx be encoded once and reused? Only if nothing it
** captures could change: no upvalues, or only the globals table. */
static int fn_cacheable(lua_State *L, int idx) {
  int ok;
  if (!lua_isfunction(L, idx) || lua_iscfunction(L, idx)) return 0;
  if (lua_getupvalue(L, idx, 1) == NULL) return 1;
  if (lua_getupvalue(L, idx, 2) != NULL) {
    lua_pop(L, 2);
    return 0;
  }
  compat_pushglobals(L);
  ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return ok;
}

/* Was the function at idx among the last FN_RECENT first sightings? If not,
** make it one of them. (A short ring with strong references: a weak table
** of every closure ever submitted would cost the collector dearly.) */
#define FN_RECENT 8
static const char fnrecent_key = 'r';

static int fn_seen_recently(lua_State *L, int idx) {
  int ring, i, at;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &fnrecent_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, FN_RECENT, 1);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &fnrecent_key);
  }
  ring = lua_gettop(L);
  for (i = 1; i <= FN_RECENT; i++) {
    int same;
    lua_rawgeti(L, ring, i);
    same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    if (same) {
      lua_pop(L, 1);
      return 1;
    }
  }
  lua_getfield(L, ring, "at");
  at = (int)lua_tointeger(L, -1) % FN_RECENT + 1;
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_rawseti(L, ring, at);
  lua_pushinteger(L, at);
  lua_setfield(L, ring, "at");
  lua_pop(L, 1);
  return 0;
}

/* The encoded function at idx from this state's cache: a new reference to
** its buffer, and its id; or NULL. A function is cached the second time it
** is submitted: a closure made afresh for each submit is never seen twice,
** and caching it would only add work. */
static transfer_t *fn_cached(lua_State *L, int idx, uint64_t *id) {
  fnbox_t *b;
  int cache;
  idx = compat_absindex(L, idx);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &fnbox_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &fnbox_key);
  }
  cache = lua_gettop(L);
  lua_pushvalue(L, idx);
  lua_rawget(L, cache);
  b = (fnbox_t *)lua_touserdata(L, -1);
  if (b == NULL) {
    transfer_t *buf;
    lua_pop(L, 1);
    if (!fn_seen_recently(L, idx)) {
      lua_pop(L, 1);
      return NULL;
    }
    buf = transfer_encode(L, idx, 1, "target", 0);
    b = push_fnbox(L, buf);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
  }
  lua_pop(L, 2);
  *id = b->id;
  return transfer_retain(b->buf);
}

/* Raise if wk takes no more tasks (call with wk->mu held: releases it). */
static void submit_check(lua_State *L, work_t *wk) {
  int shut = wk->shutdown, broken = wk->broken != NULL;
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  if (broken) luaL_error(L, "cannot submit to a broken pool (its initializer failed)");
  if (shut) luaL_error(L, "cannot submit to a pool that was shut down");
}

static future_t *submit_begin(lua_State *L, work_t *wk) {
  handle_t *h;
  future_t *f;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  submit_check(L, wk);
  h = object_newhandle(L, &future_type);
  f = future_alloc();
  if (f == NULL) luaL_error(L, "not enough memory");
  object_sethandle(L, h, &f->obj);
  return f;
}

/* The function at idx, as f's function: cached when it can be. */
static void submit_fn(lua_State *L, future_t *f, int idx, int nargs) {
  if (fn_cacheable(L, idx) && (f->fnbuf = fn_cached(L, idx, &f->fnid)) != NULL) {
    if (nargs > 0) f->input = transfer_encode(L, idx + 1, nargs, "args", 1);
  } else {
    f->input = transfer_encode(L, idx, nargs + 1, "args", -1);
  }
}

/* Queue f (its task complete), then start a worker if none is idle. The
** task is queued first, as Python does, so a worker that breaks the pool
** at once fails it rather than this submit. */
static void submit_end(lua_State *L, work_t *wk, future_t *f) {
  int spawn, err;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  if (wk->shutdown || wk->broken != NULL) submit_check(L, wk);
  object_retain(&f->obj);               /* the queue's reference */
  if (wk->tail != NULL) wk->tail->next = f;
  else wk->head = f;
  wk->tail = f;
  wk->nqueued++;
  if (wk->nidle > 0) WAIT_CHECK(pthread_cond_signal(&wk->cv));
  spawn = work_needs_worker(wk);
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  if (spawn && (err = spawn_worker(wk)) != 0) {
    int dropped = 0;
    WAIT_CHECK(pthread_mutex_lock(&wk->mu));
    if (wk->nthreads == 0) {            /* nobody will ever run it: take it back */
      future_t **p = &wk->head, *prev = NULL;
      while (*p != NULL && *p != f) {
        prev = *p;
        p = &(*p)->next;
      }
      if (*p == f) {
        *p = f->next;
        if (wk->tail == f) wk->tail = prev;
        f->next = NULL;
        wk->nqueued--;
        dropped = 1;
      }
    }
    WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
    if (dropped) {
      object_release(&f->obj);
      luaL_error(L, "cannot start a pool worker: %s", strerror(err));
    }
    /* the others will serve it */
  }
}

/* pool:submit(fn, ...) -> Future */
static int pool_submit(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  int nargs = lua_gettop(L) - 2;
  future_t *f;
  if (!object_callable(L, 2)) return object_typeerror(L, 2, "function");
  f = submit_begin(L, p->work);                 /* the handle at nargs + 3 */
  submit_fn(L, f, 2, nargs);
  submit_end(L, p->work, f);
  lua_pushvalue(L, nargs + 3);
  return 1;
}

/* The fnbox at idx (made by _map_fn), or a raised error. */
static fnbox_t *check_fnbox(lua_State *L, int idx) {
  fnbox_t *b = (fnbox_t *)lua_touserdata(L, idx);
  int ok = b != NULL && lua_getmetatable(L, idx);
  if (ok) {
    compat_rawgetp(L, LUA_REGISTRYINDEX, &fnbox_mt_key);
    ok = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!ok || b->buf == NULL) luaL_argerror(L, idx, "map function expected (from _map_fn)");
  return b;
}

/* pool:_map_fn(fn) -> the function of a map, encoded once for every task of
** it (a closure over a large table is copied once, not once per item).
** Workers load it once per map and keep the last one apart from their
** cache. */
static int pool_map_fn(lua_State *L) {
  (void)check_pool(L, 1);
  if (!object_callable(L, 2)) return object_typeerror(L, 2, "function");
  lua_settop(L, 2);
  push_fnbox(L, transfer_encode(L, 2, 1, "target", 0));
  return 1;
}

/* pool:_submit_chunk(mapfn, list, first, last) -> Future: a task that calls
** the map function (from _map_fn) on each of list[first..last]. Items
** travel as slots: numbers, booleans, short strings and objects need no
** buffer. */
static int pool_submit_chunk(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  fnbox_t *box = check_fnbox(L, 2);
  lua_Integer first, last, i;
  future_t *f;
  luaL_checktype(L, 3, LUA_TTABLE);
  first = luaL_checkinteger(L, 4);
  last = luaL_checkinteger(L, 5);
  luaL_argcheck(L, first >= 1 && last >= first && last - first < INT_MAX, 4,
                "invalid range");
  lua_settop(L, 3);
  f = submit_begin(L, p->work);                 /* the handle at 4 */
  f->items = (tslot_t *)calloc((size_t)(last - first + 1), sizeof *f->items);
  if (f->items == NULL) return luaL_error(L, "not enough memory");
  for (i = first; i <= last; i++) {
    int t;
    lua_rawgeti(L, 3, (int)i);
    t = lua_type(L, -1);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING) {
      transfer_slot_store(L, -1, &f->items[f->nitems], "item");   /* cannot be refused */
    } else {
      char root[48];
      snprintf(root, sizeof root, "list[%lld]", (long long)i);
      transfer_slot_store(L, -1, &f->items[f->nitems], root);
    }
    f->nitems++;
    lua_pop(L, 1);
  }
  f->fnbuf = transfer_retain(box->buf);
  f->fnid = box->id;
  f->fnmap = 1;
  submit_end(L, p->work, f);
  lua_settop(L, 4);
  return 1;
}

/* registry[&join_key]: Thread:join as the C core made it */
static const char join_key = 'j';

/* Wait until no worker of wk runs, then join their Threads. */
static void work_join(lua_State *L, work_t *wk) {
  int r = WAIT_OK, i, n = 0;
  deadline_t dl = forever();
  object_t **threads = NULL;
  /* the joins below are called through lua_pcall, which a task cannot
  ** yield across: they wait as a thread's do (briefly: each worker has left
  ** its loop), also in a task (task_calling) */
  waiter_t *self = wait_self;
  lua_State *acting = self != NULL ? self->acting_L : NULL;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  while ((wk->nthreads > 0 || wk->starting > 0) && r == WAIT_OK)
    r = wait_on(&wk->obj, &wk->mu, &wk->exit_cv, &dl);
  if (r == WAIT_OK && wk->nslots > 0) {
    threads = (object_t **)malloc((size_t)wk->nslots * sizeof *threads);
    for (i = 0; threads != NULL && i < wk->nslots; i++)
      if (wk->slots[i].thread != NULL) threads[n++] = object_retain(wk->slots[i].thread);
  }
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  if (r == WAIT_CANCELLED) wait_raise_cancel(L);
  /* every worker has left its loop: what remains is the end of each Thread
  ** (joined with the C method itself, even where threading.async wraps it) */
  if (self != NULL) self->acting_L = NULL;
  for (i = 0; i < n; i++) {
    compat_rawgetp(L, LUA_REGISTRYINDEX, &join_key);
    object_push(L, threads[i]);
    object_release(threads[i]);
    threads[i] = NULL;
    if (!lua_isfunction(L, -2)) {
      lua_remove(L, -2);
      lua_getfield(L, -1, "join");
      lua_insert(L, -2);
    }
    if (lua_pcall(L, 1, 0, 0) != 0) {
      int j;
      for (j = i + 1; j < n; j++) object_release(threads[j]);
      free(threads);
      if (self != NULL) self->acting_L = acting;
      lua_error(L);
    }
  }
  if (self != NULL) self->acting_L = acting;
  free(threads);
}

/* Do any of wk's workers run (or start)? */
static int work_busy(work_t *wk) {
  int busy;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  busy = wk->nthreads > 0 || wk->starting > 0;
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  return busy;
}

static int opt_boolean(lua_State *L, int idx, int def) {
  if (lua_isnoneornil(L, idx)) return def;
  luaL_checktype(L, idx, LUA_TBOOLEAN);
  return lua_toboolean(L, idx);
}

/* pool:shutdown([wait = true[, cancel_futures = false]]) */
static int pool_shutdown(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  int wait = opt_boolean(L, 2, 1), cancel = opt_boolean(L, 3, 0);
  if (wait && work_self_index(p->work) >= 0)
    return luaL_error(L, "cannot wait for a pool's workers from one of them");
  work_shutdown(p->work, cancel);
  /* a task waits in its scheduler for the workers to leave (the pool
  ** announces each that does), then joins them here */
  if (wait && task_calling(L) && work_busy(p->work)) {
    lua_settop(L, 1);
    return task_defer(L, TASK_SHUTDOWN, NULL, -1, 0);
  }
  if (wait) work_join(L, p->work);
  return 0;
}

/* __close: leaving a `local pool <close>` scope waits, as Python's `with`
** does. (__gc, by contrast, only drops a reference: see pool_destroy.) */
static int pool__close(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  if (work_self_index(p->work) >= 0) {
    work_shutdown(p->work, 0);
    return 0;
  }
  work_shutdown(p->work, 0);
  work_join(L, p->work);
  return 0;
}

static int pool__tostring(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  work_t *wk = p->work;
  int shut, n;
  WAIT_CHECK(pthread_mutex_lock(&wk->mu));
  shut = wk->shutdown;
  n = wk->nthreads;
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
  lua_pushfstring(L, "threading.Pool: %s (%d of %d workers%s)", wk->prefix, n,
                  wk->max, shut ? ", shut down" : "");
  return 1;
}

/* pool.max_workers, pool.name, pool.workers (started and not yet left) */
static int pool__index(lua_State *L) {
  pool_t *p = check_pool(L, 1);
  const char *k = lua_tostring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), "methods");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);
  if (!lua_isnil(L, -1) || k == NULL) return 1;
  lua_pop(L, 2);
  if (strcmp(k, "max_workers") == 0) {
    lua_pushinteger(L, p->work->max);
  } else if (strcmp(k, "name") == 0) {
    lua_pushstring(L, p->work->prefix);
  } else if (strcmp(k, "workers") == 0) {
    int n;
    WAIT_CHECK(pthread_mutex_lock(&p->work->mu));
    n = p->work->nthreads;
    WAIT_CHECK(pthread_mutex_unlock(&p->work->mu));
    lua_pushinteger(L, n);
  } else if (strcmp(k, "_in_worker") == 0) {
    /* for threading.async: is the caller one of the pool's workers? */
    lua_pushboolean(L, work_self_index(p->work) >= 0);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static const char *const pool_options[] = {
  "workers", "initializer", "initargs", "name", "libs", NULL
};

/* fork(): the child has none of the workers (see runtime.c). It counts
** none, so the next submit starts new ones for the queued tasks too; a task
** a worker was running fails with "lost at fork()". Every future the pool
** holds (queued or running) is locked across the fork with the pool, in
** lock order, so that none is left locked by a thread that stays behind:
** the child's new workers take the queued ones. */
static void work_lock_futures(work_t *wk, int lock) {
  future_t *f;
  int i;
  for (f = wk->head; f != NULL; f = f->next) {
    if (lock) WAIT_CHECK(pthread_mutex_lock(&f->mu));
    else WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  }
  for (i = 0; i < wk->nslots; i++) {
    if ((f = wk->slots[i].current) == NULL) continue;
    if (lock) WAIT_CHECK(pthread_mutex_lock(&f->mu));
    else WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  }
}

static void work_atfork(object_t *o, int phase) {
  work_t *wk = (work_t *)o;
  future_t *f;
  int i;
  if (phase == FORK_PREPARE) {
    WAIT_CHECK(pthread_mutex_lock(&wk->mu));
    work_lock_futures(wk, 1);
    return;
  }
  if (phase == FORK_CHILD) {
    for (f = wk->head; f != NULL; f = f->next) {
      f->sleepers = 0;                    /* they stayed behind */
      wait_cond_init(&f->cv);
    }
    for (i = 0; i < wk->nslots; i++) {
      if ((f = wk->slots[i].current) == NULL) continue;
      if (!F_FINAL(f->state)) {
        f->state = F_FAILED;
        f->reason = "task lost at fork(): its worker runs only in the parent process";
      }
      f->sleepers = 0;
      wait_cond_init(&f->cv);
    }
  }
  work_lock_futures(wk, 0);
  if (phase == FORK_CHILD) {
    for (i = 0; i < wk->nslots; i++) {
      wk->slots[i].current = NULL;       /* its reference stays with it */
      wk->slots[i].token = NULL;
    }
    wk->nthreads = wk->starting = wk->nidle = 0;
    wait_cond_init(&wk->cv);
    wait_cond_init(&wk->exit_cv);
  }
  WAIT_CHECK(pthread_mutex_unlock(&wk->mu));
}

/* At the root's exit: stop taking tasks; the queued ones still run, then
** the workers leave, and the exit join waits for them (Python shuts its
** executors down the same way at interpreter exit). */
static void work_at_exit(object_t *o) {
  work_shutdown((work_t *)o, 0);
}

/* Pool([workers[, opts]]) or Pool(opts): opts.workers, opts.initializer,
** opts.initargs, opts.name, opts.libs */
static int pool_new(lua_State *L) {
  lua_Integer workers;
  unsigned libs = LIBS_LAZY;
  int opts = 0, nw = 1, hidx;
  handle_t *h;
  pool_t *p;
  work_t *wk;
  if (lua_istable(L, 1)) {                 /* Pool(opts) */
    lua_settop(L, 1);
    opts = 1;
    options_check(L, 1, 1, pool_options);
    lua_getfield(L, 1, "workers");
    nw = 2;
  } else {
    lua_settop(L, 2);
    if (!lua_isnil(L, 2)) {
      luaL_checktype(L, 2, LUA_TTABLE);
      opts = 2;
      options_check(L, 2, 2, pool_options + 1);   /* workers is argument #1 */
    }
  }
  if (!lua_isnil(L, nw)) {
    lua_Number n = lua_tonumber(L, nw);
    if (lua_type(L, nw) != LUA_TNUMBER || !(n >= 1 && n <= 1e6) ||
        n != (lua_Number)(lua_Integer)n)
      luaL_argerror(L, opts == 1 ? 1 : nw,
                    "number of workers must be a positive integer");
    workers = (lua_Integer)n;
  } else {
    /* Python's ThreadPoolExecutor: min(32, cpu_count() + 4), so that a
    ** pool for I/O is not held to the core count */
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    workers = (c > 0 ? c : 1) + 4;
    if (workers > 32) workers = 32;
  }
  if (opts) {
    lua_getfield(L, opts, "libs");
    libs = libs_check(L, -1, opts);
    lua_pop(L, 1);
  }
  h = object_newhandle(L, &pool_type);
  hidx = lua_gettop(L);
  p = (pool_t *)calloc(1, sizeof *p);
  wk = (work_t *)calloc(1, sizeof *wk);
  if (p == NULL || wk == NULL) {
    free(p);
    free(wk);
    return luaL_error(L, "not enough memory");
  }
  object_init(&p->obj, &pool_type);
  object_init(&wk->obj, &work_type);
  wait_mutex_init(&wk->mu);
  wait_cond_init(&wk->cv);
  wait_cond_init(&wk->exit_cv);
  wk->max = (int)workers;
  wk->root = thread_root_of(L);
  p->work = wk;
  object_sethandle(L, h, &p->obj);         /* from here the handle owns both */
  wk->libs = libs;
  libs_push_paths(L);
  if (lua_isstring(L, -2) && (wk->path = object_strdup(lua_tostring(L, -2))) == NULL)
    return luaL_error(L, "not enough memory");
  if (lua_isstring(L, -1) && (wk->cpath = object_strdup(lua_tostring(L, -1))) == NULL)
    return luaL_error(L, "not enough memory");
  lua_pop(L, 2);
  if (opts) {
    lua_getfield(L, opts, "name");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, opts, "field 'name' must be a string");
      wk->prefix = object_strdup(lua_tostring(L, -1));
      if (wk->prefix == NULL) return luaL_error(L, "not enough memory");
    }
    lua_pop(L, 1);
    lua_getfield(L, opts, "initializer");
    if (!lua_isnil(L, -1)) {
      if (!object_callable(L, -1))
        luaL_argerror(L, opts, "field 'initializer' must be a function");
      wk->init_fn = transfer_encode(L, -1, 1, "opts.initializer", 0);
    }
    lua_pop(L, 1);
    lua_getfield(L, opts, "initargs");
    if (!lua_isnil(L, -1)) {
      int n, t = lua_gettop(L);
      if (!lua_istable(L, t)) luaL_argerror(L, opts, "field 'initargs' must be a table");
      n = object_pushargs(L, t, opts, "initargs");
      if (n > 0) wk->init_args = transfer_encode(L, t + 1, n, "opts.initargs", 0);
      lua_settop(L, t);
    }
    lua_pop(L, 1);
  }
  if (wk->prefix == NULL) {
    char buf[32];
    snprintf(buf, sizeof buf, "Pool-%ld", atomic_fetch_add(&pool_count, 1) + 1);
    wk->prefix = object_strdup(buf);
    if (wk->prefix == NULL) return luaL_error(L, "not enough memory");
  }
  /* at its root's exit the pool is shut down, whatever still holds it */
  wk->exit.fn = work_at_exit;
  wk->exit.atfork = work_atfork;
  wk->exit.obj = &wk->obj;
  wk->exit.root = wk->root;
  thread_on_exit(&wk->exit);
  lua_pushvalue(L, hidx);
  return 1;
}

/* ----------------------------------------------------------- tables */

static const luaL_Reg pool_methods[] = {
  {"submit", pool_submit},
  {"_submit_chunk", pool_submit_chunk},
  {"_map_fn", pool_map_fn},
  {"shutdown", pool_shutdown},
  {NULL, NULL}
};

static const luaL_Reg pool_meta[] = {
  {"__index", pool__index},
  {"__tostring", pool__tostring},
  {"__close", pool__close},
  {NULL, NULL}
};

static const luaL_Reg pool_funcs[] = {
  {"Pool", pool_new},
  {NULL, NULL}
};

void pool_open(lua_State *L) {
  luaL_getmetatable(L, "threading.Thread");        /* thread_open ran before */
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "methods");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "join");
      compat_rawsetp(L, LUA_REGISTRYINDEX, &join_key);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  object_newmetatable(L, &pool_type, pool_methods, pool_meta);
  object_newmetatable(L, &work_type, NULL, NULL);
  luaL_setfuncs(L, pool_funcs, 0);
}
