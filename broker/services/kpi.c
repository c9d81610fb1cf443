/* kpi.c - the KPI service (role kpi): consumes the timeline as the group
 * omnihub-kpi, folds each conversation's messages and state changes into
 * its episode's figures (kpi_fold.c; a message from the record's metadata,
 * its body unparsed) and stores every finished episode, with the group's
 * position, in one store transaction per batch; the
 * reports (GET /v1/reports/kpis) aggregate those rows in the store. The
 * per-conversation state lives in memory and is rebuilt from the stored
 * history when missing (a restart, a rebalance, an eviction), so a replay
 * writes the very same rows again: nothing is lost or counted twice. Runs
 * on the thread "oh-kpi". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "core/map.h"
#include "core/metrics.h"
#include "services/kpi_fold.h"
#include "services/service.h"

#define CONVS_MAX 100000 /* conversations kept in memory; past it all are dropped */
#define PAGE      500    /* history rows read per call while rebuilding */

struct entry {
    struct oh_map_node node; /* keyed by C.ID */
    struct oh_kpi_conv c;
};

#define LABELS_MAX 64 /* distinct channel labels on /metrics; the rest are "other" */

struct oh_kpi {
    oh_hub *hub;
    oh_map convs;
    struct oh_store_episode *rows; /* the batch's rows to store */
    size_t nrows, caprows;
    char labels[LABELS_MAX][72]; /* the channel labels used so far */
    int nlabels;
};

static const double response_buckets[] = {1,   5,    15,   30,   60,    120,   300,
                                          600, 1800, 3600, 7200, 14400, 28800, 86400};

static void forget_all(struct oh_kpi *k)
{
    for (struct oh_map_node *n = k->convs.first, *next; n; n = next) {
        next = n->next;
        free(oh_map_entry(n, struct entry, node));
    }
    oh_map_clear(&k->convs);
}

static struct oh_kpi_conv *lookup(struct oh_kpi *k, const char *conv)
{
    struct entry *e = oh_map_entry(oh_map_get(&k->convs, conv, strlen(conv)), struct entry, node);
    return e ? &e->c : NULL;
}

static int add_row(struct oh_kpi *k, const struct oh_store_episode *row)
{
    if (k->nrows == k->caprows) {
        size_t cap = k->caprows ? k->caprows * 2 : 64;
        struct oh_store_episode *r = realloc(k->rows, cap * sizeof *r);
        if (!r) return OH_ENOMEM;
        k->rows = r;
        k->caprows = cap;
    }
    k->rows[k->nrows++] = *row;
    return OH_OK;
}

/* The histograms' labels: the channel as events name it, suffix included, the
 * first LABELS_MAX of them; any later one, or one a label cannot hold
 * as it is, is "other", so a stream of new names cannot grow /metrics. */
static void metric_labels(struct oh_kpi *k, char *out, size_t len, const char *channel)
{
    const char *name = "other";
    size_t n = strlen(channel);
    if (n && n < sizeof k->labels[0] && strcspn(channel, "\"\\\n") == n) {
        int i;
        for (i = 0; i < k->nlabels && strcmp(k->labels[i], channel) != 0; i++)
            ;
        if (i == k->nlabels && k->nlabels < LABELS_MAX)
            memcpy(k->labels[k->nlabels++], channel, n + 1);
        if (i < k->nlabels) name = k->labels[i];
    }
    snprintf(out, len, "channel=\"%s\"", name);
}

/* Keeps the rows that folding an event into C finished (OUT) for the
 * batch's store transaction. LIVE: a timeline record, whose figures go to
 * /metrics; a rebuild's are not observed again. (A rebuild's rows are
 * normally stored already, but not when the group starts on a log whose
 * beginning is gone: writing them again costs little.) */
static int keep(struct oh_kpi *k, const struct oh_kpi_conv *c, const struct oh_kpi_out *out,
                bool live)
{
    if (live && (out->frt_s >= 0 || out->handle_s >= 0)) {
        char lab[96];
        metric_labels(k, lab, sizeof lab, c->channel);
        if (out->frt_s >= 0) oh_metrics_observe("omnihub_first_response_seconds", lab, out->frt_s);
        if (out->handle_s >= 0) oh_metrics_observe("omnihub_handle_seconds", lab, out->handle_s);
    }
    for (int i = 0; i < out->nrows; i++)
        if (add_row(k, &out->rows[i])) return OH_ENOMEM;
    return OH_OK;
}

/* Folds EV into C and keeps what it finished. */
static int fold(struct oh_kpi *k, struct oh_kpi_conv *c, const json_t *ev, int64_t seq, bool live)
{
    struct oh_kpi_out out;
    oh_kpi_fold(c, ev, seq, &out);
    return keep(k, c, &out, live);
}

struct rebuild {
    struct oh_kpi *k;
    struct oh_kpi_conv *c;
    int64_t upto; /* fold seqs < UPTO */
    int64_t last;
    int rc;
};

static int rebuild_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct rebuild *b = opaque;
    if (seq >= b->upto) return 1;
    b->last = seq;
    json_t *ev = json_loadb(json, len, 0, NULL);
    if (ev) b->rc = fold(b->k, b->c, ev, seq, false);
    json_decref(ev);
    return b->rc ? 1 : 0;
}

/* C's state from its stored history before seq UPTO. False when the hub stopped
 * before the store answered. A store that is down is waited for; a history
 * that stays short (a read replica behind the timeline) for about a minute;
 * a damaged or missing one is folded as far as it goes (logged). */
static bool rebuild(struct oh_kpi *k, struct oh_kpi_conv *c, int64_t upto)
{
    int delay = 100, waited_ms = 0;
    for (;;) {
        size_t rows = k->nrows;
        char id[OH_ID_MAX];
        snprintf(id, sizeof id, "%s", c->id);
        oh_kpi_conv_init(c, id, NULL);
        struct rebuild b = {k, c, upto, 0, 0};
        int rc = OH_OK;
        while (rc == OH_OK && b.last < upto - 1 && !b.rc) {
            int64_t before = b.last;
            rc = oh_store_history(k->hub->store, c->id, b.last, PAGE, rebuild_row, &b);
            if (rc == OH_OK && b.last == before) break; /* nothing more stored */
        }
        /* seqs are dense: every one before UPTO must have been folded */
        if (rc == OH_OK && !b.rc && b.last == upto - 1) return true;
        bool lasting = rc == OH_EDAMAGED || rc == OH_ENOTFOUND;
        if (lasting || (rc == OH_OK && !b.rc && waited_ms > 60000)) {
            OH_ERROR("kpi", "%s: history %s before seq %lld; its figures start from there", c->id,
                     lasting ? oh_strerror(rc) : "incomplete", (long long)upto);
            return true;
        }
        k->nrows = rows;
        if (atomic_load(&k->hub->stopping)) return false;
        OH_WARN("kpi", "rebuilding %s: %s; retrying", c->id,
                rc     ? oh_strerror(rc)
                : b.rc ? oh_strerror(b.rc)
                       : "history incomplete");
        usleep((useconds_t)delay * 1000);
        waited_ms += delay;
        delay = delay < 5000 ? delay * 2 : delay;
    }
}

/* Past CONVS_MAX conversations in memory: drops those between episodes
 * (the likeliest to stay quiet), or all; rebuilt when seen again. */
static void trim(struct oh_kpi *k)
{
    for (struct oh_map_node *n = k->convs.first, *next; n; n = next) {
        next = n->next;
        struct entry *e = oh_map_entry(n, struct entry, node);
        if (e->c.in_episode) continue;
        oh_map_del(&k->convs, n);
        free(e);
    }
    if (k->convs.n > CONVS_MAX) forget_all(k);
}

static struct oh_kpi_conv *conv_for(struct oh_kpi *k, const char *conv, int64_t seq, bool *ok)
{
    struct oh_kpi_conv *c = lookup(k, conv);
    *ok = true;
    if (c) return c;
    struct entry *e = calloc(1, sizeof *e);
    if (!e) {
        *ok = false;
        return NULL;
    }
    oh_kpi_conv_init(&e->c, conv, NULL);
    if (seq > 1 && !rebuild(k, &e->c, seq)) {
        free(e);
        *ok = false;
        return NULL;
    }
    if (oh_map_put(&k->convs, &e->node, e->c.id, strlen(e->c.id))) {
        free(e);
        *ok = false;
        return NULL;
    }
    return &e->c;
}

/* One timeline record; false when the hub stopped first. */
static bool consider(struct oh_kpi *k, const struct oh_log_record *r)
{
    const struct oh_log_meta *m = &r->meta;
    if (m->type && !oh_kpi_wants(m->type)) return true;
    /* most records are messages whose metadata say all the fold reads */
    if (m->subject && m->seq > 0 && m->time) {
        bool ok;
        struct oh_kpi_conv *c = conv_for(k, m->subject, m->seq, &ok);
        struct oh_kpi_out out;
        if (!c) return ok;
        if (oh_kpi_fold_meta(c, m, &out)) return keep(k, c, &out, true) == OH_OK;
    }
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const char *conv = ev ? oh_event_subject(ev) : NULL;
    json_int_t seq = json_integer_value(json_object_get(ev, "seq"));
    if (!conv || seq < 1 || !oh_kpi_wants(oh_event_get_type(ev))) {
        json_decref(ev);
        return true;
    }
    bool ok;
    struct oh_kpi_conv *c = conv_for(k, conv, seq, &ok);
    if (c && fold(k, c, ev, seq, true)) ok = false;
    json_decref(ev);
    return ok;
}

/* Rows of one conversation episode appear once: the last version of each
 * (one statement may not write a row twice). Sorted by key, later versions
 * after earlier ones (the position in the batch breaks ties). */
struct ranked {
    const struct oh_store_episode *e;
    size_t at;
};

static int by_episode(const void *pa, const void *pb)
{
    const struct ranked *a = pa, *b = pb;
    int c = strcmp(a->e->conversation_id, b->e->conversation_id);
    if (c) return c;
    if (a->e->episode != b->e->episode) return a->e->episode < b->e->episode ? -1 : 1;
    return a->at < b->at ? -1 : a->at > b->at;
}

static size_t dedup(struct oh_kpi *k)
{
    size_t n = k->nrows, out = 0;
    struct ranked *r = malloc((n ? n : 1) * sizeof *r);
    struct oh_store_episode *kept = malloc((n ? n : 1) * sizeof *kept);
    if (!r || !kept) {
        free(r);
        free(kept);
        return SIZE_MAX;
    }
    for (size_t i = 0; i < n; i++)
        r[i] = (struct ranked){&k->rows[i], i};
    qsort(r, n, sizeof *r, by_episode);
    for (size_t i = 0; i < n; i++)
        if (i + 1 == n || strcmp(r[i].e->conversation_id, r[i + 1].e->conversation_id) ||
            r[i].e->episode != r[i + 1].e->episode)
            kept[out++] = *r[i].e;
    if (out) memcpy(k->rows, kept, out * sizeof *kept);
    free(r);
    free(kept);
    return out;
}

/* The service's thread: the batch is committed once its rows and position
 * are stored. */
static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct oh_kpi *k = state;
    if (k->convs.n > CONVS_MAX) trim(k);
    struct oh_store_pos pos[64];
    size_t npos = 0, nrows = SIZE_MAX;
    while (nrows == SIZE_MAX) {
        k->nrows = npos = 0;
        int i = 0;
        while (i < n && consider(k, &recs[i])) {
            size_t p = 0;
            while (p < npos && pos[p].partition != recs[i].partition)
                p++;
            if (p == npos && npos < OH_ARRAY_SIZE(pos)) npos++;
            if (p < npos)
                pos[p] =
                    (struct oh_store_pos){OH_TOPIC_TIMELINE, recs[i].partition, recs[i].offset + 1};
            i++;
        }
        if (i == n) nrows = dedup(k);
        if (nrows != SIZE_MAX) break;
        /* out of memory or stopping, half-way through: the conversations
         * are rebuilt when the batch is folded again */
        forget_all(k);
        if (atomic_load(&k->hub->stopping)) return OH_ECLOSED;
        OH_ERROR("kpi", "out of memory; folding the batch again in 1 s");
        sleep(1);
    }
    int delay = 100, rc;
    while ((rc = oh_store_kpi_put(k->hub->store, OH_GROUP_KPI, k->rows, nrows, pos, npos))) {
        if (atomic_load(&k->hub->stopping)) {
            forget_all(k);
            return OH_ECLOSED;
        }
        OH_WARN("kpi", "storing %zu episode(s): %s; retrying", nrows, oh_strerror(rc));
        usleep((useconds_t)delay * 1000);
        delay = delay < 5000 ? delay * 2 : delay;
    }
    return OH_OK;
}

/* A rebalance: the partitions' conversations are rebuilt when seen again. */
static void rebalanced(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    forget_all(state);
}

static void stop(void *state)
{
    struct oh_kpi *k = state;
    if (!k) return;
    forget_all(k);
    free(k->rows);
    free(k);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    if (!hub->store) {
        oh_errf(err, errlen, "needs the store");
        return OH_EINVAL;
    }
    struct oh_kpi *k = calloc(1, sizeof *k);
    if (!k) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    k->hub = hub;
    oh_metrics_buckets("omnihub_first_response_seconds", response_buckets,
                       OH_ARRAY_SIZE(response_buckets));
    oh_metrics_buckets("omnihub_handle_seconds", response_buckets, OH_ARRAY_SIZE(response_buckets));
    oh_metrics_describe("omnihub_first_response_seconds",
                        "first response time of episodes (first inbound -> first agent message)");
    oh_metrics_describe("omnihub_handle_seconds",
                        "handle time of resolved episodes (open and assigned to an agent)");
    *state = k;
    return OH_OK;
}

const struct oh_service oh_service_kpi = {
    .name = "kpi",
    .role = "kpi",
    .group = OH_GROUP_KPI,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 512,
    .init = init,
    .process = process,
    .assigned = rebalanced,
    .revoked = rebalanced,
    .stop = stop,
    .lingers = true,
};
