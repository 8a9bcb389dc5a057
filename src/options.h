/*
** options.h: the check that an options table holds only known names, for
** the core and for threading.http (built apart, so it is a header).
** Pushes only with no lock held (it takes none).
*/
#ifndef THREADING_OPTIONS_H
#define THREADING_OPTIONS_H

#include <string.h>

#include "compat.h"

/* The index of `k` (length n) in the NULL-terminated `names`, or -1. */
static TH_UNUSED int options_find(const char *const *names, const char *k, size_t n) {
  int i;
  for (i = 0; names[i] != NULL; i++)
    if (strlen(names[i]) == n && memcmp(names[i], k, n) == 0) return i;
  return -1;
}

/* Raise "bad argument #arg to 'f' (unknown option 'k')" unless every key of
** the table at t names one of `names`; keys must be strings. A misspelled
** option is an error, never silently ignored. */
static TH_UNUSED void options_check(lua_State *L, int t, int arg,
                                    const char *const *names) {
  t = compat_absindex(L, t);
  lua_pushnil(L);
  while (lua_next(L, t) != 0) {
    size_t n;
    const char *k;
    lua_pop(L, 1);                               /* the value */
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, arg, lua_pushfstring(L, "option names must be strings, got %s",
                                            luaL_typename(L, -1)));
    k = lua_tolstring(L, -1, &n);
    if (options_find(names, k, n) < 0)
      luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", k));
  }
}

#endif
