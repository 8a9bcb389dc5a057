/*
** testfork.c: a small C module for the specs, `require("testfork")`, giving
** Lua the process calls that a program reaches through a C module (luaposix,
** say) or LuaJIT's FFI: fork, waitpid, _exit and alarm. Built by the
** Makefile beside threading's own modules, for the specs only.
*/
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"

/* fork() -> 0 in the child, the child's pid in the parent */
static int tf_fork(lua_State *L) {
  pid_t pid;
  fflush(NULL);                    /* nothing buffered is written twice */
  pid = fork();
  if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}

/* waitpid(pid) -> the exit status, or 128 + the signal that ended it */
static int tf_waitpid(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return luaL_error(L, "waitpid: %s", strerror(errno));
  lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 1;
}

/* _exit(code): end the process at once (no atexit, no lua_close) */
static int tf_exit(lua_State *L) {
  int code = (int)luaL_optinteger(L, 1, 0);
  fflush(NULL);
  _exit(code);
  return 0;
}

/* alarm(seconds): a child that hangs is killed instead of lingering */
static int tf_alarm(lua_State *L) {
  alarm((unsigned)luaL_checkinteger(L, 1));
  return 0;
}

static const luaL_Reg funcs[] = {
  {"fork", tf_fork},
  {"waitpid", tf_waitpid},
  {"_exit", tf_exit},
  {"alarm", tf_alarm},
  {NULL, NULL}
};

__attribute__((visibility("default"))) int luaopen_testfork(lua_State *L);

int luaopen_testfork(lua_State *L) {
  lua_newtable(L);
  {
    const luaL_Reg *r;
    for (r = funcs; r->name != NULL; r++) {
      lua_pushcfunction(L, r->func);
      lua_setfield(L, -2, r->name);
    }
  }
  return 1;
}
