/*
** pthread_create_join.c: the floor of starting and joining a thread.
**
**   pthread_create_join [serial]    W1: create a thread running an empty
**                                    function and join it before creating
**                                    the next, 1000 times
**   pthread_create_join batch [N]   create N threads (default 200), then
**                                    join them all
**
** Default attributes (the C library's default stack, joinable), as a
** program that just wants a thread gets them. The figure is the best of 7
** rounds after one warm-up round (the first stacks and the C library's
** own pages are not counted), in microseconds per thread: the shape of
** w1_start_join.lua. No language runtime is involved, so no thread API
** can start and join an OS thread for less.
*/
#define _GNU_SOURCE
#include <pthread.h>

#include "floor.h"

#define SERIAL_THREADS 1000
#define BATCH_THREADS 200
#define ROUNDS 7

static void *noop(void *arg) {
  return arg;
}

static void start(pthread_t *t) {
  if (pthread_create(t, NULL, noop, NULL) != 0) floor_fail("pthread_create failed");
}

static void join(pthread_t t) {
  if (pthread_join(t, NULL) != 0) floor_fail("pthread_join failed");
}

/* One round of `serial`: seconds for SERIAL_THREADS create+join pairs. */
static double serial_round(void) {
  double t0 = floor_now();
  int i;
  for (i = 0; i < SERIAL_THREADS; i++) {
    pthread_t t;
    start(&t);
    join(t);
  }
  return floor_now() - t0;
}

/* One round of `batch`: seconds to create n threads, then join them. */
static double batch_round(pthread_t *threads, int n) {
  double t0 = floor_now();
  int i;
  for (i = 0; i < n; i++) start(&threads[i]);
  for (i = 0; i < n; i++) join(threads[i]);
  return floor_now() - t0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "serial";
  double best = 1e300;
  int r;
  if (strcmp(mode, "serial") == 0) {
    serial_round();
    for (r = 0; r < ROUNDS; r++) {
      double dt = serial_round();
      if (dt < best) best = dt;
    }
    floor_result(best / SERIAL_THREADS * 1e6, "us/thread");
  } else if (strcmp(mode, "batch") == 0) {
    int n = argc > 2 ? atoi(argv[2]) : BATCH_THREADS;
    pthread_t *threads;
    if (n <= 0) floor_fail("batch: the thread count must be positive");
    threads = malloc((size_t)n * sizeof *threads);
    if (threads == NULL) floor_fail("out of memory");
    batch_round(threads, n);
    for (r = 0; r < ROUNDS; r++) {
      double dt = batch_round(threads, n);
      if (dt < best) best = dt;
    }
    free(threads);
    floor_result(best / n * 1e6, "us/thread");
  } else {
    floor_fail("usage: pthread_create_join [serial | batch [N]]");
  }
  return 0;
}
