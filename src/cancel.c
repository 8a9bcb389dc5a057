/*
** cancel.c: how a cancellation reaches running Lua code, and the
** protection that holds it back inside the module's own critical Lua
** functions.
**
** Delivery. A state must only be touched by the OS thread running it:
** lua_sethook from another thread races with the target (on Lua 5.4 it
** walks the target's CallInfo list, which the target frees and grows; on
** LuaJIT it rewrites hookmask and the dispatch table under the VM, and a
** lost update can disable hooks for good). So cancel() sends the target's
** OS thread a real-time signal (pthread_sigqueue, carrying the worker's
** cancel_target_t), and the handler, running on that thread, sets the hook
** on its own state, exactly as Lua's lua.c does on SIGINT. The handler does
** nothing unless the Thread that worker runs now has been cancelled, so a
** signal that arrives late, after the worker moved on, is harmless. The
** signal is the first free one from SIGRTMIN + 4 (THREADING_CANCEL_SIGNAL
** picks another, 0 turns it off: then only blocking calls are cancellation
** points).
**
** Who owns what: cancel() (thread.c) sends the signal with the target's mu
** held, while the state is published in t->L; the runtime removes the hook
** once the thread's main function has ended, after it cleared the
** handler's target. The hook runs only on the target's own OS thread, on
** its own state, and alone touches t->cancel_grace. No hook is installed
** otherwise: a count hook slows every instruction, so it exists only once a
** cancellation is asked for. registry[&protected_key] lists the protected
** Lua functions of a state. No lock is taken here.
*/
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime.h"

/* registry[&protected_key] = { [function] = PROTECTED | GUARD }: Lua
** functions in which the cancellation hook must not strike (see
** cancel_protect). A GUARD's return also holds the hook back for the
** caller's next instruction: the one that registers the guard it returned
** as a to-be-closed variable. */
static const char protected_key = 'p';
enum { PROTECTED = 1, GUARD = 2 };

/* How the function running at `ar` is protected (0: not at all). */
static int protection(lua_State *L, lua_Debug *ar) {
  int how = 0;
  if (!lua_checkstack(L, 3)) return 0;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (lua_istable(L, -1) && lua_getinfo(L, "f", ar)) {
    lua_rawget(L, -2);
    how = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return how;
}

/*
** Set by cancel() on a running thread's state: raise the cancellation at
** the next instruction, and again at every instruction after that, until
** the thread's main function has ended: a pcall that catches it cannot
** swallow it, as the next instruction of its caller raises it again.
** Inside a protected function (the acquire-call-release of Lock:with, a
** guard's release) the hook holds back until the next instruction
** outside: striking between an acquire and the pcall, or between the pcall
** and the release, would leave the lock held. After a guard returns, one
** more instruction is let through, so that `local _ <close> = l:guard()`
** registers the guard (OP_TBC) before the cancellation can strike; the
** guard's __close then releases the lock on the way out.
*/
static void cancel_hook(lua_State *L, lua_Debug *ar) {
  thread_t *t = runtime_self();
  int how;
  if (t == NULL) return;
  how = protection(L, ar);
  if (ar->event == LUA_HOOKRET) {
    if (how & GUARD) t->cancel_grace = 1;
    return;
  }
  if (how & PROTECTED) return;            /* stays armed: next instruction */
  if (ar->event != LUA_HOOKCOUNT) {
    /* a call: let a protected function call out (Lock:with's release) */
    lua_Debug caller;
    if (lua_getstack(L, 1, &caller) && (protection(L, &caller) & PROTECTED)) return;
  }
  if (t->cancel_grace > 0) {
    t->cancel_grace--;
    return;
  }
  wait_raise_cancel(L);
}

int cancel_is_hook(lua_Hook h) {
  return h == cancel_hook;
}

/* Count, return (for guards) and, on LuaJIT, call events: a compiled loop
** that calls a classic C function leaves its trace at each call (trace
** stitching) through the call part of the dispatch table, which only a
** call hook intercepts. */
#define CANCEL_MASK (LUA_MASKCOUNT | LUA_MASKRET | COMPAT_CANCEL_CALLS)

static int cancel_signo;                    /* 0: none; set once */
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

/* On the target's own OS thread: set the hook if the Thread running there
** now is the cancelled one. Async-signal-safe: atomics, lua_sethook. */
static void cancel_handler(int sig, siginfo_t *si, void *uc) {
  int saved = errno;
  cancel_target_t *ct = (cancel_target_t *)si->si_value.sival_ptr;
  (void)sig;
  (void)uc;
  atomic_signal_fence(memory_order_seq_cst);
  if (si->si_code == SI_QUEUE && si->si_pid == getpid() && ct != NULL) {
    thread_t *t = atomic_load_explicit(&ct->t, memory_order_relaxed);
    lua_State *L = atomic_load_explicit(&ct->L, memory_order_relaxed);
    if (t != NULL && L != NULL && atomic_load(&t->waiter.cancelled)) {
      lua_sethook(L, NULL, 0, 0);          /* a full reset of LuaJIT's dispatch */
      lua_sethook(L, cancel_hook, CANCEL_MASK, 1);
    }
  }
  errno = saved;
}

static void signal_init(void) {
  const char *env = getenv("THREADING_CANCEL_SIGNAL");
  int first = SIGRTMIN + 4, last = SIGRTMAX - 1, sig;
  if (env != NULL && *env != '\0') {
    first = last = atoi(env);
    if (first <= 0) return;               /* asked for none */
  }
  for (sig = first; sig <= last; sig++) {
    struct sigaction old, sa;
    if (sigaction(sig, NULL, &old) != 0) continue;
    /* never take a signal the host already handles */
    if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL) continue;
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction != cancel_handler) continue;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sa.sa_sigaction = cancel_handler;
    if (sigaction(sig, &sa, NULL) == 0) {
      cancel_signo = sig;
      return;
    }
  }
}

/* ThreadSanitizer holds an asynchronous signal back until the thread it
** targets enters instrumented code or an intercepted call, which a Lua
** loop in an uninstrumented liblua never does: a TSan build sets the hook
** from the canceller, as this file did before it signalled (TSan cannot see
** into liblua to judge that race anyway). */
#if defined(__SANITIZE_THREAD__)
#define CANCEL_BY_SIGNAL 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CANCEL_BY_SIGNAL 0
#endif
#endif
#if !defined(CANCEL_BY_SIGNAL)
#define CANCEL_BY_SIGNAL 1
#endif

void cancel_deliver(thread_t *t) {
  union sigval v;
  if (!CANCEL_BY_SIGNAL) {
    lua_sethook(t->L, cancel_hook, CANCEL_MASK, 1);
    return;
  }
  pthread_once(&signal_once, signal_init);
  if (cancel_signo == 0 || t->target == NULL) return;
  v.sival_ptr = t->target;
  (void)pthread_sigqueue(t->os, cancel_signo, v);   /* EAGAIN: the queue is full */
}

void cancel_block_signal(void) {
  sigset_t set;
  pthread_once(&signal_once, signal_init);
  if (cancel_signo == 0) return;
  sigemptyset(&set);
  sigaddset(&set, cancel_signo);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void cancel_disarm(lua_State *L) {
  lua_sethook(L, NULL, 0, 0);
}

/* Mark the functions at 1..top with protection `how`. */
static int protect(lua_State *L, int how) {
  int i, n = lua_gettop(L);
  for (i = 1; i <= n; i++) luaL_checktype(L, i, LUA_TFUNCTION);
  compat_rawgetp(L, LUA_REGISTRYINDEX, &protected_key);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &protected_key);
  }
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_pushinteger(L, how);
    lua_rawset(L, -3);
  }
  return 0;
}

/* threading.core._protect(f, ...): mark Lua functions in which an
** asynchronous cancellation is held back until they return or call out. */
static int cancel_protect(lua_State *L) {
  return protect(L, PROTECTED);
}

/* threading.core._protect_guard(f, ...): protected functions that return
** a guard meant for a to-be-closed variable. */
static int cancel_protect_guard(lua_State *L) {
  return protect(L, PROTECTED | GUARD);
}

void cancel_open(lua_State *L) {
  lua_pushcfunction(L, cancel_protect);
  lua_setfield(L, -2, "_protect");
  lua_pushcfunction(L, cancel_protect_guard);
  lua_setfield(L, -2, "_protect_guard");
}
