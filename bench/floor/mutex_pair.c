/*
** mutex_pair.c: the floor of taking and giving back a lock nobody else
** wants.
**
**   mutex_pair mutex   pthread_mutex_lock + pthread_mutex_unlock of a
**                      default (non-recursive) mutex
**   mutex_pair cas     a compare-and-swap 0 -> 1 (acquire) and a store of
**                      0 (release) on one word: the least any lock does
**
** 1,000,000 pairs per round, loop included, best of 7 rounds, in
** nanoseconds per pair: the shape of w3_lock.lua without the two method
** calls from Lua (the floor of those is cmethod.c).
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "floor.h"

#define PAIRS 1000000
#define ROUNDS 7

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int word;

static double mutex_round(void) {
  double t0 = floor_now();
  int i;
  for (i = 0; i < PAIRS; i++) {
    if (pthread_mutex_lock(&mu) != 0) floor_fail("pthread_mutex_lock failed");
    if (pthread_mutex_unlock(&mu) != 0) floor_fail("pthread_mutex_unlock failed");
  }
  return floor_now() - t0;
}

static double cas_round(void) {
  double t0 = floor_now();
  int i;
  for (i = 0; i < PAIRS; i++) {
    int expected = 0;
    if (!atomic_compare_exchange_strong_explicit(&word, &expected, 1, memory_order_acquire,
                                                 memory_order_relaxed))
      floor_fail("the word was taken: nobody else should touch it");
    atomic_store_explicit(&word, 0, memory_order_release);
  }
  return floor_now() - t0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "mutex";
  double (*round)(void);
  double best = 1e300;
  int r;
  if (strcmp(mode, "mutex") == 0) {
    round = mutex_round;
  } else if (strcmp(mode, "cas") == 0) {
    round = cas_round;
  } else {
    floor_fail("usage: mutex_pair [mutex | cas]");
    return 1;
  }
  for (r = 0; r < ROUNDS; r++) {
    double dt = round();
    if (dt < best) best = dt;
  }
  floor_result(best / PAIRS * 1e9, "ns/pair");
  return 0;
}
