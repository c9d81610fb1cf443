/* check.c - the correctness half of every scenario: read the histories back
 * through the REST API and account for every acknowledged message exactly
 * once, with dense seqs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

/* Index of message id ID ("...<prefix><i>"), -1 when not ours. */
static long msg_index(const char *id, const char *prefix, size_t nmsg)
{
    const char *p = id ? strstr(id, prefix) : NULL;
    if (!p) return -1;
    char *end;
    long i = strtol(p + strlen(prefix), &end, 10);
    if (end == p + strlen(prefix) || *end || i < 0 || (size_t)i >= nmsg) return -1;
    return i;
}

/* One pass: a page of every conversation in NEXT[] order, concurrently. */
struct pass {
    const char *const *convs;
    int64_t *after; /* per conversation: next page starts after; -1 done */
    size_t *todo, ntodo;
    const char *prefix;
    size_t nmsg;
    unsigned *counts;
    struct bench_check *out;
    char *auth;
    char (*path)[600];
    int failed;
};

static void page_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct pass *p = opaque;
    size_t c = p->todo[i];
    snprintf(p->path[i % 64], sizeof p->path[0],
             "/v1/conversations/%s/events?after=%lld&limit=1000", p->convs[c],
             (long long)p->after[c]);
    req->path = p->path[i % 64];
    req->hdr[0] = p->auth;
}

static void page_done(void *opaque, size_t i, long status, const char *body, size_t len,
                      int64_t sent_us, int64_t lat_us)
{
    struct pass *p = opaque;
    size_t c = p->todo[i];
    if (status == 404) { /* not materialized yet */
        p->after[c] = -1;
        return;
    }
    json_t *page = status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    if (!page) {
        p->failed = 1;
        p->after[c] = -1;
        return;
    }
    json_t *evs = json_object_get(page, "events");
    size_t k;
    json_t *ev;
    json_array_foreach(evs, k, ev)
    {
        int64_t seq = json_integer_value(json_object_get(ev, "seq"));
        if (seq != p->after[c] + 1) p->out->gaps++;
        p->after[c] = seq;
        p->out->events++;
        json_t *data = json_object_get(ev, "data");
        long m =
            msg_index(json_string_value(json_object_get(data, "message_id")), p->prefix, p->nmsg);
        if (m >= 0) p->counts[m]++;
    }
    if (json_array_size(evs) < 1000) p->after[c] = -1;
    json_decref(page);
}

/* Reads every conversation into COUNTS; 0, or -1 on an HTTP failure. */
static int read_all(const char *base, const char *const *convs, size_t nconv, struct pass *p)
{
    for (size_t c = 0; c < nconv; c++)
        p->after[c] = 0;
    for (;;) {
        p->ntodo = 0;
        for (size_t c = 0; c < nconv; c++)
            if (p->after[c] >= 0) p->todo[p->ntodo++] = c;
        if (!p->ntodo) return p->failed ? -1 : 0;
        /* at most 64 requests in flight: their paths live in p->path */
        struct bench_http_run r = {.base_url = base,
                                   .n = p->ntodo,
                                   .concurrency = 16,
                                   .gen = page_gen,
                                   .done = page_done,
                                   .opaque = p};
        bench_http_load(&r);
    }
}

int bench_check_history(const char *base_url, const char *const *convs, size_t nconv,
                        const char *prefix, size_t nmsg, const unsigned char *acked, int timeout_s,
                        struct bench_check *out)
{
    struct pass p = {.convs = convs, .prefix = prefix, .nmsg = nmsg, .out = out};
    p.counts = calloc(nmsg ? nmsg : 1, sizeof *p.counts);
    p.after = calloc(nconv ? nconv : 1, sizeof *p.after);
    p.todo = calloc(nconv ? nconv : 1, sizeof *p.todo);
    p.path = calloc(64, sizeof *p.path);
    char *tok = bench_agent_token();
    if (asprintf(&p.auth, "Authorization: Bearer %s", tok ? tok : "") < 0) p.auth = NULL;
    free(tok);
    int rc = p.counts && p.after && p.todo && p.path && p.auth ? 0 : -1;
    int64_t deadline = bench_now_us() + (int64_t)timeout_s * 1000000;
    while (rc == 0) {
        memset(p.counts, 0, nmsg * sizeof *p.counts);
        memset(out, 0, sizeof *out);
        p.failed = 0;
        rc = read_all(base_url, convs, nconv, &p);
        for (size_t i = 0; i < nmsg; i++) {
            if (acked[i]) {
                out->acked++;
                if (p.counts[i]) out->found++;
            }
            if (p.counts[i] > 1) out->dups += p.counts[i] - 1;
        }
        if (rc || out->found == out->acked || bench_now_us() > deadline) break;
        usleep(200000);
    }
    free(p.counts);
    free(p.after);
    free(p.todo);
    free(p.path);
    free(p.auth);
    return rc;
}
