/*
** http.h: what the two halves of threading.http share. http.c reads a
** request's options, checks them and sets up a curl easy handle, and runs
** the blocking requests (http.get, http.request) in the calling thread;
** http_io.c runs the requests of get_async and request_async, and of
** http.get inside a threading.async task, on one I/O thread per process.
*/
#ifndef THREADING_HTTP_H
#define THREADING_HTTP_H

#include <stddef.h>

#include <curl/curl.h>

#include "compat.h"

#define HTTP_DEFAULT_TIMEOUT 30.0             /* seconds, whole request */
#define HTTP_DEFAULT_REDIRECTS 10L
#define HTTP_DEFAULT_MAX_BODY (64.0 * 1024 * 1024)
#define HTTP_KEEP_BUFFER (1024 * 1024)        /* larger buffers are freed after use */
#define HTTP_METHOD_MAX 32
#define HTTP_MSG_MAX 400                      /* a failure's message */
#if !defined(HTTP_TICK_MS)
#define HTTP_TICK_MS 100                      /* cancellation latency bound */
#endif

typedef struct hbuf {
  char *p;
  size_t len, cap;
} hbuf_t;

typedef struct session {
  CURLM *multi;                /* owns the connection and DNS caches (NULL
                                  for a request of the I/O thread's) */
  CURL *easy;                  /* reused by every request of the state */
  int attached;                /* easy is in multi */
  unsigned gen;                /* http_generation() when the handles were made */
  struct curl_slist *headers;  /* the current request's header list */
  hbuf_t body, head, line;     /* response body, raw headers, scratch */
  size_t max_body;
  int too_large, no_memory;    /* why a callback stopped the transfer */
  char errbuf[CURL_ERROR_SIZE];
} session_t;

/* One request's settings, read from Lua before any curl call. Strings point
** into values that stay on the Lua stack while the request is set up
** (libcurl copies them into the easy handle; an asynchronous request has it
** copy the body too). */
typedef struct request {
  const char *url;
  size_t url_len;
  char method[HTTP_METHOD_MAX];    /* upper case; "" means GET (or POST with a body) */
  const char *body;
  size_t body_len;
  int has_body;
  int headers;                     /* stack index of the headers table, or 0 */
  long timeout_ms, connect_ms;     /* 0: no limit */
  long max_redirects;              /* -1: do not follow */
  size_t max_body;
  int verify;
  const char *cainfo, *capath;     /* NULL: libcurl's default CA store */
  const char *user_agent;          /* NULL: send none */
  size_t user_agent_len;
  const char *proxy;               /* NULL: libcurl's default; "": none */
} request_t;


/* Growable byte buffers (malloc'd); 0 when memory runs out. */
TH_HIDDEN int hbuf_add(hbuf_t *b, const char *s, size_t n);
TH_HIDDEN void hbuf_free(hbuf_t *b);
TH_HIDDEN void hbuf_trim(hbuf_t *b);   /* empty it, freeing a big one */

TH_HIDDEN double http_now(void);       /* monotonic seconds */
/* How many fork()s this process is from the one that loaded the module. */
TH_HIDDEN unsigned http_generation(void);
/* Keep curl handles made before a fork, unused and unfreed (either NULL). */
TH_HIDDEN void http_leave_behind(CURLM *multi, CURL *easy);
/* Read get's (is_get) or request's arguments into r; raises on bad ones. */
TH_HIDDEN void http_args(lua_State *L, request_t *r, int is_get);
/* NULL if r's URL may be requested, else the failure kind (msg says why). */
TH_HIDDEN const char *http_check_url(const request_t *r, char *msg, size_t msgsize);
/* Build s->headers for r; 0 with msg set for a header that cannot go. */
TH_HIDDEN int http_build_headers(lua_State *L, session_t *s, const request_t *r,
                                 char *msg, size_t msgsize);
/* Set up s->easy for r (its body is not copied: see http_io.c). */
TH_HIDDEN CURLcode http_configure(session_t *s, const request_t *r);
/* The kind of the failure rc of s's transfer, its message in msg. */
TH_HIDDEN const char *http_failure(const session_t *s, int rc, char *msg, size_t msgsize);
/* Push the response table of s's finished transfer. */
TH_HIDDEN void http_push_response(lua_State *L, session_t *s, double elapsed);
/* Register the metatable `name` of a private box whose __gc is gc. */
TH_HIDDEN void http_gc_metatable(lua_State *L, const char *name, lua_CFunction gc);
/* Push nil, msg, kind; returns 3. */
TH_HIDDEN int http_push_fail(lua_State *L, const char *msg, const char *kind);

/* http_io.c: the Lua functions of the asynchronous path. */
TH_HIDDEN int http_get_async(lua_State *L);
TH_HIDDEN int http_request_async(lua_State *L);
TH_HIDDEN int http_inflight(lua_State *L);
/* Blocking requests (http.get, http.request) in their transfer now, in
** every thread: the third value of http._inflight. */
TH_HIDDEN int http_blocking_inflight(void);
TH_HIDDEN int http_guard(lua_State *L);
TH_HIDDEN int http_driver(lua_State *L);
TH_HIDDEN void http_io_open(lua_State *L);

#endif
