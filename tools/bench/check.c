/* check.c - the correctness half of every scenario: read the histories back
 * through the REST API and account for every acknowledged message exactly
 * once, with dense seqs. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

struct buf {
    char *p;
    size_t len, cap;
};

static size_t on_data(char *p, size_t sz, size_t nm, void *opaque)
{
    struct buf *b = opaque;
    size_t n = sz * nm;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *nb = realloc(b->p, cap);
        if (!nb) return 0;
        b->p = nb;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

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

/* Reads one conversation into COUNTS; 0, or -1 on an HTTP failure. */
static int read_conv(CURL *e, const char *base, const char *conv, const char *prefix, size_t nmsg,
                     unsigned *counts, struct bench_check *out)
{
    int64_t after = 0;
    for (;;) {
        char url[512];
        snprintf(url, sizeof url, "%s/v1/conversations/%s/events?after=%lld&limit=1000", base, conv,
                 (long long)after);
        struct buf b = {0};
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
        long status = 0;
        if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        if (status == 404) {
            free(b.p);
            return 0; /* not materialized yet */
        }
        json_t *page = status == 200 && b.p ? json_loads(b.p, 0, NULL) : NULL;
        free(b.p);
        if (!page) return -1;
        json_t *evs = json_object_get(page, "events");
        size_t k;
        json_t *ev;
        json_array_foreach(evs, k, ev)
        {
            int64_t seq = json_integer_value(json_object_get(ev, "seq"));
            if (seq != after + 1) out->gaps++;
            after = seq;
            out->events++;
            json_t *data = json_object_get(ev, "data");
            long i =
                msg_index(json_string_value(json_object_get(data, "message_id")), prefix, nmsg);
            if (i >= 0) counts[i]++;
        }
        size_t got = json_array_size(evs);
        json_decref(page);
        if (got < 1000) return 0;
    }
}

int bench_check_history(const char *base_url, const char *const *convs, size_t nconv,
                        const char *prefix, size_t nmsg, const unsigned char *acked, int timeout_s,
                        struct bench_check *out)
{
    unsigned *counts = calloc(nmsg ? nmsg : 1, sizeof *counts);
    CURL *e = curl_easy_init();
    if (!counts || !e) {
        free(counts);
        curl_easy_cleanup(e);
        return -1;
    }
    char *tok = bench_agent_token();
    char auth[1024];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok ? tok : "");
    free(tok);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    int64_t deadline = bench_now_us() + (int64_t)timeout_s * 1000000;
    int rc = 0;
    for (;;) {
        memset(counts, 0, nmsg * sizeof *counts);
        memset(out, 0, sizeof *out);
        for (size_t c = 0; c < nconv && rc == 0; c++)
            rc = read_conv(e, base_url, convs[c], prefix, nmsg, counts, out);
        for (size_t i = 0; i < nmsg; i++) {
            if (acked[i]) {
                out->acked++;
                if (counts[i]) out->found++;
            }
            if (counts[i] > 1) out->dups += counts[i] - 1;
        }
        if (rc || out->found == out->acked || bench_now_us() > deadline) break;
        usleep(200000);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    free(counts);
    return rc;
}
