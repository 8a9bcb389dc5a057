/*
** object.h: the header every shared object of the module starts with.
**
** An object is a C struct beginning with object_t. It is reference counted
** with an atomic counter: each Lua handle (a userdata box holding one
** pointer), each running thread and each container (queue, value, transfer
** buffer) that holds it owns one reference. The last release calls the
** type's destroy function, from whichever OS thread dropped it.
**
** Handles are cached per state (a weak table keyed by the object's address),
** so one object has one handle in each state and handles compare equal and
** work as table keys.
*/
#ifndef THREADING_OBJECT_H
#define THREADING_OBJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "compat.h"

typedef struct object object_t;

/* How threading.select (select.c) takes, without waiting, what a wait on
** an object of a type is for. take(L, o) pushes what taking it gives (a
** queue's item, true for a lock acquired, a future's result) and returns
** how many values, or returns -1, pushing nothing, if o is not ready. send
** (queues only) puts the value at stack index item into o the same way
** (true once put); root names the value in a refused transfer. Either may
** raise (a value that cannot be sent or received); neither is called with
** a lock held. */
typedef struct select_ops {
  int (*take)(lua_State *L, object_t *o);
  int (*send)(lua_State *L, object_t *o, int item, const char *root);
} select_ops_t;

typedef struct object_type {
  const char *name;                 /* metatable name, "threading.Lock" */
  void (*destroy)(object_t *o);     /* frees the object; refs reached 0 */
  /* The object whose changes a coroutine task waiting on o must hear of
  ** (port.c), when it is not o itself (a Condition: its lock). */
  object_t *(*watch_target)(object_t *o);
  const select_ops_t *select;       /* NULL: not a waitable of select */
} object_type_t;

struct watch;

/* What a task waits for on an object (port.c): WATCH_ANY hears of every
** change; the others only of the changes that can let it proceed, and of
** those only as many as can (one item put wakes one getter). */
enum { WATCH_ANY, WATCH_TAKE, WATCH_ROOM, WATCH_DONE, WATCH_KINDS };

struct object {
  atomic_long refs;
  const object_type_t *type;
  /* tasks waiting on it, per kind, oldest first (port.c) */
  _Atomic(struct watch *) watches[WATCH_KINDS];
};

/* The userdata that a Lua handle is; obj is NULL until complete and after __gc. */
/* A handle: the full userdata a state holds for an object. It also holds
** the object's type, so that a method can recognise its own handle without
** touching the Lua stack: by its size and that type's address, which only
** this module writes into a userdata (light userdata and other values have
** no such size; a userdata of another module would have to hold a private
** address of this one). */
typedef struct handle {
  object_t *obj;                /* NULL once released */
  const object_type_t *type;
} handle_t;

TH_HIDDEN void object_init(object_t *o, const object_type_t *type);
/* fork(): the phases of pthread_atfork, for the files that keep
** process-wide locks. PREPARE locks them (the forking thread then holds
** every one, so none is held by a thread that will not exist in the
** child), PARENT unlocks them, CHILD unlocks them and resets what belonged
** to the threads left behind. runtime.c runs them in lock order. */
enum { FORK_PREPARE, FORK_PARENT, FORK_CHILD };
/* fork(): the lock of the table of types. */
TH_HIDDEN void object_atfork(int phase);
TH_HIDDEN object_t *object_retain(object_t *o);
/* Take a reference unless the last one is gone (the object is being
** destroyed); 1 if taken. */
TH_HIDDEN int object_tryretain(object_t *o);
TH_HIDDEN void object_release(object_t *o);

/* Create the metatable for `type` with `methods` (reached through __index
** unless `meta` has its own __index) and `meta` metamethods. Every function
** gets the metatable as upvalue 1. Leaves nothing on the stack. */
TH_HIDDEN void object_newmetatable(lua_State *L, const object_type_t *type,
                                   const luaL_Reg *methods, const luaL_Reg *meta);

/* Push a handle for `o`, taking a new reference (or reusing this state's
** existing handle). */
TH_HIDDEN void object_push(lua_State *L, object_t *o);

/* Push an empty handle box of `type`: set h->obj once the object is built,
** so that an error half-way leaves nothing to release. */
TH_HIDDEN handle_t *object_newhandle(lua_State *L, const object_type_t *type);
/* Record a completed handle (at the top of the stack) in the state's cache. */
TH_HIDDEN void object_sethandle(lua_State *L, handle_t *h, object_t *o);

/* Is the value at idx a handle of ours whose object is gone (its __gc ran)? */
TH_HIDDEN int object_isreleased(lua_State *L, int idx);
/* The object behind a handle at idx, any type of ours, or NULL. */
TH_HIDDEN object_t *object_test(lua_State *L, int idx);
/* The handle at idx if it is one of ours (see handle_t), else NULL. */
static inline handle_t *object_handle_fast(lua_State *L, int idx) {
  handle_t *h = (handle_t *)lua_touserdata(L, idx);
  if (h != NULL && compat_rawlen(L, idx) == sizeof(handle_t)) return h;
  return NULL;
}
/* The object at idx, which must be of `type`; raises a standard bad-argument
** error. The live handle of that type is recognised without a lookup. */
TH_HIDDEN object_t *object_check_slow(lua_State *L, int idx, const object_type_t *type);
static inline object_t *object_check(lua_State *L, int idx, const object_type_t *type) {
  handle_t *h = object_handle_fast(L, idx);
  if (h != NULL && h->type == type && h->obj != NULL) return h->obj;
  return object_check_slow(L, idx, type);
}
/* The object at idx for a method of `type` (the same check). */
#define object_self(L, idx, type) object_check(L, idx, type)

/* Raise "bad argument #idx to 'fn' (<expected> expected, got <type>)". */
TH_HIDDEN int object_typeerror(lua_State *L, int idx, const char *expected);

/* Push t[1..n] of the table at index t, n being t.n when present (a
** non-negative integer) or #t; returns n. `field` names the table in a
** bad-argument error for argument `arg` (a bad n, or more values than the
** stack can take). */
TH_HIDDEN int object_pushargs(lua_State *L, int t, int arg, const char *field);

/* Is the value at idx callable (a function, or has __call)? */
TH_HIDDEN int object_callable(lua_State *L, int idx);
/* Push a copy of the C string *src (nil if NULL) that mu guards. Lua
** allocates only with mu released: the bytes are copied under mu into a
** buffer that exists before the lock is taken, and pushed after. */
TH_HIDDEN void object_pushguarded(lua_State *L, pthread_mutex_t *mu,
                                  char *const *src);
/* A box owning a C resource, for code that must push or raise while it
** holds one: the box is pushed (empty) before the resource is made, the
** caller stores the resource in *slot, and the box frees it with `fn`
** when collected, so an error anywhere leaks nothing. object_box_free
** frees it at once (and empties the box). */
TH_HIDDEN void **object_newbox(lua_State *L, void (*fn)(void *));
TH_HIDDEN void object_box_free(lua_State *L, int idx);
/* Push this state's metatable for a C-owned userdata kind: a table with
** __gc = gc and, unless `methods` is NULL, __index = a table of them; made
** on first use and kept in the registry at `key`. */
TH_HIDDEN void object_pushgcmt(lua_State *L, const void *key, lua_CFunction gc,
                               const luaL_Reg *methods);
/* The userdata at idx, whose metatable must be the one object_pushgcmt made
** at `key`; raises a standard bad-argument error naming `name` otherwise. */
TH_HIDDEN void *object_checkgcmt(lua_State *L, int idx, const void *key, const char *name);
/* A malloc'd copy of s, or NULL. */
TH_HIDDEN char *object_strdup(const char *s);

/* __gc (and __close where a type wants it): drop the handle's reference. */
TH_HIDDEN int object_gc(lua_State *L);

#endif
