/*
** interrupt.c: Ctrl-C (SIGINT) interrupts a blocking call of the main
** thread.
**
** The stand-alone `lua` stops running Lua code on SIGINT with a hook that
** raises "interrupted!", but a hook runs only between Lua instructions:
** while the main thread is blocked in C (acquire, get, join, sleep...) the
** first Ctrl-C was swallowed and the second, with the default action back,
** killed the process without a word. Python interrupts every such call.
**
** So when the process's main thread is about to block in wait_on and a
** SIGINT handler is installed, this file puts its own handler in front of
** that one (never where the host installed none: an embedding application
** that leaves SIGINT to its default, or ignores it, keeps it so). The
** handler notes the interrupt if the main thread is blocked at that moment,
** then calls the handler it displaced, as that one would have run (lua.c's
** still sets its hook). A signal handler may not signal a condition
** variable, so the main thread's waits run in slices of INTERRUPT_SLICE_NS,
** and the slice that sees the note ends the wait as a cancellation does:
** the blocking call leaves its object as a cancelled call leaves it (an
** interrupted acquire holds nothing, an interrupted get takes no item), and
** wait_raise_cancel raises "interrupted!" in place of "cancelled" (and
** removes the hook the displaced handler set, if any, as lua.c's own hook
** does before it raises the same error). The
** interrupt is then over: a Ctrl-C that arrives while the main thread runs
** Lua is the displaced handler's alone.
**
** Worker threads block SIGINT (runtime.c), so that the kernel gives a
** process-directed SIGINT to a thread that can take it: the main thread,
** or one of the host's.
**
** Who owns what: `displaced` is written by the main thread only while this
** handler is not installed, and read by the handler. `blocked` and
** `noted` are atomics shared with the handler; `raising` is the main
** thread's alone, `main_known` each thread's own (thread-local). No lock is taken here, and the handler does nothing that
** is not async-signal-safe.
*/
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"
#include "wait.h"

#define INTERRUPT_SLICE_NS 50000000L   /* 50 ms: the interrupt's latency */

static struct sigaction displaced;     /* the handler ours runs after */
static atomic_int blocked;             /* the main thread is in a wait */
static atomic_int noted;               /* a SIGINT came during that wait */
static int raising;                    /* wait_on ended on an interrupt */

static void on_sigint(int sig, siginfo_t *info, void *ctx) {
  int saved = errno;
  if (atomic_load(&blocked)) atomic_store(&noted, 1);
  if (displaced.sa_flags & SA_SIGINFO) {
    displaced.sa_sigaction(sig, info, ctx);
  } else if (displaced.sa_handler != SIG_DFL && displaced.sa_handler != SIG_IGN) {
    displaced.sa_handler(sig);
  }
  errno = saved;
}

/* Whether the calling OS thread is the process's main thread, asked of
** the kernel once per thread (two system calls on every wait of the main
** thread were a third of a short join); a fork() child asks again. */
static __thread int main_known;        /* 0: not asked; 1: main; 2: not */

static int main_thread(void) {
  if (main_known == 0) main_known = (pid_t)syscall(SYS_gettid) == getpid() ? 1 : 2;
  return main_known == 1;
}

void interrupt_forked(void) {
  main_known = 0;
}

/* Is a handler installed that is not ours? (then ours goes in front) */
static int installed(const struct sigaction *sa) {
  if (sa->sa_flags & SA_SIGINFO) return sa->sa_sigaction != on_sigint;
  return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

int interrupt_begin(void) {
  struct sigaction cur, mine;
  if (!main_thread() || sigaction(SIGINT, NULL, &cur) != 0) return 0;
  if (!(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != on_sigint) {
    if (!installed(&cur)) return 0;
    displaced = cur;
    mine = cur;
    mine.sa_sigaction = on_sigint;
    mine.sa_flags = cur.sa_flags | SA_SIGINFO;
    if (sigaction(SIGINT, &mine, NULL) != 0) return 0;
  }
  atomic_store(&noted, 0);
  atomic_store(&blocked, 1);
  return 1;
}

int interrupt_noted(void) {
  return atomic_load(&noted);
}

struct timespec interrupt_slice(const deadline_t *dl) {
  struct timespec at;
  clock_gettime(CLOCK_MONOTONIC, &at);
  at.tv_nsec += INTERRUPT_SLICE_NS;
  if (at.tv_nsec >= 1000000000L) {
    at.tv_sec++;
    at.tv_nsec -= 1000000000L;
  }
  if (!dl->forever && (dl->at.tv_sec < at.tv_sec ||
                       (dl->at.tv_sec == at.tv_sec && dl->at.tv_nsec < at.tv_nsec)))
    at = dl->at;
  return at;
}

int interrupt_end(void) {
  atomic_store(&blocked, 0);
  if (!atomic_exchange(&noted, 0)) return 0;
  raising = 1;
  return 1;
}

int interrupt_raise(lua_State *L) {
  lua_Hook h;
  if (!raising || !main_thread()) return 0;
  raising = 0;
  /* The displaced handler may have set a hook to stop Lua code, as lua.c
  ** does; this raise takes its place. Left set, the hook would strike
  ** again in the message handler (LuaJIT: "error in error handling"). */
  h = lua_gethook(L);
  if (h != NULL && !cancel_is_hook(h)) lua_sethook(L, NULL, 0, 0);
  lua_pushliteral(L, "interrupted!");
  return lua_error(L);
}

void interrupt_block_in_workers(sigset_t *old) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  WAIT_CHECK(pthread_sigmask(SIG_BLOCK, &set, old));
}
