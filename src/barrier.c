/*
** barrier.c: threading.Barrier, a meeting point for a fixed number of threads.
**
** Each arrival of the current generation puts a node on its own stack and
** links it into b->nodes. The generation ends in one step under mu: every
** node is marked released (or broken) and unlinked, the count goes back to
** zero and the condvar is broadcast. A waiter only looks at its own node, so
** a new generation may start while the last one's threads are still waking.
**
** The action is kept as a transfer buffer made at construction and decoded
** afresh, in the state of the last thread to arrive, each time it runs. It
** runs with no mutex held, so while it runs `releasing` is set: further
** arrivals wait for the generation to end, and a waiter whose timeout passes
** keeps waiting for the outcome instead of breaking the barrier (in Python
** the action runs under the barrier's lock, which has the same effect).
** A timeout, a cancelled waiter, a failing action or abort() breaks the
** barrier: the current waiters and every later wait get nil, "broken" until
** reset().
**
** A coroutine task's arrival keeps its node in a ticket (see
** barrier_arrive), watched by its scheduler.
**
** Lock order: b->mu, then a waiter's mu (inside wait_on). Nothing is pushed
** onto a Lua stack, allocated through Lua or raised, and no Lua runs, while
** b->mu is held.
*/
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "object.h"
#include "transfer.h"
#include "types.h"
#include "wait.h"

#define BARRIER_MT "threading.Barrier"
#define BARRIER_MAX_PARTIES 1e9

enum { BN_WAITING, BN_RELEASED, BN_BROKEN };

typedef struct bnode {
  struct bnode *next;
  int state;                /* (b->mu) */
  long index;               /* arrival order, 1..parties */
} bnode_t;

typedef struct barrier {
  object_t obj;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  long parties;             /* constant */
  double timeout;           /* default for wait(); < 0 for none; constant */
  transfer_t *action;       /* NULL for none; constant */
  long count;               /* (mu) arrivals in this generation */
  int releasing;            /* (mu) the last arrival runs the action */
  int broken;               /* (mu) */
  bnode_t *nodes;           /* (mu) this generation's arrivals */
} barrier_t;

static void barrier_destroy(object_t *o) {
  barrier_t *b = (barrier_t *)o;
  transfer_free(b->action);
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  free(b);
}

static const object_type_t barrier_type = { BARRIER_MT, barrier_destroy, NULL, NULL };

static barrier_t *check_barrier(lua_State *L, int idx) {
  return (barrier_t *)object_check(L, idx, &barrier_type);
}

/* End the current generation with every arrival in `state` (mu held). */
static void barrier_end(barrier_t *b, int state, int broken) {
  bnode_t *n = b->nodes;
  while (n != NULL) {
    bnode_t *next = n->next;
    n->state = state;
    n->next = NULL;
    n = next;
  }
  b->nodes = NULL;
  b->count = 0;
  b->releasing = 0;
  b->broken = broken;
  WAIT_CHECK(pthread_cond_broadcast(&b->cv));
}

static int push_outcome(lua_State *L, int state, long index) {
  if (state == BN_RELEASED) {
    lua_pushinteger(L, index);
    return 1;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "broken");
  return 2;
}

/* Barrier(parties[, action[, timeout]]) */
static int barrier_new(lua_State *L) {
  handle_t *h;
  barrier_t *b;
  lua_Number parties;
  double timeout = -1;
  transfer_t *action = NULL;
  lua_settop(L, 3);
  if (lua_type(L, 1) != LUA_TNUMBER) object_typeerror(L, 1, "number");
  parties = lua_tonumber(L, 1);
  luaL_argcheck(L, parties >= 1 && parties <= BARRIER_MAX_PARTIES &&
                   parties == floor(parties), 1, "parties must be a positive integer");
  if (!lua_isnil(L, 2) && !lua_isfunction(L, 2)) object_typeerror(L, 2, "function");
  if (!lua_isnil(L, 3)) timeout = wait_check_seconds(L, 3);
  h = object_newhandle(L, &barrier_type);
  if (!lua_isnil(L, 2)) action = transfer_encode(L, 2, 1, "action", 0);
  b = (barrier_t *)calloc(1, sizeof *b);
  if (b == NULL) {
    transfer_free(action);
    return luaL_error(L, "not enough memory");
  }
  object_init(&b->obj, &barrier_type);
  wait_mutex_init(&b->mu);
  wait_cond_init(&b->cv);
  b->parties = (long)parties;
  b->timeout = timeout;
  b->action = action;
  object_sethandle(L, h, &b->obj);
  return 1;
}

/* Decode the action (upvalue-free light userdata at 1) and call it. */
static int action_body(lua_State *L) {
  const transfer_t *action = (const transfer_t *)lua_touserdata(L, 1);
  int n = transfer_decode(L, action);
  lua_call(L, n - 1, 0);
  return 0;
}

/* The last arrival: run the action, then release or break the generation
** (unless a reset or abort ended it meanwhile). Raises the action's error. */
static int barrier_release(lua_State *L, barrier_t *b, bnode_t *me) {
  int ok, state;
  lua_pushcfunction(L, action_body);
  lua_pushlightuserdata(L, b->action);
  ok = lua_pcall(L, 1, 0, 0) == 0;
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  if (me->state == BN_WAITING) {
    if (ok) barrier_end(b, BN_RELEASED, 0);
    else barrier_end(b, BN_BROKEN, 1);
  }
  state = me->state;
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  wait_notify_change(&b->obj);
  if (!ok) return lua_error(L);
  return push_outcome(L, state, me->index);
}

/* Wait (mu held) until the generation of `me` ends. A timeout breaks it,
** unless the action is running; so does a cancellation. Returns the last
** wait_on result; sets *ended if this call ended the generation. */
static int barrier_block(barrier_t *b, const bnode_t *me, deadline_t dl, int *ended) {
  int r = WAIT_OK;
  for (;;) {
    if (me->state != BN_WAITING) return r;
    if (r == WAIT_TIMEOUT && b->releasing) {
      dl.forever = 1;             /* the outcome is being decided */
    } else if (r != WAIT_OK) {    /* timed out or cancelled */
      barrier_end(b, BN_BROKEN, 1);
      *ended = 1;
      return r;
    }
    r = wait_on(&b->obj, &b->mu, &b->cv, &dl);
  }
}

/* Barrier:wait([timeout]) -> 1..parties (arrival order) | nil, "broken" */
static int barrier_wait(lua_State *L) {
  barrier_t *b = check_barrier(L, 1);
  deadline_t dl, forever;
  bnode_t me;
  int r = WAIT_OK, state, ended = 0;   /* ended: this call ended the generation */
  if (lua_isnoneornil(L, 2) && b->timeout >= 0) dl = wait_deadline_in(b->timeout);
  else dl = wait_deadline_arg(L, 2);
  memset(&forever, 0, sizeof forever);
  forever.forever = 1;
  wait_check_cancel(L);
  /* a task arrives and waits in its scheduler (with no timeout given, none
  ** passed on: the half takes the barrier's default when it arrives) */
  if (task_calling(L))
    return task_defer(L, TASK_BARRIER, barrier_wait,
                      lua_isnoneornil(L, 2) ? -1 : dl.forever ? HUGE_VAL : wait_left(&dl), 0);
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  /* every party is in and the action runs: this arrival belongs to the next
  ** generation (not counted against the timeout, as in Python) */
  while (b->releasing && r == WAIT_OK)
    r = wait_on(&b->obj, &b->mu, &b->cv, &forever);
  if (r == WAIT_CANCELLED || b->broken) {
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
    return push_outcome(L, BN_BROKEN, 0);
  }
  me.state = BN_WAITING;
  me.index = ++b->count;
  me.next = b->nodes;
  b->nodes = &me;
  if (me.index == b->parties) {
    if (b->action != NULL) {
      b->releasing = 1;
      WAIT_CHECK(pthread_mutex_unlock(&b->mu));
      return barrier_release(L, b, &me);
    }
    barrier_end(b, BN_RELEASED, 0);
    ended = 1;
  }
  r = barrier_block(b, &me, dl, &ended);
  state = me.state;
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  if (ended) wait_notify_change(&b->obj);
  if (r == WAIT_CANCELLED) return wait_raise_cancel(L);
  return push_outcome(L, state, me.index);
}

/*
** Coroutine tasks (threading.async) arrive through _arrive, which keeps the
** arrival's node in a ticket (a plain userdata holding a reference to b)
** instead of on a C stack; the scheduler watches the node's state, and
** barrier_end wakes it through wait_notify_change. A ticket whose node is
** still waiting when it leaves (a timeout, a cancelled task, a ticket
** collected) breaks the barrier, as a thread's timeout does.
*/
#define TICKET_MT "threading.Barrier.ticket"

typedef struct bticket {
  barrier_t *b;             /* retained until the ticket is collected */
  bnode_t node;             /* (b->mu) linked in b->nodes while waiting */
} bticket_t;

static const char *const node_states[] = {"waiting", "released", "broken"};

static const char ticket_key = 't';    /* registry: the tickets' metatable */

static bticket_t *check_bticket(lua_State *L) {
  return (bticket_t *)object_checkgcmt(L, 1, &ticket_key, TICKET_MT);
}

/* ticket:outcome() -> "waiting" | "released", index | "broken" */
static int bticket_outcome(lua_State *L) {
  bticket_t *tk = check_bticket(L);
  int state;
  long index = tk->node.index;
  if (tk->b == NULL) return luaL_argerror(L, 1, "ticket already left");
  WAIT_CHECK(pthread_mutex_lock(&tk->b->mu));
  state = tk->node.state;
  WAIT_CHECK(pthread_mutex_unlock(&tk->b->mu));
  lua_pushstring(L, node_states[state]);
  if (state != BN_RELEASED) return 1;
  lua_pushinteger(L, index);
  return 2;
}

/* Leave the generation: a node still waiting breaks the barrier, unless
** the action runs and `force` is 0 (then "releasing": wait for the
** outcome). Returns the node's state, or -1 for "releasing". */
static int bticket_end(bticket_t *tk, int force) {
  barrier_t *b = tk->b;
  int state, broke = 0;
  if (b == NULL) return BN_BROKEN;
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  state = tk->node.state;
  if (state == BN_WAITING && b->releasing && !force) {
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    return -1;
  }
  if (state == BN_WAITING) {          /* ends the generation, this node too */
    barrier_end(b, BN_BROKEN, 1);
    state = BN_BROKEN;
    broke = 1;
  }
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  if (broke) wait_notify_change(&b->obj);
  return state;
}

/* ticket:leave([force]) -> as outcome, or "releasing" */
static int bticket_leave(lua_State *L) {
  bticket_t *tk = check_bticket(L);
  int state = bticket_end(tk, lua_toboolean(L, 2));
  if (state < 0) {
    lua_pushliteral(L, "releasing");
    return 1;
  }
  lua_pushstring(L, node_states[state]);
  if (state != BN_RELEASED) return 1;
  lua_pushinteger(L, tk->node.index);
  return 2;
}

static int bticket_gc(lua_State *L) {
  bticket_t *tk = check_bticket(L);
  barrier_t *b = tk->b;
  if (b == NULL) return 0;
  bticket_end(tk, 1);
  tk->b = NULL;
  object_release(&b->obj);
  return 0;
}

static const luaL_Reg bticket_methods[] = {
  {"outcome", bticket_outcome},
  {"leave", bticket_leave},
  {NULL, NULL}
};

/* Barrier:_arrive() -> a ticket and the barrier's default timeout (or
** nil) | index (the last arrival, released at once) | nil, "broken" |
** nil, "busy" (the previous generation's action runs: arrive later) */
static int barrier_arrive(lua_State *L) {
  barrier_t *b = check_barrier(L, 1);
  bticket_t *tk;
  wait_check_cancel(L);
  tk = (bticket_t *)compat_newuserdata(L, sizeof *tk);
  memset(tk, 0, sizeof *tk);
  object_pushgcmt(L, &ticket_key, bticket_gc, bticket_methods);
  lua_setmetatable(L, -2);
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  if (b->releasing || b->broken) {
    int busy = b->releasing;
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    if (!busy) return push_outcome(L, BN_BROKEN, 0);
    lua_pushnil(L);
    lua_pushliteral(L, "busy");
    return 2;
  }
  tk->b = (barrier_t *)object_retain(&b->obj);
  tk->node.state = BN_WAITING;
  tk->node.index = ++b->count;
  tk->node.next = b->nodes;
  b->nodes = &tk->node;
  if (tk->node.index == b->parties) {
    if (b->action != NULL) {
      b->releasing = 1;
      WAIT_CHECK(pthread_mutex_unlock(&b->mu));
      return barrier_release(L, b, &tk->node);
    }
    barrier_end(b, BN_RELEASED, 0);
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    wait_notify_change(&b->obj);
    lua_pushinteger(L, tk->node.index);
    return 1;
  }
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  if (b->timeout >= 0) lua_pushnumber(L, b->timeout);
  else lua_pushnil(L);
  return 2;
}

/* Barrier:reset(): back to the empty state; current waiters get "broken" */
static int barrier_reset(lua_State *L) {
  barrier_t *b = check_barrier(L, 1);
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  barrier_end(b, BN_BROKEN, 0);
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  wait_notify_change(&b->obj);
  return 0;
}

/* Barrier:abort(): break it; waits return nil, "broken" until reset() */
static int barrier_abort(lua_State *L) {
  barrier_t *b = check_barrier(L, 1);
  WAIT_CHECK(pthread_mutex_lock(&b->mu));
  barrier_end(b, BN_BROKEN, 1);
  WAIT_CHECK(pthread_mutex_unlock(&b->mu));
  wait_notify_change(&b->obj);
  return 0;
}

/* Fields: parties, n_waiting (threads waiting for release), broken. */
static int barrier__index(lua_State *L) {
  barrier_t *b = check_barrier(L, 1);
  const char *k = lua_tostring(L, 2);
  lua_getfield(L, lua_upvalueindex(1), "methods");
  lua_pushvalue(L, 2);
  lua_gettable(L, -2);          /* not raw: threading.async wraps methods */
  if (!lua_isnil(L, -1) || k == NULL) return 1;
  lua_pop(L, 2);
  if (strcmp(k, "parties") == 0) {
    lua_pushinteger(L, b->parties);
  } else if (strcmp(k, "n_waiting") == 0) {
    long n;
    WAIT_CHECK(pthread_mutex_lock(&b->mu));
    n = b->releasing ? b->count - 1 : b->count;   /* not the action's runner */
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    lua_pushinteger(L, n);
  } else if (strcmp(k, "broken") == 0) {
    int broken;
    WAIT_CHECK(pthread_mutex_lock(&b->mu));
    broken = b->broken;
    WAIT_CHECK(pthread_mutex_unlock(&b->mu));
    lua_pushboolean(L, broken);
  } else {
    lua_pushnil(L);
  }
  return 1;
}

static const luaL_Reg barrier_methods[] = {
  {"wait", barrier_wait},
  {"reset", barrier_reset},
  {"abort", barrier_abort},
  {"_arrive", barrier_arrive},
  {NULL, NULL}
};

static const luaL_Reg barrier_meta[] = {
  {"__index", barrier__index},
  {NULL, NULL}
};

void barrier_open(lua_State *L) {
  object_newmetatable(L, &barrier_type, barrier_methods, barrier_meta);
  lua_pushcfunction(L, barrier_new);
  lua_setfield(L, -2, "Barrier");
}
