/*
** thread.c: threading.Thread, the process-wide registry of threads, sleep.
**
** A started thread owns one reference to its object (released when it
** ends) and a fresh lua_State of its own, run and closed on a worker OS
** thread. Workers are reused: a finished worker parks with a new, unused
** state ready for the next Thread. The only time another OS thread touches
** a running state is cancel(), which sets a debug hook under t->mu while
** t->L is non-NULL; the worker clears t->L under t->mu before closing it.
**
** Lock order: reg_mu, then a thread's mu; pool_mu is never held with
** another. No lock is held while calling Lua.
*/
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lock.h"
#include "object.h"
#include "thread.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define THREAD_MT "threading.Thread"
#define THREAD_NAME_MAX 15          /* pthread_setname_np's limit on Linux */
#if !defined(THREAD_STACK_SIZE)
#define THREAD_STACK_SIZE (2u << 20)
#endif

enum { ST_NEW, ST_RUNNING, ST_DONE, ST_FAILED, ST_CANCELLED };
static const char *const status_names[] = {
  "new", "running", "done", "failed", "cancelled"
};

/* What a state has allocated, and its cap (0: none); one per state. */
typedef struct alloc {
  size_t used, limit;
  int counted;              /* the state uses limited_alloc */
} alloc_t;

typedef struct thread {
  object_t obj;
  pthread_mutex_t mu;       /* guards the fields marked (mu) */
  pthread_cond_t cv;        /* status and native_id changes; sleep() */
  waiter_t waiter;
  char *name;               /* (mu) */
  int daemon;               /* (mu) */
  int status;               /* (mu) */
  int foreign;              /* an OS thread this module did not start */
  int error_seen;           /* (mu) join returned the error */
  long ident;               /* set at start, then constant */
  long native_id;           /* (mu) 0 until the OS thread runs */
  int id_waiters;           /* (mu) readers waiting for native_id */
  long root;                /* the main state whose exit joins this thread */
  size_t memory_limit;
  alloc_t *alloc;           /* the running state's accounting */
  char *path, *cpath;       /* package.path/cpath of the creating state */
  transfer_t *input;        /* target and args; taken by the thread */
  transfer_t *output;       /* (mu) results or error value, once ended */
  char *error_text;         /* (mu) printable error, for the unjoined report */
  lua_State *L;             /* (mu) the running state, for cancel's hook */
  struct thread *prev, *next;   /* (reg_mu) live threads */
} thread_t;

static void thread_destroy(object_t *o);
static const object_type_t thread_type = { THREAD_MT, thread_destroy };

/* ------------------------------------------------------------ registry */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv;         /* a thread ended */
static thread_t *reg_head;            /* (reg_mu) live threads */
static long reg_next_ident;           /* (reg_mu) */
static long reg_next_number;          /* (reg_mu) for "Thread-N" */
static long reg_next_dummy;           /* (reg_mu) for "Dummy-N" */
static long reg_next_root;            /* (reg_mu) */
static long reg_finishing;            /* (reg_mu) non-daemon threads ending */
static thread_t *reg_main;            /* (reg_mu) the process's main thread */
static pthread_key_t self_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void foreign_exit(void *p);

static void init_once(void) {
  wait_cond_init(&reg_cv);
  WAIT_CHECK(pthread_key_create(&self_key, foreign_exit));
}

static void reg_add(thread_t *t) {
  t->prev = NULL;
  t->next = reg_head;
  if (reg_head != NULL) reg_head->prev = t;
  reg_head = t;
}

static void reg_remove(thread_t *t) {
  if (t->prev != NULL) t->prev->next = t->next;
  else if (reg_head == t) reg_head = t->next;
  if (t->next != NULL) t->next->prev = t->prev;
  t->prev = t->next = NULL;
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = (char *)malloc(n);
  if (p != NULL) memcpy(p, s, n);
  return p;
}

static thread_t *thread_alloc(void) {
  thread_t *t = (thread_t *)calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  object_init(&t->obj, &thread_type);
  wait_mutex_init(&t->mu);
  wait_cond_init(&t->cv);
  wait_waiter_init(&t->waiter);
  return t;
}

static void thread_destroy(object_t *o) {
  thread_t *t = (thread_t *)o;
  if (t->status == ST_FAILED && !t->error_seen && t->error_text != NULL)
    fprintf(stderr, "threading: error in thread %s (never joined):\n%s\n",
            t->name ? t->name : "?", t->error_text);
  transfer_free(t->input);
  transfer_free(t->output);
  free(t->error_text);
  free(t->name);
  free(t->path);
  free(t->cpath);
  wait_waiter_destroy(&t->waiter);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cv);
  free(t);
}

static long gettid_long(void) {
  return (long)syscall(SYS_gettid);
}

/* The object for an OS thread this module did not start: the process's
** main thread ("MainThread") or a host program's thread ("Dummy-N"). */
static thread_t *adopt_foreign(void) {
  thread_t *t;
  int is_main = gettid_long() == (long)getpid();
  char name[32];
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  if (is_main && reg_main != NULL) {
    t = reg_main;
    object_retain(&t->obj);
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    pthread_setspecific(self_key, t);
    return t;
  }
  t = thread_alloc();
  if (t == NULL) {
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    return NULL;
  }
  if (is_main) snprintf(name, sizeof name, "MainThread");
  else snprintf(name, sizeof name, "Dummy-%ld", ++reg_next_dummy);
  t->name = dupstr(name);
  t->foreign = 1;
  t->status = ST_RUNNING;
  t->ident = ++reg_next_ident;
  t->native_id = gettid_long();
  reg_add(t);
  object_retain(&t->obj);              /* the registry's reference */
  if (is_main) {
    reg_main = t;
    object_retain(&t->obj);            /* kept for main_thread() */
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  pthread_setspecific(self_key, t);    /* the TLS slot's reference */
  return t;
}

/* At a foreign OS thread's exit: drop it from the registry. */
static void foreign_exit(void *p) {
  thread_t *t = (thread_t *)p;
  if (t == NULL || !t->foreign) return;
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  if (t->prev != NULL || t->next != NULL || reg_head == t) {
    reg_remove(t);
    object_release(&t->obj);
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->status = ST_DONE;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  object_release(&t->obj);
}

static atomic_int initialized;

static thread_t *thread_self(void) {
  thread_t *t;
  if (!atomic_load_explicit(&initialized, memory_order_acquire)) {
    pthread_once(&once, init_once);
    atomic_store_explicit(&initialized, 1, memory_order_release);
  }
  t = (thread_t *)pthread_getspecific(self_key);
  return t != NULL ? t : adopt_foreign();
}

waiter_t *wait_current(void) {
  thread_t *t = thread_self();
  return t != NULL ? &t->waiter : NULL;
}

/* The token is the thread's waiter, so lock owners and wait_current() agree. */
void *thread_current(void) {
  return wait_current();
}

static thread_t *self_or_error(lua_State *L) {
  thread_t *t = thread_self();
  if (t == NULL) luaL_error(L, "not enough memory");
  return t;
}

/* ----------------------------------------------------------- exit join */

static const char root_key = 'r';

typedef struct exit_hook { long root; } exit_hook;

/* __gc of the hook kept in a main state's registry: join that state's
** non-daemon threads, as Python does when the interpreter exits. */
static int exit_hook_gc(lua_State *L) {
  exit_hook *h = (exit_hook *)lua_touserdata(L, 1);
  thread_t *self = thread_self();
  for (;;) {
    thread_t *t;
    int busy = 0;
    WAIT_CHECK(pthread_mutex_lock(&reg_mu));
    for (t = reg_head; t != NULL && !busy; t = t->next) {
      int daemon;
      if (t->foreign || t == self || t->root != h->root) continue;
      WAIT_CHECK(pthread_mutex_lock(&t->mu));
      daemon = t->daemon;
      WAIT_CHECK(pthread_mutex_unlock(&t->mu));
      busy = !daemon;
    }
    if (!busy && reg_finishing == 0) {
      WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
      return 0;
    }
    WAIT_CHECK(pthread_cond_wait(&reg_cv, &reg_mu));
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  }
}

void thread_register_state(lua_State *L) {
  thread_t *self = thread_self();
  exit_hook *h;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &root_key);
  if (!lua_isnil(L, -1) || (self != NULL && !self->foreign)) {
    lua_pop(L, 1);
    return;                      /* done already, or one of our threads */
  }
  lua_pop(L, 1);
  h = (exit_hook *)compat_newuserdata(L, sizeof *h);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  h->root = ++reg_next_root;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, exit_hook_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &root_key);
}

/* The root of threads created from L: the creating thread's, or L's own. */
static long creating_root(lua_State *L) {
  thread_t *self = thread_self();
  long root = 0;
  if (self != NULL && !self->foreign) return self->root;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &root_key);
  if (lua_isuserdata(L, -1)) root = ((exit_hook *)lua_touserdata(L, -1))->root;
  lua_pop(L, 1);
  return root;
}

/* ------------------------------------------------------- thread bodies */

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  alloc_t *a = (alloc_t *)ud;
  void *p;
  if (ptr == NULL) osize = 0;
  if (nsize == 0) {
    free(ptr);
    a->used -= osize;
    return NULL;
  }
  if (a->limit != 0 && nsize > osize && a->used + (nsize - osize) > a->limit)
    return NULL;
  p = realloc(ptr, nsize);
  if (p != NULL) a->used = a->used - osize + nsize;
  return p;
}

static int thread_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "threading: unprotected error in a thread: %s\n",
          msg ? msg : "(error object is not a string)");
  abort();
  return 0;
}

/* registry[&protected_key] = { [function] = true }: Lua functions in which
** the cancellation hook must not strike (see thread_protect). */
static const char protected_key = 'p';

/* Is the function running at `ar` one of the protected ones? */
static int in_protected(lua_State *L, lua_Debug *ar) {
  int hit = 0;
  if (!lua_checkstack(L, 3)) return 0;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (lua_istable(L, -1) && lua_getinfo(L, "f", ar)) {
    lua_rawget(L, -2);
    hit = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return hit;
}

/* Set by cancel() on a running thread's state: raise the cancellation at
** the next instruction, unless a blocking call has raised it meanwhile.
** Inside a protected function (the acquire-call-release of Lock:with, a
** guard's release) it waits for the next instruction outside: striking
** between an acquire and the pcall, or between the pcall and the release,
** would leave the lock held. */
static void cancel_hook(lua_State *L, lua_Debug *ar) {
  if (!wait_cancel_undelivered()) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (in_protected(L, ar)) return;     /* stays armed: try again next instruction */
  lua_sethook(L, NULL, 0, 0);
  wait_raise_cancel(L);
}

/* threading.core._protect(f, ...): mark Lua functions in which an
** asynchronous cancellation is held back until they return or call out. */
static int thread_protect(lua_State *L) {
  int i, n = lua_gettop(L);
  for (i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &protected_key);
  }
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
  }
  return 0;
}

/* Message handler: add the traceback to string errors. */
static int thread_msgh(lua_State *L) {
  waiter_t *w = wait_current();
  if (w != NULL && atomic_load(&w->delivered)) return 1;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    compat_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Keep a printable copy of the error at the top of L in t->error_text. */
static int error_text_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  const char *s;
  lua_settop(L, 2);
  if (luaL_callmeta(L, 2, "__tostring") && lua_isstring(L, -1))
    s = lua_tostring(L, -1);
  else if (lua_isstring(L, 2))
    s = lua_tostring(L, 2);
  else
    s = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 2));
  free(t->error_text);
  t->error_text = dupstr(s);
  return 0;
}

static void keep_error_text(lua_State *L, thread_t *t) {
  const char *type = luaL_typename(L, -1);
  lua_pushcfunction(L, error_text_body);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    /* its __tostring failed, or memory ran out: still say something */
    char text[96];
    lua_pop(L, 1);
    snprintf(text, sizeof text, "(error object is a %s value that cannot be shown)", type);
    free(t->error_text);
    t->error_text = dupstr(text);
  }
}

static int encode_one(lua_State *L) {
  transfer_t **out = (transfer_t **)lua_touserdata(L, 1);
  *out = transfer_encode(L, 2, 1, "error", 0);
  return 0;
}

/* The value at idx in a new buffer, or NULL if it cannot move. */
static transfer_t *try_encode(lua_State *L, int idx) {
  transfer_t *out = NULL;
  idx = compat_absindex(L, idx);
  lua_pushcfunction(L, encode_one);
  lua_pushlightuserdata(L, &out);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 2, 0, 0) != 0) lua_pop(L, 1);
  return out;
}

/* Runs in the new state, protected: set it up, call the target, keep the
** results. Returns the final status. */
static int thread_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  transfer_t *input = t->input;
  int base, n, rc;
  lua_settop(L, 0);
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    if (t->path) {
      lua_pushstring(L, t->path);
      lua_setfield(L, -2, "path");
    }
    if (t->cpath) {
      lua_pushstring(L, t->cpath);
      lua_setfield(L, -2, "cpath");
    }
  }
  lua_settop(L, 0);
  lua_pushcfunction(L, thread_msgh);
  base = lua_gettop(L);
  n = transfer_decode(L, input);
  t->input = NULL;
  transfer_free(input);
  if (wait_cancel_undelivered()) wait_raise_cancel(L);
  rc = lua_pcall(L, n - 1, LUA_MULTRET, base);
  t->alloc->limit = 0;        /* the cap is for the target, not the report */
  if (rc == 0) {
    int nres = lua_gettop(L) - base;
    transfer_t *out = transfer_encode(L, base + 1, nres, "results", 1);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->output = out;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    lua_pushinteger(L, atomic_load(&t->waiter.delivered) ? ST_CANCELLED : ST_DONE);
    return 1;
  }
  if (atomic_load(&t->waiter.delivered)) {
    lua_pushinteger(L, ST_CANCELLED);
    return 1;
  }
  /* an error: strings carry the thread's name; other values go as they are */
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
    lua_pushfstring(L, "%s: %s", t->name, lua_tostring(L, -1));
    lua_remove(L, -2);
  }
  keep_error_text(L, t);
  {
    /* a value that cannot move is reported as its text */
    transfer_t *out = try_encode(L, -1);
    if (out == NULL) {
      lua_pushstring(L, t->error_text);
      out = try_encode(L, -1);
    }
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->output = out;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  }
  lua_pushinteger(L, ST_FAILED);
  return 1;
}

/* Publish the end and drop the OS thread's reference. The joiner wakes
** under reg_mu, so it no longer finds the thread in enumerate(); the exit
** hook also waits for `reg_finishing`, so a report printed by the last
** release (an unjoined failure) is out before the process exits. */
static void finish(thread_t *t, int status) {
  int daemon;
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->status = status;
  daemon = t->daemon;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  /* after the unlock, so that woken joiners do not block at once on t->mu */
  WAIT_CHECK(pthread_cond_broadcast(&t->cv));
  reg_remove(t);
  if (!daemon) reg_finishing++;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  wait_notify_change();
  pthread_setspecific(self_key, NULL);
  object_release(&t->obj);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  if (!daemon) reg_finishing--;
  WAIT_CHECK(pthread_cond_broadcast(&reg_cv));
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
}

static int open_libs(lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

/* A new state with the standard libraries, accounted in *a; NULL if out
** of memory. */
static lua_State *new_state(alloc_t *a) {
  lua_State *L;
  a->used = 0;
  a->limit = 0;
  a->counted = 1;
  L = lua_newstate(limited_alloc, a);
  if (L == NULL) {              /* a Lua whose states need its own allocator */
    a->counted = 0;
    L = luaL_newstate();
    if (L == NULL) return NULL;
  }
  lua_atpanic(L, thread_panic);
  lua_pushcfunction(L, open_libs);
  if (lua_pcall(L, 0, 0, 0) != 0) {
    lua_close(L);
    return NULL;
  }
  return L;
}

/*
** Workers. An OS thread runs Threads one after another: between them it
** parks with a fresh state ready (standard libraries opened, never used),
** so starting a Thread costs neither a pthread_create nor opening the
** libraries on the starter's path. A state that ran user code is always
** closed, never reused.
*/
#if !defined(POOL_MAX_IDLE)
#define POOL_MAX_IDLE 4           /* parked workers kept at most */
#endif
#if !defined(POOL_IDLE_SECONDS)
#define POOL_IDLE_SECONDS 5.0     /* a parked worker exits after this */
#endif

typedef struct worker {
  pthread_cond_t cv;          /* (pool_mu) a job arrived */
  thread_t *job;              /* (pool_mu) */
  lua_State *spare;           /* a state that never ran user code, or NULL */
  alloc_t alloc;              /* accounting of spare, then of the job's state */
  struct worker *next;        /* (pool_mu) parked list */
} worker_t;

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static worker_t *pool_idle;   /* (pool_mu) */
static int pool_nidle;        /* (pool_mu) */
static int pool_reserved;     /* (pool_mu) workers about to park */

/* Run one Thread on the calling worker. */
static void run_job(worker_t *w, thread_t *t) {
  lua_State *L;
  int status = ST_FAILED;
  char name[THREAD_NAME_MAX + 1];
  pthread_setspecific(self_key, t);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  snprintf(name, sizeof name, "%s", t->name);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  pthread_setname_np(pthread_self(), name);
  /* published after the name, so whoever reads native_id finds the name set */
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->native_id = gettid_long();
  /* only readers of native_id want this; a joiner would wake for nothing */
  if (t->id_waiters > 0) WAIT_CHECK(pthread_cond_broadcast(&t->cv));
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));

  L = w->spare;
  w->spare = NULL;
  if (L == NULL) L = new_state(&w->alloc);
  if (L != NULL && t->memory_limit != 0 && !w->alloc.counted) {
    lua_close(L);
    L = NULL;
    t->error_text = dupstr("memory_limit is not supported by this Lua");
  } else if (L == NULL) {
    t->error_text = dupstr("not enough memory to create the thread's state");
  }
  if (L != NULL) {
    w->alloc.limit = t->memory_limit;
    t->alloc = &w->alloc;
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->L = L;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (atomic_load(&t->waiter.cancelled)) {
      status = ST_CANCELLED;              /* cancelled before it ran */
    } else {
      int rc;
      lua_pushcfunction(L, thread_body);
      lua_pushlightuserdata(L, t);
      rc = lua_pcall(L, 1, 1, 0);
      /* the cap is for the target: reporting may need a little memory, and
      ** Lua 5.1 has no emergency collection */
      w->alloc.limit = 0;
      if (rc == 0) {
        status = (int)lua_tointeger(L, -1);
      } else if (atomic_load(&t->waiter.delivered)) {
        status = ST_CANCELLED;
      } else {
        /* setup, result transfer or memory failed: report it as text */
        keep_error_text(L, t);
        lua_settop(L, 0);
        if (t->output == NULL && t->error_text != NULL) {
          transfer_t *out;
          lua_pushfstring(L, "%s: %s", t->name, t->error_text);
          out = try_encode(L, -1);
          WAIT_CHECK(pthread_mutex_lock(&t->mu));
          t->output = out;
          WAIT_CHECK(pthread_mutex_unlock(&t->mu));
        }
      }
    }
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->L = NULL;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    t->alloc = NULL;
    lua_close(L);
  }
  if (status == ST_FAILED && t->error_text == NULL)
    t->error_text = dupstr("unknown error");
  finish(t, status);
}

/* Park on the idle list (a place reserved by reserve_park) until a job
** comes (returns it) or the worker has been idle long enough (NULL). */
static thread_t *park(worker_t *w) {
  deadline_t dl = wait_deadline_in(POOL_IDLE_SECONDS);
  thread_t *job = NULL;
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  pool_reserved--;
  {
    w->job = NULL;
    w->next = pool_idle;
    pool_idle = w;
    pool_nidle++;
    while (w->job == NULL) {
      int rc = pthread_cond_timedwait(&w->cv, &pool_mu, &dl.at);
      if (rc != 0 && rc != ETIMEDOUT) wait_fatal("pthread_cond_timedwait", rc);
      if (rc == ETIMEDOUT && w->job == NULL) {
        worker_t **p = &pool_idle;
        while (*p != w) p = &(*p)->next;
        *p = w->next;
        pool_nidle--;
        break;
      }
    }
    job = w->job;
  }
  WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
  return job;
}

/* Claim a place among the parked workers; 0 if enough are parked or about
** to be. Claimed before the spare state is built, so that a burst of ending
** threads does not build states only to throw them away. */
static int reserve_park(void) {
  int ok;
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  ok = pool_nidle + pool_reserved < POOL_MAX_IDLE;
  if (ok) pool_reserved++;
  WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
  return ok;
}

static void *worker_main(void *arg) {
  worker_t *w = (worker_t *)arg;
  thread_t *t = w->job;
  while (t != NULL) {
    run_job(w, t);
    if (!reserve_park()) break;
    pthread_setname_np(pthread_self(), "threading-idle");
    if (w->spare == NULL) w->spare = new_state(&w->alloc);
    t = park(w);
  }
  if (w->spare != NULL) lua_close(w->spare);
  pthread_cond_destroy(&w->cv);
  free(w);
  return NULL;
}

/* Hand t to a parked worker, or to a new one. 0 or an errno. */
static int dispatch(thread_t *t) {
  worker_t *w;
  pthread_attr_t attr;
  pthread_t tid;
  int rc;
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  w = pool_idle;
  if (w != NULL) {
    pool_idle = w->next;
    pool_nidle--;
    w->job = t;
    WAIT_CHECK(pthread_cond_signal(&w->cv));
  }
  WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
  if (w != NULL) return 0;
  w = (worker_t *)calloc(1, sizeof *w);
  if (w == NULL) return ENOMEM;
  wait_cond_init(&w->cv);
  w->job = t;
  WAIT_CHECK(pthread_attr_init(&attr));
  WAIT_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  WAIT_CHECK(pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE));
  rc = pthread_create(&tid, &attr, worker_main, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_cond_destroy(&w->cv);
    free(w);
  }
  return rc;
}

/* ----------------------------------------------------------- Lua API */

static thread_t *check_thread(lua_State *L, int idx) {
  return (thread_t *)object_check(L, idx, &thread_type);
}

static int is_callable(lua_State *L, int idx) {
  if (lua_isfunction(L, idx)) return 1;
  if (luaL_getmetafield(L, idx, "__call")) {
    lua_pop(L, 1);
    return 1;
  }
  return 0;
}

static const char *opt_field_string(lua_State *L, int t, const char *k) {
  const char *s = NULL;
  lua_getfield(L, t, k);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, 1, lua_pushfstring(L, "field '%s' must be a string", k));
    s = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return s;
}

/* Thread(fn, ...) or Thread{target=, args=, name=, daemon=, memory_limit=}:
** pushes a new, unstarted Thread. */
static int thread_new(lua_State *L) {
  thread_t *self = thread_self();
  thread_t *t;
  handle_t *h;
  const char *name = NULL;
  char buf[32];
  int daemon = self != NULL && !self->foreign ? self->daemon : 0;
  lua_Number limit = 0;
  int nargs, top;
  if (lua_type(L, 1) == LUA_TTABLE && !is_callable(L, 1)) {
    int o = 1;
    lua_settop(L, 1);
    lua_getfield(L, o, "target");
    if (!is_callable(L, -1))
      luaL_argerror(L, 1, "field 'target' must be a function");
    name = opt_field_string(L, o, "name");
    lua_getfield(L, o, "daemon");
    if (!lua_isnil(L, -1)) {
      if (!lua_isboolean(L, -1)) luaL_argerror(L, 1, "field 'daemon' must be a boolean");
      daemon = lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    lua_getfield(L, o, "memory_limit");
    if (!lua_isnil(L, -1)) {
      limit = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !(limit >= 1) || limit > 1e15)
        luaL_argerror(L, 1, "field 'memory_limit' must be a positive number of bytes");
    }
    lua_pop(L, 1);
    lua_getfield(L, o, "args");
    if (lua_isnil(L, -1)) {
      nargs = 0;
      lua_pop(L, 1);
    } else {
      int a;
      if (!lua_istable(L, -1)) luaL_argerror(L, 1, "field 'args' must be a table");
      a = lua_gettop(L);
      lua_getfield(L, a, "n");
      nargs = lua_type(L, -1) == LUA_TNUMBER ? (int)lua_tointeger(L, -1)
                                             : (int)compat_rawlen(L, a);
      lua_pop(L, 1);
      if (nargs < 0 || !lua_checkstack(L, nargs + 8))
        luaL_argerror(L, 1, "field 'args' has too many values");
      for (int i = 1; i <= nargs; i++) lua_rawgeti(L, a, i);
      lua_remove(L, a);
    }
    top = 2;               /* target at 2, args after it */
  } else {
    if (!is_callable(L, 1)) object_typeerror(L, 1, "function");
    top = 1;
    nargs = lua_gettop(L) - 1;
  }
  /* the handle owns t from the start, so an error below leaks nothing */
  h = object_newhandle(L, &thread_type);
  t = thread_alloc();
  if (t == NULL) return luaL_error(L, "not enough memory");
  object_sethandle(L, h, &t->obj);
  lua_insert(L, top);                 /* handle, target, args... */
  t->input = transfer_encode(L, top + 1, nargs + 1, "args", -1);
  t->memory_limit = (size_t)limit;
  t->daemon = daemon;
  t->root = creating_root(L);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  ++reg_next_number;
  if (name == NULL) {
    snprintf(buf, sizeof buf, "Thread-%ld", reg_next_number);
    name = buf;
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  t->name = dupstr(name);
  lua_getglobal(L, "package");
  if (lua_istable(L, -1)) {
    const char *p;
    lua_getfield(L, -1, "path");
    p = lua_tostring(L, -1);
    if (p != NULL) t->path = dupstr(p);
    lua_pop(L, 1);
    lua_getfield(L, -1, "cpath");
    p = lua_tostring(L, -1);
    if (p != NULL) t->cpath = dupstr(p);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (t->name == NULL) luaL_error(L, "not enough memory");
  lua_pushvalue(L, top);
  return 1;
}

/* Thread:start() -> the thread */
static int thread_start(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  int rc;
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (t->status != ST_NEW || t->foreign) {
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    return luaL_error(L, "cannot start a thread twice");
  }
  t->status = ST_RUNNING;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  t->ident = ++reg_next_ident;
  reg_add(t);
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  object_retain(&t->obj);              /* the OS thread's reference */
  rc = dispatch(t);
  if (rc != 0) {
    WAIT_CHECK(pthread_mutex_lock(&reg_mu));
    reg_remove(t);
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->status = ST_NEW;
    t->ident = 0;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    object_release(&t->obj);
    return luaL_error(L, "cannot start thread: %s", strerror(rc));
  }
  lua_settop(L, 1);
  return 1;
}

/* threading.start(fn, ...) -> a started Thread */
static int thread_start_new(lua_State *L) {
  thread_new(L);
  lua_replace(L, 1);
  lua_settop(L, 1);
  return thread_start(L);
}

/* Thread:join([timeout]) -> true, ... | false, err | nil, "timeout" */
static int thread_join(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  int status, r = WAIT_OK;
  if (t == thread_self()) return luaL_error(L, "cannot join the current thread");
  if (t->foreign) return luaL_error(L, "cannot join a thread that threading did not start");
  wait_check_cancel(L);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (t->status == ST_NEW) {
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    return luaL_error(L, "cannot join a thread before it is started");
  }
  while (t->status == ST_RUNNING && r == WAIT_OK)
    r = wait_on(&t->obj, &t->mu, &t->cv, &dl);
  status = t->status;
  if (status == ST_FAILED) t->error_seen = 1;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  switch (status) {
    case ST_RUNNING:
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      return 2;
    case ST_DONE:
      lua_pushboolean(L, 1);
      return 1 + (t->output ? transfer_decode(L, t->output) : 0);
    case ST_FAILED:
      lua_pushboolean(L, 0);
      if (t->output == NULL || transfer_decode(L, t->output) == 0)
        lua_pushstring(L, t->error_text ? t->error_text : "unknown error");
      return 2;
    default:
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "cancelled");
      return 2;
  }
}

/* Thread:is_alive() -> boolean */
static int thread_is_alive(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  lua_pushboolean(L, t->status == ST_RUNNING);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return 1;
}

/* Thread:cancel(): stop at the next blocking call, or in running Lua code
** through a count hook set now (and only now). Returns the thread. */
static int thread_cancel(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  if (t->foreign) return luaL_error(L, "cannot cancel a thread that threading did not start");
  /* request, hook, wake, in that order: the hook never runs before the
  ** request is visible, and a blocked thread wakes with the hook already
  ** set, so the raise that ends its wait is what disarms the hook */
  wait_cancel_request(&t->waiter);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (t->L != NULL) lua_sethook(t->L, cancel_hook, LUA_MASKCOUNT, 1);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  wait_cancel_wake(&t->waiter);
  lua_settop(L, 1);
  return 1;
}

static int thread__index(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  const char *k = lua_tostring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), "methods");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);        /* not raw: an on-demand table loads the rest */
  if (!lua_isnil(L, -1) || k == NULL) return 1;
  lua_pop(L, 2);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (strcmp(k, "name") == 0) {
    lua_pushstring(L, t->name);
  } else if (strcmp(k, "daemon") == 0) {
    lua_pushboolean(L, t->daemon);
  } else if (strcmp(k, "status") == 0) {
    lua_pushstring(L, status_names[t->status]);
  } else if (strcmp(k, "ident") == 0) {
    if (t->ident) lua_pushinteger(L, t->ident);
    else lua_pushnil(L);
  } else if (strcmp(k, "native_id") == 0) {
    deadline_t dl = wait_deadline_in(5);
    /* a thread just started learns its id within microseconds */
    t->id_waiters++;
    while (t->status == ST_RUNNING && t->native_id == 0 && !wait_expired(&dl))
      pthread_cond_timedwait(&t->cv, &t->mu, &dl.at);
    t->id_waiters--;
    if (t->native_id) lua_pushinteger(L, t->native_id);
    else lua_pushnil(L);
  } else {
    lua_pushnil(L);
  }
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return 1;
}

static int thread__newindex(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "name") == 0) {
    char *name = dupstr(luaL_checkstring(L, 3));
    if (name == NULL) return luaL_error(L, "not enough memory");
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    free(t->name);
    t->name = name;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    return 0;
  }
  if (k != NULL && strcmp(k, "daemon") == 0) {
    int started;
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    started = t->status != ST_NEW;
    if (!started) t->daemon = lua_toboolean(L, 3);
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (started) return luaL_error(L, "cannot set daemon status of an active thread");
    return 0;
  }
  return luaL_error(L, "cannot set field '%s' of a Thread", k ? k : luaL_typename(L, 2));
}

static int thread__tostring(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  lua_pushfstring(L, "threading.Thread: %s (%s)", t->name, status_names[t->status]);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return 1;
}

/* threading.current_thread() */
static int thread_current_thread(lua_State *L) {
  object_push(L, &self_or_error(L)->obj);
  return 1;
}

/* threading.main_thread() */
static int thread_main_thread(lua_State *L) {
  thread_t *t;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  t = reg_main;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  if (t == NULL) {
    /* not adopted yet: only the main OS thread itself can be */
    if (gettid_long() == (long)getpid()) t = self_or_error(L);
    else return luaL_error(L, "the main thread has not used threading");
  }
  object_push(L, &t->obj);
  return 1;
}

/* threading.get_ident() */
static int thread_get_ident(lua_State *L) {
  lua_pushinteger(L, self_or_error(L)->ident);
  return 1;
}

/* threading.enumerate() -> list of live threads (started, not ended) */
static int thread_enumerate(lua_State *L) {
  thread_t *t, **list;
  size_t n = 0, i;
  self_or_error(L);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) n++;
  list = (thread_t **)malloc((n ? n : 1) * sizeof *list);
  if (list != NULL) {
    for (t = reg_head, i = 0; t != NULL; t = t->next) list[i++] = (thread_t *)object_retain(&t->obj);
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  if (list == NULL) return luaL_error(L, "not enough memory");
  lua_createtable(L, (int)n, 0);
  /* the registry list is newest first; report oldest first, like Python */
  for (i = 0; i < n; i++) {
    object_push(L, &list[n - 1 - i]->obj);
    lua_rawseti(L, -2, (int)i + 1);
  }
  for (i = 0; i < n; i++) object_release(&list[i]->obj);
  free(list);
  return 1;
}

/* threading.active_count() */
static int thread_active_count(lua_State *L) {
  thread_t *t;
  lua_Integer n = 0;
  self_or_error(L);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) n++;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  lua_pushinteger(L, n);
  return 1;
}

/* ------------------------------------------------------ diagnostics */

/* One live thread as seen by waits() and deadlocks(), copied under reg_mu. */
typedef struct snap {
  thread_t *t;              /* retained */
  object_t *on;             /* what it is blocked on (retained), or NULL */
  int holder;               /* for a lock: index of the thread holding it, or -1 */
} snap_t;

/* Take the snapshot; returns the count, *out malloc'd (NULL if empty). */
static int snapshot(snap_t **out) {
  thread_t *t;
  snap_t *s;
  int n = 0, i, j;
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) n++;
  s = (snap_t *)calloc(n ? (size_t)n : 1, sizeof *s);
  if (s == NULL) {
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    *out = NULL;
    return -1;
  }
  for (t = reg_head, i = n - 1; t != NULL; t = t->next, i--) {   /* oldest first */
    s[i].t = (thread_t *)object_retain(&t->obj);
    s[i].holder = -1;
    WAIT_CHECK(pthread_mutex_lock(&t->waiter.mu));
    if (t->waiter.owner != NULL) s[i].on = object_retain(t->waiter.owner);
    WAIT_CHECK(pthread_mutex_unlock(&t->waiter.mu));
  }
  /* a lock's owner is a waiter token: match it against live threads only,
  ** never dereference it (its thread may have ended holding the lock) */
  for (i = 0; i < n; i++) {
    const void *owner;
    if (s[i].on == NULL || (s[i].on->type != &lock_type && s[i].on->type != &rlock_type))
      continue;
    owner = atomic_load(&((lock_t *)s[i].on)->owner);
    for (j = 0; j < n; j++)
      if (owner != NULL && owner == (const void *)&s[j].t->waiter) s[i].holder = j;
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  *out = s;
  return n;
}

static void snapshot_free(snap_t *s, int n) {
  int i;
  for (i = 0; i < n; i++) {
    object_release(s[i].on);
    object_release(&s[i].t->obj);
  }
  free(s);
}

static void push_name(lua_State *L, thread_t *t) {
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  lua_pushstring(L, t->name);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
}

/* "threading.Lock 0x..." naming the object s[i] is blocked on */
static void push_blocked_on(lua_State *L, const snap_t *s) {
  if (&s->t->obj == s->on) lua_pushliteral(L, "sleep");
  else lua_pushfstring(L, "%s %p", s->on->type->name, (void *)s->on);
}

/* threading.waits() -> { {name=, ident=, status=, blocked_on=, object=, owner=}, ... } */
static int thread_waits(lua_State *L) {
  snap_t *s;
  int n, i;
  self_or_error(L);
  n = snapshot(&s);
  if (n < 0) return luaL_error(L, "not enough memory");
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    thread_t *t = s[i].t;
    lua_createtable(L, 0, 6);
    push_name(L, t);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->ident);
    lua_setfield(L, -2, "ident");
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    lua_pushstring(L, status_names[t->status]);
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    lua_setfield(L, -2, "status");
    if (s[i].on != NULL) {
      push_blocked_on(L, &s[i]);
      lua_setfield(L, -2, "blocked_on");
      if (&t->obj != s[i].on) {
        object_push(L, s[i].on);
        lua_setfield(L, -2, "object");
      }
    }
    if (s[i].holder >= 0) {
      push_name(L, s[s[i].holder].t);
      lua_setfield(L, -2, "owner");
    }
    lua_rawseti(L, -2, i + 1);
  }
  snapshot_free(s, n);
  return 1;
}

/* threading.deadlocks() -> { {threads = {names...}, description = "..."}, ... }:
** cycles of threads each blocked on a lock held by the next. Each thread
** waits on at most one lock, so following holders finds every cycle. */
static int thread_deadlocks(lua_State *L) {
  snap_t *s;
  int n, i, ncycles = 0;
  char *mark;
  self_or_error(L);
  n = snapshot(&s);
  if (n < 0) return luaL_error(L, "not enough memory");
  mark = (char *)calloc(n ? (size_t)n : 1, 1);   /* 0 new, 1 on this walk, 2 done */
  if (mark == NULL) {
    snapshot_free(s, n);
    return luaL_error(L, "not enough memory");
  }
  lua_newtable(L);
  for (i = 0; i < n; i++) {
    int j = i, start;
    while (j >= 0 && mark[j] == 0) {
      mark[j] = 1;
      j = s[j].holder;
    }
    start = (j >= 0 && mark[j] == 1) ? j : -1;   /* back to this walk: a cycle */
    if (start >= 0) {
      luaL_Buffer b;
      int k = start, m = 0;
      lua_createtable(L, 0, 2);
      lua_newtable(L);
      do {
        push_name(L, s[k].t);
        lua_rawseti(L, -2, ++m);
        k = s[k].holder;
      } while (k != start);
      lua_setfield(L, -2, "threads");
      luaL_buffinit(L, &b);
      k = start;
      do {
        if (k != start) luaL_addstring(&b, "; ");
        push_name(L, s[k].t);
        luaL_addvalue(&b);
        luaL_addstring(&b, " waits for ");
        push_blocked_on(L, &s[k]);
        luaL_addvalue(&b);
        luaL_addstring(&b, " held by ");
        push_name(L, s[s[k].holder].t);
        luaL_addvalue(&b);
        k = s[k].holder;
      } while (k != start);
      luaL_pushresult(&b);
      lua_setfield(L, -2, "description");
      lua_rawseti(L, -2, ++ncycles);
    }
    for (j = i; j >= 0 && mark[j] == 1; j = s[j].holder) mark[j] = 2;
  }
  free(mark);
  snapshot_free(s, n);
  return 1;
}

/* threading.sleep(seconds): a cancellation point */
static int thread_sleep(lua_State *L) {
  double s = wait_check_seconds(L, 1);
  thread_t *t = self_or_error(L);
  deadline_t dl = wait_deadline_in(s);
  int r = WAIT_OK;
  wait_check_cancel(L);
  if (s <= 0) return 0;
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  while (r == WAIT_OK && !wait_expired(&dl))
    r = wait_on(&t->obj, &t->mu, &t->cv, &dl);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  return 0;
}

static const luaL_Reg thread_methods[] = {
  {"start", thread_start},
  {"join", thread_join},
  {"is_alive", thread_is_alive},
  {"cancel", thread_cancel},
  {NULL, NULL}
};

static const luaL_Reg thread_meta[] = {
  {"__index", thread__index},
  {"__newindex", thread__newindex},
  {"__tostring", thread__tostring},
  {NULL, NULL}
};

static const luaL_Reg thread_funcs[] = {
  {"Thread", thread_new},
  {"start", thread_start_new},
  {"current_thread", thread_current_thread},
  {"main_thread", thread_main_thread},
  {"get_ident", thread_get_ident},
  {"enumerate", thread_enumerate},
  {"active_count", thread_active_count},
  {"sleep", thread_sleep},
  {"waits", thread_waits},
  {"_protect", thread_protect},
  {"deadlocks", thread_deadlocks},
  {NULL, NULL}
};

void thread_open(lua_State *L) {
  pthread_once(&once, init_once);
  object_newmetatable(L, &thread_type, thread_methods, thread_meta);
  luaL_setfuncs(L, thread_funcs, 0);
}
