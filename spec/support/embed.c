/*
** embed.c: a host program with two independent Lua states in one process,
** each loading threading and starting threads of its own. Closing the first
** state must join only its own threads: the second state's thread waits on
** a lock that only the second state releases, after the first is closed.
** Prints one line per step; exits 0 when every step went as expected.
*/
#include <stdio.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

static int run(lua_State *L, const char *name, const char *chunk) {
  if (luaL_loadstring(L, chunk) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
    fprintf(stderr, "%s: %s\n", name, lua_tostring(L, -1));
    return 1;
  }
  return 0;
}

int main(void) {
  lua_State *first = luaL_newstate();
  lua_State *second = luaL_newstate();
  if (first == NULL || second == NULL) return 1;
  luaL_openlibs(first);
  luaL_openlibs(second);
  if (run(first, "first",
          "local threading = require('threading')\n"
          "worker = threading.start(function(x) return x * 2 end, 21)\n"
          "print('first: started ' .. worker.name)\n"))
    return 1;
  if (run(second, "second",
          "local threading = require('threading')\n"
          "gate = threading.Lock()\n"
          "gate:acquire()\n"
          "worker = threading.start(function(g) g:acquire() g:release() return 'released' end, gate)\n"
          "print('second: started ' .. worker.name)\n"))
    return 1;
  lua_close(first);                 /* joins the first state's thread only */
  printf("first: closed\n");
  if (run(second, "second",
          "gate:release()\n"
          "print('second: ' .. select(2, worker:join(10)))\n"))
    return 1;
  lua_close(second);
  printf("second: closed\n");
  return 0;
}
