/* marks.c - the lossy (subject, seq) set of marks.h: one 64-bit hash of the
 * pair per slot, the slot chosen by the hash itself. */
#include "core/marks.h"
#include <stdatomic.h>
#include <stdlib.h>
#include "core/oh.h"

struct oh_marks {
    size_t mask;
    _Atomic uint64_t slot[]; /* 0: empty; a hash is never 0 (its low bit set) */
};

oh_marks *oh_marks_new(size_t slots)
{
    size_t n = 1;
    while (n < slots && n < ((size_t)1 << 30))
        n <<= 1;
    oh_marks *m = calloc(1, sizeof *m + n * sizeof m->slot[0]);
    if (m) m->mask = n - 1;
    return m;
}

void oh_marks_free(oh_marks *m)
{
    free(m);
}

/* FNV-1a of the subject, the seq folded in, and a finalizer (splitmix64's)
 * so that every bit of the slot index depends on both */
static uint64_t pair_hash(const char *subject, int64_t seq)
{
    uint64_t h = oh_fnv1a(subject) ^ ((uint64_t)seq * 0x9e3779b97f4a7c15ULL);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return (h ^ (h >> 31)) | 1;
}

void oh_marks_put(oh_marks *m, const char *subject, int64_t seq)
{
    if (!m || !subject) return;
    uint64_t h = pair_hash(subject, seq);
    atomic_store_explicit(&m->slot[h & m->mask], h, memory_order_release);
}

bool oh_marks_has(const oh_marks *m, const char *subject, int64_t seq)
{
    if (!m || !subject) return false;
    uint64_t h = pair_hash(subject, seq);
    return atomic_load_explicit(&((oh_marks *)m)->slot[h & m->mask], memory_order_acquire) == h;
}
