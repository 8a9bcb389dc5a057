/*
** floor.h: what the floor programs share: a monotonic clock, the resident
** memory of the process, and the RESULT line the bench harness reads.
**
** A floor program measures the least the hardware and the OS take for the
** work of one workload, in the workload's own unit, so that bench/run.lua
** can print it beside the workload's figure. Each one repeats its
** measurement in rounds and reports the best round, as the workloads do.
*/
#ifndef FLOOR_H
#define FLOOR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on CLOCK_MONOTONIC. */
static inline double floor_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmRSS of this process in KiB (from /proc/self/status), -1 if unknown. */
static inline long floor_rss_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kib = strtol(line + 6, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kib;
}

/* The one line on stdout the harness reads; everything else goes to stderr. */
static inline void floor_result(double value, const char *unit) {
  printf("RESULT %.3f %s lower\n", value, unit);
}

/* Leave with a message on stderr: a floor that cannot measure says why. */
static inline void floor_fail(const char *what) {
  fprintf(stderr, "floor: %s\n", what);
  exit(1);
}

#endif
