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

/* The calling OS thread's Thread object (adopting a foreign thread on first
** use), as an opaque token for owner checks; NULL only when out of memory. */
TH_HIDDEN void *thread_current(void);

#endif
