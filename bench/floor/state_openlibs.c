/*
** state_openlibs.c: the floor of giving a thread its own Lua state.
**
**   state_openlibs time [bare]      microseconds per luaL_newstate() +
**                                   luaL_openlibs(), 200 states a round,
**                                   best of 7 rounds (closing them is not
**                                   timed; stderr gives that too)
**   state_openlibs memory [bare]    resident memory (VmRSS) per state, 200
**                                   states made by the main thread, KiB
**   state_openlibs threads [bare]   W8's floor: VmRSS growth per thread
**                                   with 200 threads, each of which makes
**                                   its own state and then blocks on a
**                                   condition variable, KiB
**
** `bare` leaves out luaL_openlibs: the cost of a state alone. The program
** links the same Lua release the benchmarked interpreter runs, statically,
** as the interpreter itself does (Makefile, bench section). Each state is
** made with luaL_newstate, the Lua's own allocator.
**
** `threads` does what a thread of `threading` blocked on an Event needs at
** the least: an OS thread with the default attributes, whose stack is used
** as far as opening a state on it uses it, plus that state, plus whatever
** the C library keeps per thread (its malloc arena among it). One thread
** goes through the same path first, so one-time costs are not counted,
** as in w8_thread_memory.lua.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "floor.h"

#define STATES 200
#define ROUNDS 7

static int bare;

static lua_State *new_state(void) {
  lua_State *L = luaL_newstate();
  if (L == NULL) floor_fail("luaL_newstate failed");
  if (!bare) luaL_openlibs(L);
  return L;
}

/* The KiB Lua counts as in use by one state. */
static double lua_kib(lua_State *L) {
  return lua_gc(L, LUA_GCCOUNT, 0) + lua_gc(L, LUA_GCCOUNTB, 0) / 1024.0;
}

/* ------------------------------------------------------------- time */

static void time_mode(void) {
  static lua_State *states[STATES];
  double best = 1e300, best_close = 1e300;
  int r, i;
  for (r = 0; r <= ROUNDS; r++) {           /* round 0 warms up */
    double t0 = floor_now(), t1, t2;
    for (i = 0; i < STATES; i++) states[i] = new_state();
    t1 = floor_now();
    for (i = 0; i < STATES; i++) lua_close(states[i]);
    t2 = floor_now();
    if (r > 0 && t1 - t0 < best) best = t1 - t0;
    if (r > 0 && t2 - t1 < best_close) best_close = t2 - t1;
  }
  fprintf(stderr, "state_openlibs: lua_close %.2f us/state\n", best_close / STATES * 1e6);
  floor_result(best / STATES * 1e6, "us/state");
}

/* ----------------------------------------------------------- memory */

static void memory_mode(void) {
  static lua_State *states[STATES];
  long before, after;
  int i;
  lua_close(new_state());                   /* warm up */
  before = floor_rss_kib();
  for (i = 0; i < STATES; i++) states[i] = new_state();
  after = floor_rss_kib();
  if (before < 0 || after < 0) floor_fail("no VmRSS in /proc/self/status");
  fprintf(stderr, "state_openlibs: Lua counts %.1f KiB in use per state; VmRSS %ld -> %ld KiB\n",
          lua_kib(states[0]), before, after);
  for (i = 0; i < STATES; i++) lua_close(states[i]);
  floor_result((double)(after - before) / STATES, "KiB/state");
}

/* ---------------------------------------------------------- threads */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;  /* (mu) ready grew */
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;   /* (mu) gate opened */
static int ready;                                           /* (mu) */
static int gate_open;                                       /* (mu) */

/* A thread: make a state, say so, block until the gate opens, close it. */
static void *blocked(void *arg) {
  lua_State *L = new_state();
  pthread_mutex_lock(&mu);
  ready++;
  pthread_cond_signal(&ready_cv);
  while (!gate_open) pthread_cond_wait(&gate_cv, &mu);
  pthread_mutex_unlock(&mu);
  lua_close(L);
  return arg;
}

/* Start n threads into threads[], wait until all block, then sleep a
** little so that the last ones reach their wait. */
static void start_blocked(pthread_t *threads, int n) {
  int i;
  pthread_mutex_lock(&mu);
  ready = 0;
  gate_open = 0;
  pthread_mutex_unlock(&mu);
  for (i = 0; i < n; i++)
    if (pthread_create(&threads[i], NULL, blocked, NULL) != 0) floor_fail("pthread_create failed");
  pthread_mutex_lock(&mu);
  while (ready < n) pthread_cond_wait(&ready_cv, &mu);
  pthread_mutex_unlock(&mu);
  usleep(100000);
}

static void release_blocked(pthread_t *threads, int n) {
  int i;
  pthread_mutex_lock(&mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&mu);
  for (i = 0; i < n; i++)
    if (pthread_join(threads[i], NULL) != 0) floor_fail("pthread_join failed");
}

static void threads_mode(void) {
  static pthread_t threads[STATES];
  long before, after;
  start_blocked(threads, 1);                /* warm up */
  release_blocked(threads, 1);
  before = floor_rss_kib();
  start_blocked(threads, STATES);
  after = floor_rss_kib();
  release_blocked(threads, STATES);
  if (before < 0 || after < 0) floor_fail("no VmRSS in /proc/self/status");
  fprintf(stderr, "state_openlibs: %d threads blocked, each with a state%s; VmRSS %ld -> %ld KiB\n",
          STATES, bare ? " (no libraries)" : "", before, after);
  floor_result((double)(after - before) / STATES, "KiB/thread");
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "time";
  if (argc > 2) {
    if (strcmp(argv[2], "bare") != 0) floor_fail("usage: state_openlibs [time | memory | threads] [bare]");
    bare = 1;
  }
  if (strcmp(mode, "time") == 0)
    time_mode();
  else if (strcmp(mode, "memory") == 0)
    memory_mode();
  else if (strcmp(mode, "threads") == 0)
    threads_mode();
  else
    floor_fail("usage: state_openlibs [time | memory | threads] [bare]");
  return 0;
}
