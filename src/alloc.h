/*
** alloc.h: the allocator of a thread's state (alloc.c).
*/
#ifndef THREADING_ALLOC_H
#define THREADING_ALLOC_H

#include <stddef.h>

#include "compat.h"

#if !defined(ALLOC_SMALL)
#define ALLOC_SMALL 512                 /* larger blocks come from malloc */
#endif
#define ALLOC_GRAIN 16
#define ALLOC_CLASSES (ALLOC_SMALL / ALLOC_GRAIN)

/* What a state has allocated and its cap (0: none), and the region its
** small blocks come from. One per worker OS thread: its spare state's,
** then the Thread's that runs in it; used only by that OS thread. */
typedef struct alloc {
  size_t used, limit;
  int counted;                          /* the state uses alloc_state */
  int no_region;                        /* the region could not be had */
  char *base, *top, *end;               /* the region: [base, end), next free at top */
  void *free[ALLOC_CLASSES];            /* freed small blocks, by size class */
} alloc_t;

/* lua_Alloc for a state accounted in ud (an alloc_t). */
TH_HIDDEN void *alloc_state(void *ud, void *ptr, size_t osize, size_t nsize);
/* A new state's start: nothing allocated (the last state is closed). */
TH_HIDDEN void alloc_reset(alloc_t *a);
/* Give the region back (the worker is ending). */
TH_HIDDEN void alloc_destroy(alloc_t *a);

#endif
