/*
** spin.h: bounded busy-waiting before a blocking wait.
**
** Handing a wake-up to a sleeping thread costs a futex wake and a context
** switch on each side, several microseconds. When the other thread is
** running on another CPU and answers within a few microseconds (a ping-pong,
** a Condition handoff), watching a word is far cheaper. The spin is bounded
** in time, so a thread that waits long still goes to sleep almost at once,
** and it is skipped on a single CPU, where it could only delay the thread it
** waits for. No mutex is held while spinning.
*/
#ifndef THREADING_SPIN_H
#define THREADING_SPIN_H

#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"

#if !defined(SPIN_NS)
#define SPIN_NS 20000L                  /* the longest spin, in nanoseconds */
#endif
#if !defined(SPIN_PURE_NS)
#define SPIN_PURE_NS 2000L              /* then yield between looks */
#endif

static TH_UNUSED void spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* Is spinning worth it: more than one CPU online? (cached) */
static TH_UNUSED int spin_useful(void) {
  static atomic_int cpus;               /* 0 until first asked */
  int n = atomic_load_explicit(&cpus, memory_order_relaxed);
  if (n == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    n = c > 1 ? 2 : 1;
    atomic_store_explicit(&cpus, n, memory_order_relaxed);
  }
  return n > 1;
}

/* Spin until done(arg) is true or SPIN_NS pass; returns done's last answer.
** Between looks it pauses, twice as long after each look up to
** backoff_max pauses (1: a look at every pause). After the first
** SPIN_PURE_NS it yields the CPU between looks: the thread it waits for may
** be runnable on this very CPU. */
static TH_UNUSED int spin_watch(int (*done)(const void *), const void *arg,
                                unsigned backoff_max) {
  struct timespec start, now;
  unsigned backoff = 1, paused = 0, j;
  if (!spin_useful()) return done(arg);
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    long spent;
    if (done(arg)) return 1;
    for (j = 0; j < backoff; j++) spin_pause();
    paused += backoff;
    if (backoff < backoff_max) backoff *= 2;
    if (paused < 32) continue;            /* the clock every 32 pauses */
    paused = 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    spent = (now.tv_sec - start.tv_sec) * 1000000000L + (now.tv_nsec - start.tv_nsec);
    if (spent > SPIN_NS) return done(arg);
    if (spent > SPIN_PURE_NS) sched_yield();
  }
}

/* Watch done(arg) at every pause. */
static TH_UNUSED int spin_until(int (*done)(const void *), const void *arg) {
  return spin_watch(done, arg, 1);
}

#endif
