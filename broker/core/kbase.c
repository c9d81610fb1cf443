/* kbase.c - the swap of knowledge-base indexes: a mutex guards only the
 * pointer and the hold count of each index (kbase.h). */
#include "core/kbase.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct snap {
    oh_kb *index;
    atomic_int holds; /* queries holding it, + 1 while it is current */
};

struct oh_kbase {
    pthread_mutex_t mu; /* guards cur and gen */
    struct snap *cur;
    uint64_t gen;      /* of cur */
    atomic_ulong next; /* handed out by oh_kbase_next_gen */
};

static void let_go(struct snap *s)
{
    if (s && atomic_fetch_sub(&s->holds, 1) == 1) {
        oh_kb_free(s->index);
        free(s);
    }
}

oh_kbase *oh_kbase_new(void)
{
    oh_kbase *kb = calloc(1, sizeof *kb);
    if (kb) pthread_mutex_init(&kb->mu, NULL);
    return kb;
}

void oh_kbase_free(oh_kbase *kb)
{
    if (!kb) return;
    let_go(kb->cur);
    pthread_mutex_destroy(&kb->mu);
    free(kb);
}

uint64_t oh_kbase_next_gen(oh_kbase *kb)
{
    return atomic_fetch_add(&kb->next, 1) + 1;
}

void oh_kbase_swap(oh_kbase *kb, oh_kb *index, uint64_t gen)
{
    struct snap *s = calloc(1, sizeof *s), *old = NULL;
    if (!s) {
        oh_kb_free(index);
        return;
    }
    s->index = index;
    atomic_init(&s->holds, 1);
    pthread_mutex_lock(&kb->mu);
    if (gen >= kb->gen) {
        old = kb->cur;
        kb->cur = s;
        kb->gen = gen;
        s = NULL;
    }
    pthread_mutex_unlock(&kb->mu);
    let_go(old);
    let_go(s); /* built from an older state than the current index */
}

const oh_kb *oh_kbase_get(oh_kbase *kb, void **ref)
{
    pthread_mutex_lock(&kb->mu);
    struct snap *s = kb->cur;
    if (s) atomic_fetch_add(&s->holds, 1);
    pthread_mutex_unlock(&kb->mu);
    *ref = s;
    return s ? s->index : NULL;
}

void oh_kbase_put(void *ref)
{
    let_go(ref);
}
