/*
** futex_pingpong.c: the floor of handing a token between two threads.
**
**   futex_pingpong spin [handoff]    each side watches the shared word for
**                                    the token (for up to SPIN_NS), then
**                                    sleeps on it with FUTEX_WAIT
**   futex_pingpong sleep [handoff]   each side sleeps on the word with
**                                    FUTEX_WAIT as soon as the token is
**                                    not there: a handoff that finds it
**                                    missing is a wake-up by the kernel
**
** A raw Linux futex on one word, no mutex and no condition variable: the
** word says whose turn it is, and a side that passes the token calls
** FUTEX_WAKE only when the other side has said it sleeps. The main thread
** passes the token to an echo thread, which passes it back: one round
** trip. 20,000 round trips per round, best of 5 rounds, in microseconds
** per round trip (the shape of w9_event_pingpong.lua and
** w5_queue_pingpong.lua), or with `handoff` per handoff, half a round
** trip (w10_condition_handoff.lua's unit).
**
** `spin` is the floor of a ping-pong between two threads running on two
** CPUs: the token moves as fast as the cache line holding the word moves
** between them. `sleep` is what one handoff costs once a side has gone to
** sleep. On a single CPU only `sleep` makes sense.
*/
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "floor.h"

#define TRIPS 20000
#define ROUNDS 5
#define SPIN_NS 100000L       /* watch the word this long, then sleep */
#define LOOKS 64              /* looks between two readings of the clock */

static atomic_int turn;          /* 0: the main thread's, 1: the echo's */
static atomic_int sleeping[2];   /* side i is (about to be) in FUTEX_WAIT */
static int spinning;             /* 0: sleep at once */

static void futex_wait(atomic_int *w, int value) {
  syscall(SYS_futex, (int *)w, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(atomic_int *w) {
  syscall(SYS_futex, (int *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Give the token to side `to`. The store of `turn` comes before the load
** of `sleeping` (both sequentially consistent), and a sleeper sets
** `sleeping` before its last look at `turn`: either this side sees the
** sleeper, or the sleeper sees the token. */
static void pass(int to) {
  atomic_store(&turn, to);
  if (atomic_load(&sleeping[to])) futex_wake(&turn);
}

static long elapsed_ns(const struct timespec *since) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/* Wait until side `me` holds the token. The clock is read only after a
** first batch of looks, so a token that comes at once costs no clock. */
static void take(int me) {
  struct timespec start;
  int i, clocked = 0;
  while (spinning) {
    for (i = 0; i < LOOKS; i++) {
      if (atomic_load_explicit(&turn, memory_order_acquire) == me) return;
      pause_cpu();
    }
    if (!clocked) {
      clock_gettime(CLOCK_MONOTONIC, &start);
      clocked = 1;
    } else if (elapsed_ns(&start) > SPIN_NS) {
      break;
    }
  }
  atomic_store(&sleeping[me], 1);
  while (atomic_load(&turn) != me) futex_wait(&turn, !me);
  atomic_store(&sleeping[me], 0);
}

static void *echo(void *arg) {
  int i;
  for (i = 0; i < TRIPS; i++) {
    take(1);
    pass(0);
  }
  return arg;
}

/* Seconds for TRIPS round trips. */
static double round_trips(void) {
  pthread_t t;
  double t0, dt;
  int i;
  atomic_store(&turn, 0);
  if (pthread_create(&t, NULL, echo, NULL) != 0) floor_fail("pthread_create failed");
  t0 = floor_now();
  for (i = 0; i < TRIPS; i++) {
    pass(1);
    take(0);
  }
  dt = floor_now() - t0;
  if (pthread_join(t, NULL) != 0) floor_fail("pthread_join failed");
  return dt;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "spin";
  int handoff = argc > 2 && strcmp(argv[2], "handoff") == 0;
  double best = 1e300;
  int r;
  if (strcmp(mode, "spin") == 0) {
    spinning = 1;
  } else if (strcmp(mode, "sleep") == 0) {
    spinning = 0;
  } else {
    floor_fail("usage: futex_pingpong [spin | sleep] [handoff]");
  }
  if (argc > 2 && !handoff) floor_fail("usage: futex_pingpong [spin | sleep] [handoff]");
  for (r = 0; r < ROUNDS; r++) {
    double dt = round_trips();
    if (dt < best) best = dt;
  }
  if (handoff)
    floor_result(best / (2.0 * TRIPS) * 1e6, "us/handoff");
  else
    floor_result(best / TRIPS * 1e6, "us/round-trip");
  return 0;
}
