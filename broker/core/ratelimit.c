/* ratelimit.c - per-key token buckets in an open-addressed table of fixed
 * size: lookups scan a short probe window; a full window recycles its
 * fullest bucket. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/ratelimit.h"

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

/* Tokens in S at NOW_MS once refilled. */
static double level(const oh_ratelimit *rl, const struct slot *s, int64_t now_ms)
{
    double t = s->tokens;
    if (now_ms > s->last_ms) t += (double)(now_ms - s->last_ms) * rl->rate / 1000.0;
    return t > rl->burst ? rl->burst : t;
}

/* The slot of KEY, or the one to give it: a free slot, else the fullest
 * bucket of the window (forgetting it loses the least: a full bucket is
 * what a new key gets anyway), the least recently used among equals. A key
 * being limited is thus crowded out only by a window full of limited keys. */
static struct slot *find(oh_ratelimit *rl, const uint8_t *key, int64_t now_ms)
{
    size_t h;
    memcpy(&h, key, sizeof h);
    struct slot *victim = NULL;
    double vlevel = 0;
    for (size_t i = 0; i < WINDOW; i++) {
        struct slot *s = &rl->slots[(h + i) & rl->mask];
        if (s->used && memcmp(s->key, key, KEYLEN) == 0) return s;
        if (victim && !victim->used) continue;
        double l = s->used ? level(rl, s, now_ms) : 0;
        if (!victim || !s->used || l > vlevel || (l == vlevel && s->last_ms < victim->last_ms)) {
            victim = s;
            vlevel = l;
        }
    }
    memcpy(victim->key, key, KEYLEN);
    victim->used = true;
    victim->tokens = rl->burst;
    victim->last_ms = now_ms;
    return victim;
}

int oh_ratelimit_take(oh_ratelimit *rl, const void *key, size_t keylen, int64_t now_ms)
{
    if (!rl) return 0;
    uint8_t digest[OH_SHA256_LEN];
    oh_sha256(key, keylen, digest);
    struct slot *s = find(rl, digest, now_ms);
    s->tokens = level(rl, s, now_ms);
    if (now_ms > s->last_ms) s->last_ms = now_ms;
    if (s->tokens >= 1) {
        s->tokens -= 1;
        return 0;
    }
    double wait = ceil((1 - s->tokens) / rl->rate);
    return wait < 1 ? 1 : wait > 3600 ? 3600 : (int)wait;
}
