/*
** search.h: a process-wide memory of where require found each module
** (search.c), for the states of threads.
*/
#ifndef THREADING_SEARCH_H
#define THREADING_SEARCH_H

#include "compat.h"

/* Put the remembering Lua and C searchers in the state's package (open). */
TH_HIDDEN void search_install(lua_State *L);
/* fork(): runtime.c calls it in each phase (object.h's FORK_*). */
TH_HIDDEN void search_atfork(int phase);
/* threading.invalidate_caches, into the table at -1. */
TH_HIDDEN void search_open(lua_State *L);

#endif
