/*
** condition.c: threading.Condition, a condition variable over a Lock or an
** RLock (a new RLock when none is given).
**
** Each wait queues a node, oldest first, under c->mu. notify(n) marks the n
** oldest nodes, unlinks them and signals each node's own condvar, so it
** wakes exactly those threads and never one that started waiting later.
** A waiter watches its node for a few microseconds (spin.h) before it
** sleeps, and likewise the lock word before it sleeps to take the lock back.
** Nodes are recycled through c->spare and destroyed only with the
** Condition: Thread:cancel may broadcast a node's condvar (with c->mu, kept
** alive by its reference to c) after the waiter has left, which then is at
** worst a spurious wake-up for the node's next user.
**
** A coroutine task's wait (threading.async; on Lua 5.2+ handed from
** wait and wait_for to the scheduler by task_defer) queues a node the same way,
** held by a ticket (see cond_enlist), with its scheduler's port and its
** token: notify posts the token to the port itself (port_post_to), so it
** wakes exactly the tasks it picked, as it does threads.
**
** wait queues its node before it releases the user lock (all recursion
** levels of an RLock): a notifier must hold that lock, so it cannot slip in
** between. wait takes the lock back, at the same depth, before it returns,
** also when it is about to raise the cancellation.
**
** Lock order: c->mu, then a waiter's mu (inside wait_on) or a port's mu
** (port_post_to). The user lock is
** neither taken nor released while c->mu is held. Nothing is pushed onto a
** Lua stack, allocated through Lua or raised, and no Lua runs, while c->mu
** is held.
*/
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "lock.h"
#include "object.h"
#include "spin.h"
#include "thread.h"
#include "types.h"
#include "wait.h"

#define COND_MT "threading.Condition"

typedef struct cond cond_t;

typedef struct cnode {
  pthread_cond_t cv;           /* used with c->mu; lives as long as c */
  struct cnode *prev, *next;   /* (c->mu) in the queue or in c->spare */
  atomic_int notified;         /* written under c->mu */
  object_t *port;              /* (c->mu) a task's: its scheduler's port, */
  long token;                  /* a reference, and its token; else NULL */
} cnode_t;

struct cond {
  object_t obj;
  lock_t *lock;                /* the user lock; one reference */
  pthread_mutex_t mu;          /* guards the queue */
  cnode_t *head, *tail;        /* (mu) waiting, not notified, oldest first */
  cnode_t *spare;              /* (mu) nodes not in use */
};

/* Every node is spare by now: a waiter holds a handle, hence a reference. */
static void cond_destroy(object_t *o) {
  cond_t *c = (cond_t *)o;
  while (c->spare != NULL) {
    cnode_t *n = c->spare;
    c->spare = n->next;
    pthread_cond_destroy(&n->cv);
    free(n);
  }
  object_release(&c->lock->obj);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* A task waiting on a Condition hears of its lock's changes: a release
** (acquire), and every notify, which is announced on the lock too. */
static object_t *cond_watch_target(object_t *o) {
  return &((cond_t *)o)->lock->obj;
}

static const object_type_t cond_type = { COND_MT, cond_destroy, cond_watch_target, NULL };

static cond_t *check_cond(lua_State *L, int idx) {
  return (cond_t *)object_check(L, idx, &cond_type);
}

/* Does `self` hold the lock? (A plain Lock records its last acquirer too.) */
static int cond_owned(const cond_t *c, const void *self) {
  return atomic_load(&c->lock->locked) && atomic_load(&c->lock->owner) == self;
}

/* A node for one wait, spare or new (mu held); NULL when out of memory. */
static cnode_t *cnode_get(cond_t *c) {
  cnode_t *n = c->spare;
  if (n != NULL) {
    c->spare = n->next;
  } else {
    n = (cnode_t *)malloc(sizeof *n);
    if (n == NULL) return NULL;
    wait_cond_init(&n->cv);
  }
  n->prev = n->next = NULL;
  n->port = NULL;
  atomic_store(&n->notified, 0);
  return n;
}

static void queue_push(cond_t *c, cnode_t *n) {
  n->next = NULL;
  n->prev = c->tail;
  if (c->tail != NULL) c->tail->next = n;
  else c->head = n;
  c->tail = n;
}

static void queue_unlink(cond_t *c, cnode_t *n) {
  if (n->prev != NULL) n->prev->next = n->next;
  else c->head = n->next;
  if (n->next != NULL) n->next->prev = n->prev;
  else c->tail = n->prev;
  n->prev = n->next = NULL;
}

/* Wake up to `count` of the oldest waiters (mu held). */
static void cond_wake(cond_t *c, long count) {
  while (count-- > 0 && c->head != NULL) {
    cnode_t *n = c->head;
    queue_unlink(c, n);
    atomic_store(&n->notified, 1);
    if (n->port != NULL) port_post_to(n->port, n->token);
    else WAIT_CHECK(pthread_cond_signal(&n->cv));
  }
}

static int node_notified(const void *arg) {
  return atomic_load(&((const cnode_t *)arg)->notified);
}

/* Take the user lock back for self at recursion depth `depth`, whatever
** happens: a pending cancellation makes wait_on return at once, so after
** one ordinary try this sleeps on the lock's own condvar without it. */
static void cond_relock(lock_t *lk, void *self, long depth) {
  deadline_t forever;
  forever.forever = 1;
  forever.at.tv_sec = 0;
  forever.at.tv_nsec = 0;
  /* the notifier usually lets the lock go within microseconds */
  if (lock_try(lk) || (spin_until(lock_is_free, lk) && lock_try(lk))) {
    /* taken without sleeping */
  } else if (lock_take(lk, 1, &forever) != LOCK_TAKEN) {
    WAIT_CHECK(pthread_mutex_lock(&lk->mu));
    atomic_fetch_add(&lk->waiters, 1);
    for (;;) {
      deadline_t dl;
      int rc;
      if (lock_try(lk)) break;
      /* bounded, so that a wake-up lost elsewhere cannot strand us */
      dl = wait_deadline_in(0.01);
      rc = pthread_cond_timedwait(&lk->cv, &lk->mu, &dl.at);
      if (rc != 0 && rc != ETIMEDOUT) wait_fatal("pthread_cond_timedwait", rc);
    }
    atomic_fetch_sub(&lk->waiters, 1);
    WAIT_CHECK(pthread_mutex_unlock(&lk->mu));
  }
  lock_set_owner(lk, self, wait_self);
  lk->count = depth;
}

enum { COND_NOMEM = -1 };

/* Release the user lock, wait for a notify, the deadline or a cancellation,
** and take the lock back; the caller holds the lock. Returns WAIT_OK when
** notified, else WAIT_TIMEOUT or WAIT_CANCELLED; COND_NOMEM (the lock not
** released) when no node could be made. */
static int cond_block(cond_t *c, void *self, const deadline_t *dl) {
  lock_t *lk = c->lock;
  long depth = lk->count;
  int r = WAIT_OK;
  cnode_t *n;
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  n = cnode_get(c);
  if (n == NULL) {
    WAIT_CHECK(pthread_mutex_unlock(&c->mu));
    return COND_NOMEM;
  }
  queue_push(c, n);
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  lk->count = 1;                  /* release every level at once */
  lock_release_as(lk, self);
  if (!wait_expired(dl)) spin_until(node_notified, n);
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  while (!atomic_load(&n->notified) && r == WAIT_OK)
    r = wait_on(&c->obj, &c->mu, &n->cv, dl);
  if (!atomic_load(&n->notified)) {
    queue_unlink(c, n);           /* timed out or cancelled */
  } else if (r == WAIT_CANCELLED) {
    cond_wake(c, 1);              /* a dying thread passes its notify on */
  } else {
    r = WAIT_OK;                  /* notified as the deadline passed */
  }
  n->next = c->spare;
  c->spare = n;
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  cond_relock(lk, self, depth);
  return r;
}

/* Condition([lock]): upvalue 1 is the RLock constructor. */
static int cond_new(lua_State *L) {
  handle_t *h;
  cond_t *c;
  lock_t *lk;
  lua_settop(L, 1);
  if (lua_isnil(L, 1)) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 1);
    lua_replace(L, 1);
  }
  lk = lock_check_any(L, 1);
  h = object_newhandle(L, &cond_type);
  c = (cond_t *)calloc(1, sizeof *c);
  if (c == NULL) return luaL_error(L, "not enough memory");
  object_init(&c->obj, &cond_type);
  c->lock = (lock_t *)object_retain(&lk->obj);
  wait_mutex_init(&c->mu);
  object_sethandle(L, h, &c->obj);
  return 1;
}

/* Condition:acquire([blocking[, timeout]]) or (timeout) -> boolean */
static int cond_acquire(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  deadline_t dl;
  int blocking = lock_acquire_args(L, 2, &dl);
  int r;
  wait_check_cancel(L);
  blocking = blocking && !wait_expired(&dl);
  /* a task's call waits in its scheduler, not in this thread */
  if (blocking && task_calling(L)) {
    if (lock_acquire_as(c->lock, wait_owner(), 0, &dl) == LOCK_TAKEN) {
      lua_pushboolean(L, 1);
      return 1;
    }
    return task_defer(L, TASK_ACQUIRE, cond_acquire, wait_left(&dl), 0);
  }
  r = lock_acquire_as(c->lock, wait_owner(), blocking, &dl);
  if (r == LOCK_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, r == LOCK_TAKEN);
  return 1;
}

/* Condition:release() */
static int cond_release(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  if (!lock_release_as(c->lock, wait_owner()))
    return luaL_argerror(L, 1, c->lock->obj.type == &rlock_type
                                   ? "cannot release un-acquired lock"
                                   : "release unlocked lock");
  return 0;
}

/* Condition:wait([timeout]) -> true when notified, false on timeout */
static int cond_wait(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  deadline_t dl = wait_deadline_arg(L, 2);
  void *self = wait_owner();
  int r;
  if (!cond_owned(c, self))
    return luaL_argerror(L, 1, "cannot wait on un-acquired lock");
  wait_check_cancel(L);
  /* a task's wait, which always waits (for a notify, then for the lock),
  ** does so in its scheduler */
  if (task_calling(L)) return task_defer(L, TASK_CONDITION, cond_wait, wait_left(&dl), 0);
  r = cond_block(c, self, &dl);
  if (r == COND_NOMEM) return luaL_error(L, "not enough memory");
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  lua_pushboolean(L, r == WAIT_OK);
  return 1;
}

/* Condition:wait_for(predicate[, timeout]) -> the predicate's last value */
static int cond_wait_for(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  deadline_t dl;
  void *self = wait_owner();
  if (!object_callable(L, 2)) object_typeerror(L, 2, "function");
  dl = wait_deadline_arg(L, 3);
  if (!cond_owned(c, self))
    return luaL_argerror(L, 1, "cannot wait on un-acquired lock");
  wait_check_cancel(L);
  lua_settop(L, 2);
  if (task_calling(L)) return task_defer(L, TASK_CONDITION, cond_wait_for, wait_left(&dl), 2);
  for (;;) {
    lua_pushvalue(L, 2);
    lua_call(L, 0, 1);                          /* the lock is held, no mutex */
    if (lua_toboolean(L, -1) || wait_expired(&dl)) return 1;
    lua_pop(L, 1);
    if (!cond_owned(c, self))                   /* the predicate released it */
      return luaL_argerror(L, 1, "cannot wait on un-acquired lock");
    switch (cond_block(c, self, &dl)) {
      case COND_NOMEM: return luaL_error(L, "not enough memory");
      case WAIT_CANCELLED: return wait_raise_cancel(L);
      default: break;
    }
  }
}

/* Condition:notify([n = 1]): wake up to n of the longest waiting threads */
static int cond_notify(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  lua_Number n = luaL_optnumber(L, 2, 1);
  luaL_argcheck(L, n >= 0 && n == floor(n), 2, "count must be a non-negative integer");
  if (!cond_owned(c, wait_owner()))
    return luaL_argerror(L, 1, "cannot notify on un-acquired lock");
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  cond_wake(c, n >= (lua_Number)LONG_MAX ? LONG_MAX : (long)n);
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  return 0;
}

/* Condition:notify_all(): wake every waiting thread */
static int cond_notify_all(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  if (!cond_owned(c, wait_owner()))
    return luaL_argerror(L, 1, "cannot notify on un-acquired lock");
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  cond_wake(c, LONG_MAX);
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  return 0;
}

/*
** Coroutine tasks (threading.async) wait in the same queue as threads: a
** task's wait enlists a node and releases the lock, as cond_block does, and
** gets a ticket, a plain userdata that holds the node, the levels of the
** lock it released and a reference to c. The node names the task's port
** and token, which notify posts (cond_wake). The task leaves with
** ticket:leave(), which unlinks a node that was not notified, or passes a
** notify on to the next waiter if asked to (a task that was cancelled),
** and takes the lock back with ticket:relock(), a try that its scheduler
** repeats when the lock is released. A ticket collected before it left
** leaves then, passing its notify on.
*/
#define TICKET_MT "threading.Condition.ticket"

typedef struct ticket {
  cond_t *c;                   /* retained while the ticket lives */
  cnode_t *n;                  /* in c's queue until the ticket leaves */
  long depth;                  /* levels released, until relock takes them */
} ticket_t;

/* Leave the queue (idempotent); 1 if the node had been notified. */
static int ticket_leave(ticket_t *tk, int pass_on) {
  cond_t *c = tk->c;
  cnode_t *n = tk->n;
  object_t *port;
  int notified;
  if (n == NULL) return 0;
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  notified = atomic_load(&n->notified);
  if (!notified) queue_unlink(c, n);
  else if (pass_on) cond_wake(c, 1);
  port = n->port;
  n->port = NULL;
  n->next = c->spare;
  c->spare = n;
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  tk->n = NULL;
  if (port != NULL) object_release(port);
  return notified;
}

static const char ticket_key = 't';    /* registry: the tickets' metatable */

static ticket_t *check_ticket(lua_State *L) {
  return (ticket_t *)object_checkgcmt(L, 1, &ticket_key, TICKET_MT);
}

/* ticket:notified() -> whether a notify picked this wait */
static int ticket_notified(lua_State *L) {
  ticket_t *tk = check_ticket(L);
  lua_pushboolean(L, tk->n != NULL && atomic_load(&tk->n->notified));
  return 1;
}

/* ticket:leave([pass_on]) -> whether a notify had picked this wait */
static int ticket_leave_m(lua_State *L) {
  ticket_t *tk = check_ticket(L);
  lua_pushboolean(L, ticket_leave(tk, lua_toboolean(L, 2)));
  return 1;
}

/* ticket:relock() -> whether the caller holds the lock again, at the depth
** it had (one try: a ticket whose lock is taken back says true) */
static int ticket_relock(lua_State *L) {
  ticket_t *tk = check_ticket(L);
  if (tk->c != NULL && tk->depth > 0) {
    lock_t *lk = tk->c->lock;
    if (!lock_try(lk)) {
      lua_pushboolean(L, 0);
      return 1;
    }
    lock_set_owner(lk, wait_owner(), wait_self);
    lk->count = tk->depth;
    tk->depth = 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int ticket_gc(lua_State *L) {
  ticket_t *tk = check_ticket(L);
  ticket_leave(tk, 1);
  if (tk->c != NULL) object_release(&tk->c->obj);
  tk->c = NULL;
  return 0;
}

static const luaL_Reg ticket_methods[] = {
  {"notified", ticket_notified},
  {"leave", ticket_leave_m},
  {"relock", ticket_relock},
  {NULL, NULL}
};

/* Condition:_enlist(port, token) -> a ticket: queue a task's wait and
** release the lock (every level), which the caller holds; a notify that
** picks it posts token to port */
static int cond_enlist(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  object_t *port = port_check(L, 2);
  lua_Integer token = luaL_checkinteger(L, 3);
  void *self = wait_owner();
  ticket_t *tk;
  cnode_t *n;
  if (!cond_owned(c, self))
    return luaL_argerror(L, 1, "cannot wait on un-acquired lock");
  tk = (ticket_t *)compat_newuserdata(L, sizeof *tk);
  tk->c = NULL;
  tk->n = NULL;
  tk->depth = 0;
  object_pushgcmt(L, &ticket_key, ticket_gc, ticket_methods);
  lua_setmetatable(L, -2);
  WAIT_CHECK(pthread_mutex_lock(&c->mu));
  n = cnode_get(c);
  if (n != NULL) {
    n->port = object_retain(port);
    n->token = (long)token;
    queue_push(c, n);
  }
  WAIT_CHECK(pthread_mutex_unlock(&c->mu));
  if (n == NULL) return luaL_error(L, "not enough memory");
  tk->c = (cond_t *)object_retain(&c->obj);
  tk->n = n;
  /* the node is queued before the lock goes: no notify slips in between */
  tk->depth = c->lock->obj.type == &rlock_type ? c->lock->count : 1;
  c->lock->count = 1;
  lock_release_as(c->lock, self);
  return 1;
}

/* Condition:_is_owned() -> whether the caller (thread or task) holds the lock */
static int cond_is_owned(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  lua_pushboolean(L, cond_owned(c, wait_owner()));
  return 1;
}

/* Condition:locked() -> whether its lock is held (by anyone) */
static int cond_locked(lua_State *L) {
  cond_t *c = check_cond(L, 1);
  lua_pushboolean(L, atomic_load(&c->lock->locked));
  return 1;
}

static const luaL_Reg cond_methods[] = {
  {"acquire", cond_acquire},
  {"release", cond_release},
  {"locked", cond_locked},
  {"wait", cond_wait},
  {"wait_for", cond_wait_for},
  {"notify", cond_notify},
  {"notify_all", cond_notify_all},
  {"_enlist", cond_enlist},
  {"_is_owned", cond_is_owned},
  {NULL, NULL}
};

/* Needs lock_open to have run: the default lock is made by RLock(). */
void condition_open(lua_State *L) {
  object_newmetatable(L, &cond_type, cond_methods, NULL);
  lua_getfield(L, -1, "RLock");
  lua_pushcclosure(L, cond_new, 1);
  lua_setfield(L, -2, "Condition");
}
