/*
** future.c: threading.Future, and threading.wait with the FutureWaiter it
** blocks on. The Pool that runs futures as tasks is in pool.c; the two
** share future.h.
**
** A pool's submit (pool.c) makes a Future with future_alloc; whoever ends
** it (the worker that runs it, the pool when it cannot, or a cancel) gives
** it its final state with future_finish: the results or the error, encoded
** into a buffer that the future owns from then on (every reader decodes its
** own copy). Until a worker moves it to "running" or a cancel drops it
** (both under its mu), the future owns its task: the function, the
** arguments and the items of a map chunk. A map chunk's results (outs) are
** published with "done" and belong to the future. The future is reference
** counted: each Lua handle, the pool's queue while it is queued and the
** worker that runs it hold one reference each.
**
** threading.wait in an OS thread waits on a port of its own (port.c), as
** a task's wait on several objects does on its scheduler's: it watches
** every unfinished future, each with its own token, and a change of one
** posts that token, so each wake-up looks only at the futures that
** changed. The port belongs to the call and is released before it
** returns or raises.
**
** Lock order: a future's mu, then a waiter's mu (inside wait_on). A
** future's change is announced after its mu is released (port.c's locks
** come after an object's own). pool.c may hold its work->mu above a
** future's mu; nothing here takes work->mu. Nothing is pushed onto a Lua
** stack, allocated through Lua or raised, and no Lua runs, while any of
** them is held; nor is a buffer freed (that may release objects and take
** their locks).
*/
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "capi.h"
#include "future.h"
#include "object.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define FUTURE_MT "threading.Future"

static const char *const state_names[] = {
  "pending", "running", "done", "failed", "cancelled"
};

static void future_destroy(object_t *o);
static int future_select_take(lua_State *L, object_t *o);
static const select_ops_t future_select = { future_select_take, NULL };

const object_type_t future_type = { FUTURE_MT, future_destroy, NULL, &future_select };

/* ----------------------------------------------------------- futures */

future_t *future_alloc(void) {
  future_t *f = (future_t *)calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  object_init(&f->obj, &future_type);
  wait_mutex_init(&f->mu);
  wait_cond_init(&f->cv);
  f->state = F_PENDING;
  return f;
}

/* Clear and free an array of n slots. */
void slots_free(tslot_t *s, int n) {
  int i;
  if (s == NULL) return;
  for (i = 0; i < n; i++) transfer_slot_clear(&s[i]);
  free(s);
}

static void future_destroy(object_t *o) {
  future_t *f = (future_t *)o;
  slots_free(f->items, f->nitems);
  slots_free(f->outs, f->nouts);
  transfer_free(f->output);
  transfer_free(f->fnbuf);
  transfer_free(f->input);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cv);
  free(f);
}

/* With f->mu held and f not final: give f its final state and output,
** and wake the threads waiting in result(); the caller announces the
** change (wait_notify_change) once mu is released, for the waits on
** several objects and the tasks. */
static void finish_locked(future_t *f, int state, transfer_t *output) {
  f->state = state;
  f->output = output;
  if (f->sleepers > 0) WAIT_CHECK(pthread_cond_broadcast(&f->cv));
}

/* Give f its final state and output (owned by f from now on); wake whoever
** waits on it. Returns 0 (and frees output) if f had ended already. */
int future_finish(future_t *f, int state, transfer_t *output) {
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  if (F_FINAL(f->state)) {
    WAIT_CHECK(pthread_mutex_unlock(&f->mu));
    transfer_free(output);
    return 0;
  }
  finish_locked(f, state, output);
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  wait_notify_change(&f->obj);
  return 1;
}

/* Fail f with a static message (no Lua state needed); 0 if it had ended. */
int future_fail_static(future_t *f, const char *reason) {
  int ended;
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  ended = F_FINAL(f->state);
  if (!ended) {
    f->reason = reason;
    finish_locked(f, F_FAILED, NULL);
  }
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  if (ended) return 0;
  wait_notify_change(&f->obj);
  return 1;
}

/* Cancel f if it is still pending. Returns 1 if f is cancelled (now or
** before). The state changes in the same hold of mu that sees it pending,
** so a worker can never pick up a task that a cancel has taken. The
** task's buffers are freed outside the lock. */
int future_cancel(future_t *f) {
  transfer_t *fnbuf = NULL, *input = NULL;
  tslot_t *items = NULL;
  int state, nitems = 0;
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  state = f->state;
  if (state == F_PENDING) {
    fnbuf = f->fnbuf;
    input = f->input;
    items = f->items;
    nitems = f->nitems;
    f->fnbuf = f->input = NULL;
    f->items = NULL;
    f->nitems = 0;
    finish_locked(f, F_CANCELLED, NULL);
  }
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  if (state == F_PENDING) {
    wait_notify_change(&f->obj);
    transfer_free(fnbuf);
    transfer_free(input);
    slots_free(items, nitems);
    if (f->on_cancel != NULL) f->on_cancel(f);
    return 1;
  }
  return state == F_CANCELLED;
}

/* --------------------------------------------------------- Future API */

static future_t *check_future(lua_State *L, int idx) {
  return (future_t *)object_self(L, idx, &future_type);
}

/* Wait for f until the deadline; returns its state (non-final on timeout).
** Raises the cancellation of the calling thread. */
static int future_wait(lua_State *L, future_t *f, const deadline_t *dl) {
  int r = WAIT_OK, state;
  wait_check_cancel(L);
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  if (!F_FINAL(f->state) && !(!dl->forever && wait_expired(dl))) {
    f->sleepers++;
    while (!F_FINAL(f->state) && r == WAIT_OK)
      r = wait_on(&f->obj, &f->mu, &f->cv, dl);
    f->sleepers--;
  }
  state = f->state;
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  if (r == WAIT_CANCELLED) wait_raise_cancel(L);
  return state;
}

static int push_timeout(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

/* Push f's error (f has failed or was cancelled). */
static void push_error(lua_State *L, future_t *f, int state) {
  if (state == F_CANCELLED) lua_pushliteral(L, "cancelled");
  else if (f->output == NULL || transfer_decode(L, f->output) == 0)
    lua_pushstring(L, f->reason != NULL ? f->reason : "unknown error");
}

/* Push what Future:result gives for f in its final state: true, ... or
** false, err. */
static int push_outcome(lua_State *L, future_t *f, int state) {
  if (state == F_DONE) {
    lua_pushboolean(L, 1);
    return 1 + (f->output != NULL ? transfer_decode(L, f->output) : 0);
  }
  lua_pushboolean(L, 0);
  push_error(L, f, state);
  return 2;
}

static int future_state(future_t *f);

/* A task's wait for f (task_calling) goes to its scheduler while f is not
** done and the timeout allows it: 1 and the half's results pushed (*n). */
static int future_task_wait(lua_State *L, future_t *f, const deadline_t *dl, int *n) {
  if (!task_calling(L) || F_FINAL(future_state(f)) || (!dl->forever && wait_expired(dl)))
    return 0;
  *n = task_defer_done(L, WATCH_ANY, wait_left(dl));
  return 1;
}

/* Future:result([timeout]) -> true, ... | false, err | nil, "timeout" */
static int future_result(lua_State *L) {
  future_t *f = check_future(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  int state, n;
  if (future_task_wait(L, f, &dl, &n)) return n;
  state = future_wait(L, f, &dl);
  lua_settop(L, 1);
  if (!F_FINAL(state)) return push_timeout(L);
  return push_outcome(L, f, state);
}

/* Future:exception([timeout]) -> nil (it succeeded) | err | nil, "timeout" */
static int future_exception(lua_State *L) {
  future_t *f = check_future(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  int state, n;
  if (future_task_wait(L, f, &dl, &n)) return n;
  state = future_wait(L, f, &dl);
  lua_settop(L, 1);
  if (!F_FINAL(state)) return push_timeout(L);
  if (state == F_DONE) {
    lua_pushnil(L);
    return 1;
  }
  push_error(L, f, state);
  return 1;
}

/* Future:_into(results, offset[, size]) -> n, results: copy a finished map
** chunk's results to results[offset + 1 .. offset + n]. With results nil,
** make the table, sized for `size` items (a table grown item by item
** rehashes some twenty times on the way to a million). */
static int future_into(lua_State *L) {
  future_t *f = check_future(L, 1);
  lua_Integer off = luaL_checkinteger(L, 3);
  int i;
  if (lua_isnil(L, 2)) {
    lua_Integer size = luaL_optinteger(L, 4, 0);
    luaL_argcheck(L, size >= 0 && size < INT_MAX, 3, "invalid size");
    lua_createtable(L, (int)size, 1);
    lua_replace(L, 2);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  if (future_state(f) != F_DONE) return luaL_argerror(L, 1, "the chunk has not succeeded");
  for (i = 0; i < f->nouts; i++) {
    transfer_slot_push(L, &f->outs[i]);
    lua_rawseti(L, 2, (int)(off + i + 1));
  }
  lua_pushinteger(L, f->nouts);
  lua_pushvalue(L, 2);
  return 2;
}

static int future_state(future_t *f) {
  int s;
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  s = f->state;
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  return s;
}

/* threading.select: done -> what Future:result gives */
static int future_select_take(lua_State *L, object_t *o) {
  future_t *f = (future_t *)o;
  int state = future_state(f);
  return F_FINAL(state) ? push_outcome(L, f, state) : -1;
}

static int future_done(lua_State *L) {
  lua_pushboolean(L, F_FINAL(future_state(check_future(L, 1))));
  return 1;
}

static int future_running(lua_State *L) {
  lua_pushboolean(L, future_state(check_future(L, 1)) == F_RUNNING);
  return 1;
}

static int future_cancelled(lua_State *L) {
  lua_pushboolean(L, future_state(check_future(L, 1)) == F_CANCELLED);
  return 1;
}

/* Future:cancel() -> true if the future is cancelled (it was pending) */
static int future_cancel_m(lua_State *L) {
  lua_pushboolean(L, future_cancel(check_future(L, 1)));
  return 1;
}

static int future__tostring(lua_State *L) {
  future_t *f = check_future(L, 1);
  lua_pushfstring(L, "threading.Future: %p (%s)", (void *)f,
                  state_names[future_state(f)]);
  return 1;
}

/* -------------------------------------------------------- threading.wait */

enum { RW_ALL, RW_FIRST, RW_EXCEPTION };
static const char *const rw_names[] = {
  "all_completed", "first_completed", "first_exception", NULL
};

typedef struct wentry {
  future_t *f;
  int idx;                    /* position in the caller's list */
  int counted;                /* seen final: in the counts */
} wentry_t;

/* The entries seen final: how many, how many failed, and, for a set that
** hands them out, fifo[0..tail) in the order they were seen (fifo NULL:
** threading.wait only counts). */
typedef struct counts {
  int ndone, nfailed;
  int *fifo, tail;
} counts_t;

/* Count e if it is final now (once). */
static void count_final(wentry_t *e, int i, counts_t *c) {
  int s;
  if (e->counted) return;
  s = future_state(e->f);
  if (!F_FINAL(s)) return;
  e->counted = 1;
  c->ndone++;
  if (s == F_FAILED) c->nfailed++;
  if (c->fifo != NULL) c->fifo[c->tail++] = i;
}

/* Watch every entry not counted yet (entry i posts token i + 1), then
** look at each again: an end that came before its watch is counted now,
** one after it posts. 0 without memory (the caller releases the port). */
static int watch_entries(object_t *port, wentry_t *e, int n, counts_t *c) {
  int i;
  for (i = 0; i < n; i++)
    if (!e[i].counted && !port_watch_obj(port, &e[i].f->obj, i + 1)) return 0;
  for (i = 0; i < n; i++) count_final(&e[i], i, c);
  return 1;
}

/* Entry i's token came: count it if it has ended; else (it only started
** running) watch it again and look once more, for an end that came before
** the watch. */
static void recount(object_t *port, wentry_t *e, int i, counts_t *c) {
  count_final(&e[i], i, c);
  if (e[i].counted) return;
  (void)port_watch_obj(port, &e[i].f->obj, i + 1);   /* its node exists */
  count_final(&e[i], i, c);
}

/* Take what the port got and recount the entries whose tokens came (every
** entry if tokens were lost). */
static void drain_entries(object_t *port, wentry_t *e, int n, counts_t *c) {
  long tokens[64];
  size_t got, k;
  int everything, i;
  do {
    got = port_take(port, tokens, sizeof tokens / sizeof *tokens, &everything);
    for (k = 0; k < got; k++) recount(port, e, (int)tokens[k] - 1, c);
    if (everything)
      for (i = 0; i < n; i++) recount(port, e, i, c);
  } while (got == sizeof tokens / sizeof *tokens);
}

static int rw_satisfied(int how, int ndone, int nfailed, int npending) {
  if (ndone >= npending) return 1;
  if (how == RW_FIRST) return ndone > 0;
  if (how == RW_EXCEPTION) return nfailed > 0;
  return 0;
}

static void push_lists(lua_State *L, int list, wentry_t *e, int n) {
  int i, nd = 0, nn = 0;
  lua_newtable(L);
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    int done = F_FINAL(future_state(e[i].f));
    lua_rawgeti(L, list, e[i].idx);
    lua_rawseti(L, done ? -3 : -2, done ? ++nd : ++nn);
  }
}

/* threading.wait(futures[, timeout[, return_when]]) -> done, not_done */
static int pool_wait(lua_State *L) {
  deadline_t dl;
  int how, n, len, i, r = WAIT_OK;
  counts_t c = { 0, 0, NULL, 0 };
  wentry_t *e;
  object_t *port;
  luaL_checktype(L, 1, LUA_TTABLE);
  dl = wait_deadline_arg(L, 2);
  how = luaL_checkoption(L, 3, "all_completed", rw_names);
  lua_settop(L, 1);
  len = (int)compat_rawlen(L, 1);
  e = (wentry_t *)compat_newuserdata(L, (size_t)(len > 0 ? len : 1) * sizeof *e);
  lua_newtable(L);                              /* seen: dedupe, at 3 */
  for (i = 1, n = 0; i <= len; i++) {
    object_t *o;
    lua_rawgeti(L, 1, i);
    o = object_test(L, -1);
    if (o == NULL || o->type != &future_type) {
      handle_t *h = (handle_t *)lua_touserdata(L, -1);
      const char *got = o != NULL ? o->type->name : luaL_typename(L, -1);
      if (o == NULL && h != NULL && lua_type(L, -1) == LUA_TUSERDATA &&
          luaL_getmetafield(L, -1, "__name")) {
        lua_pop(L, 1);
        if (h->obj == NULL) got = "released handle";
      }
      return luaL_argerror(L, 1, lua_pushfstring(L,
          "list of threading.Future expected, item %d is a %s", i, got));
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, o);
    lua_rawget(L, 3);
    if (lua_isnil(L, -1)) {
      lua_pushlightuserdata(L, o);
      lua_pushboolean(L, 1);
      lua_rawset(L, 3);
      e[n].f = (future_t *)o;
      e[n].idx = i;
      e[n].counted = 0;
      n++;
    }
    lua_pop(L, 1);
  }
  wait_check_cancel(L);
  for (i = 0; i < n; i++) count_final(&e[i], i, &c);
  if (rw_satisfied(how, c.ndone, c.nfailed, n) || (!dl.forever && wait_expired(&dl))) {
    push_lists(L, 1, e, n);
    return 2;
  }
  if (task_calling(L)) {   /* a task waits in its scheduler */
    lua_settop(L, 1);
    lua_pushstring(L, rw_names[how]);
    return task_defer(L, TASK_WAIT, NULL, wait_left(&dl), 2);
  }
  port = port_make();
  if (port == NULL) return luaL_error(L, "not enough memory");
  if (!watch_entries(port, e, n, &c)) {
    object_release(port);
    return luaL_error(L, "not enough memory");
  }
  while (!rw_satisfied(how, c.ndone, c.nfailed, n)) {
    r = port_sleep(port, &dl);
    if (r != WAIT_OK) break;
    drain_entries(port, e, n, &c);
  }
  object_release(port);
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  push_lists(L, 1, e, n);
  return 2;
}

/* ---------------------------------------------------- as_completed's set */

/*
** threading._completions(futures) -> a set that hands out the futures of the
** list as they end: set:next([timeout]) -> the index in the list of the
** next one to end (those that had ended when the set was made first, in
** list order), nil, "timeout" when none ends in time, or nil once every
** one was handed out. The set watches each future once, on a port of its
** own, so each end costs one wake-up and no look at the others (a
** threading.wait per step looks at every future left). A task's next that
** must wait goes to its scheduler (task_defer, TASK_NEXT; on Lua 5.1 and
** LuaJIT through a wrapper of as_completed's step), which makes the port
** relay to the scheduler's (set:_relay(port, token)) while the task waits.
** The set belongs to the state that made it: it is a plain userdata, never
** sent to another state.
*/
#define CSET_MT "threading.Completions"

typedef struct cset {
  object_t *port;             /* NULL before it is made */
  int n;                      /* entries, each with a reference to its future */
  int left;                   /* not handed out yet */
  int head;                   /* c.fifo[head..c.tail): ended, not handed out */
  wentry_t *e;
  counts_t c;
} cset_t;

static int cset_gc(lua_State *L) {
  cset_t *cs = (cset_t *)luaL_checkudata(L, 1, CSET_MT);
  int i;
  if (cs->port != NULL) object_release(cs->port);   /* drops its watches */
  cs->port = NULL;
  for (i = 0; i < cs->n; i++) object_release(&cs->e[i].f->obj);
  cs->n = 0;
  free(cs->e);
  free(cs->c.fifo);
  cs->e = NULL;
  cs->c.fifo = NULL;
  return 0;
}

static int cset_new(lua_State *L) {
  cset_t *cs;
  int len, i;
  luaL_checktype(L, 1, LUA_TTABLE);
  len = (int)compat_rawlen(L, 1);
  cs = (cset_t *)compat_newuserdata(L, sizeof *cs);
  memset(cs, 0, sizeof *cs);
  luaL_getmetatable(L, CSET_MT);
  lua_setmetatable(L, -2);
  cs->e = (wentry_t *)malloc((size_t)(len > 0 ? len : 1) * sizeof *cs->e);
  cs->c.fifo = (int *)malloc((size_t)(len > 0 ? len : 1) * sizeof *cs->c.fifo);
  if (cs->e == NULL || cs->c.fifo == NULL) return luaL_error(L, "not enough memory");
  for (i = 1; i <= len; i++) {
    object_t *o;
    lua_rawgeti(L, 1, i);
    o = object_test(L, -1);
    lua_pop(L, 1);
    if (o == NULL || o->type != &future_type)
      return luaL_argerror(L, 1, lua_pushfstring(L, "list of threading.Future expected, item %d is not one", i));
    cs->e[cs->n].f = (future_t *)object_retain(o);
    cs->e[cs->n].idx = i;
    cs->e[cs->n].counted = 0;
    cs->n++;
  }
  cs->left = cs->n;
  if ((cs->port = port_make()) == NULL) return luaL_error(L, "not enough memory");
  /* those ended now are queued first, in list order */
  for (i = 0; i < cs->n; i++) count_final(&cs->e[i], i, &cs->c);
  if (!watch_entries(cs->port, cs->e, cs->n, &cs->c)) return luaL_error(L, "not enough memory");
  return 1;
}

static cset_t *check_cset(lua_State *L) {
  cset_t *cs = (cset_t *)luaL_checkudata(L, 1, CSET_MT);
  if (cs->port == NULL) luaL_argerror(L, 1, "completion set already closed");
  return cs;
}

/* set:next([timeout]) -> index | nil, "timeout" | nil */
static int cset_next(lua_State *L) {
  cset_t *cs = check_cset(L);
  deadline_t dl = wait_deadline_arg(L, 2);
  int r = WAIT_OK;
  for (;;) {
    drain_entries(cs->port, cs->e, cs->n, &cs->c);
    if (cs->head < cs->c.tail) {
      cs->left--;
      lua_pushinteger(L, cs->e[cs->c.fifo[cs->head++]].idx);
      return 1;
    }
    if (cs->left == 0) {
      lua_pushnil(L);
      return 1;
    }
    if (r != WAIT_OK) break;
    wait_check_cancel(L);
    /* a task's wait: its scheduler's port hears of the set's ends */
    if (task_calling(L) && !wait_expired(&dl))
      return task_defer(L, TASK_NEXT, NULL, wait_left(&dl), 0);
    r = port_sleep(cs->port, &dl);
  }
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  lua_pushnil(L);
  lua_pushliteral(L, "timeout");
  return 2;
}

/* set:_relay(port, token) or set:_relay(): pass every wake-up of the set
** on to a scheduler's port (a task waits on the set), or stop */
static int cset_relay(lua_State *L) {
  cset_t *cs = check_cset(L);
  if (lua_isnoneornil(L, 2)) {
    port_relay(cs->port, NULL, 0);
  } else {
    object_t *to = port_check(L, 2);
    lua_Integer token = luaL_checkinteger(L, 3);
    luaL_argcheck(L, token >= 1 && token <= 0x3fffffff, 3, "token out of range");
    port_relay(cs->port, to, (long)token);
  }
  return 0;
}

static const luaL_Reg cset_methods[] = {
  {"next", cset_next},
  {"_relay", cset_relay},
  {NULL, NULL}
};

/* ------------------------------------------------ standalone futures */

/* threading.Future() -> a pending future that its maker completes */
static int future_new(lua_State *L) {
  handle_t *h = object_newhandle(L, &future_type);
  future_t *f = future_alloc();
  if (f == NULL) return luaL_error(L, "not enough memory");
  f->standalone = 1;
  object_sethandle(L, h, &f->obj);
  return 1;
}

static future_t *check_standalone(lua_State *L) {
  future_t *f = check_future(L, 1);
  if (!f->standalone)
    luaL_argerror(L, 1, f->completer != NULL ? f->completer
                                             : "a pool's future is completed by its pool");
  return f;
}

/* Give a standalone future its outcome; raises if it had one already. */
static int future_settle(lua_State *L, future_t *f, int state, transfer_t *out) {
  if (!future_finish(f, state, out)) return luaL_argerror(L, 1, "future already done");
  return 0;
}

/* Future:set_result(...): done, with these results */
static int future_set_result(lua_State *L) {
  future_t *f = check_standalone(L);
  int n = lua_gettop(L) - 1;
  if (F_FINAL(future_state(f))) return luaL_argerror(L, 1, "future already done");
  return future_settle(L, f, F_DONE, n > 0 ? transfer_encode(L, 2, n, "result", 1) : NULL);
}

/* Future:set_exception(err): failed with err */
static int future_set_exception(lua_State *L) {
  future_t *f = check_standalone(L);
  luaL_checkany(L, 2);
  lua_settop(L, 2);
  if (F_FINAL(future_state(f))) return luaL_argerror(L, 1, "future already done");
  return future_settle(L, f, F_FAILED, transfer_encode(L, 2, 1, "exception", 0));
}

/* Future:set_running_or_notify_cancel() -> true (now running), or false
** (it was cancelled); raises if it was running or done already */
static int future_set_running(lua_State *L) {
  future_t *f = check_standalone(L);
  int state;
  WAIT_CHECK(pthread_mutex_lock(&f->mu));
  state = f->state;
  if (state == F_PENDING) f->state = F_RUNNING;
  WAIT_CHECK(pthread_mutex_unlock(&f->mu));
  if (state == F_PENDING) wait_notify_change(&f->obj);
  else if (state != F_CANCELLED)
    return luaL_argerror(L, 1, state == F_RUNNING ? "future already running"
                                                  : "future already done");
  lua_pushboolean(L, state == F_PENDING);
  return 1;
}

/* ------------------------------------------------ futures made in C */

static void *capi_future_new(const char *completer, void (*on_cancel)(void *)) {
  future_t *f = future_alloc();
  if (f == NULL) return NULL;
  f->completer = completer != NULL ? completer : "this future is completed by its maker";
  f->on_cancel = on_cancel;
  return f;
}

static void capi_future_push(lua_State *L, void *f) {
  object_push(L, &((future_t *)f)->obj);
}

static int capi_future_set(lua_State *L, void *fv, int n) {
  future_t *f = (future_t *)fv;
  transfer_t *out = n > 0 ? transfer_encode(L, lua_gettop(L) - n + 1, n, "result", 1) : NULL;
  lua_pop(L, n);
  return future_finish(f, F_DONE, out);
}

static int capi_future_fail(void *f, const char *reason) {
  return future_fail_static((future_t *)f, reason);
}

static int capi_future_cancel(void *f) {
  return future_cancel((future_t *)f);
}

static int capi_future_pending(void *f) {
  return !F_FINAL(future_state((future_t *)f));
}

static void **capi_future_slot(void *f) {
  return &((future_t *)f)->slot;
}

static void capi_future_retain(void *f) {
  object_retain(&((future_t *)f)->obj);
}

static void capi_future_release(void *f) {
  object_release(&((future_t *)f)->obj);
}

static const threading_capi_t capi = {
  THREADING_CAPI_VERSION,
  capi_future_new,
  capi_future_push,
  capi_future_set,
  capi_future_fail,
  capi_future_cancel,
  capi_future_pending,
  capi_future_slot,
  capi_future_retain,
  capi_future_release
};

static const luaL_Reg future_methods[] = {
  {"result", future_result},
  {"exception", future_exception},
  {"done", future_done},
  {"running", future_running},
  {"cancel", future_cancel_m},
  {"cancelled", future_cancelled},
  {"_into", future_into},
  {"set_result", future_set_result},
  {"set_exception", future_set_exception},
  {"set_running_or_notify_cancel", future_set_running},
  {NULL, NULL}
};

static const luaL_Reg future_meta[] = {
  {"__tostring", future__tostring},
  {NULL, NULL}
};

static const luaL_Reg future_funcs[] = {
  {"Future", future_new},
  {"wait", pool_wait},
  {"_completions", cset_new},
  {NULL, NULL}
};

void future_open(lua_State *L) {
  object_newmetatable(L, &future_type, future_methods, future_meta);
  luaL_newmetatable(L, CSET_MT);
  lua_newtable(L);
  luaL_setfuncs(L, cset_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, cset_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_setfuncs(L, future_funcs, 0);
  lua_pushlightuserdata(L, (void *)&capi);
  lua_setfield(L, -2, "_capi");
}
