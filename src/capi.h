/*
** capi.h: what the core offers the modules built apart from it
** (threading.http), which cannot link against core.so: Lua loads each C
** module with RTLD_LOCAL, so none sees another's symbols. The core puts the
** address of one static, constant table of function pointers in its module
** table as `_capi` (a light userdata); a module reads it once per process,
** checks `version`, and calls through it. core.so is never unloaded (it
** pins itself), so the table and the code it points to outlive every state.
**
** Futures made through this table are completed by their maker in C (an
** I/O thread, say), not from Lua: Lua code sees an ordinary
** threading.Future, whose set_result and set_exception refuse with
** `completer` as the reason.
**
** Who owns what: future_new returns one reference, the maker's; each Lua
** handle that future_push makes holds its own. `slot` is the maker's: the
** core never reads or writes it, and only the maker's thread should.
** `on_cancel` runs in the thread that cancelled the future (a Lua method
** call, no lock of the core held); it must not block, and must not free
** what the maker still uses: it only tells the maker.
*/
#ifndef THREADING_CAPI_H
#define THREADING_CAPI_H

#include "compat.h"

#define THREADING_CAPI_VERSION 1

typedef struct threading_capi {
  int version;
  /* A pending future (one reference), or NULL without memory. completer:
  ** a static string, the reason set_result gives for refusing. on_cancel
  ** (or NULL): called once if the future is cancelled while pending. */
  void *(*future_new)(const char *completer, void (*on_cancel)(void *future));
  /* Push a Lua handle for the future (a reference of its own). */
  void (*future_push)(lua_State *L, void *future);
  /* Complete the future with the top n values of L (popped), as
  ** set_result would. Returns 0 if it had ended already (then nothing is
  ** kept). Raises in L if a value cannot move or memory runs out. */
  int (*future_set)(lua_State *L, void *future, int n);
  /* Fail the future with a static message; 0 if it had ended already. */
  int (*future_fail)(void *future, const char *reason);
  /* Cancel the future if it is pending (as Future:cancel); 1 if it is
  ** cancelled now or was before. */
  int (*future_cancel)(void *future);
  /* 1 while the future is pending or running. */
  int (*future_pending)(void *future);
  /* The maker's own pointer-sized slot in the future (NULL at first). */
  void **(*future_slot)(void *future);
  void (*future_retain)(void *future);
  void (*future_release)(void *future);
} threading_capi_t;

#endif
