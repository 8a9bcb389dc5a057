/*
** runtime.c: the process registry of threads, the OS threads that run
** them (reused between Threads), and the exit join.
**
** Who owns what:
** - The registry (reg_head) lists every live thread: started and not yet
**   ended, plus the foreign OS threads (the main thread, a host's threads)
**   adopted on first use. It owns one reference to each.
** - A started thread owns a fresh lua_State of its own, run and closed on a
**   worker OS thread. Workers are reused: a finished worker parks with a
**   new, unused state ready for the next Thread (the base library open,
**   the others opening on first use: libs.c). A state that ran user code
**   is always closed, never reused.
** - No other OS thread ever touches a running state: cancel() signals the
**   worker (under t->mu, while t->L is non-NULL), whose handler sets the
**   hook on its own state; the worker clears t->L under t->mu, then its
**   handler's target, before it closes the state.
**
** Lock order: reg_mu, then a thread's mu, then its waiter's mu; pool_mu is
** never held with another. Nothing is pushed onto a Lua stack, allocated
** through Lua or raised, and no Lua runs, while any of them is held.
*/
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libs.h"
#include "runtime.h"
#include "search.h"
#include "thread.h"

#define THREAD_NAME_MAX 15          /* pthread_setname_np's limit on Linux */
#if !defined(THREAD_STACK_SIZE)
#define THREAD_STACK_SIZE (2u << 20)
#endif

const char *const thread_status_names[] = {
  "new", "running", "done", "failed", "cancelled"
};

static void thread_destroy(object_t *o);
const object_type_t thread_type = { THREAD_MT, thread_destroy, NULL, &thread_select };

/* ------------------------------------------------------------ registry */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cv;         /* a thread ended */
static thread_t *reg_head;            /* (reg_mu) live threads, newest first */
static long reg_next_ident;           /* (reg_mu) */
static long reg_next_number;          /* (reg_mu) for "Thread-N" */
static long reg_next_dummy;           /* (reg_mu) for "Dummy-N" */
static long reg_next_root;            /* (reg_mu) */
static long reg_finishing;            /* (reg_mu) non-daemon threads ending */
static thread_t *reg_main;            /* (reg_mu) the process's main thread */
static pthread_key_t self_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void foreign_exit(void *p);
static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void init_once(void) {
  wait_cond_init(&reg_cv);
  WAIT_CHECK(pthread_key_create(&self_key, foreign_exit));
  WAIT_CHECK(pthread_atfork(fork_prepare, fork_parent, fork_child));
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

thread_t *runtime_thread_new(void) {
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
  object_release(t->carg);
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

/* initial-exec: read with one instruction rather than a call; it takes one
** word of the static TLS space that the C library keeps for libraries
** loaded with dlopen */
__thread waiter_t *wait_self __attribute__((tls_model("initial-exec")));

/* The calling OS thread's object, for runtime_self, and its waiter, for
** wait_current's fast path. */
static void set_self(thread_t *t) {
  pthread_setspecific(self_key, t);
  wait_self = t != NULL ? &t->waiter : NULL;
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
    set_self(t);
    return t;
  }
  t = runtime_thread_new();
  if (t == NULL) {
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    return NULL;
  }
  if (is_main) snprintf(name, sizeof name, "MainThread");
  else snprintf(name, sizeof name, "Dummy-%ld", ++reg_next_dummy);
  t->name = object_strdup(name);
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
  set_self(t);                         /* the TLS slot's reference */
  return t;
}

/* At a foreign OS thread's exit: drop it from the registry. */
static void foreign_exit(void *p) {
  thread_t *t = (thread_t *)p;
  wait_self = NULL;
  if (t == NULL || !t->foreign) return;
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  if (t->prev != NULL || t->next != NULL || reg_head == t) {
    reg_remove(t);
    object_release(&t->obj);
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->status = ST_DONE;
  atomic_store_explicit(&t->ended, 1, memory_order_release);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  object_release(&t->obj);
}

static atomic_int initialized;

thread_t *runtime_self(void) {
  thread_t *t;
  if (!atomic_load_explicit(&initialized, memory_order_acquire)) {
    pthread_once(&once, init_once);
    atomic_store_explicit(&initialized, 1, memory_order_release);
  }
  t = (thread_t *)pthread_getspecific(self_key);
  return t != NULL ? t : adopt_foreign();
}

waiter_t *wait_current(void) {
  thread_t *t = runtime_self();
  return t != NULL ? &t->waiter : NULL;
}

/* The token is the thread's waiter, so lock owners and wait_current() agree. */
void *thread_current(void) {
  return wait_current();
}

thread_t *runtime_main(void) {
  thread_t *t;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  t = reg_main;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  /* not adopted yet: only the main OS thread itself can be */
  if (t == NULL && gettid_long() == (long)getpid()) t = runtime_self();
  return t;
}

long runtime_next_number(void) {
  long n;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  n = ++reg_next_number;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  return n;
}

thread_list_t *runtime_list(void) {
  thread_t *t;
  thread_list_t *list;
  int count = 0;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) count++;
  list = (thread_list_t *)malloc(sizeof *list + (size_t)count * sizeof list->t[0]);
  if (list != NULL) {
    int i;
    list->n = count;
    /* the registry is newest first; the list is oldest first, like Python */
    for (t = reg_head, i = count - 1; t != NULL; t = t->next, i--)
      list->t[i] = (thread_t *)object_retain(&t->obj);
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  return list;
}

int runtime_count(void) {
  thread_t *t;
  int n = 0;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) n++;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  return n;
}

void runtime_list_free(void *p) {
  thread_list_t *list = (thread_list_t *)p;
  int i;
  for (i = 0; i < list->n; i++) object_release(&list->t[i]->obj);
  free(list);
}

/* ------------------------------------------------------------ roots */

/*
** A root is a main state: the one a script runs in, or each independent
** state of a host program. Threads belong to the root they were created
** under (directly or from another of its threads); its closing joins them,
** and its excepthook reports their failures.
*/
typedef struct root {
  long id;
  int on_main;              /* made on the process's main OS thread */
  transfer_t *excepthook;   /* (reg_mu) NULL: the default */
  unsigned long hook_gen;   /* (reg_mu) bumped by every set */
  struct root *next;        /* (reg_mu) */
} root_t;

static root_t *reg_roots;             /* (reg_mu) */

static root_t *root_find(long id) {
  root_t *r;
  for (r = reg_roots; r != NULL && r->id != id; r = r->next) {}
  return r;
}

transfer_t *runtime_excepthook(long root, unsigned long *gen) {
  root_t *r;
  transfer_t *buf = NULL;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  r = root_find(root);
  if (r != NULL && r->excepthook != NULL) buf = transfer_retain(r->excepthook);
  if (gen != NULL) *gen = r != NULL ? r->hook_gen : 0;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  return buf;
}

int runtime_set_excepthook(long root, transfer_t *buf, unsigned long *gen) {
  root_t *r, *fresh = (root_t *)calloc(1, sizeof *fresh);
  transfer_t *old = NULL;
  int ok = 1;
  pthread_once(&once, init_once);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  r = root_find(root);
  if (r == NULL && fresh != NULL) {   /* a root that never registered (id 0) */
    r = fresh;
    fresh = NULL;
    r->id = root;
    r->next = reg_roots;
    reg_roots = r;
  }
  if (r != NULL) {
    old = r->excepthook;
    r->excepthook = buf;
    *gen = ++r->hook_gen;
  } else {
    ok = 0;
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  free(fresh);
  transfer_free(ok ? old : buf);
  return ok;
}

/* ------------------------------------------------------- exit nodes */

/* What other types ask to be done when a root closes, before its threads
** are joined (a pool's shutdown). exit_mu is taken alone: a node's function
** runs after it is released, on an object retained meanwhile. */
static pthread_mutex_t exit_mu = PTHREAD_MUTEX_INITIALIZER;
static exit_node_t *exit_head;        /* (exit_mu) */

void thread_on_exit(exit_node_t *n) {
  WAIT_CHECK(pthread_mutex_lock(&exit_mu));
  n->prev = NULL;
  n->next = exit_head;
  if (exit_head != NULL) exit_head->prev = n;
  exit_head = n;
  WAIT_CHECK(pthread_mutex_unlock(&exit_mu));
}

void thread_on_exit_remove(exit_node_t *n) {
  WAIT_CHECK(pthread_mutex_lock(&exit_mu));
  if (n->prev != NULL) n->prev->next = n->next;
  else if (exit_head == n) exit_head = n->next;
  if (n->next != NULL) n->next->prev = n->prev;
  n->prev = n->next = NULL;
  WAIT_CHECK(pthread_mutex_unlock(&exit_mu));
}

/* Run the nodes of `root`, each once. An object being destroyed (no
** reference left) is skipped: its destroy is about to remove its node. */
static void run_exit_nodes(long root) {
  for (;;) {
    exit_node_t *n;
    object_t *o = NULL;
    void (*fn)(object_t *) = NULL;
    WAIT_CHECK(pthread_mutex_lock(&exit_mu));
    for (n = exit_head; n != NULL && o == NULL; n = n->next) {
      if (n->root != root || n->done) continue;
      n->done = 1;
      if (object_tryretain(n->obj)) {
        o = n->obj;
        fn = n->fn;
      }
    }
    WAIT_CHECK(pthread_mutex_unlock(&exit_mu));
    if (o == NULL) return;
    fn(o);
    object_release(o);
  }
}

/* ----------------------------------------------------------- exit join */

static const char root_key = 'r';

typedef struct exit_hook { long root; } exit_hook;

/* How many roots made on the main OS thread are open (reg_mu held). */
static int main_roots(void) {
  root_t *r;
  int n = 0;
  for (r = reg_roots; r != NULL; r = r->next) n += r->on_main;
  return n;
}

/* __gc of the hook kept in a main state's registry: join that state's
** non-daemon threads, as Python does when the interpreter exits. The main
** thread counts as ended first (main_thread():join() returns), when this
** was the last root of the main OS thread. */
static int exit_hook_gc(lua_State *L) {
  exit_hook *h = (exit_hook *)lua_touserdata(L, 1);
  thread_t *self = runtime_self();
  root_t *r, **pr;
  if (h->root < 0) return 0;
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  r = root_find(h->root);
  if (r != NULL && r->on_main && main_roots() == 1 && reg_main != NULL) {
    WAIT_CHECK(pthread_mutex_lock(&reg_main->mu));
    reg_main->status = ST_DONE;
    WAIT_CHECK(pthread_mutex_unlock(&reg_main->mu));
    WAIT_CHECK(pthread_cond_broadcast(&reg_main->cv));
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  run_exit_nodes(h->root);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (;;) {
    thread_t *t;
    int busy = 0;
    /* a thread still running may have made another pool meanwhile */
    WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
    run_exit_nodes(h->root);
    WAIT_CHECK(pthread_mutex_lock(&reg_mu));
    for (t = reg_head; t != NULL && !busy; t = t->next) {
      int daemon;
      if (t->foreign || t == self || t->root != h->root) continue;
      WAIT_CHECK(pthread_mutex_lock(&t->mu));
      daemon = t->daemon;
      WAIT_CHECK(pthread_mutex_unlock(&t->mu));
      busy = !daemon;
    }
    if (!busy && reg_finishing == 0) break;
    WAIT_CHECK(pthread_cond_wait(&reg_cv, &reg_mu));
  }
  /* the root is gone: its daemon threads report with the default hook */
  for (pr = &reg_roots; *pr != NULL && (*pr)->id != h->root; pr = &(*pr)->next) {}
  r = *pr;
  if (r != NULL) *pr = r->next;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  if (r != NULL) {
    transfer_free(r->excepthook);
    free(r);
  }
  return 0;
}

void thread_register_state(lua_State *L) {
  thread_t *self = runtime_self();
  exit_hook *h;
  root_t *r;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &root_key);
  if (!lua_isnil(L, -1) || (self != NULL && !self->foreign)) {
    lua_pop(L, 1);
    return;                      /* done already, or one of our threads */
  }
  lua_pop(L, 1);
  /* the hook is complete and kept before the root exists: nothing below
  ** can fail, so the root is never left without its hook */
  h = (exit_hook *)compat_newuserdata(L, sizeof *h);
  h->root = -1;                  /* no root yet: its __gc does nothing */
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, exit_hook_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &root_key);
  r = (root_t *)calloc(1, sizeof *r);
  if (r == NULL) {
    lua_pop(L, 1);
    luaL_error(L, "not enough memory");
  }
  r->on_main = gettid_long() == (long)getpid();
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  h->root = r->id = ++reg_next_root;
  r->next = reg_roots;
  reg_roots = r;
  if (r->on_main && reg_main != NULL) {      /* the main thread runs a script again */
    WAIT_CHECK(pthread_mutex_lock(&reg_main->mu));
    reg_main->status = ST_RUNNING;
    WAIT_CHECK(pthread_mutex_unlock(&reg_main->mu));
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  lua_pop(L, 1);
}

long thread_root_of(lua_State *L) {
  thread_t *self = runtime_self();
  long root = 0;
  if (self != NULL && !self->foreign) return self->root;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &root_key);
  if (lua_isuserdata(L, -1)) root = ((exit_hook *)lua_touserdata(L, -1))->root;
  lua_pop(L, 1);
  return root;
}

/* ------------------------------------------------------------- states */

static int thread_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "threading: unprotected error in a thread: %s\n",
          msg ? msg : "(error object is not a string)");
  abort();
  return 0;
}

static int open_libs(lua_State *L) {
  libs_prepare(L);
  return 0;
}

/* A new state with the base library, the others ready to open on first
** use (libs.c), accounted in *a; NULL if out of memory. */
static lua_State *new_state(alloc_t *a) {
  lua_State *L;
  alloc_reset(a);
  a->counted = 1;
  L = lua_newstate(alloc_state, a);
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

/* Publish the end and drop the OS thread's reference. The joiner wakes
** under reg_mu, so it no longer finds the thread in enumerate(); the exit
** hook also waits for `reg_finishing`, so a report printed by the last
** release (an unjoined failure) is out before the process exits. */
static void finish(thread_t *t, int status) {
  int daemon;
  if (t->on_end != NULL) t->on_end(t->carg, t->iarg);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->status = status;
  atomic_store_explicit(&t->ended, 1, memory_order_release);
  daemon = t->daemon;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  /* after the unlock, so that woken joiners do not block at once on t->mu */
  WAIT_CHECK(pthread_cond_broadcast(&t->cv));
  reg_remove(t);
  if (!daemon) reg_finishing++;
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  wait_notify_change(&t->obj);
  set_self(NULL);
  object_release(&t->obj);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  if (!daemon) reg_finishing--;
  WAIT_CHECK(pthread_cond_broadcast(&reg_cv));
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
}

/* ------------------------------------------------------------ workers */

/*
** An OS thread runs Threads one after another: between them it parks, and
** once parked (already available) it builds a fresh state for the next one
** (never used), so starting a Thread costs neither a pthread_create nor a
** new state on the starter's path, and a Thread started right after
** another ended finds that worker at once. A burst of threads leaves up to
** POOL_MAX_IDLE parked for the next burst; beyond the first POOL_KEEP_IDLE
** they go after POOL_BURST_SECONDS idle, the rest after POOL_IDLE_SECONDS.
*/
#if !defined(POOL_MAX_IDLE)
#define POOL_MAX_IDLE 256         /* parked workers kept at most */
#endif
#if !defined(POOL_KEEP_IDLE)
#define POOL_KEEP_IDLE 4          /* parked workers kept the longer time */
#endif
#if !defined(POOL_IDLE_SECONDS)
#define POOL_IDLE_SECONDS 5.0     /* a parked worker of the first few exits after this */
#endif
#if !defined(POOL_BURST_SECONDS)
#define POOL_BURST_SECONDS 1.0    /* the others after this */
#endif

typedef struct worker {
  size_t stack;               /* its OS thread's stack size; constant */
  long tid;                   /* its OS thread's id once known; its own */
  cancel_target_t target;     /* for the cancellation signal's handler */
  pthread_cond_t cv;          /* (pool_mu) a job arrived */
  thread_t *job;              /* (pool_mu) */
  lua_State *spare;           /* a state that never ran user code, or NULL;
                              ** set under pool_mu while parked */
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
  set_self(t);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  snprintf(name, sizeof name, "%s", t->name);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  pthread_setname_np(pthread_self(), name);
  /* published after the name, so whoever reads native_id finds the name set */
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (w->tid == 0) w->tid = gettid_long();   /* asked once per OS thread */
  t->native_id = w->tid;
  /* only readers of native_id want this; a joiner would wake for nothing */
  if (t->id_waiters > 0) WAIT_CHECK(pthread_cond_broadcast(&t->cv));
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));

  L = w->spare;
  w->spare = NULL;
  if (L == NULL) L = new_state(&w->alloc);
  if (L != NULL && t->memory_limit != 0 && !w->alloc.counted) {
    lua_close(L);
    L = NULL;
    t->error_text = object_strdup("memory_limit is not supported by this Lua");
  } else if (L == NULL) {
    t->error_text = object_strdup("not enough memory to create the thread's state");
  }
  if (L != NULL) {
    w->alloc.limit = t->memory_limit;
    t->alloc = &w->alloc;
    /* the handler's view first, then the state published for cancel(): a
    ** signal sent for this thread finds it; one meant for an earlier
    ** Thread of this worker finds this one not cancelled */
    atomic_store_explicit(&w->target.t, t, memory_order_relaxed);
    atomic_store_explicit(&w->target.L, L, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->L = L;
    t->os = pthread_self();
    t->target = &w->target;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    status = thread_run(t, L);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->L = NULL;
    t->target = NULL;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    atomic_store_explicit(&w->target.L, NULL, memory_order_relaxed);
    atomic_store_explicit(&w->target.t, NULL, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    /* nobody sets the hook any more: the finalizers lua_close runs must
    ** not raise the cancellation */
    cancel_disarm(L);
    t->alloc = NULL;
    lua_close(L);
  }
  if (status == ST_FAILED && t->error_text == NULL)
    t->error_text = object_strdup("unknown error");
  finish(t, status);
}

/* Park on the idle list (a place reserved by reserve_park) until a job
** comes (returns it) or the worker has been idle long enough (NULL). The
** spare state is built once parked, outside pool_mu: a job that comes
** meanwhile waits for it on this worker rather than on a new OS thread.
** (A fork() meanwhile leaves the child that half-built state, unused.) */
static thread_t *park(worker_t *w) {
  deadline_t dl;
  thread_t *job = NULL;
  double idle;
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  pool_reserved--;
  idle = pool_nidle < POOL_KEEP_IDLE ? POOL_IDLE_SECONDS : POOL_BURST_SECONDS;
  w->job = NULL;
  w->next = pool_idle;
  pool_idle = w;
  pool_nidle++;
  if (w->spare == NULL) {
    lua_State *spare;
    WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
    spare = new_state(&w->alloc);
    WAIT_CHECK(pthread_mutex_lock(&pool_mu));
    w->spare = spare;
  }
  dl = wait_deadline_in(idle);
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
    t = park(w);
  }
  if (w->spare != NULL) lua_close(w->spare);
  alloc_destroy(&w->alloc);
  /* a cancellation signal still on its way must not reach a freed target:
  ** blocked, it is dropped when this thread ends */
  cancel_block_signal();
  pthread_cond_destroy(&w->cv);
  free(w);
  return NULL;
}

static atomic_size_t default_stack;   /* threading.stack_size(); 0: built-in */

size_t runtime_stack_size(int set, size_t bytes) {
  if (!set) return atomic_load(&default_stack);
  return atomic_exchange(&default_stack, bytes);
}

/* Hand t to a parked worker with the stack it needs, or to a new one. 0
** or an errno. */
static int dispatch(thread_t *t) {
  worker_t *w, **pw;
  pthread_attr_t attr;
  pthread_t tid;
  size_t stack = t->stack_size;
  int rc;
  if (stack == 0) stack = atomic_load(&default_stack);
  if (stack == 0) stack = THREAD_STACK_SIZE;
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  /* one whose spare state is ready, else one still building it */
  for (pw = &pool_idle; *pw != NULL && ((*pw)->stack != stack || (*pw)->spare == NULL);
       pw = &(*pw)->next) {}
  if (*pw == NULL)
    for (pw = &pool_idle; *pw != NULL && (*pw)->stack != stack; pw = &(*pw)->next) {}
  w = *pw;
  if (w != NULL) {
    *pw = w->next;
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
  w->stack = stack;
  WAIT_CHECK(pthread_attr_init(&attr));
  WAIT_CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
  rc = pthread_attr_setstacksize(&attr, stack);
  if (rc == 0) {
    sigset_t old;
    interrupt_block_in_workers(&old);  /* Ctrl-C is the main thread's */
    rc = pthread_create(&tid, &attr, worker_main, w);
    WAIT_CHECK(pthread_sigmask(SIG_SETMASK, &old, NULL));
  }
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    pthread_cond_destroy(&w->cv);
    free(w);
  }
  return rc;
}

object_t *thread_spawn(const thread_spec_t *spec, int *err) {
  thread_t *t = runtime_thread_new();
  if (t == NULL) {
    *err = ENOMEM;
    return NULL;
  }
  t->name = object_strdup(spec->name);
  if (spec->path != NULL) t->path = object_strdup(spec->path);
  if (spec->cpath != NULL) t->cpath = object_strdup(spec->cpath);
  if (t->name == NULL || (spec->path != NULL && t->path == NULL) ||
      (spec->cpath != NULL && t->cpath == NULL)) {
    object_release(&t->obj);
    *err = ENOMEM;
    return NULL;
  }
  t->root = spec->root;
  t->libs = spec->libs;
  t->cmain = spec->main;
  t->carg = object_retain(spec->arg);
  t->iarg = spec->iarg;
  t->on_end = spec->on_end;
  t->status = ST_RUNNING;
  *err = runtime_start(t);
  if (*err != 0) {
    t->on_end = NULL;           /* it never ran: nothing ended */
    object_release(&t->obj);
    return NULL;
  }
  return &t->obj;
}

int runtime_start(thread_t *t) {
  int rc;
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
  }
  return rc;
}

/* ------------------------------------------------------------- fork */

/*
** fork() (from any C module, or LuaJIT's FFI) copies only the thread that
** calls it. Before it, the forking thread takes every process-wide lock of
** the module, in lock order, so that none is held by a thread that will not
** exist in the child: the exit nodes and each pool's own (through their
** atfork), the ports' (port.c), the types', the registry's, then each
** registered thread's mu and its waiter's mu, then the parked workers',
** then require's search memory (search.c).
** In the parent they are released. In the child they are released too, and
** what belonged to the threads left behind is forgotten: the registry keeps
** only the forking thread, which becomes the main thread (as in Python);
** every other thread ends as failed, "lost at fork()", so joining it returns
** at once; parked workers are dropped (their states closed), and pools
** count no worker, starting new ones at the next submit. Condition
** variables whose waiters stayed behind are made anew. The objects users
** made (locks, queues...) are theirs: one held by another thread at the
** fork stays held in the child, as in Python.
*/
static const char lost_at_fork[] = "thread lost at fork(): it runs only in the parent process";

static void fork_prepare(void) {
  exit_node_t *n;
  thread_t *t;
  WAIT_CHECK(pthread_mutex_lock(&exit_mu));
  for (n = exit_head; n != NULL; n = n->next)
    if (n->atfork != NULL) n->atfork(n->obj, FORK_PREPARE);
  port_atfork(FORK_PREPARE);
  object_atfork(FORK_PREPARE);
  WAIT_CHECK(pthread_mutex_lock(&reg_mu));
  for (t = reg_head; t != NULL; t = t->next) {
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    WAIT_CHECK(pthread_mutex_lock(&t->waiter.mu));
  }
  WAIT_CHECK(pthread_mutex_lock(&pool_mu));
  search_atfork(FORK_PREPARE);          /* a leaf lock: last */
}

static void fork_parent(void) {
  exit_node_t *n;
  thread_t *t;
  search_atfork(FORK_PARENT);
  WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
  for (t = reg_head; t != NULL; t = t->next) {
    WAIT_CHECK(pthread_mutex_unlock(&t->waiter.mu));
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  }
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  object_atfork(FORK_PARENT);
  port_atfork(FORK_PARENT);
  for (n = exit_head; n != NULL; n = n->next)
    if (n->atfork != NULL) n->atfork(n->obj, FORK_PARENT);
  WAIT_CHECK(pthread_mutex_unlock(&exit_mu));
}

static void fork_child(void) {
  exit_node_t *n;
  thread_t *t, *next, *self = (thread_t *)pthread_getspecific(self_key);
  worker_t *w;
  interrupt_forked();
  search_atfork(FORK_CHILD);
  /* parked workers: their OS threads stayed behind; their spare states
  ** never ran user code and are closed */
  w = pool_idle;
  while (w != NULL) {
    worker_t *wn = w->next;
    if (w->spare != NULL) lua_close(w->spare);
    alloc_destroy(&w->alloc);
    free(w);
    w = wn;
  }
  pool_idle = NULL;
  pool_nidle = 0;
  pool_reserved = 0;
  WAIT_CHECK(pthread_mutex_unlock(&pool_mu));
  /* the registry: only the forking thread goes on */
  for (t = reg_head; t != NULL; t = next) {
    next = t->next;
    wait_cond_init(&t->cv);            /* its waiters stayed behind */
    if (t != self) {
      t->L = NULL;                     /* its state is not running here */
      t->status = ST_FAILED;
      atomic_store_explicit(&t->ended, 1, memory_order_relaxed);
      if (t->error_text == NULL) t->error_text = object_strdup(lost_at_fork);
    }
    WAIT_CHECK(pthread_mutex_unlock(&t->waiter.mu));
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (t != self) {
      reg_remove(t);
      object_release(&t->obj);         /* the registry's reference */
    }
  }
  if (self != NULL && reg_main != self) {
    /* as in Python, the thread that forked is the child's main thread */
    thread_t *old = reg_main;
    reg_main = (thread_t *)object_retain(&self->obj);
    if (old != NULL) object_release(&old->obj);
  }
  reg_finishing = 0;
  wait_cond_init(&reg_cv);
  WAIT_CHECK(pthread_mutex_unlock(&reg_mu));
  object_atfork(FORK_CHILD);
  port_atfork(FORK_CHILD);
  for (n = exit_head; n != NULL; n = n->next)
    if (n->atfork != NULL) n->atfork(n->obj, FORK_CHILD);
  WAIT_CHECK(pthread_mutex_unlock(&exit_mu));
}
