/*
** diag.c: threading.waits() and threading.deadlocks(), what live threads
** are blocked on and the cycles of threads waiting for each other's locks.
**
** Who owns what: a snapshot retains every live thread and every object one
** of them waits on, so that nothing it names is freed while it is read.
** Lock order: a thread's waiter mu alone (to read what it waits on). A
** lock's owner is a waiter token compared with the snapshot's threads,
** never dereferenced: its thread may have ended holding the lock.
*/
#include <stdlib.h>

#include "lock.h"
#include "runtime.h"

/* One live thread as seen by waits() and deadlocks(). */
typedef struct snap {
  thread_t *t;              /* retained */
  object_t *on;             /* what it is blocked on (retained), or NULL */
  int holder;               /* for a lock: index of the thread holding it, or -1 */
} snap_t;

static void snapshot_free(snap_t *s, int n) {
  int i;
  for (i = 0; i < n; i++) {
    object_release(s[i].on);
    object_release(&s[i].t->obj);
  }
  free(s);
}

/* Take the snapshot, oldest thread first; returns the count (-1 when out
** of memory), *out malloc'd. */
static int snapshot(snap_t **out) {
  int n, i, j;
  thread_t **list = runtime_list(&n);
  snap_t *s;
  *out = NULL;
  if (list == NULL) return -1;
  s = (snap_t *)calloc(n ? (size_t)n : 1, sizeof *s);
  if (s == NULL) {
    runtime_list_free(list, n);
    return -1;
  }
  for (i = 0; i < n; i++) {
    thread_t *t = list[i];          /* the list's reference moves to s */
    s[i].t = t;
    s[i].holder = -1;
    WAIT_CHECK(pthread_mutex_lock(&t->waiter.mu));
    if (t->waiter.owner != NULL) s[i].on = object_retain(t->waiter.owner);
    WAIT_CHECK(pthread_mutex_unlock(&t->waiter.mu));
  }
  free(list);
  for (i = 0; i < n; i++) {
    const void *owner;
    if (s[i].on == NULL || (s[i].on->type != &lock_type && s[i].on->type != &rlock_type))
      continue;
    owner = atomic_load(&((lock_t *)s[i].on)->owner);
    for (j = 0; j < n; j++)
      if (owner != NULL && owner == (const void *)&s[j].t->waiter) s[i].holder = j;
  }
  *out = s;
  return n;
}

static void push_name(lua_State *L, thread_t *t) {
  WAIT_CHECK(pthread_mutex_lock(&t->mu));
  lua_pushstring(L, t->name);
  WAIT_CHECK(pthread_mutex_unlock(&t->mu));
}

/* "threading.Lock 0x..." naming the object s is blocked on */
static void push_blocked_on(lua_State *L, const snap_t *s) {
  if (&s->t->obj == s->on) lua_pushliteral(L, "sleep");
  else lua_pushfstring(L, "%s %p", s->on->type->name, (void *)s->on);
}

/* threading.waits() -> { {name=, ident=, status=, blocked_on=, object=, owner=}, ... } */
static int diag_waits(lua_State *L) {
  snap_t *s;
  int n, i;
  if (runtime_self() == NULL) return luaL_error(L, "not enough memory");
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
    lua_pushstring(L, thread_status_names[t->status]);
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
static int diag_deadlocks(lua_State *L) {
  snap_t *s;
  int n, i, ncycles = 0;
  char *mark;
  if (runtime_self() == NULL) return luaL_error(L, "not enough memory");
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

static const luaL_Reg diag_funcs[] = {
  {"waits", diag_waits},
  {"deadlocks", diag_deadlocks},
  {NULL, NULL}
};

void diag_open(lua_State *L) {
  luaL_setfuncs(L, diag_funcs, 0);
}
