/*
** runtime.h: the thread object as the runtime sees it, shared by thread.c
** (the Lua type), runtime.c (registry, OS threads, exit join), cancel.c
** (the cancellation hook) and diag.c (waits and deadlocks). Nothing outside
** these four files sees inside a thread; the rest of the core uses thread.h.
**
** Who owns what:
** - A thread object is reference counted (object.h). Each Lua handle, the
**   registry (while the thread is live), the running OS thread and the TLS
**   slot of an adopted foreign thread hold one reference each.
** - Fields marked (mu) are read and written under the thread's mu; fields
**   marked (reg) under the registry mutex in runtime.c; fields marked
**   (self) only by the OS thread that runs the thread; unmarked fields are
**   set before the thread starts and constant afterwards.
** - Lock order: the registry mutex, then a thread's mu, then its waiter's
**   mu. No lock of this header is held while Lua runs, allocates or raises:
**   strings are copied under the lock and pushed after it is released.
*/
#ifndef THREADING_RUNTIME_H
#define THREADING_RUNTIME_H

#include <pthread.h>
#include <stddef.h>

#include "alloc.h"
#include "object.h"
#include "transfer.h"
#include "wait.h"

#define THREAD_MT "threading.Thread"

enum { ST_NEW, ST_RUNNING, ST_DONE, ST_FAILED, ST_CANCELLED };
TH_HIDDEN extern const char *const thread_status_names[];


typedef struct thread thread_t;

/* What the cancellation signal's handler looks at, one per OS thread that
** runs Threads (a worker): the Thread it runs and that Thread's state, or
** NULL. Written only by that OS thread, read only by the handler on it. */
typedef struct cancel_target {
  _Atomic(thread_t *) t;
  _Atomic(lua_State *) L;
} cancel_target_t;

struct thread {
  object_t obj;
  pthread_mutex_t mu;       /* guards the fields marked (mu) */
  pthread_cond_t cv;        /* status and native_id changes; sleep() */
  waiter_t waiter;          /* what cancel() wakes; the lock-owner token */
  char *name;               /* (mu) */
  int daemon;               /* (mu) */
  int status;               /* (mu) */
  atomic_int ended;         /* set with status, once it is final: for a spinning joiner */
  int foreign;              /* an OS thread this module did not start */
  long ident;               /* set at start, then constant */
  long native_id;           /* (mu) 0 until the OS thread runs */
  int id_waiters;           /* (mu) readers waiting for native_id */
  long root;                /* the main state whose exit joins this thread */
  size_t memory_limit;      /* 0: none */
  size_t stack_size;        /* bytes for the OS thread; 0: the process default */
  unsigned libs;            /* standard libraries (libs.h): LIBS_LAZY, a list, all */
  alloc_t *alloc;           /* (self) the running state's accounting */
  char *path, *cpath;       /* package.path/cpath of the creating state */
  transfer_t *input;        /* target and args; taken by the thread */
  /* A thread started from C (thread_spawn: a pool's worker) calls
  ** cmain(carg as a handle, iarg) instead of decoding input, and on_end
  ** once it has ended, before its joiners wake. carg is retained. */
  lua_CFunction cmain;
  object_t *carg;
  lua_Integer iarg;
  void (*on_end)(object_t *carg, lua_Integer iarg);
  transfer_t *output;       /* (mu) results or error value, once ended */
  char *error_text;         /* (mu) printable error, if the value could not move */
  lua_State *L;             /* (mu) the running state, for cancel's hook */
  pthread_t os;             /* (mu) the OS thread running it, while L is set */
  cancel_target_t *target;  /* (mu) that OS thread's target, while L is set */
  int cancel_grace;         /* (self) instructions the hook lets through */
  thread_t *prev, *next;    /* (reg) live threads */
};

TH_HIDDEN extern const object_type_t thread_type;
/* threading.select on a Thread: its join, once it has ended (thread.c) */
TH_HIDDEN extern const select_ops_t thread_select;

/* A new thread object (status "new", one reference), or NULL. */
TH_HIDDEN thread_t *runtime_thread_new(void);
/* The calling OS thread's object, adopting a foreign thread on first use;
** NULL only when out of memory. */
TH_HIDDEN thread_t *runtime_self(void);
/* The process's main thread, or NULL if it has not used the module. */
TH_HIDDEN thread_t *runtime_main(void);
/* Register t as live, give it an ident and an OS thread (a parked worker
** or a new one). 0, or an errno with t left as it was (status "new"). */
TH_HIDDEN int runtime_start(thread_t *t);
/* threading.stack_size: the stack of threads started from now on (0: the
** built-in default); returns the previous setting. THREAD_STACK_MIN is the
** least accepted: with it, Lua's own limit on nested C calls (200, pcall
** inside pcall...) raises "C stack overflow" before the stack runs out;
** 128 KiB segfaults there (measured on 5.1 to 5.4). */
#define THREAD_STACK_MIN 262144
#define THREAD_STACK_MAX ((size_t)1 << 30)
TH_HIDDEN size_t runtime_stack_size(int set, size_t bytes);
/* Number of the next "Thread-N". */
TH_HIDDEN long runtime_next_number(void);
/* The excepthook of a root: a retained buffer holding the function, or
** NULL for the default; *gen (if not NULL) the root's count of sets. */
TH_HIDDEN transfer_t *runtime_excepthook(long root, unsigned long *gen);
/* Make buf (owned from now on; NULL: the default) the root's excepthook;
** *gen gets the new count of sets. 0 (buf freed) when out of memory. */
TH_HIDDEN int runtime_set_excepthook(long root, transfer_t *buf, unsigned long *gen);
/* The live threads, oldest first, each retained; NULL when out of memory.
** runtime_list_free (a void * for object_newbox) releases them. */
typedef struct thread_list {
  int n;
  thread_t *t[];
} thread_list_t;
TH_HIDDEN thread_list_t *runtime_list(void);
TH_HIDDEN void runtime_list_free(void *list);
/* How many threads are live. */
TH_HIDDEN int runtime_count(void);

/* Run t in the fresh state L (thread.c): returns the final status. */
TH_HIDDEN int thread_run(thread_t *t, lua_State *L);

/* cancel.c: make a running thread's Lua code raise its cancellation:
** cancel_deliver (with t->mu held and t->L set) signals t's OS thread, whose
** handler sets the hook on its own state, as Lua's own lua.c does on
** SIGINT. cancel_disarm removes it (by the thread itself, once its main
** function has ended and its target is cleared); cancel_block_signal keeps
** the signal off an OS thread about to free its target. */
TH_HIDDEN void cancel_deliver(thread_t *t);
TH_HIDDEN void cancel_disarm(lua_State *L);
TH_HIDDEN void cancel_block_signal(void);
TH_HIDDEN void cancel_open(lua_State *L);
/* Is h the cancellation hook? */
TH_HIDDEN int cancel_is_hook(lua_Hook h);

/* diag.c: threading.waits() and threading.deadlocks(). */
TH_HIDDEN void diag_open(lua_State *L);

#endif
