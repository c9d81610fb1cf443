/* metrics.c - a small Prometheus registry: counters, gauges and latency
 * histograms keyed by name and label body, rendered as text format 0.0.4. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "metrics.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS OH_ARRAY_SIZE(buckets)

struct series {
    struct series *next;  /* hash chain */
    struct series *order; /* insertion order, for rendering */
    enum kind kind;
    char *name, *labels;
    double value; /* counter/gauge; histogram sum */
    uint64_t count, bucket[NBUCKETS];
};

struct help {
    struct help *next;
    char *name, *text;
};

#define NSLOTS 1024
static struct series *slots[NSLOTS];
static struct series *first, **last = &first;
static struct help *helps;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t hash(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (uint8_t)*a) * 16777619u;
    h = (h ^ '{') * 16777619u;
    for (; *b; b++)
        h = (h ^ (uint8_t)*b) * 16777619u;
    return h;
}

/* Finds or creates a series; called with the lock held. */
static struct series *lookup(const char *name, const char *labels, enum kind kind)
{
    if (!labels) labels = "";
    uint32_t h = hash(name, labels) % NSLOTS;
    for (struct series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
    struct series *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name)) || !(s->labels = strdup(labels))) {
        if (s) free(s->name);
        free(s);
        return NULL;
    }
    s->kind = kind;
    s->next = slots[h];
    slots[h] = s;
    *last = s;
    last = &s->order;
    return s;
}

void oh_metrics_inc(const char *name, const char *labels, uint64_t by)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, COUNTER);
    if (s) s->value += (double)by;
    pthread_mutex_unlock(&lock);
}

void oh_metrics_set(const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, GAUGE);
    if (s) s->value = value;
    pthread_mutex_unlock(&lock);
}

void oh_metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, HISTOGRAM);
    if (s) {
        s->value += seconds;
        s->count++;
        for (size_t i = 0; i < NBUCKETS; i++)
            if (seconds <= buckets[i]) s->bucket[i]++;
    }
    pthread_mutex_unlock(&lock);
}

void oh_metrics_describe(const char *name, const char *help)
{
    pthread_mutex_lock(&lock);
    struct help *h;
    for (h = helps; h; h = h->next)
        if (strcmp(h->name, name) == 0) break;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->name = strdup(name);
        h->text = strdup(help);
        h->next = helps;
        helps = h;
    }
    pthread_mutex_unlock(&lock);
}

double oh_metrics_value(const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&lock);
    uint32_t h = hash(name, labels ? labels : "") % NSLOTS;
    for (struct series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels ? labels : "") == 0)
            v = s->kind == HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&lock);
    return v;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
}

static const char *kind_name(enum kind k)
{
    return k == COUNTER ? "counter" : k == GAUGE ? "gauge" : "histogram";
}

/* Whether a family line (# TYPE) was already written for NAME. */
static bool seen_before(struct series *upto, const char *name)
{
    for (struct series *s = first; s && s != upto; s = s->order)
        if (strcmp(s->name, name) == 0) return true;
    return false;
}

char *oh_metrics_render(size_t *len)
{
    struct buf b = {0};
    put(&b, "%s", "");
    pthread_mutex_lock(&lock);
    /* families in first-seen order, all series of a family together */
    for (struct series *f = first; f; f = f->order) {
        if (seen_before(f, f->name)) continue;
        for (struct help *h = helps; h; h = h->next)
            if (strcmp(h->name, f->name) == 0) put(&b, "# HELP %s %s\n", f->name, h->text);
        put(&b, "# TYPE %s %s\n", f->name, kind_name(f->kind));
        for (struct series *s = f; s; s = s->order) {
            if (strcmp(s->name, f->name) != 0) continue;
            const char *sep = *s->labels ? "," : "";
            if (s->kind != HISTOGRAM) {
                put(&b, "%s%s%s%s %.17g\n", s->name, *s->labels ? "{" : "", s->labels,
                    *s->labels ? "}" : "", s->value);
                continue;
            }
            for (size_t i = 0; i < NBUCKETS; i++)
                put(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, buckets[i],
                    (unsigned long long)s->bucket[i]);
            put(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep,
                (unsigned long long)s->count);
            put(&b, "%s_sum%s%s%s %.9g\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", s->value);
            put(&b, "%s_count%s%s%s %llu\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&lock);
    if (len) *len = b.len;
    return b.p;
}
