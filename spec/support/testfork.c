/*
** testfork.c: a small C module for the specs, `require("testfork")`, giving
** Lua the process calls that a program reaches through a C module (luaposix,
** say) or LuaJIT's FFI: fork, waitpid, _exit, alarm, getpid, kill,
** SIGINT's disposition and mask. Built by the
** Makefile beside threading's own modules, for the specs only.
*/
#include <errno.h>
#include <pthread.h>
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

/* getpid() -> the process id */
static int tf_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* kill(pid, "INT" | "TERM") (os.execute cannot: system() ignores SIGINT
** in its caller while the command runs) */
static int tf_kill(lua_State *L) {
  static const char *const names[] = {"INT", "TERM", NULL};
  static const int sigs[] = {SIGINT, SIGTERM};
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = sigs[luaL_checkoption(L, 2, NULL, names)];
  if (kill(pid, sig) != 0) return luaL_error(L, "kill: %s", strerror(errno));
  return 0;
}

static volatile sig_atomic_t sigints_seen;

static void count_sigint(int sig) {
  (void)sig;
  sigints_seen++;
}

/* sigint("default" | "ignore" | "count"): set SIGINT's disposition, as a
** host that installs no handler leaves it, or as one that handles Ctrl-C
** its own way ("count": a handler that counts and sets no hook);
** sigint() -> "default", "ignore" or "handler" */
static int tf_sigint(lua_State *L) {
  static const char *const names[] = {"default", "ignore", "count", NULL};
  struct sigaction sa;
  if (!lua_isnoneornil(L, 1)) {
    int how = luaL_checkoption(L, 1, NULL, names);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = how == 0 ? SIG_DFL : how == 1 ? SIG_IGN : count_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    return 0;
  }
  sigaction(SIGINT, NULL, &sa);
  if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) lua_pushliteral(L, "default");
  else if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) lua_pushliteral(L, "ignore");
  else lua_pushliteral(L, "handler");
  return 1;
}

/* sigints() -> how many SIGINTs the "count" handler has seen */
static int tf_sigints(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)sigints_seen);
  return 1;
}

/* sigint_blocked() -> whether the calling thread blocks SIGINT */
static int tf_sigint_blocked(lua_State *L) {
  sigset_t set;
  pthread_sigmask(SIG_BLOCK, NULL, &set);
  lua_pushboolean(L, sigismember(&set, SIGINT) == 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"sigint_blocked", tf_sigint_blocked},
  {"getpid", tf_getpid},
  {"kill", tf_kill},
  {"sigint", tf_sigint},
  {"sigints", tf_sigints},
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
