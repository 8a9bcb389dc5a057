/*
** http_io.c: the requests that do not block their caller. Two runners,
** both over curl's multi interface, both completing a threading.Future:
**
** - The I/O thread (one per process, one multi handle): http.get_async,
**   http.request_async, and http.get/request in a task of a stepped
**   scheduler. A future is what both a plain thread and a task can wait
**   on, so one path serves both, and one multi handle is one connection
**   cache for all of them. The cost is two hand-overs per request (to the
**   I/O thread and back).
** - A driver (one per state, see "a scheduler's driver" below): http.get
**   and http.request in a task of threading.async.run, run in the
**   scheduler's own thread with no hand-over.
**
** A request (a job) on the I/O thread goes through four steps:
** 1. The caller reads and checks the options (http.c), takes an easy handle
**    (a spare job's, or a new one), sets it up and has libcurl copy the
**    body (CURLOPT_COPYPOSTFIELDS: the Lua string may go). Until it is
**    submitted the job sits in a userdata box, so a raise frees it.
** 2. Submitted: the job goes on io.incoming and the I/O thread is woken
**    (curl_multi_wakeup). A request refused before that (a bad URL or
**    header) completes its future at once with nil, message, kind, as
**    http.get would return them.
** 3. The I/O thread adds it to the multi handle and to its list of jobs in
**    flight, and records the job in the future's slot.
** 4. When the transfer ends, the I/O thread builds the response table in a
**    Lua state of its own (no Lua state of any caller is touched), moves it
**    into the future, and frees the job (its easy handle and buffers go to
**    the spare list).
** Cancel: future:cancel() on a pending request calls io_cancelled in the
** cancelling thread, which only raises io.cancels and wakes the I/O thread;
** that one drops every job whose future is no longer pending from the multi
** handle (libcurl closes a connection taken mid-transfer) and frees it.
**
** A driver's job takes steps 1 and 4 in the scheduler's thread; step 2 is
** adding it to the driver's multi handle, and the response is built in
** the scheduler's state and handed to the task (not through the future).
**
** Lock order: io.mu only, a leaf. No Lua runs, nothing is pushed, and no
** curl call is made under it but curl_multi_init at start. The capi calls
** (capi.h) take a future's mu and are never made under io.mu.
**
** Who owns what: a job from submission to its end belongs to the I/O
** thread (the easy handle, header list, buffers and the job's reference to
** its future), and so do the list of jobs in flight, the futures' slots and
** the I/O thread's Lua state. io.incoming, io.spare and the counters of the
** settle call are under io.mu; io.cancels and io.inflight are atomic. A
** driver and its jobs belong to the thread of the state that made it;
** local_cancels and local_inflight are atomic.
**
** fork(): the child has no I/O thread. Its io is reset (a new thread starts
** at the child's first request); requests in flight at the fork belong to
** the parent, and their futures never complete in the child.
*/
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <curl/curl.h>

#include "capi.h"
#include "compat.h"
#include "http.h"

#define JOB_MT "threading.http.Request"
#define GUARD_MT "threading.http.Guard"
#define DRIVER_MT "threading.http.Driver"
#define HTTP_SPARE_JOBS 64           /* finished jobs kept for the next requests */
#define HTTP_IDLE_MS 1000            /* the I/O thread's longest sleep */
#define HTTP_FD_RESERVE 64           /* descriptors left to the rest of the process */

/* A pthread call that cannot fail in a correct program: abort if it does. */
#define IO_CHECK(call) do { int e_ = (call); if (e_ != 0) io_fatal(#call, e_); } while (0)
#define IO_LOCK(mu) IO_CHECK(pthread_mutex_lock(mu))
#define IO_UNLOCK(mu) IO_CHECK(pthread_mutex_unlock(mu))

static void io_fatal(const char *call, int err) {
  fprintf(stderr, "threading.http: %s failed: %s\n", call, strerror(err));
  abort();
}

typedef struct job {
  session_t s;                /* first: curl's callbacks get &job->s */
  void *future;               /* one reference, dropped when the job ends */
  double t0;
  long token;                 /* a driver's: the task it wakes */
  struct job *prev, *next;    /* io.incoming, io.spare, or the I/O thread's list */
} job_t;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t settled;     /* a settle call's round is over */
  int started;                /* (mu) the thread runs and multi exists */
  CURLM *multi;               /* set once under mu, before any job exists */
  job_t *incoming;            /* (mu) submitted, oldest last */
  job_t *spare;               /* (mu) finished jobs for reuse */
  int nspare;                 /* (mu) */
  unsigned long asked, done;  /* (mu) settle rounds asked for, rounds done */
  int waiters;                /* (mu) _inflight calls waiting for a count */
  atomic_int cancels;         /* a pending request was cancelled */
  atomic_long inflight;       /* jobs submitted and not yet ended */
} io = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL, NULL,
         NULL, 0, 0, 0, 0, 0, 0 };

static pthread_once_t io_once = PTHREAD_ONCE_INIT;
static _Atomic(const threading_capi_t *) api_ptr;

/* --------------------------------------------------------------- the core */

static int load_capi(lua_State *L) {
  compat_require(L, "threading.core");
  lua_getfield(L, -1, "_capi");
  return 1;
}

/* The core's C API (capi.h), learnt once per process; raises without it. */
static const threading_capi_t *capi(lua_State *L) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  if (a != NULL) return a;
  lua_pushcfunction(L, load_capi);
  if (lua_pcall(L, 0, 1, 0) != 0 || !lua_islightuserdata(L, -1) ||
      ((const threading_capi_t *)lua_touserdata(L, -1))->version != THREADING_CAPI_VERSION) {
    lua_pop(L, 1);
    luaL_error(L, "threading.http: asynchronous requests need threading.core");
  }
  a = (const threading_capi_t *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  atomic_store(&api_ptr, a);
  return a;
}

/* ------------------------------------------------------------------- jobs */

/* A job with an easy handle (a spare one if any), or NULL without memory. */
static job_t *job_take(void) {
  job_t *j;
  IO_LOCK(&io.mu);
  j = io.spare;
  if (j != NULL) {
    io.spare = j->next;
    io.nspare--;
  }
  IO_UNLOCK(&io.mu);
  if (j != NULL) {
    j->next = NULL;
    return j;
  }
  j = (job_t *)calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->s.easy = curl_easy_init();
  if (j->s.easy == NULL) {
    free(j);
    return NULL;
  }
  return j;
}

/* End a job that is in no list and no multi handle: drop its future and
** keep or free the rest. Any thread; takes io.mu. */
static void job_end(job_t *j) {
  void *f = j->future;
  j->future = NULL;
  curl_slist_free_all(j->s.headers);
  j->s.headers = NULL;
  hbuf_trim(&j->s.body);
  hbuf_trim(&j->s.head);
  hbuf_trim(&j->s.line);
  if (f != NULL) atomic_load(&api_ptr)->future_release(f);
  IO_LOCK(&io.mu);
  if (io.nspare < HTTP_SPARE_JOBS) {
    j->prev = NULL;
    j->next = io.spare;
    io.spare = j;
    io.nspare++;
    j = NULL;
  }
  IO_UNLOCK(&io.mu);
  if (j == NULL) return;
  curl_easy_cleanup(j->s.easy);
  hbuf_free(&j->s.body);
  hbuf_free(&j->s.head);
  hbuf_free(&j->s.line);
  free(j);
}

/* The box that holds a job until it is submitted. */
static int job_gc(lua_State *L) {
  job_t **box = (job_t **)luaL_checkudata(L, 1, JOB_MT);
  job_t *j = *box;
  *box = NULL;
  if (j != NULL) job_end(j);
  return 0;
}

/* ------------------------------------------------------------ the thread */

/* Its list of jobs in flight (only the I/O thread touches it). */
static job_t *running;

static void unlink_running(job_t *j) {
  if (j->prev != NULL) j->prev->next = j->next;
  else running = j->next;
  if (j->next != NULL) j->next->prev = j->prev;
  j->prev = j->next = NULL;
}

/* Take j out of the multi handle and end it. */
static void job_drop(const threading_capi_t *a, job_t *j) {
  curl_multi_remove_handle(io.multi, j->s.easy);
  unlink_running(j);
  *a->future_slot(j->future) = NULL;
  atomic_fetch_sub(&io.inflight, 1);
  job_end(j);
}

/* Push what http.get returns for j's transfer, which ended with curl
** result rc: the response, or nil, message, kind. Returns how many. */
static int push_outcome(lua_State *L, job_t *j, int rc) {
  char msg[HTTP_MSG_MAX];
  if (rc == CURLE_OK) {
    http_push_response(L, &j->s, http_now() - j->t0);
    return 1;
  }
  return http_push_fail(L, msg, http_failure(&j->s, rc, msg, sizeof msg));
}

/* In the I/O thread's state: the outcome of job (a light userdata) with
** curl result (an integer), moved into its future. */
static int job_complete(lua_State *L) {
  job_t *j = (job_t *)lua_touserdata(L, 1);
  int rc = (int)lua_tointeger(L, 2), n;
  lua_settop(L, 0);
  n = push_outcome(L, j, rc);
  atomic_load(&api_ptr)->future_set(L, j->future, n);
  return 0;
}

/* Complete j's future with the outcome rc of its transfer, built in L (or
** failed for memory if L is NULL). Returns the status of the protected call
** that built it; an error other than memory (an interrupt's, raised by a
** hook) is left on L's stack for the caller to raise again. */
static int job_outcome(lua_State *L, const threading_capi_t *a, job_t *j, CURLcode rc) {
  int top, st;
  if (L == NULL || !lua_checkstack(L, 4)) {
    a->future_fail(j->future, "not enough memory for the response");
    return LUA_ERRMEM;
  }
  top = lua_gettop(L);
  lua_pushcfunction(L, job_complete);
  lua_pushlightuserdata(L, j);
  lua_pushinteger(L, (lua_Integer)rc);
  st = lua_pcall(L, 2, 0, 0);
  if (st == 0) return 0;
  a->future_fail(j->future, st == LUA_ERRMEM ? "not enough memory for the response"
                                             : "the response was interrupted");
  if (st == LUA_ERRMEM) lua_settop(L, top);
  return st;
}

static void job_finish(lua_State *L, const threading_capi_t *a, job_t *j, CURLcode rc) {
  job_outcome(L, a, j, rc);
  if (L != NULL) lua_settop(L, 0);
  job_drop(a, j);
}

static void *io_main(void *arg) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  lua_State *L = luaL_newstate();    /* NULL: each request fails for memory */
  (void)arg;
  for (;;) {
    job_t *in, *j, *next;
    unsigned long asked;
    int left, still;
    CURLMsg *m;
    IO_LOCK(&io.mu);
    in = io.incoming;
    io.incoming = NULL;
    asked = io.asked;
    IO_UNLOCK(&io.mu);
    /* oldest first: the list is newest first */
    for (j = NULL; in != NULL; in = next) {
      next = in->next;
      in->next = j;
      j = in;
    }
    for (; j != NULL; j = next) {
      next = j->next;
      j->prev = j->next = NULL;
      if (!a->future_pending(j->future) ||
          curl_multi_add_handle(io.multi, j->s.easy) != CURLM_OK) {
        if (a->future_pending(j->future))
          a->future_fail(j->future, "not enough memory for the request");
        atomic_fetch_sub(&io.inflight, 1);
        job_end(j);
        continue;
      }
      *a->future_slot(j->future) = j;
      j->next = running;
      if (running != NULL) running->prev = j;
      running = j;
    }
    if (atomic_exchange(&io.cancels, 0)) {
      for (j = running; j != NULL; j = next) {
        next = j->next;
        if (!a->future_pending(j->future)) job_drop(a, j);
      }
    }
    curl_multi_perform(io.multi, &still);
    while ((m = curl_multi_info_read(io.multi, &left)) != NULL) {
      char *p = NULL;
      if (m->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
      job_finish(L, a, (job_t *)(void *)p, m->data.result);
    }
    IO_LOCK(&io.mu);
    if (asked != 0 || io.waiters > 0) {
      if (io.done < asked) io.done = asked;
      IO_CHECK(pthread_cond_broadcast(&io.settled));
    }
    IO_UNLOCK(&io.mu);
    curl_multi_poll(io.multi, NULL, 0, HTTP_IDLE_MS, NULL);
  }
  return NULL;
}

/* The child of a fork has no I/O thread: start afresh at its first request. */
static void io_atfork_child(void) {
  IO_CHECK(pthread_mutex_init(&io.mu, NULL));
  IO_CHECK(pthread_cond_init(&io.settled, NULL));
  io.started = 0;
  io.multi = NULL;
  io.incoming = NULL;
  io.spare = NULL;
  io.nspare = 0;
  io.asked = io.done = 0;
  io.waiters = 0;
  atomic_store(&io.cancels, 0);
  atomic_store(&io.inflight, 0);
  running = NULL;
}

static void io_once_init(void) {
  pthread_atfork(NULL, NULL, io_atfork_child);
}

/* Each transfer holds a socket: past the descriptor limit, requests queue
** in libcurl instead of failing to connect. */
static void io_cap_connections(CURLM *multi) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    long cap = rl.rlim_cur > 2 * HTTP_FD_RESERVE ? (long)(rl.rlim_cur - HTTP_FD_RESERVE)
                                                 : HTTP_FD_RESERVE;
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, cap);
  }
}

/* Start the I/O thread unless it runs (caller holds io.mu). 0 on failure. */
static int io_start_locked(void) {
  pthread_t t;
  pthread_attr_t attr;
  sigset_t all, old;
  int rc;
  if (io.started) return 1;
  io.multi = curl_multi_init();
  if (io.multi == NULL) return 0;
  io_cap_connections(io.multi);
  /* the I/O thread takes no signals: SIGINT stays the main thread's */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&t, &attr, io_main, NULL);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    curl_multi_cleanup(io.multi);
    io.multi = NULL;
    return 0;
  }
  io.started = 1;
  return 1;
}

/* Hand j to the I/O thread. 0 (j still the caller's) if it cannot start. */
static int io_submit(job_t *j) {
  int ok;
  pthread_once(&io_once, io_once_init);
  IO_LOCK(&io.mu);
  ok = io_start_locked();
  if (ok) {
    j->next = io.incoming;
    io.incoming = j;
    atomic_fetch_add(&io.inflight, 1);
  }
  IO_UNLOCK(&io.mu);
  if (ok) curl_multi_wakeup(io.multi);
  return ok;
}

/* A pending request's future was cancelled (capi.h on_cancel). */
static void io_cancelled(void *f) {
  CURLM *multi;
  (void)f;
  atomic_store(&io.cancels, 1);
  IO_LOCK(&io.mu);
  multi = io.started ? io.multi : NULL;
  IO_UNLOCK(&io.mu);
  if (multi != NULL) curl_multi_wakeup(multi);
}

/* ------------------------------------------------- a scheduler's driver */

/* A driver runs the requests of one state's threading.async.run tasks in
** that state's own thread, over a multi handle of its own: the scheduler
** pumps it (driver.pump) instead of sleeping in its port while requests
** are in flight, and the port's eventfd is one more descriptor of the
** poll, so a task made ready by another thread ends the pump at once. A
** request then costs what the blocking path costs: no hand-over to the I/O
** thread and back. Everything of a driver (its multi handle, its list of
** jobs, the jobs' future slots) is touched only by the thread of its
** state; a cancel made elsewhere only bumps local_cancels, which the next
** pump reads (a cancel is made by the task itself or by its scheduler,
** both in that thread, and then driver.settle drops the request at once). */

typedef struct driver {
  CURLM *multi;               /* NULL once closed */
  job_t *running;             /* jobs in flight, newest first */
  long n;                     /* how many */
  long seen;                  /* local_cancels at the last settle */
  long token;                 /* the token of the request being submitted */
  int lost;                   /* an ended job could not be reported */
  unsigned gen;               /* http_generation() of multi */
} driver_t;

static int submit(lua_State *L, int is_get, driver_t *d);

static atomic_long local_cancels;   /* cancels of drivers' requests so far */
static atomic_long local_inflight;  /* drivers' requests not yet ended */

static void local_cancelled(void *f) {
  (void)f;
  atomic_fetch_add(&local_cancels, 1);
}

/* 1 if d took j (then its future's slot holds j), 0 if j is still the
** caller's. */
static int driver_add(driver_t *d, job_t *j) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  if (d->multi == NULL || curl_multi_add_handle(d->multi, j->s.easy) != CURLM_OK) return 0;
  *a->future_slot(j->future) = j;
  j->token = d->token;
  j->prev = NULL;
  j->next = d->running;
  if (d->running != NULL) d->running->prev = j;
  d->running = j;
  d->n++;
  atomic_fetch_add(&local_inflight, 1);
  return 1;
}

static void driver_drop(driver_t *d, job_t *j) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  curl_multi_remove_handle(d->multi, j->s.easy);
  if (j->prev != NULL) j->prev->next = j->next;
  else d->running = j->next;
  if (j->next != NULL) j->next->prev = j->prev;
  j->prev = j->next = NULL;
  *a->future_slot(j->future) = NULL;
  d->n--;
  atomic_fetch_sub(&local_inflight, 1);
  job_end(j);
}

/* Drop the jobs whose futures were cancelled: all of them if `all`. */
static void driver_settle(driver_t *d, int all) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  long c = atomic_load(&local_cancels);
  job_t *j, *next;
  if (d->multi == NULL || (!all && c == d->seen)) return;
  d->seen = c;
  for (j = d->running; j != NULL; j = next) {
    next = j->next;
    if (all) a->future_cancel(j->future);
    if (!a->future_pending(j->future)) driver_drop(d, j);
  }
}

/* In the scheduler's state: append to the table at 3 the token of job j
** (a light userdata at 1) and a table { n = 1 + k, tag, ... } of the value
** at 4 (the scheduler's tag) and what http.get returns for its transfer's
** outcome rc (2): what the task is resumed with. Its future is done, with
** no values (no one reads them: the task gets the table). */
static int local_complete(lua_State *L) {
  job_t *j = (job_t *)lua_touserdata(L, 1);
  int rc = (int)lua_tointeger(L, 2), n, i;
  size_t len;
  lua_settop(L, 4);
  n = 1 + push_outcome(L, j, rc);
  lua_createtable(L, n, 1);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, 3 + i);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  len = compat_rawlen(L, 3);
  lua_pushinteger(L, (lua_Integer)j->token);
  lua_rawseti(L, 3, (int)len + 1);
  lua_rawseti(L, 3, (int)len + 2);
  atomic_load(&api_ptr)->future_set(L, j->future, 0);
  return 0;
}

/* Move the transfers on; report those that ended in a table pushed at
** *ended (made at the first). Returns how many ended. Raises, once every
** ended job is dropped, an error other than memory that a hook raised
** while a response was built. */
static int driver_run(lua_State *L, driver_t *d, int *ended, int tag) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  CURLMsg *m;
  int left, still, count = 0, raise = 0;
  driver_settle(d, 0);
  if (d->n == 0) return 0;
  curl_multi_perform(d->multi, &still);
  while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
    char *p = NULL;
    job_t *j;
    int st = LUA_ERRMEM, called = 0;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
    j = (job_t *)(void *)p;
    if (lua_checkstack(L, 7)) {
      if (*ended == 0) {
        lua_newtable(L);
        *ended = lua_gettop(L);
      }
      lua_pushcfunction(L, local_complete);
      lua_pushlightuserdata(L, j);
      lua_pushinteger(L, (lua_Integer)m->data.result);
      lua_pushvalue(L, *ended);
      lua_pushvalue(L, tag);
      st = lua_pcall(L, 4, 0, 0);
      called = 1;
    }
    if (st != 0) {
      /* the task is woken by its poll, which finds the future failed */
      a->future_fail(j->future, st == LUA_ERRMEM ? "not enough memory for the response"
                                                 : "the response was interrupted");
      d->lost = 1;
      if (st != LUA_ERRMEM && !raise) raise = lua_gettop(L);
      else if (called) lua_pop(L, 1);
    }
    driver_drop(d, j);
    count++;
  }
  if (raise) {
    lua_pushvalue(L, raise);
    lua_error(L);
  }
  return count;
}

/* In a fork child: leave d's handles to the parent (http.c, "fork") and
** take a new multi handle. The requests in flight fail, with no curl call;
** their tasks are woken as for a lost report. */
static void driver_forked(driver_t *d) {
  const threading_capi_t *a = atomic_load(&api_ptr);
  job_t *j, *next;
  for (j = d->running; j != NULL; j = next) {
    next = j->next;
    *a->future_slot(j->future) = NULL;
    a->future_fail(j->future, "the request stayed with the parent process at fork()");
    a->future_release(j->future);
    http_leave_behind(NULL, j->s.easy);
    curl_slist_free_all(j->s.headers);
    hbuf_free(&j->s.body);
    hbuf_free(&j->s.head);
    hbuf_free(&j->s.line);
    free(j);
    atomic_fetch_sub(&local_inflight, 1);
    d->lost = 1;
  }
  d->running = NULL;
  d->n = 0;
  http_leave_behind(d->multi, NULL);
  d->gen = http_generation();
  d->multi = curl_multi_init();       /* NULL: closed, each use raises */
  if (d->multi != NULL) io_cap_connections(d->multi);
}

static driver_t *up_driver(lua_State *L) {
  driver_t *d = (driver_t *)lua_touserdata(L, lua_upvalueindex(1));
  if (d->multi != NULL && d->gen != http_generation()) driver_forked(d);
  if (d->multi == NULL) luaL_error(L, "the HTTP driver is closed");
  return d;
}

static void driver_close(driver_t *d) {
  if (d->multi != NULL && d->gen != http_generation()) driver_forked(d);
  if (d->multi == NULL) return;
  driver_settle(d, 1);
  curl_multi_cleanup(d->multi);
  d->multi = NULL;
}

static int driver_gc(lua_State *L) {
  driver_close((driver_t *)lua_touserdata(L, 1));
  return 0;
}

/* driver.get(token, url[, opts]), driver.request(token, {...}) -> Future,
** as get_async; the request wakes the task of that token (driver.pump) */
static int driver_submit(lua_State *L, int is_get) {
  driver_t *d = up_driver(L);
  d->token = (long)luaL_checkinteger(L, 1);
  lua_remove(L, 1);
  return submit(L, is_get, d);
}

static int driver_get(lua_State *L) {
  return driver_submit(L, 1);
}

static int driver_request(lua_State *L) {
  return driver_submit(L, 0);
}

/* driver.pump(fd, timeout, tag) -> busy, ended, lost: moves the requests in
** flight on. If none ended and timeout is not 0, first waits until one
** can move, fd (a port's eventfd) is readable, timeout seconds pass (at
** most HTTP_TICK_MS, so that the caller sees its cancellation in time) or
** a signal comes. busy: requests were in flight (false at once if none
** was); ended: nil, or { token, results, token, results... } (results as
** table.pack packs tag and what http.get returns); lost: an ended request could
** not be reported (no memory): its task must be retried. */
static int driver_pump(lua_State *L) {
  driver_t *d = up_driver(L);
  int fd = (int)luaL_optinteger(L, 1, -1), ended = 0;
  double t = luaL_optnumber(L, 2, -1.0);
  lua_settop(L, 3);                             /* 3: the tag */
  if (d->n == 0 && (driver_settle(d, 0), d->n == 0)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (driver_run(L, d, &ended, 3) == 0 && d->n > 0 && t != 0) {
    struct curl_waitfd w;
    long ms = t < 0 || t * 1000.0 >= HTTP_TICK_MS ? HTTP_TICK_MS : (long)ceil(t * 1000.0);
    w.fd = fd;
    w.events = CURL_WAIT_POLLIN;
    w.revents = 0;
    curl_multi_poll(d->multi, fd >= 0 ? &w : NULL, fd >= 0 ? 1 : 0, (int)ms, NULL);
    driver_run(L, d, &ended, 3);
  }
  lua_pushboolean(L, 1);
  if (ended != 0) lua_pushvalue(L, ended);
  else lua_pushnil(L);
  lua_pushboolean(L, d->lost);
  d->lost = 0;
  return 3;
}

/* driver.settle(): drop at once the requests whose futures were cancelled */
static int driver_settle_m(lua_State *L) {
  driver_settle(up_driver(L), 0);
  return 0;
}

/* driver.close(): cancel every request in flight and free the multi handle */
static int driver_close_m(lua_State *L) {
  driver_close((driver_t *)lua_touserdata(L, lua_upvalueindex(1)));
  return 0;
}

/* http._driver() -> { get, request, pump, settle, close }: a driver for the
** tasks of threading.async.run in this state (async.lua keeps one per
** state). Its functions share the driver as their upvalue, so that get and
** request read their arguments as http.get and http.request do. */
int http_driver(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"get", driver_get},
    {"request", driver_request},
    {"pump", driver_pump},
    {"settle", driver_settle_m},
    {"close", driver_close_m},
    {NULL, NULL}
  };
  driver_t *d;
  const luaL_Reg *f;
  (void)capi(L);
  lua_settop(L, 0);
  d = (driver_t *)compat_newuserdata(L, sizeof *d);
  memset(d, 0, sizeof *d);
  luaL_getmetatable(L, DRIVER_MT);
  lua_setmetatable(L, 1);
  d->multi = curl_multi_init();
  if (d->multi == NULL) return luaL_error(L, "not enough memory");
  d->seen = atomic_load(&local_cancels);
  d->gen = http_generation();
  io_cap_connections(d->multi);
  lua_createtable(L, 0, 5);
  for (f = fns; f->name != NULL; f++) {
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, f->func, 1);
    lua_setfield(L, -2, f->name);
  }
  return 1;
}

/* --------------------------------------------------------------- Lua API */

/* Complete future f with nil, msg, kind. */
static void refuse(lua_State *L, const threading_capi_t *a, void *f, const char *msg,
                   const char *kind) {
  a->future_set(L, f, http_push_fail(L, msg, kind));
}

/* Read a request, set it up and hand it to the I/O thread (d NULL) or to
** the driver d; returns its future. */
static int submit(lua_State *L, int is_get, driver_t *d) {
  const threading_capi_t *a = capi(L);
  request_t r;
  char msg[HTTP_MSG_MAX];
  const char *kind;
  job_t **box, *j;
  void *f;
  CURLcode rc;
  int top;
  http_args(L, &r, is_get);
  luaL_checkstack(L, 8, "no room for the request");
  box = (job_t **)compat_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, JOB_MT);
  lua_setmetatable(L, -2);
  j = job_take();
  if (j == NULL) return luaL_error(L, "not enough memory");
  *box = j;
  f = a->future_new("an HTTP request's future is completed by its request",
                    d != NULL ? local_cancelled : io_cancelled);
  if (f == NULL) return luaL_error(L, "not enough memory");
  j->future = f;
  a->future_push(L, f);                          /* the result */
  top = lua_gettop(L);
  kind = http_check_url(&r, msg, sizeof msg);
  if (kind == NULL && !http_build_headers(L, &j->s, &r, msg, sizeof msg)) kind = "header";
  if (kind == NULL) {
    rc = http_configure(&j->s, &r);
    if (rc == CURLE_OK && r.has_body)
      rc = curl_easy_setopt(j->s.easy, CURLOPT_COPYPOSTFIELDS, r.body);
    if (rc == CURLE_OK) rc = curl_easy_setopt(j->s.easy, CURLOPT_PRIVATE, (void *)j);
    if (rc != CURLE_OK) kind = http_failure(&j->s, rc, msg, sizeof msg);
  }
  if (kind == NULL) {
    j->t0 = http_now();
    *box = NULL;
    if (d != NULL ? driver_add(d, j) : io_submit(j)) return 1;
    *box = j;
    snprintf(msg, sizeof msg, d != NULL ? "not enough memory for the request"
                                        : "cannot start the HTTP I/O thread");
    kind = d != NULL ? "memory" : "error";
  }
  lua_settop(L, top);                           /* a failed header leaves its pair */
  refuse(L, a, f, msg, kind);
  return 1;                                     /* the box frees the job */
}

/* http.get_async(url[, opts]) -> Future of (response | nil, message, kind) */
int http_get_async(lua_State *L) {
  return submit(L, 1, NULL);
}

/* http.request_async{url=, ...} -> Future of (response | nil, message, kind) */
int http_request_async(lua_State *L) {
  return submit(L, 0, NULL);
}

/* http._inflight([upto, timeout]) -> requests submitted and not yet ended,
** once the I/O thread has handled every cancel made before this call, and
** how many of them run on drivers, and how many blocking requests are in
** their transfer; with upto, waits (at most timeout seconds) until the I/O
** thread's are no more than upto.
** For the specs: a way to see that a cancel or a lost future frees its
** request, with no sleep. */
int http_inflight(lua_State *L) {
  lua_Integer upto = luaL_optinteger(L, 1, -1);
  double timeout = luaL_optnumber(L, 2, 10.0);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)timeout;
  IO_LOCK(&io.mu);
  if (io.started) {
    unsigned long want = ++io.asked;
    IO_UNLOCK(&io.mu);
    curl_multi_wakeup(io.multi);
    IO_LOCK(&io.mu);
    while (io.done < want) IO_CHECK(pthread_cond_wait(&io.settled, &io.mu));
    io.waiters++;
    while (atomic_load(&io.inflight) > upto && upto >= 0)
      if (pthread_cond_timedwait(&io.settled, &io.mu, &until) == ETIMEDOUT) break;
    io.waiters--;
  }
  IO_UNLOCK(&io.mu);
  lua_pushinteger(L, (lua_Integer)(atomic_load(&io.inflight) + atomic_load(&local_inflight)));
  lua_pushinteger(L, (lua_Integer)atomic_load(&local_inflight));
  lua_pushinteger(L, (lua_Integer)http_blocking_inflight());
  return 3;
}

/* http._guard(future) -> a guard whose collection cancels the future if it
** is still pending. A task's request keeps one (async.lua): when the state
** closes under a scheduler that was cancelled, no Lua runs any more (the
** cancellation strikes at every instruction), but finalizers do, with the
** cancellation disarmed, and the request is cancelled there. */
int http_guard(lua_State *L) {
  const threading_capi_t *a = capi(L);
  void **box, *f;
  lua_getfield(L, LUA_REGISTRYINDEX, "threading.Future");
  if (!lua_getmetatable(L, 1) || !lua_rawequal(L, -1, -2))
    return luaL_argerror(L, 1, "threading.Future expected");
  lua_pop(L, 2);
  f = *(void **)lua_touserdata(L, 1);            /* a handle is the object's address */
  if (f == NULL) return luaL_argerror(L, 1, "released handle");
  box = (void **)compat_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_getmetatable(L, GUARD_MT);
  lua_setmetatable(L, -2);
  a->future_retain(f);
  *box = f;
  return 1;
}

static int guard_gc(lua_State *L) {
  void **box = (void **)luaL_checkudata(L, 1, GUARD_MT);
  void *f = *box;
  const threading_capi_t *a = atomic_load(&api_ptr);
  *box = NULL;
  if (f != NULL && a != NULL) {
    a->future_cancel(f);
    a->future_release(f);
  }
  return 0;
}

/* The metatables of the job box and the guard, made by luaopen_threading_http. */
void http_io_open(lua_State *L) {
  http_gc_metatable(L, GUARD_MT, guard_gc);
  http_gc_metatable(L, JOB_MT, job_gc);
  http_gc_metatable(L, DRIVER_MT, driver_gc);
}
