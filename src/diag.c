/*
** diag.c: threading.waits() and threading.deadlocks(), what live threads
** are blocked on and the cycles of threads waiting for each other's locks.
**
** Who owns what: a snapshot retains every live thread and every object one
** of them waits on, so that nothing it names is freed while it is read; it
** sits in a box on the Lua stack (object_newbox), so an error while the
** result is built frees it. A lock's holder thread is a waiter address
** compared with the snapshot's threads, never dereferenced: its thread may
** have ended holding the lock.
**
** Locks: a thread's mu, then (apart) its waiter's mu, each only to copy a
** field. Nothing is pushed, allocated through Lua or raised while either
** is held: names are copied under the lock and pushed after.
*/
#include <stdlib.h>
#include <string.h>

#include "lock.h"
#include "runtime.h"

/* One live thread as seen by waits() and deadlocks(). */
typedef struct snap {
  thread_t *t;              /* retained */
  object_t *on;             /* what it is blocked on (retained), or NULL */
  int status;
  int holder;               /* for a lock: index of the thread holding it, or -1 */
} snap_t;

typedef struct snapshot {
  int n;
  snap_t s[];
} snapshot_t;

static void snapshot_free(void *p) {
  snapshot_t *sn = (snapshot_t *)p;
  int i;
  for (i = 0; i < sn->n; i++) {
    object_release(sn->s[i].on);
    object_release(&sn->s[i].t->obj);
  }
  free(sn);
}

/* Push a box holding a snapshot of the live threads, oldest first. */
static snapshot_t *snapshot(lua_State *L) {
  void **slot;
  thread_list_t *list;
  snapshot_t *sn;
  snap_t *s;
  int n, i, j;
  if (runtime_self() == NULL) luaL_error(L, "not enough memory");
  slot = object_newbox(L, snapshot_free);
  list = runtime_list();
  if (list == NULL) luaL_error(L, "not enough memory");
  n = list->n;
  sn = (snapshot_t *)calloc(1, sizeof *sn + (size_t)n * sizeof sn->s[0]);
  if (sn == NULL) {
    runtime_list_free(list);
    luaL_error(L, "not enough memory");
  }
  s = sn->s;
  for (i = 0; i < n; i++) {
    thread_t *t = list->t[i];        /* the list's reference moves to s */
    s[i].t = t;
    s[i].holder = -1;
    WAIT_CHECK(pthread_mutex_lock(&t->mu));
    s[i].status = t->status;
    WAIT_CHECK(pthread_mutex_unlock(&t->mu));
    WAIT_CHECK(pthread_mutex_lock(&t->waiter.mu));
    if (t->waiter.owner != NULL) s[i].on = object_retain(t->waiter.owner);
    WAIT_CHECK(pthread_mutex_unlock(&t->waiter.mu));
  }
  sn->n = n;
  free(list);
  *slot = sn;
  for (i = 0; i < n; i++) {
    const void *owner;
    if (s[i].on == NULL || (s[i].on->type != &lock_type && s[i].on->type != &rlock_type))
      continue;
    /* the thread the holder runs in (a task's lock counts as its thread's) */
    owner = atomic_load(&((lock_t *)s[i].on)->owner) != NULL
                ? atomic_load(&((lock_t *)s[i].on)->thread) : NULL;
    for (j = 0; j < n; j++)
      if (owner != NULL && owner == (const void *)&s[j].t->waiter) s[i].holder = j;
  }
  return sn;
}

static void push_name(lua_State *L, thread_t *t) {
  object_pushguarded(L, &t->mu, &t->name);
}

/* "threading.Lock 0x..." naming the object s is blocked on */
static void push_blocked_on(lua_State *L, const snap_t *s) {
  if (&s->t->obj == s->on) lua_pushliteral(L, "sleep");
  else lua_pushfstring(L, "%s %p", s->on->type->name, (void *)s->on);
}

/* threading.waits() -> { {name=, ident=, status=, blocked_on=, object=, owner=}, ... } */
static int diag_waits(lua_State *L) {
  snapshot_t *sn = snapshot(L);
  snap_t *s = sn->s;
  int n = sn->n, i;
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    thread_t *t = s[i].t;
    lua_createtable(L, 0, 6);
    push_name(L, t);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->ident);
    lua_setfield(L, -2, "ident");
    lua_pushstring(L, thread_status_names[s[i].status]);
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
  object_box_free(L, -2);
  return 1;
}

/* threading.deadlocks() -> { {threads = {names...}, description = "..."}, ... }:
** cycles of threads each blocked on a lock held by the next. Each thread
** waits on at most one lock, so following holders finds every cycle. */
static int diag_deadlocks(lua_State *L) {
  snapshot_t *sn = snapshot(L);
  snap_t *s = sn->s;
  int n = sn->n, i, ncycles = 0;
  /* 0 new, 1 on this walk, 2 done; Lua-owned, so a raise frees it */
  char *mark = (char *)compat_newuserdata(L, n ? (size_t)n : 1);
  memset(mark, 0, n ? (size_t)n : 1);
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
  object_box_free(L, -3);
  return 1;
}

static const luaL_Reg diag_funcs[] = {
  {"waits", diag_waits},
  {"deadlocks", diag_deadlocks},
  {NULL, NULL}
};

void diag_open(lua_State *L) {
  luaL_setfuncs(L, diag_funcs, 0);
}
