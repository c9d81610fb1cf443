/* ratelimit.c - per-key token buckets in an open-addressed table of fixed
 * size: lookups scan a short probe window, a full table recycles the least
 * recently seen slot of that window. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "crypto.h"
#include "ratelimit.h"

#define WINDOW 16
#define KEYLEN 16

struct slot {
    uint8_t key[KEYLEN]; /* leading bytes of SHA-256(key) */
    bool used;
    double tokens;
    int64_t last_ms;
};

struct oh_ratelimit {
    double rate, burst;
    size_t mask;
    struct slot *slots;
};

oh_ratelimit *oh_ratelimit_new(double rate, size_t slots)
{
    if (rate <= 0) return NULL;
    size_t n = 64;
    while (n < slots && n < ((size_t)1 << 24))
        n <<= 1;
    oh_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl) return NULL;
    rl->slots = calloc(n, sizeof *rl->slots);
    if (!rl->slots) {
        free(rl);
        return NULL;
    }
    rl->rate = rate;
    rl->burst = rate * 2 < 1 ? 1 : rate * 2;
    rl->mask = n - 1;
    return rl;
}

void oh_ratelimit_free(oh_ratelimit *rl)
{
    if (!rl) return;
    free(rl->slots);
    free(rl);
}

/* The slot of KEY, or the one to give it: a free slot, else the least
 * recently used one of the window (whose bucket is then forgotten). */
static struct slot *find(oh_ratelimit *rl, const uint8_t *key)
{
    size_t h;
    memcpy(&h, key, sizeof h);
    struct slot *victim = NULL;
    for (size_t i = 0; i < WINDOW; i++) {
        struct slot *s = &rl->slots[(h + i) & rl->mask];
        if (s->used && memcmp(s->key, key, KEYLEN) == 0) return s;
        if (!victim || (victim->used && (!s->used || s->last_ms < victim->last_ms))) victim = s;
    }
    memcpy(victim->key, key, KEYLEN);
    victim->used = true;
    victim->tokens = rl->burst;
    victim->last_ms = INT64_MIN;
    return victim;
}

int oh_ratelimit_take(oh_ratelimit *rl, const void *key, size_t keylen, int64_t now_ms)
{
    if (!rl) return 0;
    uint8_t digest[OH_SHA256_LEN];
    oh_sha256(key, keylen, digest);
    struct slot *s = find(rl, digest);
    if (s->last_ms != INT64_MIN && now_ms > s->last_ms)
        s->tokens += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
    if (s->tokens > rl->burst) s->tokens = rl->burst;
    if (s->last_ms == INT64_MIN || now_ms > s->last_ms) s->last_ms = now_ms;
    if (s->tokens >= 1) {
        s->tokens -= 1;
        return 0;
    }
    double wait = ceil((1 - s->tokens) / rl->rate);
    return wait < 1 ? 1 : wait > 3600 ? 3600 : (int)wait;
}
