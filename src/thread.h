/*
** thread.h: what the rest of the core needs from thread.c.
*/
#ifndef THREADING_THREAD_H
#define THREADING_THREAD_H

#include "compat.h"

/* Called by luaopen in every state: a state created outside this module
** (the main script's) gets an exit hook that joins its non-daemon threads
** when it closes, as Python joins them at interpreter exit. */
TH_HIDDEN void thread_register_state(lua_State *L);

/* An opaque token for the calling OS thread (adopting a foreign thread on
** first use), for owner checks: the same pointer as wait_current(). NULL
** only when out of memory. */
TH_HIDDEN void *thread_current(void);

#endif
