/*
** search.c: where require found a module, remembered for the process.
**
** Every thread's state requires its modules afresh, and each require walks
** package.path, then package.cpath, trying to open a file for each
** template until one exists: a module found through a tree of rocks costs
** a dozen failed open() calls in every new state. A thread's package (once
** it opens: libs.c) gets two searchers in place of the Lua and C ones that
** look in a table shared by the process first: keyed by the module's name,
** path and cpath, it gives the file found last time and which searcher
** found it. A hit loads that file at once (and the other searcher answers
** at once that it has nothing); a miss searches as Lua does, then records
** what it found. A file that no longer loads falls back to the standard
** searcher, whose message is the one require shows. Only absolute file
** names are kept (a relative one depends on the current directory), and
** C module names with a '-' are left to the standard searcher.
**
** The one place this can differ from a plain search: a module file added,
** after a thread found the module, earlier in the path than the one found
** stays unseen by new threads until threading.invalidate_caches() (as with
** Python's importlib caches).
**
** Who owns what: the table (search_mu) owns its entries and their strings.
** search_mu is a leaf: nothing else is locked while it is held, and nothing
** is pushed, allocated through Lua or raised then (a file name is copied
** out into a buffer of the caller's). fork: runtime.c calls search_atfork.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libs.h"
#include "object.h"
#include "search.h"
#include "wait.h"

#if !defined(SEARCH_MAX)
#define SEARCH_MAX 1024            /* entries kept at most */
#endif
#define SEARCH_BUCKETS 256
#define SEARCH_FILE_MAX 4096       /* a longer file name is not kept */

enum { FOUND_LUA = 1, FOUND_C = 2 };

typedef struct entry {
  struct entry *next;
  unsigned hash;
  size_t keylen;
  char *key;                       /* name \0 path \0 cpath */
  char *file;
  int kind;
} entry;

static pthread_mutex_t search_mu = PTHREAD_MUTEX_INITIALIZER;
static entry *buckets[SEARCH_BUCKETS];   /* (search_mu) */
static int nentries;                     /* (search_mu) */

static unsigned hash_key(const char *k, size_t len) {
  unsigned h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (unsigned char)k[i]) * 16777619u;
  return h;
}

/* The key for name with the state's path and cpath, in a malloc'd buffer
** (NULL when out of memory or either path is not a string). */
static char *make_key(lua_State *L, const char *name, size_t *len) {
  const char *path, *cpath;
  size_t nl = strlen(name), pl, cl;
  char *k;
  libs_push_package(L);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_getfield(L, -1, "path");
  lua_getfield(L, -2, "cpath");
  path = lua_tostring(L, -2);
  cpath = lua_tostring(L, -1);
  if (path == NULL || cpath == NULL) {
    lua_pop(L, 3);
    return NULL;
  }
  pl = strlen(path);
  cl = strlen(cpath);
  k = (char *)malloc(nl + pl + cl + 3);
  if (k != NULL) {
    memcpy(k, name, nl + 1);
    memcpy(k + nl + 1, path, pl + 1);
    memcpy(k + nl + pl + 2, cpath, cl + 1);
    *len = nl + pl + cl + 3;
  }
  lua_pop(L, 3);
  return k;
}

/* The kind found for key (file copied into out), or 0. */
static int lookup(const char *key, size_t len, char *out) {
  unsigned h = hash_key(key, len);
  entry *e;
  int kind = 0;
  WAIT_CHECK(pthread_mutex_lock(&search_mu));
  for (e = buckets[h % SEARCH_BUCKETS]; e != NULL; e = e->next) {
    if (e->hash == h && e->keylen == len && memcmp(e->key, key, len) == 0) {
      kind = e->kind;
      memcpy(out, e->file, strlen(e->file) + 1);
      break;
    }
  }
  WAIT_CHECK(pthread_mutex_unlock(&search_mu));
  return kind;
}

/* Remember key -> (kind, file), replacing what key gave before; takes key
** (freed if not kept). */
static void remember(char *key, size_t len, int kind, const char *file) {
  unsigned h = hash_key(key, len);
  entry *e = (entry *)malloc(sizeof *e), *old;
  char *f = object_strdup(file);
  if (e == NULL || f == NULL) {
    free(e);
    free(f);
    free(key);
    return;
  }
  e->hash = h;
  e->keylen = len;
  e->key = key;
  e->file = f;
  e->kind = kind;
  WAIT_CHECK(pthread_mutex_lock(&search_mu));
  for (old = buckets[h % SEARCH_BUCKETS]; old != NULL; old = old->next)
    if (old->hash == h && old->keylen == len && memcmp(old->key, key, len) == 0) break;
  if (old != NULL) {                   /* a stale one: swap the file in */
    char *was = old->file;
    int was_kind = old->kind;
    old->file = e->file;
    old->kind = e->kind;
    e->file = was;
    e->kind = was_kind;
  } else if (nentries < SEARCH_MAX) {
    e->next = buckets[h % SEARCH_BUCKETS];
    buckets[h % SEARCH_BUCKETS] = e;
    nentries++;
    e = NULL;
  }
  WAIT_CHECK(pthread_mutex_unlock(&search_mu));
  if (e != NULL) {
    free(e->key);
    free(e->file);
    free(e);
  }
}

static void clear_all(void) {
  entry *list = NULL, *e;
  int i;
  WAIT_CHECK(pthread_mutex_lock(&search_mu));
  for (i = 0; i < SEARCH_BUCKETS; i++) {
    while ((e = buckets[i]) != NULL) {
      buckets[i] = e->next;
      e->next = list;
      list = e;
    }
  }
  nentries = 0;
  WAIT_CHECK(pthread_mutex_unlock(&search_mu));
  while ((e = list) != NULL) {
    list = e->next;
    free(e->key);
    free(e->file);
    free(e);
  }
}

/* Search templates (';'-separated, '?' the name with '.' as '/') as
** package.searchpath does; the first readable file goes to out. */
static int find(const char *name, const char *templates, char *out) {
  const char *t = templates;
  while (*t != '\0') {
    const char *end = strchr(t, ';');
    size_t n = 0;
    FILE *f;
    if (end == NULL) end = t + strlen(t);
    for (; t < end; t++) {
      const char *s = *t == '?' ? name : NULL;
      if (s == NULL) {
        if (n + 1 >= SEARCH_FILE_MAX) return 0;
        out[n++] = *t;
        continue;
      }
      for (; *s != '\0'; s++) {
        if (n + 1 >= SEARCH_FILE_MAX) return 0;
        out[n++] = *s == '.' ? '/' : *s;
      }
    }
    out[n] = '\0';
    if (*end == ';') t = end + 1;
    if (n > 0 && (f = fopen(out, "r")) != NULL) {
      fclose(f);
      return 1;
    }
  }
  return 0;
}

/* Load file as a module of kind; pushes the loader and returns 1, or
** pushes nothing and returns 0. */
static int load(lua_State *L, int kind, const char *name, const char *file) {
  if (kind == FOUND_LUA) {
    if (luaL_loadfile(L, file) == 0) return 1;
    lua_pop(L, 1);
    return 0;
  }
  libs_push_package(L);
  lua_getfield(L, -1, "loadlib");
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    return 0;
  }
  lua_pushstring(L, file);
  lua_pushliteral(L, "luaopen_");
  luaL_gsub(L, name, ".", "_");
  lua_concat(L, 2);
  lua_call(L, 2, 1);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) return 1;
  lua_pop(L, 1);
  return 0;
}

/* A searcher (upvalue 1: the standard one it stands in for; 2: FOUND_LUA
** or FOUND_C). */
static int cached_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
  char file[SEARCH_FILE_MAX];
  size_t len = 0;
  char *key = NULL;
  int found;
  if (kind == FOUND_C && strchr(name, '-') != NULL) goto standard;
  key = make_key(L, name, &len);
  if (key == NULL) goto standard;
  found = lookup(key, len, file);
  if (found != 0 && found != kind) {
    free(key);
    lua_pushliteral(L, "");           /* the other searcher has it */
    return 1;
  }
  if (found == kind && load(L, kind, name, file)) {
    free(key);
    lua_pushstring(L, file);
    return 2;
  }
  libs_push_package(L);
  lua_getfield(L, -1, kind == FOUND_LUA ? "path" : "cpath");
  found = lua_isstring(L, -1) && find(name, lua_tostring(L, -1), file);
  lua_pop(L, 2);
  if (found && load(L, kind, name, file)) {
    if (file[0] == '/') remember(key, len, kind, file);
    else free(key);
    lua_pushstring(L, file);
    return 2;
  }
  free(key);
standard:
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L);
}

void search_install(lua_State *L) {
  int i;
  libs_push_package(L);
  lua_getfield(L, -1, COMPAT_SEARCHERS);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  for (i = 2; i <= 3; i++) {
    lua_rawgeti(L, -1, i);
    if (!lua_isfunction(L, -1)) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushinteger(L, i == 2 ? FOUND_LUA : FOUND_C);
    lua_pushcclosure(L, cached_searcher, 2);
    lua_rawseti(L, -2, i);
  }
  lua_pop(L, 2);
}

void search_atfork(int phase) {
  if (phase == FORK_PREPARE) WAIT_CHECK(pthread_mutex_lock(&search_mu));
  else if (phase == FORK_PARENT) WAIT_CHECK(pthread_mutex_unlock(&search_mu));
  else WAIT_CHECK(pthread_mutex_unlock(&search_mu));  /* the forking thread took it */
}

/* threading.invalidate_caches(): forget where modules were found. */
static int search_invalidate(lua_State *L) {
  (void)L;
  clear_all();
  return 0;
}

void search_open(lua_State *L) {
  lua_pushcfunction(L, search_invalidate);
  lua_setfield(L, -2, "invalidate_caches");
}
