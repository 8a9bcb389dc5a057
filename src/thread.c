/*
** thread.c: threading.Thread, the Lua type, and the functions about the
** calling thread (current_thread, main_thread, sleep, ...).
**
** What a Thread runs in its new state is here too (thread_run): the target
** decoded from the creating state, its results or its error encoded for
** whoever joins. The registry, the OS threads and the exit join are in
** runtime.c; the cancellation hook is in cancel.c.
**
** Lock order: a thread's mu, then its waiter's mu (inside wait_on).
** Nothing is pushed onto a Lua stack, allocated through Lua or raised, and
** no Lua runs, while a thread's mu is held: fields are copied under it and
** pushed after (a name through object_pushguarded).
*/
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "libs.h"
#include "options.h"
#include "runtime.h"
#include "spin.h"
#include "thread.h"
#include "types.h"

/* Message handler: add the traceback to string errors. */
static int thread_msgh(lua_State *L) {
  waiter_t *w = wait_current_fast();
  if (w != NULL && atomic_load(&w->delivered)) return 1;
  if (lua_type(L, 1) == LUA_TSTRING || lua_type(L, 1) == LUA_TNUMBER)
    compat_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

/* Protected: a printable text for the value at 1. */
static int printable_body(lua_State *L) {
  lua_settop(L, 1);
  if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1)) return 1;
  if (lua_isstring(L, 1)) {
    lua_pushvalue(L, 1);
    lua_tostring(L, -1);         /* a number becomes its text */
    return 1;
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* Push a printable text for the value at idx: its __tostring, itself, or
** what it is; a __tostring that fails is described instead. */
static const char *push_printable(lua_State *L, int idx) {
  const char *type = luaL_typename(L, idx);
  idx = compat_absindex(L, idx);
  lua_pushcfunction(L, printable_body);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != 0) {
    lua_pop(L, 1);
    lua_pushfstring(L, "(error object is a %s value that cannot be shown)", type);
  }
  return lua_tostring(L, -1);
}

/* Keep a printable copy of the value at the top of L in t->error_text. */
static void keep_error_text(lua_State *L, thread_t *t) {
  char *text = object_strdup(push_printable(L, -1));
  lua_pop(L, 1);
  free(t->error_text);
  t->error_text = text;
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

/* ------------------------------------------------------- excepthook */

/* threading.__excepthook__(args): print "Exception in thread NAME:" and the
** error (with its traceback) on stderr, as Python's default does. */
static int thread_excepthook_default(lua_State *L) {
  const char *name, *text;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "name");
  name = lua_tostring(L, -1);
  lua_getfield(L, 1, "error");
  text = push_printable(L, -1);
  fprintf(stderr, "Exception in thread %s:\n%s\n", name != NULL ? name : "?", text);
  fflush(stderr);
  return 0;
}

/* Push this state's one closure of thread_excepthook_default (on Lua 5.1
** and LuaJIT each lua_pushcfunction makes a new one). */
static const char default_hook_key = 'd';
static void push_default_hook(lua_State *L) {
  compat_rawgetp(L, LUA_REGISTRYINDEX, &default_hook_key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushcfunction(L, thread_excepthook_default);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &default_hook_key);
  }
}

static void free_buffer(void *p) {
  transfer_free((transfer_t *)p);
}

/* Push the excepthook of `root` (the default when none is set). */
static void push_excepthook(lua_State *L, long root, unsigned long *gen) {
  void **slot = object_newbox(L, free_buffer);
  *slot = runtime_excepthook(root, gen);
  if (*slot == NULL) push_default_hook(L);
  else transfer_decode(L, (transfer_t *)*slot);
  lua_remove(L, -2);                         /* the box, freed when collected */
}

/* Protected: call t's excepthook with {thread =, name =, error = (at 2)}. */
static int excepthook_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  push_excepthook(L, t->root, NULL);
  lua_createtable(L, 0, 3);
  object_push(L, &t->obj);
  lua_setfield(L, -2, "thread");
  object_pushguarded(L, &t->mu, &t->name);
  lua_setfield(L, -2, "name");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "error");
  lua_call(L, 1, 0);
  return 0;
}

/* Report the failure of t (its error at err) through its root's
** excepthook, in the failing thread, as Python does; an error of the hook
** itself is printed. */
static void report_failure(lua_State *L, thread_t *t, int err) {
  int base = lua_gettop(L);
  err = compat_absindex(L, err);
  lua_pushcfunction(L, thread_msgh);
  lua_pushcfunction(L, excepthook_body);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, err);
  if (lua_pcall(L, 2, 0, base + 1) != 0 && !atomic_load(&t->waiter.delivered)) {
    fprintf(stderr, "Exception in threading.excepthook:\n%s\n", push_printable(L, -1));
    fflush(stderr);
  }
  lua_settop(L, base);
}

/* threading.core._excepthook([fn]): with no argument, the excepthook of the
** caller's root; with one, make fn (a callable, or nil for the default) the
** excepthook. The state that set a function gets that very function back. */
static const char hook_key = 'e';   /* registry[&hook_key] = { gen, fn } */

static int thread_excepthook(lua_State *L) {
  long root = thread_root_of(L);
  unsigned long gen;
  if (lua_gettop(L) == 0) {
    compat_rawgetp(L, LUA_REGISTRYINDEX, &hook_key);
    if (lua_istable(L, -1)) {
      transfer_free(runtime_excepthook(root, &gen));
      lua_rawgeti(L, -1, 1);
      if (lua_tonumber(L, -1) == (lua_Number)gen) {
        lua_rawgeti(L, -2, 2);
        return 1;
      }
    }
    push_excepthook(L, root, &gen);
    return 1;
  }
  lua_settop(L, 1);
  if (!lua_isnil(L, 1) && !object_callable(L, 1))
    return luaL_argerror(L, 1, lua_pushfstring(L, "function expected, got %s", luaL_typename(L, 1)));
  {
    transfer_t *buf = NULL;
    if (!lua_isnil(L, 1) && lua_tocfunction(L, 1) != thread_excepthook_default)
      buf = transfer_encode(L, 1, 1, "excepthook", 0);
    lua_createtable(L, 2, 0);                /* made before the set: cannot fail after */
    if (!runtime_set_excepthook(root, buf, &gen)) return luaL_error(L, "not enough memory");
    lua_pushnumber(L, (lua_Number)gen);
    lua_rawseti(L, -2, 1);
    if (lua_isnil(L, 1)) push_default_hook(L);
    else lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 2);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &hook_key);
  }
  return 0;
}

/* ----------------------------------------------------------- running */

/* Runs in the new state, protected: set it up and call the target, keeping
** its results as t's output; raises the target's error, its traceback
** added. */
static int thread_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  transfer_t *input = t->input;
  int base, n, rc;
  lua_settop(L, 0);
  libs_apply(L, t->libs);
  libs_set_paths(L, t->path, t->cpath);
  lua_pushcfunction(L, thread_msgh);
  base = lua_gettop(L);
  if (t->cmain != NULL) {
    lua_pushcfunction(L, t->cmain);
    object_push(L, t->carg);
    lua_pushinteger(L, t->iarg);
    n = 3;
  } else {
    n = transfer_decode(L, input);
    t->input = NULL;
    transfer_free(input);
  }
  if (wait_cancel_undelivered()) wait_raise_cancel(L);
  rc = lua_pcall(L, n - 1, LUA_MULTRET, base);
  t->alloc->limit = 0;        /* the cap is for the target, not the report */
  if (rc != 0) return lua_error(L);
  {
    int nres = lua_gettop(L) - base;
    transfer_t *out = transfer_encode(L, base + 1, nres, "results", 1);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    t->output = out;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  }
  return 0;
}

/* Protected: report t's failure (its error at 2), then keep the error for
** join: strings carry the thread's name, other values go as they are, and
** a value that cannot move goes as its text. */
static int failure_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  transfer_t *out;
  lua_settop(L, 2);
  report_failure(L, t, 2);
  if (lua_type(L, 2) == LUA_TSTRING || lua_type(L, 2) == LUA_TNUMBER) {
    object_pushguarded(L, &t->mu, &t->name);   /* t.name = x may free it meanwhile */
    lua_pushliteral(L, ": ");
    lua_pushvalue(L, 2);
    lua_concat(L, 3);
    lua_replace(L, 2);
  }
  lua_pushvalue(L, 2);
  keep_error_text(L, t);
  out = try_encode(L, 2);
  if (out == NULL) {
    lua_pushstring(L, t->error_text);
    out = try_encode(L, -1);
  }
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->output = out;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return 0;
}

/* Protected: "NAME: error_text" as t's output. */
static int text_output_body(lua_State *L) {
  thread_t *t = (thread_t *)lua_touserdata(L, 1);
  transfer_t *out;
  object_pushguarded(L, &t->mu, &t->name);
  lua_pushliteral(L, ": ");
  lua_pushstring(L, t->error_text);
  lua_concat(L, 3);
  out = transfer_encode(L, -1, 1, "error", 0);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  t->output = out;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return 0;
}

/* Run t in L, its fresh state: the target, protected; then its failure, if
** any, reported and kept. Returns the final status. */
int thread_run(thread_t *t, lua_State *L) {
  int rc;
  if (atomic_load(&t->waiter.cancelled)) return ST_CANCELLED;   /* before it ran */
  lua_pushcfunction(L, thread_body);
  lua_pushlightuserdata(L, t);
  rc = lua_pcall(L, 1, 0, 0);
  /* the cap is for the target: reporting may need a little memory, and
  ** Lua 5.1 has no emergency collection */
  t->alloc->limit = 0;
  if (atomic_load(&t->waiter.delivered)) return ST_CANCELLED;
  if (rc == 0) return ST_DONE;
  lua_pushcfunction(L, failure_body);
  lua_pushlightuserdata(L, t);
  lua_pushvalue(L, -3);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    /* memory ran out on the way: keep what can be said */
    lua_pop(L, 1);
    keep_error_text(L, t);
    if (t->output == NULL && t->error_text != NULL) {
      lua_pushcfunction(L, text_output_body);
      lua_pushlightuserdata(L, t);
      if (lua_pcall(L, 1, 0, 0) != 0) lua_pop(L, 1);   /* join falls back on error_text */
    }
  }
  lua_settop(L, 0);
  return ST_FAILED;
}

/* ----------------------------------------------------------- Lua API */

static thread_t *check_thread(lua_State *L, int idx) {
  return (thread_t *)object_check(L, idx, &thread_type);
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

/* A stack size in bytes at idx: 0 (the default), or a whole number from
** THREAD_STACK_MIN to THREAD_STACK_MAX, rounded up to whole pages. */
static size_t check_stack_size(lua_State *L, int idx, int arg, const char *what) {
  lua_Number n = lua_tonumber(L, idx);
  long page = sysconf(_SC_PAGESIZE);
  size_t bytes;
  if (lua_type(L, idx) != LUA_TNUMBER || !(n == 0 || (n >= THREAD_STACK_MIN &&
      n <= (lua_Number)THREAD_STACK_MAX && n == floor(n))))
    luaL_argerror(L, arg, lua_pushfstring(L, "%s must be 0 or a whole number of bytes "
                  "from %d to %d", what, THREAD_STACK_MIN, (int)THREAD_STACK_MAX));
  bytes = (size_t)n;
  if (page > 0 && bytes % (size_t)page != 0) bytes += (size_t)page - bytes % (size_t)page;
  return bytes;
}

static const char *const thread_options[] = {
  "target", "args", "name", "daemon", "memory_limit", "stack_size", "libs", NULL
};

/* Thread(fn, ...) or Thread{target=, args=, name=, daemon=, memory_limit=,
** stack_size=, libs=}: pushes a new, unstarted Thread. */
static int thread_new(lua_State *L) {
  thread_t *self = runtime_self();
  thread_t *t;
  handle_t *h;
  const char *name = NULL;
  char buf[32];
  int daemon = self != NULL && !self->foreign ? self->daemon : 0;
  lua_Number limit = 0;
  size_t stack = 0;
  unsigned libs = LIBS_LAZY;
  int nargs, top;
  if (lua_type(L, 1) == LUA_TTABLE && !object_callable(L, 1)) {
    int o = 1;
    lua_settop(L, 1);
    options_check(L, o, 1, thread_options);
    lua_getfield(L, o, "target");
    if (!object_callable(L, -1))
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
    lua_getfield(L, o, "stack_size");
    if (!lua_isnil(L, -1)) stack = check_stack_size(L, -1, 1, "field 'stack_size'");
    lua_pop(L, 1);
    lua_getfield(L, o, "libs");
    libs = libs_check(L, -1, 1);
    lua_pop(L, 1);
    lua_getfield(L, o, "args");
    if (lua_isnil(L, -1)) {
      nargs = 0;
      lua_pop(L, 1);
    } else {
      int a;
      if (!lua_istable(L, -1)) luaL_argerror(L, 1, "field 'args' must be a table");
      a = lua_gettop(L);
      nargs = object_pushargs(L, a, 1, "args");
      lua_remove(L, a);
    }
    top = 2;               /* target at 2, args after it */
  } else {
    if (!object_callable(L, 1)) object_typeerror(L, 1, "function");
    top = 1;
    nargs = lua_gettop(L) - 1;
  }
  /* the handle owns t from the start, so an error below leaks nothing */
  h = object_newhandle(L, &thread_type);
  t = runtime_thread_new();
  if (t == NULL) return luaL_error(L, "not enough memory");
  object_sethandle(L, h, &t->obj);
  lua_insert(L, top);                 /* handle, target, args... */
  t->input = transfer_encode(L, top + 1, nargs + 1, "args", -1);
  t->memory_limit = (size_t)limit;
  t->stack_size = stack;
  t->libs = libs;
  t->daemon = daemon;
  t->root = thread_root_of(L);
  if (name == NULL) {
    snprintf(buf, sizeof buf, "Thread-%ld", runtime_next_number());
    name = buf;
  }
  t->name = object_strdup(name);
  libs_push_paths(L);
  if (lua_isstring(L, -2)) t->path = object_strdup(lua_tostring(L, -2));
  if (lua_isstring(L, -1)) t->cpath = object_strdup(lua_tostring(L, -1));
  lua_pop(L, 2);
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
  rc = runtime_start(t);
  if (rc != 0) return luaL_error(L, "cannot start thread: %s", strerror(rc));
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

static int thread_ended(const void *arg) {
  return atomic_load_explicit(&((const thread_t *)arg)->ended, memory_order_acquire);
}

/* What join refuses whatever the time: raises. */
static void join_check(lua_State *L, const thread_t *t) {
  if (t == runtime_self()) luaL_error(L, "cannot join the current thread");
  /* the main thread ends with the main script (its state closing) */
  if (t->foreign && t != runtime_main())
    luaL_error(L, "cannot join a thread that threading did not start");
}

/* Push what join gives for a thread that has ended with `status`. */
static int push_ending(lua_State *L, const thread_t *t, int status) {
  switch (status) {
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

/* Thread:join([timeout]) -> true, ... | false, err | nil, "timeout" */
static int thread_join(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  int status, r = WAIT_OK;
  join_check(L, t);
  wait_check_cancel(L);
  if (task_calling(L) && !atomic_load_explicit(&t->ended, memory_order_acquire) &&
      !(!dl.forever && wait_expired(&dl))) {
    /* a task's join waits in its scheduler (task.c), once started */
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    status = t->status;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (status == ST_NEW) return luaL_error(L, "cannot join a thread before it is started");
    if (status == ST_RUNNING) {
      return task_defer_done(L, WATCH_ANY, wait_left(&dl));
    }
  }
  /* a short thread often ends within microseconds: watch for it before
  ** paying for a sleep and a wake-up */
  if (!atomic_load_explicit(&t->ended, memory_order_acquire) && !t->foreign &&
      !(!dl.forever && wait_expired(&dl)))
    spin_until(thread_ended, t);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  if (t->status == ST_NEW) {
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    return luaL_error(L, "cannot join a thread before it is started");
  }
  while (t->status == ST_RUNNING && r == WAIT_OK)
    r = wait_on(&t->obj, &t->mu, &t->cv, &dl);
  status = t->status;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  if (status == ST_RUNNING) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return push_ending(L, t, status);
}

/* threading.select: ended -> what join gives; refuses what join refuses */
static int thread_select_take(lua_State *L, object_t *o) {
  thread_t *t = (thread_t *)o;
  int status;
  join_check(L, t);
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  status = t->status;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  if (status == ST_NEW) return luaL_error(L, "cannot join a thread before it is started");
  return status == ST_RUNNING ? -1 : push_ending(L, t, status);
}

const select_ops_t thread_select = { thread_select_take, NULL };

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
  if (t->L != NULL) cancel_deliver(t);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  wait_cancel_wake(&t->waiter);
  lua_settop(L, 1);
  return 1;
}

static int status_of(thread_t *t) {
  int s;
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  s = t->status;
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
  return s;
}

static int thread__index(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  const char *k = lua_tostring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), "methods");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);        /* not raw: an on-demand table loads the rest */
  if (!lua_isnil(L, -1) || k == NULL) return 1;
  lua_pop(L, 2);
  if (strcmp(k, "name") == 0) {
    object_pushguarded(L, &t->mu, &t->name);
  } else if (strcmp(k, "daemon") == 0) {
    int daemon;
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    daemon = t->daemon;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    lua_pushboolean(L, daemon);
  } else if (strcmp(k, "status") == 0) {
    lua_pushstring(L, thread_status_names[status_of(t)]);
  } else if (strcmp(k, "ident") == 0) {
    if (t->ident) lua_pushinteger(L, t->ident);
    else lua_pushnil(L);
  } else if (strcmp(k, "native_id") == 0) {
    deadline_t dl = wait_deadline_in(5);
    long id;
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    /* a thread just started learns its id within microseconds */
    t->id_waiters++;
    while (t->status == ST_RUNNING && t->native_id == 0 && !wait_expired(&dl))
      pthread_cond_timedwait(&t->cv, &t->mu, &dl.at);
    t->id_waiters--;
    id = t->native_id;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (id) lua_pushinteger(L, id);
    else lua_pushnil(L);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static int thread__newindex(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  const char *k = lua_tostring(L, 2);
  if (k != NULL && strcmp(k, "name") == 0) {
    char *name = object_strdup(luaL_checkstring(L, 3));
    if (name == NULL) return luaL_error(L, "not enough memory");
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    free(t->name);
    t->name = name;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    return 0;
  }
  if (k != NULL && strcmp(k, "daemon") == 0) {
    int started, daemon;
    luaL_checktype(L, 3, LUA_TBOOLEAN);
    daemon = lua_toboolean(L, 3);
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    started = t->status != ST_NEW;
    if (!started) t->daemon = daemon;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    if (started) return luaL_error(L, "cannot set daemon status of an active thread");
    return 0;
  }
  return luaL_error(L, "cannot set field '%s' of a Thread", k ? k : luaL_typename(L, 2));
}

static int thread__tostring(lua_State *L) {
  thread_t *t = check_thread(L, 1);
  int status = status_of(t);
  lua_pushliteral(L, "threading.Thread: ");
  object_pushguarded(L, &t->mu, &t->name);
  lua_pushfstring(L, " (%s)", thread_status_names[status]);
  lua_concat(L, 3);
  return 1;
}

static thread_t *self_or_error(lua_State *L) {
  thread_t *t = runtime_self();
  if (t == NULL) luaL_error(L, "not enough memory");
  return t;
}

/* threading.current_thread() */
static int thread_current_thread(lua_State *L) {
  object_push(L, &self_or_error(L)->obj);
  return 1;
}

/* threading.main_thread() */
static int thread_main_thread(lua_State *L) {
  thread_t *t = runtime_main();
  if (t == NULL) return luaL_error(L, "the main thread has not used threading");
  object_push(L, &t->obj);
  return 1;
}

/* threading.get_ident() */
static int thread_get_ident(lua_State *L) {
  lua_pushinteger(L, self_or_error(L)->ident);
  return 1;
}

/* Push a box holding the live threads (see runtime_list). */
static thread_list_t *push_list(lua_State *L) {
  void **slot;
  self_or_error(L);
  slot = object_newbox(L, runtime_list_free);
  *slot = runtime_list();
  if (*slot == NULL) luaL_error(L, "not enough memory");
  return (thread_list_t *)*slot;
}

/* threading.enumerate() -> list of live threads (started, not ended) */
static int thread_enumerate(lua_State *L) {
  thread_list_t *list = push_list(L);
  int i;
  lua_createtable(L, list->n, 0);
  for (i = 0; i < list->n; i++) {
    object_push(L, &list->t[i]->obj);
    lua_rawseti(L, -2, i + 1);
  }
  object_box_free(L, -2);
  return 1;
}

/* threading.active_count() */
static int thread_active_count(lua_State *L) {
  self_or_error(L);
  lua_pushinteger(L, runtime_count());
  return 1;
}

/* threading.sleep(seconds): a cancellation point */
static int thread_sleep(lua_State *L) {
  double s = wait_check_seconds(L, 1);
  thread_t *t = self_or_error(L);
  deadline_t dl = wait_deadline_in(s);
  int r = WAIT_OK;
  wait_check_cancel(L);
  /* a task sleeps in its scheduler; sleep(0) lets the other tasks run */
  if (task_calling(L)) return task_defer(L, TASK_SLEEP, NULL, s > 0 ? s : 0, 0);
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

/* threading.get_native_id() -> the calling OS thread's id */
static int thread_get_native_id(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)syscall(SYS_gettid));
  return 1;
}

/* threading.stack_size([bytes]) -> the previous setting: the stack of
** threads started from now on (0: the built-in default) */
static int thread_stack_size(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_pushinteger(L, (lua_Integer)runtime_stack_size(0, 0));
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)runtime_stack_size(1, check_stack_size(L, 1, 1, "size")));
  return 1;
}

static const luaL_Reg thread_funcs[] = {
  {"Thread", thread_new},
  {"start", thread_start_new},
  {"current_thread", thread_current_thread},
  {"main_thread", thread_main_thread},
  {"get_ident", thread_get_ident},
  {"enumerate", thread_enumerate},
  {"active_count", thread_active_count},
  {"sleep", thread_sleep},
  {"get_native_id", thread_get_native_id},
  {"stack_size", thread_stack_size},
  {"_excepthook", thread_excepthook},
  {NULL, NULL}
};
void thread_open(lua_State *L) {
  object_newmetatable(L, &thread_type, thread_methods, thread_meta);
  luaL_setfuncs(L, thread_funcs, 0);
  lua_pushnumber(L, WAIT_TIMEOUT_MAX);
  lua_setfield(L, -2, "TIMEOUT_MAX");
  push_default_hook(L);
  lua_setfield(L, -2, "__excepthook__");
  cancel_open(L);
  diag_open(L);
}
