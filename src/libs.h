/*
** libs.h: which standard libraries a thread's state has, and when they
** open (libs.c). Everything here works on one lua_State, by the OS thread
** that runs it; there is no shared state and no mutex.
*/
#ifndef THREADING_LIBS_H
#define THREADING_LIBS_H

#include "compat.h"

/* A thread's `libs` setting: LIBS_LAZY (the default: every library, each
** opened on first use), or LIBS_LIST with the bits of the libraries to
** open at start (no others exist in that state); LIBS_ALL opens every one
** at start. */
#define LIBS_LAZY 0u
#define LIBS_LIST (1u << 31)
#define LIBS_ALL (~0u)

/* Parse a `libs` option at idx (nil, "all" or a list of names) for
** argument `arg`; raises in the standard form on bad input. */
TH_HIDDEN unsigned libs_check(lua_State *L, int idx, int arg);

/* Set up a fresh state: the base library, and the others ready to open on
** first use. Raises only when out of memory (call it protected). */
TH_HIDDEN void libs_prepare(lua_State *L);

/* Before the state runs anything: open what `libs` asks for at start and,
** for a list, take the others out of reach. Raises only when out of
** memory. */
TH_HIDDEN void libs_apply(lua_State *L, unsigned libs);

/* package.path and package.cpath for the state: set on package now if it
** is open, or kept until it opens (not copied: the strings must outlive
** the state). Either may be NULL (left as it is). */
TH_HIDDEN void libs_set_paths(lua_State *L, const char *path, const char *cpath);

/* Push the state's package library (package.loaded.package), or nil if it
** is not open. */
TH_HIDDEN void libs_push_package(lua_State *L);

/* Push package.path and package.cpath (each a string or nil) without
** opening package. */
TH_HIDDEN void libs_push_paths(lua_State *L);

/* Push the module `name` as require does; a state without require (its
** `libs` left package out) gets an error that says so. */
TH_HIDDEN void libs_require(lua_State *L, const char *name, size_t len);

#endif
