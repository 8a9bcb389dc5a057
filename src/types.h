/*
** types.h: the registration function of each Lua-visible type. Each adds
** its constructors to the module table at the top of the stack.
*/
#ifndef THREADING_TYPES_H
#define THREADING_TYPES_H

#include "compat.h"

TH_HIDDEN void thread_open(lua_State *L);
TH_HIDDEN void lock_open(lua_State *L);
TH_HIDDEN void shared_open(lua_State *L);
TH_HIDDEN void condition_open(lua_State *L);
TH_HIDDEN void semaphore_open(lua_State *L);
TH_HIDDEN void event_open(lua_State *L);
TH_HIDDEN void barrier_open(lua_State *L);
TH_HIDDEN void queue_open(lua_State *L);
TH_HIDDEN void table_open(lua_State *L);
TH_HIDDEN void fifo_open(lua_State *L);
TH_HIDDEN void future_open(lua_State *L);
TH_HIDDEN void select_open(lua_State *L);
TH_HIDDEN void task_open(lua_State *L);
TH_HIDDEN void pool_open(lua_State *L);

#endif
