/*
** transfer.h: copy Lua values out of one state into a self-contained buffer,
** and from the buffer into another state.
**
** A buffer owns one reference to every module object it mentions; decoding
** gives each new handle a reference of its own, so a buffer may be decoded
** any number of times (Thread:join returns the results to every caller).
*/
#ifndef THREADING_TRANSFER_H
#define THREADING_TRANSFER_H

#include <stddef.h>

#include "compat.h"

#if !defined(TRANSFER_MAX_DEPTH)
#define TRANSFER_MAX_DEPTH 1000    /* nested tables/functions, both ways */
#endif

typedef struct transfer transfer_t;

/* Copy the n values at idx..idx+n-1 into a new buffer. Value k is named
** "root[first+k]" in refusals, or just "root" when first is 0 (then n is 1);
** first < 0 names a call: value 0 is "target", value k is "root[k]".
** Raises (with nothing leaked and L unchanged) when a value cannot move. */
TH_HIDDEN transfer_t *transfer_encode(lua_State *L, int idx, int n,
                                      const char *root, int first);
/* Push the buffer's values onto L; returns how many. Raises on failure
** (e.g. out of memory); the buffer stays the caller's to free. */
TH_HIDDEN int transfer_decode(lua_State *L, const transfer_t *buf);
/* core._register_class(mt, name[, movable]): a Lua function. */
TH_HIDDEN int transfer_register_class(lua_State *L);
/* Number of values in the buffer. */
TH_HIDDEN int transfer_count(const transfer_t *buf);
TH_HIDDEN size_t transfer_size(const transfer_t *buf);
/* Buffers are immutable once made and reference counted: retain one to
** decode it outside the lock that guards where it is stored. */
TH_HIDDEN transfer_t *transfer_retain(transfer_t *buf);
TH_HIDDEN void transfer_free(transfer_t *buf);   /* drops one reference */

/*
** A slot holds one value: nil, booleans, numbers, short strings and module
** objects inline (no allocation), anything else in a buffer. Queues and
** Values store slots. 24 bytes.
**
** A run is a slot followed by more: where a store has room for consecutive
** slots (a Queue's segments), a small table travels as one run of slots
** (TS_SMALL) instead of a buffer, so it needs no allocation on the way. A
** small table has at most TRANSFER_SMALL_FIELDS entries, no metatable, and
** only booleans, numbers and strings of at most TRANSFER_SMALL_STR bytes as
** its keys and values; it is not the sender's globals. Its run holds the
** sizes the receiver creates it with, then its entries (transfer.c). A run
** owns nothing: it may be copied byte for byte and dropped at any time.
*/
#define TSLOT_SHORT 22
#if !defined(TRANSFER_SMALL_FIELDS)
#define TRANSFER_SMALL_FIELDS 8
#endif
#if !defined(TRANSFER_SMALL_STR)
#define TRANSFER_SMALL_STR 32
#endif
enum { TS_NIL, TS_FALSE, TS_TRUE, TS_INT, TS_NUM, TS_STR, TS_OBJ, TS_BUF, TS_SMALL };
typedef union tslot {
  unsigned char tag;
  struct { unsigned char tag, len; char s[TSLOT_SHORT]; } str;
  struct {
    unsigned char tag;
    union {
      lua_Integer i;
      lua_Number n;
      struct object *obj;
      transfer_t *buf;
    } u;
  } v;
} tslot_t;

/* The bytes of a buffer that holds exactly one string (a slot's string too
** long to keep inline), or NULL for any other buffer. Pure C: reads only,
** so it may run under the lock that guards the slot. */
TH_HIDDEN const char *transfer_string(const transfer_t *buf, size_t *len);

#if COMPAT_INTEGERS
/* An integer against a float exactly as Lua 5.3+'s own == and < see them:
** -1, 0 or 1 when i is below, equal to or above f; 2 when f is NaN. The
** integer is never rounded through a float: 2^53 + 1 is above 2.0^53. */
static inline int transfer_cmp_int_num(lua_Integer i, lua_Number f) {
  const lua_Number two63 = -(lua_Number)LUA_MININTEGER;   /* 2^63, exact */
  lua_Integer t;
  lua_Number tf;
  if (f != f) return 2;
  if (f >= two63) return -1;
  if (f < -two63) return 1;
  t = (lua_Integer)f;               /* truncated; exact in this range */
  if (i != t) return i < t ? -1 : 1;
  tf = (lua_Number)t;               /* exact: t came from a float */
  return tf == f ? 0 : (tf < f ? -1 : 1);
}
#endif

/* Store the value at idx in *slot (which must be empty or TS_NIL); raises
** on refusal, naming it `root`, with *slot left as it was. */
TH_HIDDEN void transfer_slot_store(lua_State *L, int idx, tslot_t *slot,
                                   const char *root);

/* The longest run: a header of 6 bytes, then each entry's key and value
** as a tag and at most 1 + TRANSFER_SMALL_STR bytes. */
#define TSLOT_RUN_MAX \
  ((6 + TRANSFER_SMALL_FIELDS * 2 * (2 + TRANSFER_SMALL_STR) + sizeof(tslot_t) - 1) / \
   sizeof(tslot_t))
/* As transfer_slot_store, into run[0..TSLOT_RUN_MAX-1]: a small table
** becomes a run, anything else one slot. Returns the slots used. `type` is
** lua_type(L, idx), which a put has asked already (to refuse nil). Needs 3
** free stack slots, as any C function has on entry. */
TH_HIDDEN int transfer_slot_store_run(lua_State *L, int idx, int type, tslot_t *run,
                                      const char *root);
/* How many slots the run starting at *slot takes: 1 but for TS_SMALL. */
static inline int transfer_slot_cells(const tslot_t *slot) {
  return slot->tag == TS_SMALL ? slot->str.len : 1;
}
/* Push a slot's value (a copy for buffers). These four take a run at its
** first slot (the rest must follow it). */
TH_HIDDEN void transfer_slot_push(lua_State *L, const tslot_t *slot);
/* Push a slot's value and release what the slot owned, also when pushing
** fails (the slot is TS_NIL afterwards either way). */
TH_HIDDEN void transfer_slot_take(lua_State *L, tslot_t *slot);
/* Release what the slot owns and make it TS_NIL. */
TH_HIDDEN void transfer_slot_clear(tslot_t *slot);
/* Take a reference on what the slot owns, so that a copy of the slot made
** under a lock can be pushed after the lock is released. */
TH_HIDDEN void transfer_slot_retain(const tslot_t *slot);

#endif
