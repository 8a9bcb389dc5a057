/*
** thread.h: what the rest of the core needs from thread.c.
*/
#ifndef THREADING_THREAD_H
#define THREADING_THREAD_H

#include "object.h"

/* Called by luaopen in every state: a state created outside this module
** (the main script's) gets an exit hook that joins its non-daemon threads
** when it closes, as Python joins them at interpreter exit. */
TH_HIDDEN void thread_register_state(lua_State *L);

/* An opaque token for the calling OS thread (adopting a foreign thread on
** first use), for owner checks: the same pointer as wait_current(). NULL
** only when out of memory. */
TH_HIDDEN void *thread_current(void);

/* Something to do when the root (main state) `root` closes, before its
** non-daemon threads are joined: fn(obj) runs once, on the closing thread,
** with obj retained for the call. The owner of obj registers the node and
** removes it in obj's destroy (a node whose obj is being destroyed is
** skipped). */
typedef struct exit_node {
  void (*fn)(object_t *obj);
  /* At fork(), if not NULL (see wait.h's FORK_* phases): lock obj's own
  ** mutexes before the fork, unlock them after it in the parent, and in
  ** the child unlock them and forget the threads that did not follow. */
  void (*atfork)(object_t *obj, int phase);
  object_t *obj;
  long root;
  int done;                     /* (internal) ran already */
  struct exit_node *prev, *next;
} exit_node_t;
TH_HIDDEN void thread_on_exit(exit_node_t *n);
TH_HIDDEN void thread_on_exit_remove(exit_node_t *n);
/* A thread started from C, for the module's own workers: a non-daemon
** Thread named `name` that runs main(arg as a handle, iarg) in a fresh
** state (package paths `path`, `cpath`, either may be NULL), registered
** like any other, and calls on_end(arg, iarg) once it has ended however it
** ended (cancelled before it ran, failed, or done), before its joiners
** wake. The thread keeps its own reference to arg. Returns the Thread (a
** reference for the caller), or NULL with *err an errno. */
typedef struct thread_spec {
  const char *name;
  long root;
  const char *path, *cpath;
  unsigned libs;            /* libs.h: LIBS_LAZY, LIBS_ALL or a LIBS_LIST */
  lua_CFunction main;
  object_t *arg;
  lua_Integer iarg;
  void (*on_end)(object_t *arg, lua_Integer iarg);
} thread_spec_t;
TH_HIDDEN object_t *thread_spawn(const thread_spec_t *spec, int *err);

/* The root that threads and pools created from L belong to. */
TH_HIDDEN long thread_root_of(lua_State *L);

#endif
