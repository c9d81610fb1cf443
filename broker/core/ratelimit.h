/* ratelimit.h - token buckets keyed by a client address or a bearer token,
 * in a table of fixed size so that a flood of new keys cannot grow memory. */
#ifndef OH_RATELIMIT_H
#define OH_RATELIMIT_H

#include "core/oh.h"

typedef struct oh_ratelimit oh_ratelimit;

/* RATE requests per second with bursts of up to 2 * RATE (at least 1),
 * remembering at most SLOTS keys (rounded up to a power of two). Keys are
 * kept only as a SHA-256 digest, so tokens are not retained in memory.
 * NULL when RATE <= 0 (no limit) or out of memory. Free with
 * oh_ratelimit_free(). Not thread-safe: one owner thread (the gateway's
 * service thread). */
oh_ratelimit *oh_ratelimit_new(double rate, size_t slots);
void oh_ratelimit_free(oh_ratelimit *rl);

/* Takes one token from KEY's bucket at time NOW_MS (monotonic). Returns 0
 * when allowed, otherwise the whole seconds (>= 1) until a token is
 * available, for Retry-After. A NULL RL allows everything. When the table
 * is full, the key with the fullest bucket in the probe window is
 * forgotten (a new key starts full anyway): memory stays bounded, and a key
 * being limited is forgotten only when its window holds no idler key. */
int oh_ratelimit_take(oh_ratelimit *rl, const void *key, size_t keylen, int64_t now_ms);

#endif
