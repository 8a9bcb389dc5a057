/*
** alloc.c: the allocator of a thread's state.
**
** A state makes a few hundred small blocks before it runs a line (strings,
** tables, closures), and a Thread's state is made and closed for every
** Thread: through malloc that is most of the cost of a new state and of
** its close, and 16 bytes of malloc's own per block. Lua tells the
** allocator each block's size when it frees or resizes it, so small blocks
** need no header: they come from a region of address space reserved per
** worker OS thread (only the pages used become memory), bumped through and
** recycled by size class (16-byte steps up to ALLOC_SMALL). Whether a
** block is the region's is told by its address, so a block of either kind
** may be resized into the other. Larger blocks, and any once the region is
** used up, come from malloc. When the state is closed every block is free
** again: the region is reset, and its pages past the first ALLOC_KEEP are
** given back to the system.
**
** Who owns what: an alloc_t and its region belong to one worker (runtime.c)
** and are used only by its OS thread (the states it builds and runs, and
** their close); no lock. memory_limit counts every byte Lua asked for.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"

#if !defined(ALLOC_REGION)
#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer sees each block of a state only if each is malloc's
** (and its leak check does not look inside a region for pointers) */
#define ALLOC_REGION 0
#else
#define ALLOC_REGION ((size_t)64 << 20)  /* address space reserved per worker */
#endif
#endif
#if !defined(ALLOC_KEEP)
#define ALLOC_KEEP ((size_t)64 << 10)    /* pages kept across a reset */
#endif

static size_t size_class(size_t n) {
  return (n + ALLOC_GRAIN - 1) / ALLOC_GRAIN - 1;
}

static int in_region(const alloc_t *a, const void *p) {
  return a->base != NULL && (const char *)p >= a->base && (const char *)p < a->end;
}

/* A small block of class c, or NULL (no region, or the region is used up). */
static void *small_get(alloc_t *a, size_t c) {
  void *p = a->free[c];
  size_t sz = (c + 1) * ALLOC_GRAIN;
  if (p != NULL) {
    memcpy(&a->free[c], p, sizeof(void *));
    return p;
  }
  if (a->base == NULL) {
    void *r;
    if (a->no_region || ALLOC_REGION == 0) return NULL;
    r = mmap(NULL, ALLOC_REGION, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
      a->no_region = 1;                 /* malloc alone, from now on */
      return NULL;
    }
    a->base = a->top = (char *)r;
    a->end = a->base + ALLOC_REGION;
  }
  if ((size_t)(a->end - a->top) < sz) return NULL;
  p = a->top;
  a->top += sz;
  return p;
}

static void small_put(alloc_t *a, void *p, size_t osize) {
  size_t c = size_class(osize);
  memcpy(p, &a->free[c], sizeof(void *));
  a->free[c] = p;
}

static void block_free(alloc_t *a, void *p, size_t osize) {
  if (in_region(a, p)) small_put(a, p, osize);
  else free(p);
}

/* A new block of nsize bytes: small ones from the region if it can. */
static void *block_new(alloc_t *a, size_t nsize) {
  void *p = nsize <= ALLOC_SMALL ? small_get(a, size_class(nsize)) : NULL;
  return p != NULL ? p : malloc(nsize);
}

static void *block_resize(alloc_t *a, void *ptr, size_t osize, size_t nsize) {
  void *p;
  if (!in_region(a, ptr)) {
    if (nsize <= ALLOC_SMALL && (p = small_get(a, size_class(nsize))) != NULL) {
      memcpy(p, ptr, osize < nsize ? osize : nsize);
      free(ptr);
      return p;
    }
    return realloc(ptr, nsize);
  }
  if (nsize <= ALLOC_SMALL && size_class(nsize) == size_class(osize)) return ptr;
  p = block_new(a, nsize);
  if (p == NULL) {
    /* a smaller size that cannot be moved stays where it is: the block
    ** goes back, later, to the list of the smaller class it still fits */
    return nsize < osize ? ptr : NULL;
  }
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  small_put(a, ptr, osize);
  return p;
}

void *alloc_state(void *ud, void *ptr, size_t osize, size_t nsize) {
  alloc_t *a = (alloc_t *)ud;
  void *p;
  if (ptr == NULL) osize = 0;          /* Lua passes the object's type there */
  if (nsize == 0) {
    if (ptr != NULL) block_free(a, ptr, osize);
    a->used -= osize;
    return NULL;
  }
  if (a->limit != 0 && nsize > osize && a->used + (nsize - osize) > a->limit)
    return NULL;
  p = ptr == NULL ? block_new(a, nsize) : block_resize(a, ptr, osize, nsize);
  if (p != NULL) a->used = a->used - osize + nsize;
  return p;
}

void alloc_reset(alloc_t *a) {
  a->used = 0;
  a->limit = 0;
  memset(a->free, 0, sizeof a->free);
  if (a->base != NULL) {
    if ((size_t)(a->top - a->base) > ALLOC_KEEP)
      (void)madvise(a->base + ALLOC_KEEP, (size_t)(a->top - a->base) - ALLOC_KEEP,
                    MADV_DONTNEED);
    a->top = a->base;
  }
}

void alloc_destroy(alloc_t *a) {
  if (a->base != NULL) munmap(a->base, ALLOC_REGION);
  a->base = a->top = a->end = NULL;
}
