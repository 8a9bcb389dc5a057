/*
** port.c: a coroutine scheduler's port, and the watches that post to it.
**
** A scheduler (threading.async) owns one port. A task that must wait on an
** object (a lock, a queue, an event, a future...) watches it: the port's
** node for that task is linked into the object's list of watches of the
** task's kind (object.h), and the object's next change of that kind posts
** the task's token to the port and unlinks the node. The scheduler sleeps
** in port:wait until a token arrives (or its nearest timeout), then
** retries only the tasks whose tokens came: nothing else is woken, and a
** change to an object no task watches costs a few atomic loads. A watch is
** armed before the task retries its call one last time, so a change made
** between the retry and the sleep is never missed.
**
** Kinds: a WATCH_ANY watch hears of every change of its object. A change
** that lets only some waiters proceed (an item put lets one getter take
** it) posts only that many of the oldest watches of its kind
** (wait_notify_some), and records on each node what it was posted for
** (`fired`). The task then either takes it (port:unwatch(token, true)),
** finds it gone to someone else and watches again (at the front, keeping
** its turn), or leaves without it (cancelled, timed out, its scheduler
** closed): then the node passes it on to the next watch of that kind, so
** a wake-up meant for a task that left is never lost.
**
** A Condition's notify posts the notified task's token itself
** (port_post_to), from the node the task enlisted with its port and
** token: a notify wakes exactly the tasks it picked.
**
** A task that waits on several objects at once (threading.wait on its
** futures, select on its waitables) watches each of them (port:watch_many):
** the token's further nodes hang from its main one (`more`), one per object,
** all of kind WATCH_ANY, and any of them posts the token. Every wait of
** the module names what it waits on: nothing hears of every change.
**
** Who owns what: a watch node belongs to its port (one per task token, and
** one more per further object of a wait on several), and
** only the scheduler's thread links or unlinks it, except that a change
** unlinks the nodes it fires. The object lists, each node's links and the
** list of all ports are guarded by watch_mu; a
** linked node holds a reference to its object. The tokens posted are
** guarded by the port's mu.
**
** An event loop that drives a scheduler (async.scheduler, async/luv.lua)
** polls the port's fd instead of sleeping in port:wait: an eventfd written
** under mu when the first thing is posted after a wait, and read empty by
** the next wait.
**
** fork(): watch_mu and every port's mu are taken around it, so that none is
** held by a thread left behind; a port whose scheduler stayed behind stays
** on the lists, and a change in the child posts to it harmlessly.
**
** An OS thread that waits in C on several objects (threading.wait, the
** set behind as_completed: future.c) uses a port of its own the same way,
** with no Lua handle (port_make). A task waiting on such a set makes the
** set's port relay every post to its scheduler's port, with its token
** (port_relay): one wake-up per change, however many futures the set has.
**
** Lock order: an object's own mutex (some changes are announced under it),
** then watch_mu, then a port's mu (a relaying port's, then the mu of the
** port it relays to, which relays to none; a relaying port is posted to
** only by port_fire, under watch_mu, so fork's prepare, which takes
** watch_mu before every port's mu in list order, never meets a post that
** holds one port's mu and wants another's). Nothing is pushed onto a Lua
** stack, allocated through Lua or raised, and no Lua runs, while watch_mu
** or a port's mu is held; an object's reference is released only after
** watch_mu is.
*/
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "object.h"
#include "spin.h"
#include "types.h"
#include "wait.h"

#define PORT_MT "threading.Port"

typedef struct port port_t;

struct watch {
  port_t *port;
  long token;
  int kind;                     /* (watch_mu) which of obj's lists */
  object_t *obj;                /* (watch_mu) what it watches; NULL if idle */
  object_t *fired;              /* (watch_mu) posted for a WATCH_TAKE/ROOM
                                   change of it, not yet taken; a reference */
  /* (watch_mu) in obj->watches[kind]: next is NULL at the tail, and the
  ** head's prev is the tail */
  struct watch *prev, *next;
  /* the token's further nodes, for a wait on several objects at once
  ** (port:watch_many); only the scheduler's thread follows or changes it */
  struct watch *more;
};

struct port {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long *ready;                  /* (mu) tokens posted, in order */
  size_t nready, capready;      /* (mu) */
  int everything;               /* (mu) a token was lost (no memory): retry all */
  int poked;                    /* (mu) port:poke(): wake with nothing posted */
  int efd;                      /* an eventfd made by port:fd(), or -1; set
                                   under mu, closed when the port is freed */
  int efd_set;                  /* (mu) efd was written since the last wait */
  struct watch **nodes;         /* the scheduler's: nodes[token], or NULL */
  size_t nnodes;
  port_t *prev, *next;          /* (watch_mu) the list of all ports */
  port_t *relay;                /* (mu) every post is passed on to it, with
                                   relay_token; a reference (port_relay) */
  long relay_token;             /* (mu) */
  atomic_uint signals;          /* bumped by each port_signal (under mu):
                                   what a thread about to sleep spins on */
};

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static port_t *all_ports;       /* (watch_mu) */

/* Wake whoever waits on p (mu held): its thread, and the event loop that
** polls its fd, which becomes readable until the next port:wait. */
static void port_signal(port_t *p) {
  atomic_fetch_add_explicit(&p->signals, 1, memory_order_release);
  WAIT_CHECK(pthread_cond_signal(&p->cv));
  if (p->efd >= 0 && !p->efd_set) {
    uint64_t one = 1;
    ssize_t n;
    do n = write(p->efd, &one, sizeof one); while (n < 0 && errno == EINTR);
    p->efd_set = 1;
  }
}

/* Post a token (mu held by no one here). A relaying port passes the post
** on under its mu: the port it relays to relays to none. */
static void port_post(port_t *p, long token) {
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  if (p->relay != NULL) port_post(p->relay, p->relay_token);
  if (p->nready == p->capready) {
    size_t cap = p->capready ? p->capready * 2 : 16;
    long *r = (long *)realloc(p->ready, cap * sizeof *r);
    if (r == NULL) {
      p->everything = 1;
    } else {
      p->ready = r;
      p->capready = cap;
    }
  }
  if (p->nready < p->capready) p->ready[p->nready++] = token;
  port_signal(p);
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
}

/* Unlink w (watch_mu held); returns the object it watched, or NULL. */
static object_t *unlink_watch(struct watch *w) {
  object_t *o = w->obj;
  _Atomic(struct watch *) *headp;
  struct watch *head;
  if (o == NULL) return NULL;
  headp = &o->watches[w->kind];
  head = atomic_load(headp);
  if (w == head) {
    if (w->next != NULL) w->next->prev = w->prev;   /* the tail */
    atomic_store(headp, w->next);
  } else {
    w->prev->next = w->next;
    if (w->next != NULL) w->next->prev = w->prev;
    else head->prev = w->prev;                       /* w was the tail */
  }
  w->prev = w->next = NULL;
  w->obj = NULL;
  return o;
}

/* Link w into o's list of its kind, at the tail or the front (watch_mu
** held). The store of the head goes before the caller's last retry. */
static void link_watch(struct watch *w, object_t *o, int front) {
  _Atomic(struct watch *) *headp = &o->watches[w->kind];
  struct watch *head = atomic_load(headp);
  w->obj = o;
  if (head == NULL) {
    w->prev = w;
    w->next = NULL;
    atomic_store(headp, w);
  } else if (front) {
    w->next = head;
    w->prev = head->prev;
    head->prev = w;
    atomic_store(headp, w);
  } else {
    w->next = NULL;
    w->prev = head->prev;
    head->prev->next = w;
    head->prev = w;
  }
}

/* Post every watch of one list (watch_mu held); returns how many. */
static long fire_all(object_t *o, int kind) {
  struct watch *w = atomic_load(&o->watches[kind]), *next;
  long n = 0;
  atomic_store(&o->watches[kind], NULL);
  for (; w != NULL; w = next) {
    next = w->next;
    w->obj = NULL;
    w->prev = w->next = NULL;
    port_post(w->port, w->token);
    n++;
  }
  return n;
}

void port_fire(object_t *o, int kind, long n) {
  long drop = 0;
  WAIT_CHECK(pthread_mutex_lock(&watch_mu));
  if (kind < 0) {
    int k;
    for (k = 0; k < WATCH_KINDS; k++) drop += fire_all(o, k);
  } else {
    drop += fire_all(o, WATCH_ANY);
    while (n-- > 0) {
      struct watch *w = atomic_load(&o->watches[kind]);
      if (w == NULL) break;
      unlink_watch(w);
      /* its reference to o stays, as what it was posted for (a linked
      ** node has none: watching clears it) */
      w->fired = o;
      port_post(w->port, w->token);
    }
  }
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  while (drop-- > 0) object_release(o);
}

void port_post_to(object_t *port, long token) {
  port_post((port_t *)port, token);
}

/* Forget what w was posted for (watch_mu held): the caller releases the
** object returned, after passing the wake-up on unless the task took it. */
static object_t *take_fired(struct watch *w) {
  object_t *f = w->fired;
  w->fired = NULL;
  return f;
}

/* Drop the reference that `fired` held, passing its wake-up on first when
** the task leaves without what it was posted for. */
static void settle_fired(object_t *f, int kind, int pass_on) {
  if (f == NULL) return;
  if (pass_on) wait_notify_some(f, kind, 1);
  object_release(f);
}

/* Unlink the further nodes of w (watch_mu not held: taken here), and free
** them if drop, when a wait on several objects is over. */
static void unwatch_more(struct watch *w, int drop) {
  struct watch *m, *next;
  for (m = w->more; m != NULL; m = m->more) {
    object_t *o;
    WAIT_CHECK(pthread_mutex_lock(&watch_mu));
    o = unlink_watch(m);
    WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
    if (o != NULL) object_release(o);
  }
  if (!drop) return;
  for (m = w->more; m != NULL; m = next) {
    next = m->more;
    free(m);
  }
  w->more = NULL;
}

/* Drop every watch of p and the references they hold; free the nodes too
** unless keep (a port kept for the next wait reuses them). */
static void port_close(port_t *p, int keep) {
  size_t i;
  for (i = 0; i < p->nnodes; i++) {
    object_t *o = NULL, *f;
    if (p->nodes[i] == NULL) continue;
    WAIT_CHECK(pthread_mutex_lock(&watch_mu));
    o = unlink_watch(p->nodes[i]);
    f = take_fired(p->nodes[i]);
    WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
    if (o != NULL) object_release(o);
    settle_fired(f, p->nodes[i]->kind, 1);
    unwatch_more(p->nodes[i], !keep);
    if (keep) continue;
    free(p->nodes[i]);
    p->nodes[i] = NULL;
  }
  if (keep) return;
  free(p->nodes);
  p->nodes = NULL;
  p->nnodes = 0;
}

static void port_destroy(object_t *o) {
  port_t *p = (port_t *)o;
  port_close(p, 0);
  if (p->relay != NULL) object_release(&p->relay->obj);
  WAIT_CHECK(pthread_mutex_lock(&watch_mu));
  if (p->prev != NULL) p->prev->next = p->next;
  else all_ports = p->next;
  if (p->next != NULL) p->next->prev = p->prev;
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  free(p->ready);
  if (p->efd >= 0) close(p->efd);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}

static const object_type_t port_type = { PORT_MT, port_destroy, NULL, NULL };

static port_t *check_port(lua_State *L) {
  return (port_t *)object_check(L, 1, &port_type);
}

object_t *port_check(lua_State *L, int idx) {
  return object_check(L, idx, &port_type);
}

/* A new port, on the list of all ports; NULL without memory. */
static port_t *port_alloc(void) {
  port_t *p = (port_t *)calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  object_init(&p->obj, &port_type);
  p->efd = -1;
  wait_mutex_init(&p->mu);
  wait_cond_init(&p->cv);
  WAIT_CHECK(pthread_mutex_lock(&watch_mu));
  p->next = all_ports;
  if (all_ports != NULL) all_ports->prev = p;
  all_ports = p;
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  return p;
}

object_t *port_push_new(lua_State *L) {
  handle_t *h = object_newhandle(L, &port_type);
  port_t *p = port_alloc();
  if (p == NULL) luaL_error(L, "not enough memory");
  object_sethandle(L, h, &p->obj);
  return &p->obj;
}

/* threading._port() -> a new port */
static int port_new(lua_State *L) {
  (void)port_push_new(L);
  return 1;
}

static long check_token(lua_State *L, int idx) {
  lua_Integer t = luaL_checkinteger(L, idx);
  luaL_argcheck(L, t >= 1 && t <= 0x3fffffff, idx, "token out of range");
  return (long)t;
}

static int check_kind(lua_State *L, int idx) {
  lua_Integer k = luaL_optinteger(L, idx, WATCH_ANY);
  luaL_argcheck(L, k >= 0 && k < WATCH_KINDS, idx, "watch kind out of range");
  return (int)k;
}

/* The token's node, made if need be; NULL without memory. */
static struct watch *node_of(port_t *p, long token) {
  struct watch *w;
  if ((size_t)token >= p->nnodes) {
    size_t n = (size_t)token * 2, i;
    struct watch **nodes = (struct watch **)realloc(p->nodes, n * sizeof *nodes);
    if (nodes == NULL) return NULL;
    for (i = p->nnodes; i < n; i++) nodes[i] = NULL;
    p->nodes = nodes;
    p->nnodes = n;
  }
  if ((w = p->nodes[token]) == NULL) {
    w = (struct watch *)calloc(1, sizeof *w);
    if (w == NULL) return NULL;
    w->port = p;
    w->token = token;
    p->nodes[token] = w;
  }
  return w;
}

/* The same, raising without memory (no lock is held). */
static struct watch *ensure_node(lua_State *L, port_t *p, long token) {
  struct watch *w = node_of(p, token);
  if (w == NULL) luaL_error(L, "not enough memory");
  return w;
}

/* Link w to o's list of `kind` (at the front if front), leaving whatever
** it watched before; the reference to o is taken here. */
static void rewatch(struct watch *w, object_t *o, int kind, int front) {
  object_t *old, *fired;
  if (o->type->watch_target != NULL) o = o->type->watch_target(o);
  object_retain(o);
  WAIT_CHECK(pthread_mutex_lock(&watch_mu));
  old = unlink_watch(w);
  /* watching again: what it was posted for went to someone else */
  fired = take_fired(w);
  w->kind = kind;
  link_watch(w, o, front);
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  if (old != NULL) object_release(old);
  if (fired != NULL) object_release(fired);
}

/* --------------------------------------------- an OS thread's own port */

object_t *port_make(void) {
  port_t *p = port_alloc();
  return p != NULL ? &p->obj : NULL;
}

int port_watch_obj(object_t *port, object_t *o, long token) {
  struct watch *w = node_of((port_t *)port, token);
  if (w == NULL) return 0;
  rewatch(w, o, WATCH_ANY, 0);
  return 1;
}

struct spin_arg {
  port_t *p;
  unsigned seen;
};

static int signalled(const void *arg) {
  const struct spin_arg *a = (const struct spin_arg *)arg;
  return atomic_load_explicit(&a->p->signals, memory_order_acquire) != a->seen;
}

/* With mu held and nothing posted: let mu go and watch for a post for a
** few microseconds (spin.h) before the caller sleeps, as a queue's get
** does. A thread answered at once (a select ping-pong between two threads)
** then pays no futex wake and no context switch on either side. */
static void port_spin(port_t *p) {
  struct spin_arg a;
  a.p = p;
  a.seen = atomic_load_explicit(&p->signals, memory_order_relaxed);
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  (void)spin_until(signalled, &a);
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
}

int port_sleep(object_t *port, const deadline_t *dl) {
  port_t *p = (port_t *)port;
  int r = WAIT_OK;
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  if (p->nready == 0 && !p->everything && !wait_expired(dl)) port_spin(p);
  while (p->nready == 0 && !p->everything && r == WAIT_OK) {
    if (wait_expired(dl)) r = WAIT_TIMEOUT;
    else r = wait_on(&p->obj, &p->mu, &p->cv, dl);
  }
  if (r == WAIT_TIMEOUT && (p->nready > 0 || p->everything)) r = WAIT_OK;
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  return r;
}

void port_relay(object_t *port, object_t *to, long token) {
  port_t *p = (port_t *)port;
  port_t *old;
  if (to != NULL) object_retain(to);
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  old = p->relay;
  p->relay = (port_t *)to;
  p->relay_token = token;
  /* what came before the relay was set is the caller's to look at: it
  ** takes the tokens itself after this */
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  if (old != NULL) object_release(&old->obj);
}

size_t port_take(object_t *port, long *buf, size_t cap, int *everything) {
  port_t *p = (port_t *)port;
  size_t n;
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  n = p->nready < cap ? p->nready : cap;
  if (n > 0) {                      /* (ready is NULL before the first post) */
    memcpy(buf, p->ready, n * sizeof *buf);
    memmove(p->ready, p->ready + n, (p->nready - n) * sizeof *buf);
    p->nready -= n;
  }
  *everything = p->everything;
  p->everything = 0;
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  return n;
}

/* port:watch(handle, token[, kind[, front]]) -> true, or false if handle is
** no object of the module: the object's next change of that kind (kinds:
** object.h) posts token. front: the task was posted, found what it came
** for taken by someone else, and keeps its turn. */
static int port_watch(lua_State *L) {
  port_t *p = check_port(L);
  object_t *o = object_test(L, 2);
  long token = check_token(L, 3);
  int kind = check_kind(L, 4), front = lua_toboolean(L, 5);
  struct watch *w;
  if (o == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  w = ensure_node(L, p, token);
  if (w->more != NULL) unwatch_more(w, 1);      /* it watched several */
  rewatch(w, o, kind, front);
  lua_pushboolean(L, 1);
  return 1;
}

/* port:unwatch(token[, took]): the task no longer waits on what it
** watched. Unless took, a wake-up it was posted for passes on. */
static int port_unwatch(lua_State *L) {
  port_t *p = check_port(L);
  long token = check_token(L, 2);
  int took = lua_toboolean(L, 3);
  object_t *o = NULL, *fired = NULL;
  int kind = WATCH_ANY;
  if ((size_t)token < p->nnodes && p->nodes[token] != NULL) {
    WAIT_CHECK(pthread_mutex_lock(&watch_mu));
    o = unlink_watch(p->nodes[token]);
    fired = take_fired(p->nodes[token]);
    kind = p->nodes[token]->kind;
    WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  }
  if (o != NULL) object_release(o);
  settle_fired(fired, kind, !took);
  if ((size_t)token < p->nnodes && p->nodes[token] != NULL) unwatch_more(p->nodes[token], 1);
  return 0;
}

/* port:watch_many(list, token) -> true, or false if an item is none of the
** module's objects: watch every object of the list for any change (a wait
** on several at once: threading.wait, select). Each node posts the same
** token. Watching again relinks them all. */
static int port_watch_many(lua_State *L) {
  port_t *p = check_port(L);
  long token = check_token(L, 3);
  int n, i;
  struct watch *w, **tail;
  object_t *old, *fired;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = (int)compat_rawlen(L, 2);
  for (i = 1; i <= n; i++) {
    int ok;
    lua_rawgeti(L, 2, i);
    ok = object_test(L, -1) != NULL;
    lua_pop(L, 1);
    if (!ok) {
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  if (n == 0) {
    lua_pushboolean(L, 0);
    return 1;
  }
  w = ensure_node(L, p, token);
  /* enough further nodes, made before any is linked */
  for (i = 2, tail = &w->more; i <= n; i++, tail = &(*tail)->more) {
    if (*tail == NULL) {
      struct watch *m = (struct watch *)calloc(1, sizeof *m);
      if (m == NULL) return luaL_error(L, "not enough memory");
      m->port = p;
      m->token = token;
      *tail = m;
    }
  }
  unwatch_more(w, 0);
  WAIT_CHECK(pthread_mutex_lock(&watch_mu));
  old = unlink_watch(w);
  fired = take_fired(w);
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  if (old != NULL) object_release(old);
  if (fired != NULL) object_release(fired);
  for (i = 1; i <= n; i++, w = w->more) {
    object_t *o;
    lua_rawgeti(L, 2, i);
    o = object_test(L, -1);
    lua_pop(L, 1);
    if (o->type->watch_target != NULL) o = o->type->watch_target(o);
    object_retain(o);
    WAIT_CHECK(pthread_mutex_lock(&watch_mu));
    w->kind = WATCH_ANY;
    link_watch(w, o, 0);
    WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The most tokens one port:wait returns; the rest stay posted for the next,
** which returns at once. They are copied to the C stack under mu, so a
** wait allocates nothing but the table it returns, and nothing at all when
** given the table of the last one to fill. */
#define PORT_WAIT_MAX 64

/* port:wait([timeout[, tokens]]) -> { tokens... } (empty on timeout),
** everything: blocks until a token is posted; raises the thread's
** cancellation. With everything true, some tokens were lost: retry every
** waiting task. The tokens come in the table given, if one is (what it
** held after them is cleared), else in a new one. A wait(0) that finds
** nothing posted returns nil, false. */
static int port_wait(lua_State *L) {
  port_t *p = check_port(L);
  deadline_t dl = wait_deadline_arg(L, 2);
  long copy[PORT_WAIT_MAX];
  size_t n = 0, i;
  int r = WAIT_OK, everything;
  wait_check_cancel(L);
  if (lua_type(L, 2) == LUA_TNUMBER && lua_tonumber(L, 2) == 0) {
    /* a look that finds nothing (a busy loop's) makes no table */
    int idle;
    WAIT_CHECK(pthread_mutex_lock(&p->mu));
    idle = p->nready == 0 && !p->everything && !p->poked && !p->efd_set;
    WAIT_CHECK(pthread_mutex_unlock(&p->mu));
    if (idle) {
      lua_pushnil(L);
      lua_pushboolean(L, 0);
      return 2;
    }
  }
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  if (p->nready == 0 && !p->everything && !p->poked && !wait_expired(&dl)) port_spin(p);
  while (p->nready == 0 && !p->everything && !p->poked && r == WAIT_OK &&
         !wait_expired(&dl))
    r = wait_on(&p->obj, &p->mu, &p->cv, &dl);
  if (r == WAIT_CANCELLED) {
    /* what was posted stays, for whoever waits next */
    WAIT_CHECK(pthread_mutex_unlock(&p->mu));
    return wait_raise_cancel(L);
  }
  p->poked = 0;
  if (p->nready > 0) {
    n = p->nready < PORT_WAIT_MAX ? p->nready : PORT_WAIT_MAX;
    memcpy(copy, p->ready, n * sizeof *copy);
    memmove(p->ready, p->ready + n, (p->nready - n) * sizeof *copy);
    p->nready -= n;
  }
  if (p->efd_set && p->nready == 0) {   /* readable no more until the next post */
    uint64_t v;
    ssize_t got;
    do got = read(p->efd, &v, sizeof v); while (got < 0 && errno == EINTR);
    p->efd_set = 0;
  }
  everything = p->everything;
  p->everything = 0;
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  if (lua_type(L, 3) == LUA_TTABLE) {
    size_t was = (size_t)compat_rawlen(L, 3);
    lua_settop(L, 3);
    for (i = was; i > n; i--) {          /* from the top: no border inside */
      lua_pushnil(L);
      lua_rawseti(L, 3, (int)i);
    }
  } else {
    lua_settop(L, 2);
    lua_createtable(L, (int)n, 0);
  }
  for (i = 0; i < n; i++) {
    lua_pushinteger(L, copy[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_pushboolean(L, everything);
  return 2;
}

/* port:fd() -> a file descriptor that is readable while something is
** posted and not yet taken by port:wait (an eventfd, made at the first
** call): an event loop polls it, then calls port:wait(0). */
static int port_fd(lua_State *L) {
  port_t *p = check_port(L);
  int fd, err = 0;
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  if (p->efd < 0) {
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) err = errno;
    else if (p->nready > 0 || p->everything || p->poked) port_signal(p);
  }
  fd = p->efd;
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  if (fd < 0) return luaL_error(L, "cannot make the port's file descriptor: %s", strerror(err));
  lua_pushinteger(L, fd);
  return 1;
}

/* port:poke(): the next port:wait returns at once, with nothing posted (a
** task was made ready from outside the scheduler's loop) */
static int port_poke(lua_State *L) {
  port_t *p = check_port(L);
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  p->poked = 1;
  port_signal(p);
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  return 0;
}

/* port:close(): drop every watch (and the references they hold) and what
** was posted and not yet taken, so that the port can serve the next wait as
** a new one would (threading.select keeps one between calls). Once the
** watches are gone nothing posts to it. */
void port_clear(object_t *port) {
  port_t *p = (port_t *)port;
  port_close(p, 1);
  WAIT_CHECK(pthread_mutex_lock(&p->mu));
  p->nready = 0;
  p->everything = 0;
  p->poked = 0;
  WAIT_CHECK(pthread_mutex_unlock(&p->mu));
}

static int port_close_m(lua_State *L) {
  port_clear(&check_port(L)->obj);
  return 0;
}

static const luaL_Reg port_methods[] = {
  {"close", port_close_m},
  {"watch", port_watch},
  {"watch_many", port_watch_many},
  {"unwatch", port_unwatch},
  {"wait", port_wait},
  {"fd", port_fd},
  {"poke", port_poke},
  {NULL, NULL}
};

void port_atfork(int phase) {
  port_t *p;
  if (phase == FORK_PREPARE) {
    WAIT_CHECK(pthread_mutex_lock(&watch_mu));
    for (p = all_ports; p != NULL; p = p->next) WAIT_CHECK(pthread_mutex_lock(&p->mu));
    return;
  }
  for (p = all_ports; p != NULL; p = p->next) {
    if (phase == FORK_CHILD) wait_cond_init(&p->cv);
    WAIT_CHECK(pthread_mutex_unlock(&p->mu));
  }
  WAIT_CHECK(pthread_mutex_unlock(&watch_mu));
}

/*
** Owner tokens of tasks. A task owns the RLocks and Condition locks it takes
** (lock.c), as a thread does: while its scheduler resumes it, the thread's
** waiter names the task as the one acting (wait_owner). A task's token is
** 2 * id + 1 for an id that no other task of the process ever gets: odd, so
** never the address of a waiter, and never reused, so a lock that a task
** left held when it ended is re-entered by no later task.
*/
static atomic_long last_owner_id;

/* threading._owner() -> a new task's owner id */
static int port_owner_new(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)(atomic_fetch_add(&last_owner_id, 1) + 1));
  return 1;
}

/* threading._act(id | nil[, co]) -> the id acting before, or nil: name the
** task that the calling thread runs from now on (nil: the thread itself),
** and co, the task's coroutine, whose blocking calls are then a task's
** calls (task_calling; none without co). The scheduler names them for the
** length of one resume; the coroutine is alive all that time. */
static int port_act(lua_State *L) {
  waiter_t *w = wait_current_fast();
  void *prev;
  lua_State *co = NULL;
  uintptr_t id = 0;
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n > 0, 1, "not an owner id");
    id = (uintptr_t)n;
  }
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTHREAD);
    co = lua_tothread(L, 2);
  }
  if (w == NULL) return luaL_error(L, "not enough memory");
  prev = w->acting;
  w->acting = id != 0 ? (void *)(2 * id + 1) : NULL;
  w->acting_L = id != 0 ? co : NULL;
  if (prev == NULL) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)(((uintptr_t)prev - 1) / 2));
  return 1;
}

void port_open(lua_State *L) {
  object_newmetatable(L, &port_type, port_methods, NULL);
  lua_pushcfunction(L, port_new);
  lua_setfield(L, -2, "_port");
  lua_pushcfunction(L, port_owner_new);
  lua_setfield(L, -2, "_owner");
  lua_pushcfunction(L, port_act);
  lua_setfield(L, -2, "_act");
}
