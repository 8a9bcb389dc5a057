/*
** http.c: threading.http, HTTP and HTTPS requests over libcurl, safe to use
** from any thread. This file reads and checks a request's options, sets up
** an easy handle for it, and runs the blocking requests (http.get and
** http.request outside a threading.async task) in the calling thread;
** http_io.c runs the asynchronous ones on its I/O thread with the same
** options, checks and set-up (http.h).
**
** For the blocking requests, each lua_State keeps one session (a curl multi handle and one easy handle)
** in its registry, so repeated requests from one state reuse connections,
** DNS answers and TLS sessions, and no two states ever share a curl handle:
** nothing here needs a lock, and this file takes none but the leaf
** behind_mu of the handles left behind at fork() (see "fork" below) and the
** pthread_once of curl_global_init. While a request runs, its session is taken out
** of the registry and lives only on the Lua stack. Two things follow: a
** request made from a __gc metamethod in the middle of another one (the only
** way to re-enter) simply gets a fresh session, and an error raised at any
** point leaves the session to the garbage collector, whose __gc frees every
** curl resource and buffer it holds.
**
** No Lua code runs inside a curl callback: the body and the headers go to C
** buffers of the session, and Lua values are made once the transfer is over.
** Between rounds of the transfer loop (at most HTTP_TICK_MS apart) the
** request asks the core whether its thread was cancelled, by calling
** threading.core's _wait_point in protected mode (see push_probe): a
** cancellation raised there is kept, the transfer is abandoned and cleaned
** up, then it is raised again. That makes every request a cancellation point
** without this module knowing how the core keeps its threads. The loop
** tells the core when it begins and ends, so that in the process's main
** thread a Ctrl-C interrupts it the same way ("interrupted!"), as it does
** the core's own waits: the signal ends curl's poll at once.
*/
#include <ctype.h>
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "compat.h"
#include "http.h"
#include "options.h"

#define SESSION_MT "threading.http.Session"

static const char session_key = 's';   /* registry[&session_key]: the idle session */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static _Atomic(lua_CFunction) probe_fn;     /* threading.core's _wait_point, once known */
static atomic_int blocking_inflight;        /* transfers of http.get/request now */
static CURLcode global_rc;
static char default_agent[64];

/* curl_global_init is not thread-safe on every libcurl: run it exactly once.
** curl_global_cleanup is never called; threads may use curl until exit.
** This library is also pinned (loaded once more with RTLD_NODELETE): when
** the last state that required it closes, Lua would dlclose it and with it
** libcurl, while libcurl's resolver threads or OpenSSL's exit handlers may
** still need their code, and the next thread would pay milliseconds to load
** them all again. */
/* ------------------------------------------------------------------ fork */

/* A fork child shares its parent's sockets: a connection cached before the
** fork must not be used by both (their requests and responses would mix),
** nor closed by the child (closing a TLS connection sends on the shared
** socket). So the child leaves every curl handle made before the fork
** alone: the session and the drivers (http_io.c) see a new generation and
** take fresh handles, and the old ones are kept here, reachable, never
** freed. */
static atomic_uint fork_gen;
static pthread_mutex_t behind_mu = PTHREAD_MUTEX_INITIALIZER;
static struct behind {
  CURLM *multi;
  CURL *easy;
  struct behind *next;
} *left_behind;                 /* (behind_mu) */

static void fork_child(void) {
  atomic_fetch_add(&fork_gen, 1);
  pthread_mutex_init(&behind_mu, NULL);
}

unsigned http_generation(void) {
  return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

void http_leave_behind(CURLM *multi, CURL *easy) {
  struct behind *b = (struct behind *)malloc(sizeof *b);
  if (b == NULL) return;        /* lost for memory: a leak, never a close */
  b->multi = multi;
  b->easy = easy;
  pthread_mutex_lock(&behind_mu);
  b->next = left_behind;
  left_behind = b;
  pthread_mutex_unlock(&behind_mu);
}

static void global_init(void) {
  const curl_version_info_data *v;
  Dl_info info;
  pthread_atfork(NULL, NULL, fork_child);
  if (dladdr((void *)&global_init, &info) && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  v = curl_version_info(CURLVERSION_NOW);
  snprintf(default_agent, sizeof default_agent, "lua-threading libcurl/%s",
           v != NULL ? v->version : "?");
}

double http_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- buffers */

int hbuf_add(hbuf_t *b, const char *s, size_t n) {
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 512;   /* small: thousands may be in flight */
    char *p;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) return 0;
      cap *= 2;
    }
    p = (char *)realloc(b->p, cap);
    if (p == NULL) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 1;
}

void hbuf_free(hbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Keep small buffers for the next request, give big ones back. */
void hbuf_trim(hbuf_t *b) {
  if (b->cap > HTTP_KEEP_BUFFER) hbuf_free(b);
  b->len = 0;
}

/* ---------------------------------------------------------------- curl callbacks */

/* Body bytes: kept in C, up to the limit. Returning less than n stops curl. */
static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  session_t *s = (session_t *)ud;
  size_t len = size * n;
  if (len > s->max_body - s->body.len) {
    s->too_large = 1;
    return 0;
  }
  if (!hbuf_add(&s->body, p, len)) {
    s->no_memory = 1;
    return 0;
  }
  return len;
}

/* Header lines of every response on the way (redirects, 100 Continue): a
** status line starts a new response, so only the last one is kept. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  session_t *s = (session_t *)ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) s->head.len = 0;
  if (!hbuf_add(&s->head, p, len)) {
    s->no_memory = 1;
    return 0;
  }
  return len;
}

/* ---------------------------------------------------------------- sessions */

static int session_gc(lua_State *L) {
  session_t *s = (session_t *)luaL_checkudata(L, 1, SESSION_MT);
  if (s->attached) curl_multi_remove_handle(s->multi, s->easy);
  s->attached = 0;
  if (s->easy != NULL) curl_easy_cleanup(s->easy);
  if (s->multi != NULL) curl_multi_cleanup(s->multi);
  s->easy = NULL;
  s->multi = NULL;
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  hbuf_free(&s->body);
  hbuf_free(&s->head);
  hbuf_free(&s->line);
  return 0;
}

/* Push this state's idle session, taken out of the registry, or a new one.
** Returns NULL (with the empty box pushed) if curl has no memory. */
static session_t *session_take(lua_State *L) {
  session_t *s;
  compat_rawgetp(L, LUA_REGISTRYINDEX, &session_key);
  if (lua_isuserdata(L, -1)) {
    lua_pushnil(L);
    compat_rawsetp(L, LUA_REGISTRYINDEX, &session_key);
    s = (session_t *)lua_touserdata(L, -1);
    if (s->gen == http_generation()) return s;
    /* made before a fork: its handles stay the parent's */
    http_leave_behind(s->multi, s->easy);
    s->multi = NULL;
    s->easy = NULL;
    s->attached = 0;
  }
  lua_pop(L, 1);
  /* the box is complete and collectable before curl allocates anything */
  s = (session_t *)compat_newuserdata(L, sizeof *s);
  memset(s, 0, sizeof *s);
  luaL_getmetatable(L, SESSION_MT);
  lua_setmetatable(L, -2);
  s->gen = http_generation();
  s->multi = curl_multi_init();
  s->easy = curl_easy_init();
  if (s->multi == NULL || s->easy == NULL) return NULL;
  return s;
}

/* Make the session at idx this state's idle session again. */
static void session_put(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  compat_rawsetp(L, LUA_REGISTRYINDEX, &session_key);
}

/* ---------------------------------------------------------------- options */

/* An HTTP token: a method or a header name. */
static int is_token(const char *s, size_t n) {
  size_t i;
  if (n == 0) return 0;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == 0 || (!isalnum(ch) && strchr("!#$%&'*+-.^_`|~", ch) == NULL)) return 0;
  }
  return 1;
}

/* A value that can go into a request line or header: no CR, LF or zero byte. */
static int is_clean(const char *s, size_t n) {
  return memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL &&
         memchr(s, '\0', n) == NULL;
}

/* Every option a request table may hold. get takes those from GET_FIRST on:
** its url is an argument, and it has no method or body. */
static const char *const option_names[] = {
  "url", "method", "body",
  "headers", "timeout", "connect_timeout", "follow_redirects", "max_body_bytes",
  "verify", "cainfo", "capath", "proxy", "user_agent", NULL
};
#define GET_FIRST 3

/* Raise unless every key of table t names an option of the function (get
** has no url, method or body among its options). */
static void check_names(lua_State *L, int t, int arg, int with_method) {
  options_check(L, t, arg, option_names);
  if (!with_method) {
    int i;
    for (i = 0; i < GET_FIRST; i++) {
      lua_getfield(L, t, option_names[i]);
      if (!lua_isnil(L, -1))
        luaL_argerror(L, arg, i == 0 ? "get takes its url as argument #1, not as an option"
                                     : "get takes no method or body (use http.request)");
      lua_pop(L, 1);
    }
  }
}

static int opt_field(lua_State *L, int t, const char *k) {
  if (t == 0) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getfield(L, t, k);
  return lua_type(L, -1);
}

static int opt_error(lua_State *L, int arg, const char *k, const char *what) {
  return luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be %s, got %s", k,
                                               what, luaL_typename(L, -1)));
}

/* A duration in seconds at the top of the stack, as curl's milliseconds. */
static long opt_millis(lua_State *L, int arg, const char *k, double dflt) {
  double s = dflt;
  if (!lua_isnil(L, -1)) {
    s = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(s > 0))
      opt_error(L, arg, k, "a positive number of seconds");
  }
  if (s <= 0 || s >= (double)LONG_MAX / 1000) return 0;   /* no limit (math.huge) */
  return s * 1000 < 1 ? 1 : (long)ceil(s * 1000);
}

/* A file or directory name at the top of the stack, of type ty (nil: NULL). */
static const char *opt_path(lua_State *L, int arg, const char *k, int ty) {
  size_t n;
  const char *p;
  if (ty == LUA_TNIL) return NULL;
  if (ty != LUA_TSTRING) opt_error(L, arg, k, "a string");
  p = lua_tolstring(L, -1, &n);
  if (n == 0 || strlen(p) != n)
    luaL_argerror(L, arg, lua_pushfstring(L, "field '%s' must be a non-empty path "
                                          "without zero bytes", k));
  return p;
}

/* Read every option of table t (0: none) into r; arg is the argument the
** table was given as, for error messages. Leaves the values on the stack. */
static void read_options(lua_State *L, request_t *r, int t, int arg, int with_method) {
  int ty;
  luaL_checkstack(L, 20, "too many options");   /* 12 options, a header pair, a message */
  if (t != 0) check_names(L, t, arg, with_method);
  if (with_method) {
    ty = opt_field(L, t, "method");
    if (ty != LUA_TNIL) {
      size_t n, i;
      const char *m;
      if (ty != LUA_TSTRING) opt_error(L, arg, "method", "a string");
      m = lua_tolstring(L, -1, &n);
      if (n >= HTTP_METHOD_MAX || !is_token(m, n))
        luaL_argerror(L, arg, "field 'method' must be an HTTP method name");
      for (i = 0; i < n; i++) r->method[i] = (char)toupper((unsigned char)m[i]);
      r->method[n] = '\0';
    }
    ty = opt_field(L, t, "body");
    if (ty != LUA_TNIL) {
      if (ty != LUA_TSTRING) opt_error(L, arg, "body", "a string");
      r->body = lua_tolstring(L, -1, &r->body_len);
      r->has_body = 1;
      if (strcmp(r->method, "HEAD") == 0)
        luaL_argerror(L, arg, "a HEAD request cannot have a body");
    } else if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
               strcmp(r->method, "PATCH") == 0) {
      /* these announce their (empty) body: some servers demand a length */
      r->body = "";
      r->has_body = 1;
    }
  }
  ty = opt_field(L, t, "headers");
  if (ty != LUA_TNIL) {
    int h = lua_gettop(L);
    if (ty != LUA_TTABLE) opt_error(L, arg, "headers", "a table");
    lua_pushnil(L);
    while (lua_next(L, h) != 0) {
      int vt = lua_type(L, -1);
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_argerror(L, arg, lua_pushfstring(L, "header names must be strings, got %s",
                                              luaL_typename(L, -2)));
      if (vt != LUA_TSTRING && vt != LUA_TNUMBER &&
          !(vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))
        luaL_argerror(L, arg, lua_pushfstring(L, "header '%s' must be a string, got %s",
                                              lua_tostring(L, -2), luaL_typename(L, -1)));
      lua_pop(L, 1);
    }
    r->headers = h;
  }
  (void)opt_field(L, t, "timeout");
  r->timeout_ms = opt_millis(L, arg, "timeout", HTTP_DEFAULT_TIMEOUT);
  (void)opt_field(L, t, "connect_timeout");
  r->connect_ms = opt_millis(L, arg, "connect_timeout", 0);
  ty = opt_field(L, t, "follow_redirects");
  r->max_redirects = HTTP_DEFAULT_REDIRECTS;
  if (ty == LUA_TBOOLEAN) {
    if (!lua_toboolean(L, -1)) r->max_redirects = -1;
  } else if (ty == LUA_TNUMBER) {
    double n = lua_tonumber(L, -1);
    if (!(n >= 0) || n != floor(n) || n > 1000)
      opt_error(L, arg, "follow_redirects", "a boolean or a count (0..1000)");
    r->max_redirects = (long)n;
  } else if (ty != LUA_TNIL) {
    opt_error(L, arg, "follow_redirects", "a boolean or a count (0..1000)");
  }
  ty = opt_field(L, t, "max_body_bytes");
  r->max_body = (size_t)HTTP_DEFAULT_MAX_BODY;
  if (ty != LUA_TNIL) {
    double n = lua_tonumber(L, -1);
    if (ty != LUA_TNUMBER || !(n >= 0))
      opt_error(L, arg, "max_body_bytes", "a non-negative number");
    r->max_body = n >= 1e18 ? (size_t)-1 : (size_t)n;
  }
  ty = opt_field(L, t, "verify");
  r->verify = 1;
  if (ty == LUA_TBOOLEAN) r->verify = lua_toboolean(L, -1);
  else if (ty != LUA_TNIL) opt_error(L, arg, "verify", "a boolean");
  ty = opt_field(L, t, "cainfo");
  r->cainfo = opt_path(L, arg, "cainfo", ty);
  ty = opt_field(L, t, "capath");
  r->capath = opt_path(L, arg, "capath", ty);
  ty = opt_field(L, t, "proxy");
  if (ty == LUA_TSTRING) {
    size_t n;
    r->proxy = lua_tolstring(L, -1, &n);
    if (!is_clean(r->proxy, n))
      luaL_argerror(L, arg, "field 'proxy' must not contain line breaks or zero bytes");
  } else if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    r->proxy = "";                 /* libcurl: an empty proxy disables any proxy */
  } else if (ty != LUA_TNIL) {
    opt_error(L, arg, "proxy", "a string or false");
  }
  ty = opt_field(L, t, "user_agent");
  r->user_agent = default_agent;
  r->user_agent_len = strlen(default_agent);
  if (ty == LUA_TSTRING) r->user_agent = lua_tolstring(L, -1, &r->user_agent_len);
  else if (ty == LUA_TBOOLEAN && !lua_toboolean(L, -1)) r->user_agent = NULL;
  else if (ty != LUA_TNIL) opt_error(L, arg, "user_agent", "a string or false");
}

/* ---------------------------------------------------------------- requests */

/* The stable name of a failure, returned third after the message. */
static const char *error_kind(CURLcode rc) {
  switch (rc) {
    case CURLE_URL_MALFORMAT: return "url";
    case CURLE_UNSUPPORTED_PROTOCOL: return "scheme";
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST: return "resolve";
    case CURLE_COULDNT_CONNECT: return "connect";
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_TOO_MANY_REDIRECTS: return "redirects";
    case CURLE_FILESIZE_EXCEEDED: return "too_large";
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: return "closed";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: return "tls";
    case CURLE_OUT_OF_MEMORY: return "memory";
    default: return "error";
  }
}

/* nil, message, kind */
int http_push_fail(lua_State *L, const char *msg, const char *kind) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, kind);
  return 3;
}

/* Check the URL before curl sees it: a clear message for malformed ones and
** for schemes other than http and https. Returns NULL or the failure kind. */
const char *http_check_url(const request_t *r, char *msg, size_t msgsize) {
  CURLU *u;
  CURLUcode uc;
  char *scheme = NULL;
  const char *kind = NULL;
  if (strlen(r->url) != r->url_len) {
    snprintf(msg, msgsize, "malformed URL: it contains a zero byte");
    return "url";
  }
  u = curl_url();
  if (u == NULL) {
    snprintf(msg, msgsize, "not enough memory");
    return "memory";
  }
  uc = curl_url_set(u, CURLUPART_URL, r->url, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (uc != CURLUE_OK) {
    snprintf(msg, msgsize, "malformed URL '%.200s': %s", r->url, curl_url_strerror(uc));
    kind = uc == CURLUE_OUT_OF_MEMORY ? "memory" : "url";
  } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
    snprintf(msg, msgsize, "unsupported scheme '%.40s' (only http and https are allowed)",
             scheme);
    kind = "scheme";
  }
  curl_free(scheme);
  curl_url_cleanup(u);
  return kind;
}

static int add_header(session_t *s, const char *line) {
  struct curl_slist *l = curl_slist_append(s->headers, line);
  if (l == NULL) return 0;
  s->headers = l;
  return 1;
}

/* Build the header list into s->headers, where a raise cannot leak it.
** Returns 0 with a message in msg for a header that cannot be sent. */
int http_build_headers(lua_State *L, session_t *s, const request_t *r,
                         char *msg, size_t msgsize) {
  int has_type = 0, has_expect = 0;
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  /* libcurl sends the agent as it is: a line break would start a new header */
  if (r->user_agent != NULL && !is_clean(r->user_agent, r->user_agent_len)) {
    snprintf(msg, msgsize, "invalid value for user_agent: "
             "line breaks and zero bytes are not allowed");
    return 0;
  }
  if (r->headers != 0) {
    lua_pushnil(L);
    while (lua_next(L, r->headers) != 0) {
      size_t nlen, vlen = 0;
      const char *name = lua_tolstring(L, -2, &nlen);
      const char *value = NULL;
      int ok, remove = lua_type(L, -1) == LUA_TBOOLEAN;   /* false */
      if (!remove) {
        lua_pushvalue(L, -1);      /* tolstring converts a copy, not the table's value */
        value = lua_tolstring(L, -1, &vlen);
      }
      if (!is_token(name, nlen)) {
        snprintf(msg, msgsize, "invalid header name '%.100s'", name);
        return 0;
      }
      if (value != NULL && !is_clean(value, vlen)) {
        snprintf(msg, msgsize, "invalid value for header '%.100s': "
                 "line breaks and zero bytes are not allowed", name);
        return 0;
      }
      if (strcasecmp(name, "content-type") == 0) has_type = 1;
      if (strcasecmp(name, "expect") == 0) has_expect = 1;
      /* curl's forms: "Name: value" sends a header, "Name;" sends it with an
      ** empty value, "Name:" removes one that curl would add itself */
      s->line.len = 0;
      ok = hbuf_add(&s->line, name, nlen);
      if (remove) ok = ok && hbuf_add(&s->line, ":", 2);
      else if (vlen == 0) ok = ok && hbuf_add(&s->line, ";", 2);
      else ok = ok && hbuf_add(&s->line, ": ", 2) && hbuf_add(&s->line, value, vlen + 1);
      if (!ok || !add_header(s, s->line.p)) {
        snprintf(msg, msgsize, "not enough memory");
        return 0;
      }
      lua_pop(L, remove ? 1 : 2);
    }
  }
  /* a body goes as it is: no implied form encoding, no 100-continue wait */
  if ((r->has_body && !has_type && !add_header(s, "Content-Type:")) ||
      (r->has_body && !has_expect && !add_header(s, "Expect:"))) {
    snprintf(msg, msgsize, "not enough memory");
    return 0;
  }
  return 1;
}

/* Set a string option that libcurl may refuse (too long, or not built in),
** keeping the first refusal in *rc. */
static void set_string(CURL *e, CURLoption opt, const char *v, CURLcode *rc) {
  CURLcode c = curl_easy_setopt(e, opt, v);
  if (*rc == CURLE_OK) *rc = c;
}

/* Set up the easy handle for r. Returns CURLE_OK, or why libcurl refused a
** setting. */
CURLcode http_configure(session_t *s, const request_t *r) {
  CURL *e = s->easy;
  CURLcode rc = CURLE_OK;
  curl_easy_reset(e);
  s->errbuf[0] = '\0';
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);   /* no SIGALRM for DNS timeouts in threads */
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (r->max_redirects >= 0) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, r->max_redirects);
  }
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_ms);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, r->verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, r->verify ? 2L : 0L);
  /* each replaces its own default only: cainfo alone still lets libcurl
  ** search its default CA directory, capath alone its default bundle */
  if (r->cainfo != NULL) set_string(e, CURLOPT_CAINFO, r->cainfo, &rc);
  if (r->capath != NULL) set_string(e, CURLOPT_CAPATH, r->capath, &rc);
  if (r->user_agent != NULL) set_string(e, CURLOPT_USERAGENT, r->user_agent, &rc);
  if (r->proxy != NULL) {
    set_string(e, CURLOPT_PROXY, r->proxy, &rc);
    /* a proxy given here serves every host: no_proxy in the environment
    ** would otherwise still bypass it (an empty list matches no host) */
    if (r->proxy[0] != '\0') curl_easy_setopt(e, CURLOPT_NOPROXY, "");
  }
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");    /* whatever curl can decode */
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)s);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)s);
  /* refuse at once a body announced bigger than the limit (0 would mean none) */
  if (r->max_body > 0 && r->max_body != (size_t)-1)
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
  if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (r->has_body) {
    /* POST lets curl switch to GET on a 301/302/303, as browsers do */
    if (r->method[0] != '\0' && strcmp(r->method, "POST") != 0)
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
  } else if (r->method[0] != '\0' && strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  }
  s->max_body = r->max_body;
  s->too_large = s->no_memory = 0;
  s->body.len = 0;
  s->head.len = 0;
  return rc;
}

enum { PROBE_ROUND, PROBE_BEGIN, PROBE_END };

/* Protected call of threading.core's _wait_point (upvalue 1) for `phase`:
** 0 if the thread goes on, else the error (a cancellation, an interrupt)
** pushed. */
static int probe(lua_State *L, int phase) {
  if (lua_isnil(L, lua_upvalueindex(1))) return 0;
  lua_pushvalue(L, lua_upvalueindex(1));
  if (phase != PROBE_ROUND) lua_pushinteger(L, phase);
  return lua_pcall(L, phase != PROBE_ROUND, 0, 0) != 0;
}

static int probe_cancel(lua_State *L) {
  return probe(L, PROBE_ROUND);
}

/* Run the transfer. Returns the curl result, or -1 with the cancellation
** error pushed. */
static int transfer(lua_State *L, session_t *s) {
  CURLcode result = CURLE_OK;
  CURLMsg *m;
  int left, running = 1, cancelled = 0;
  if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK) return CURLE_OUT_OF_MEMORY;
  s->attached = 1;
  if (probe(L, PROBE_BEGIN)) lua_pop(L, 1);   /* only memory: not interruptible */
  atomic_fetch_add(&blocking_inflight, 1);
  for (;;) {
    CURLMcode mc = curl_multi_perform(s->multi, &running);
    if (mc == CURLM_OK && running)
      mc = curl_multi_poll(s->multi, NULL, 0, HTTP_TICK_MS, NULL);
    if (mc != CURLM_OK) {
      result = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
      break;
    }
    if (!running) break;
    if (probe_cancel(L)) {
      cancelled = 1;
      break;
    }
  }
  atomic_fetch_sub(&blocking_inflight, 1);
  /* an interrupt since the last round (after one that raised, nothing) */
  if (probe(L, PROBE_END)) {
    if (cancelled) lua_pop(L, 1);
    cancelled = 1;
  }
  while ((m = curl_multi_info_read(s->multi, &left)) != NULL)
    if (m->msg == CURLMSG_DONE) result = m->data.result;
  curl_multi_remove_handle(s->multi, s->easy);
  s->attached = 0;
  return cancelled ? -1 : (int)result;
}

int http_blocking_inflight(void) {
  return atomic_load(&blocking_inflight);
}

/* Push the response headers as a table: lower-case names, repeated ones
** joined with ", ". */
static void push_headers(lua_State *L, const char *p, size_t n) {
  const char *end = p + n;
  int t;
  lua_newtable(L);
  t = lua_gettop(L);
  while (p < end) {
    const char *eol = (const char *)memchr(p, '\n', (size_t)(end - p));
    const char *stop = eol != NULL ? eol : end, *colon, *v, *ve;
    const char *line = p;
    p = eol != NULL ? eol + 1 : end;
    while (stop > line && (stop[-1] == '\r' || stop[-1] == '\n')) stop--;
    colon = (const char *)memchr(line, ':', (size_t)(stop - line));
    /* skip the status line and obsolete folded continuations */
    if (colon == NULL || colon == line || line[0] == ' ' || line[0] == '\t' ||
        (stop - line >= 5 && memcmp(line, "HTTP/", 5) == 0))
      continue;
    for (v = colon + 1; v < stop && (*v == ' ' || *v == '\t'); v++) {}
    for (ve = stop; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {}
    {
      luaL_Buffer b;
      const char *c;
      luaL_buffinit(L, &b);
      for (c = line; c < colon; c++) luaL_addchar(&b, (char)tolower((unsigned char)*c));
      luaL_pushresult(&b);
    }
    lua_pushvalue(L, -1);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(ve - v));
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(ve - v));
      lua_concat(L, 3);
    }
    lua_rawset(L, t);
  }
}

/* The response table of the finished transfer. */
void http_push_response(lua_State *L, session_t *s, double elapsed) {
  long status = 0;
  char *url = NULL;
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(s->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)status);
  lua_setfield(L, -2, "status");
  lua_pushlstring(L, s->body.p != NULL ? s->body.p : "", s->body.len);
  lua_setfield(L, -2, "body");
  push_headers(L, s->head.p != NULL ? s->head.p : "", s->head.len);
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, url != NULL ? url : "");
  lua_setfield(L, -2, "url");
  lua_pushnumber(L, elapsed);
  lua_setfield(L, -2, "elapsed");
}

/* Why the transfer of s failed with rc: the message in msg, the kind
** returned. */
const char *http_failure(const session_t *s, int rc, char *msg, size_t msgsize) {
  if (s->too_large || rc == CURLE_FILESIZE_EXCEEDED) {
    snprintf(msg, msgsize, "response body exceeds max_body_bytes (%.0f)",
             (double)s->max_body);
    return "too_large";
  }
  if (s->no_memory) {
    snprintf(msg, msgsize, "not enough memory for the response");
    return "memory";
  }
  snprintf(msg, msgsize, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror((CURLcode)rc));
  return error_kind((CURLcode)rc);
}

/* Perform request r (its values on the stack). */
static int perform(lua_State *L, request_t *r) {
  char msg[HTTP_MSG_MAX];
  const char *kind;
  session_t *s;
  int box, rc;
  double t0;
  luaL_checkstack(L, 24, "no room for the response");
  if (probe_cancel(L)) return lua_error(L);         /* a cancellation point */
  kind = http_check_url(r, msg, sizeof msg);
  if (kind != NULL) return http_push_fail(L, msg, kind);
  s = session_take(L);
  box = lua_gettop(L);
  if (s == NULL) return http_push_fail(L, "not enough memory", "memory");
  if (!http_build_headers(L, s, r, msg, sizeof msg)) {
    lua_settop(L, box);
    session_put(L, box);
    return http_push_fail(L, msg, "header");
  }
  rc = (int)http_configure(s, r);
  t0 = http_now();
  if (rc == CURLE_OK) rc = transfer(L, s);
  if (rc < 0) {                                     /* cancelled: raise it again */
    session_put(L, box);
    return lua_error(L);
  }
  if (rc != CURLE_OK) {
    kind = http_failure(s, rc, msg, sizeof msg);
    hbuf_trim(&s->body);
    hbuf_trim(&s->head);
    session_put(L, box);
    return http_push_fail(L, msg, kind);
  }
  http_push_response(L, s, http_now() - t0);
  hbuf_trim(&s->body);
  hbuf_trim(&s->head);
  session_put(L, box);
  return 1;
}

/* Read the arguments of get (url[, opts]) or of request ({url=, ...}) into
** r; their values stay on the stack. */
void http_args(lua_State *L, request_t *r, int is_get) {
  memset(r, 0, sizeof *r);
  if (is_get) {
    r->url = luaL_checklstring(L, 1, &r->url_len);
    if (!lua_isnoneornil(L, 2) && !lua_istable(L, 2))
      luaL_argerror(L, 2, lua_pushfstring(L, "table expected, got %s", luaL_typename(L, 2)));
    lua_settop(L, 2);
    read_options(L, r, lua_istable(L, 2) ? 2 : 0, 2, 0);
    return;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "url");
  if (lua_type(L, -1) != LUA_TSTRING) opt_error(L, 1, "url", "a string");
  r->url = lua_tolstring(L, -1, &r->url_len);
  read_options(L, r, 1, 1, 1);
}

/* http.get(url[, opts]) -> response | nil, message, kind */
static int http_get(lua_State *L) {
  request_t r;
  http_args(L, &r, 1);
  return perform(L, &r);
}

/* http.request{url=, method=, body=, headers=, ...} -> response | nil, message, kind */
static int http_request(lua_State *L) {
  request_t r;
  http_args(L, &r, 0);
  return perform(L, &r);
}

static const luaL_Reg http_funcs[] = {
  {"get", http_get},
  {"request", http_request},
  {"get_async", http_get_async},
  {"request_async", http_request_async},
  {"_inflight", http_inflight},
  {"_guard", http_guard},
  {"_driver", http_driver},
  {NULL, NULL}
};

/* require("threading.core")._wait_point, in protected mode. */
static int require_core(lua_State *L) {
  compat_require(L, "threading.core");
  lua_getfield(L, -1, "_wait_point");
  return 1;
}

/* Push the cancellation probe: the core's _wait_point, a C function kept in
** its shared library, which is never unloaded. Its address is learnt once
** per process; later states (a new thread's, say) push it directly instead
** of searching package.path and package.cpath for the core again. Pushes
** nil if the core cannot be loaded: requests are then not cancellable. */
static void push_probe(lua_State *L) {
  lua_CFunction f = atomic_load(&probe_fn);
  if (f != NULL) {
    lua_pushcfunction(L, f);
    return;
  }
  lua_pushcfunction(L, require_core);
  if (lua_pcall(L, 0, 1, 0) != 0 || !lua_iscfunction(L, -1) ||
      (f = lua_tocfunction(L, -1)) == NULL) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  atomic_store(&probe_fn, f);
}

/* If this state has loaded threading.async, let it wrap get and request of
** the module table at the top (inside a task they wait on a future; see
** async.lua). async.lua does the same when it is loaded second. */
static void adopt_by_async(lua_State *L) {
  int m = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "threading.async");
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "_adopt_http");
      if (lua_isfunction(L, -1)) {
        lua_pushvalue(L, m);
        (void)lua_pcall(L, 1, 0, 0);      /* the blocking functions stay if it fails */
      }
    }
  }
  lua_settop(L, m);
}

/* Register the metatable `name` of a private box whose __gc is gc. */
void http_gc_metatable(lua_State *L, const char *name, lua_CFunction gc) {
  if (luaL_newmetatable(L, name)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushliteral(L, "private");
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
}

__attribute__((visibility("default"))) int luaopen_threading_http(lua_State *L);

int luaopen_threading_http(lua_State *L) {
  const curl_version_info_data *v;
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return luaL_error(L, "cannot initialise libcurl: %s", curl_easy_strerror(global_rc));
  http_gc_metatable(L, SESSION_MT, session_gc);
  http_io_open(L);
  lua_newtable(L);
  push_probe(L);
  luaL_setfuncs(L, http_funcs, 1);
  v = curl_version_info(CURLVERSION_NOW);
  lua_pushstring(L, v != NULL ? v->version : "?");
  lua_setfield(L, -2, "curl_version");
  adopt_by_async(L);
  return 1;
}
