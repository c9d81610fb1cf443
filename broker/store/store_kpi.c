/* store_kpi.c - the arithmetic of a KPI report for a backend that streams
 * episode rows instead of aggregating them in SQL (SQLite: one pass over
 * the rows of the range is three times faster than its GROUP BY and window
 * sort): sums and counts per key, and the exact nearest-rank p50 / p90 of
 * the first response times by selection. */
#include <stdlib.h>
#include <string.h>
#include "store/store_int.h"

struct acc {
    struct oh_store_kpi_row row;
    int64_t *frt; /* this key's first response times */
    size_t cap;
};

struct oh_kpi_acc {
    struct acc *a; /* open addressing on the key */
    size_t cap, n;
};

struct oh_kpi_acc *oh_kpi_acc_new(void)
{
    struct oh_kpi_acc *k = calloc(1, sizeof *k);
    if (k && !(k->a = calloc(k->cap = 64, sizeof *k->a))) {
        free(k);
        k = NULL;
    }
    return k;
}

void oh_kpi_acc_free(struct oh_kpi_acc *k)
{
    if (!k) return;
    for (size_t i = 0; i < k->cap; i++)
        free(k->a[i].frt);
    free(k->a);
    free(k);
}

static size_t key_hash(const char *key, bool null)
{
    uint64_t h = null ? 7 : 14695981039346656037ULL;
    for (; !null && *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return (size_t)h;
}

static struct acc *slot(struct acc *a, size_t cap, const char *key, bool null)
{
    for (size_t i = key_hash(key, null) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        struct acc *s = &a[i];
        if (!s->row.episodes) return s; /* empty */
        if (s->row.key_null == null && (null || strcmp(s->row.key, key) == 0)) return s;
    }
}

static int grow(struct oh_kpi_acc *k)
{
    size_t cap = k->cap * 2;
    struct acc *a = calloc(cap, sizeof *a);
    if (!a) return OH_ENOMEM;
    for (size_t i = 0; i < k->cap; i++)
        if (k->a[i].row.episodes) *slot(a, cap, k->a[i].row.key, k->a[i].row.key_null) = k->a[i];
    free(k->a);
    k->a = a;
    k->cap = cap;
    return OH_OK;
}

int oh_kpi_acc_add(struct oh_kpi_acc *k, const char *key, const struct oh_kpi_acc_ep *e)
{
    if (k->n * 2 >= k->cap && grow(k)) return OH_ENOMEM;
    bool null = key == NULL;
    struct acc *s = slot(k->a, k->cap, key ? key : "", null);
    struct oh_store_kpi_row *r = &s->row;
    if (!r->episodes) {
        snprintf(r->key, sizeof r->key, "%s", key ? key : "");
        r->key_null = null;
        r->frt_p50_ms = r->frt_p90_ms = -1;
        k->n++;
    }
    r->episodes++;
    if (e->frt_ms >= 0) {
        if (r->frt_n == (int64_t)s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            int64_t *f = realloc(s->frt, cap * sizeof *f);
            if (!f) return OH_ENOMEM;
            s->frt = f;
            s->cap = cap;
        }
        s->frt[r->frt_n++] = e->frt_ms;
        r->frt_sum_ms += e->frt_ms;
    }
    r->nrt_n += e->nrt_count;
    r->nrt_sum_ms += e->nrt_sum_ms;
    if (e->aht_ms >= 0) {
        r->aht_n++;
        r->aht_sum_ms += e->aht_ms;
    }
    r->resolution_sum_ms += e->resolution_ms;
    r->sla_met += !e->breached;
    r->bot_involved += e->bot_involved;
    r->bot_resolved += e->bot_resolved;
    return OH_OK;
}

int oh_kpi_acc_merge(struct oh_kpi_acc *dst, struct oh_kpi_acc *src)
{
    for (size_t i = 0; i < src->cap; i++) {
        struct acc *f = &src->a[i];
        if (!f->row.episodes) continue;
        if (dst->n * 2 >= dst->cap && grow(dst)) return OH_ENOMEM;
        struct acc *t = slot(dst->a, dst->cap, f->row.key, f->row.key_null);
        if (!t->row.episodes) { /* a key only SRC has: moved whole */
            *t = *f;
            f->frt = NULL;
            f->cap = 0;
            dst->n++;
            continue;
        }
        size_t need = (size_t)(t->row.frt_n + f->row.frt_n);
        if (need > t->cap) {
            int64_t *v = realloc(t->frt, need * sizeof *v);
            if (!v) return OH_ENOMEM;
            t->frt = v;
            t->cap = need;
        }
        if (f->row.frt_n)
            memcpy(t->frt + t->row.frt_n, f->frt, (size_t)f->row.frt_n * sizeof *t->frt);
        struct oh_store_kpi_row *a = &t->row;
        const struct oh_store_kpi_row *b = &f->row;
        a->episodes += b->episodes;
        a->frt_n += b->frt_n;
        a->frt_sum_ms += b->frt_sum_ms;
        a->nrt_n += b->nrt_n;
        a->nrt_sum_ms += b->nrt_sum_ms;
        a->aht_n += b->aht_n;
        a->aht_sum_ms += b->aht_sum_ms;
        a->resolution_sum_ms += b->resolution_sum_ms;
        a->sla_met += b->sla_met;
        a->bot_involved += b->bot_involved;
        a->bot_resolved += b->bot_resolved;
    }
    return OH_OK;
}

/* The K-th smallest (0-based) of V[0..N), partially reordering V. */
static int64_t select_kth(int64_t *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        int64_t pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        size_t i = lo, j = hi;
        while (i <= j) { /* Hoare partition around the median of three */
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                int64_t t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0) break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

static int by_key(const void *pa, const void *pb)
{
    const struct acc *a = *(struct acc *const *)pa, *b = *(struct acc *const *)pb;
    if (a->row.key_null || b->row.key_null) return (int)b->row.key_null - (int)a->row.key_null;
    return strcmp(a->row.key, b->row.key);
}

int oh_kpi_acc_emit(struct oh_kpi_acc *k, oh_store_kpi_fn fn, void *opaque)
{
    struct acc **order = calloc(k->n ? k->n : 1, sizeof *order);
    if (!order) return OH_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < k->cap; i++)
        if (k->a[i].row.episodes) order[n++] = &k->a[i];
    qsort(order, n, sizeof *order, by_key);
    int rc = OH_OK;
    for (size_t i = 0; i < n && rc == OH_OK; i++) {
        struct acc *s = order[i];
        size_t m = (size_t)s->row.frt_n;
        if (m) {
            /* nearest rank: the ceil(p * m)-th smallest */
            s->row.frt_p50_ms = select_kth(s->frt, m, (m + 1) / 2 - 1);
            s->row.frt_p90_ms = select_kth(s->frt, m, (9 * m + 9) / 10 - 1);
        }
        int stop = fn(opaque, &s->row);
        if (stop) rc = stop < 0 ? stop : OH_OK;
        if (stop) break;
    }
    free(order);
    return rc;
}
