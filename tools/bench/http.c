/* http.c - the HTTP load driver: CONCURRENCY keep-alive connections on one
 * libcurl multi handle, each slot reissuing as soon as its answer is in (or
 * on a fixed schedule when a rate is given), with per-request latency. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

struct slot {
    CURL *easy;
    struct curl_slist *hdrs;
    size_t i;
    int64_t sent_us;
    char *buf;
    size_t len, cap;
    bool busy;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *opaque)
{
    struct slot *s = opaque;
    size_t n = sz * nm;
    if (s->len + n + 1 > s->cap) {
        size_t cap = (s->len + n + 1) * 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) return 0;
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return n;
}

static void issue(struct bench_http_run *r, CURLM *m, struct slot *s, size_t i)
{
    struct bench_http_req q = {0};
    r->gen(r->opaque, i, &q);
    char url[1024];
    snprintf(url, sizeof url, "%s%s", r->base_url, q.path);
    curl_easy_setopt(s->easy, CURLOPT_URL, url);
    curl_slist_free_all(s->hdrs);
    s->hdrs = curl_slist_append(NULL, "Expect:");
    if (q.body) s->hdrs = curl_slist_append(s->hdrs, "Content-Type: application/json");
    for (int k = 0; k < 4 && q.hdr[k]; k++)
        s->hdrs = curl_slist_append(s->hdrs, q.hdr[k]);
    curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hdrs);
    if (q.body) {
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, q.body);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q.len);
    } else {
        curl_easy_setopt(s->easy, CURLOPT_HTTPGET, 1L);
    }
    s->i = i;
    s->len = 0;
    if (s->buf) s->buf[0] = '\0';
    s->busy = true;
    s->sent_us = bench_now_us();
    curl_multi_add_handle(m, s->easy);
}

int bench_http_load(struct bench_http_run *r)
{
    CURLM *m = curl_multi_init();
    if (!m) return -1;
    int nc = r->concurrency > 0 ? r->concurrency : 1;
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)nc);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)nc);
    struct slot *slots = calloc((size_t)nc, sizeof *slots);
    if (!slots) {
        curl_multi_cleanup(m);
        return -1;
    }
    for (int k = 0; k < nc; k++) {
        CURL *e = curl_easy_init();
        slots[k].easy = e;
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[k]);
        curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[k]);
        curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    }
    bench_hist_reset(&r->lat);
    r->ok = r->failed = 0;
    size_t next = 0, done = 0;
    int64_t t0 = bench_now_us();
    while (done < next || (next < r->n && !(r->stop && *r->stop))) {
        /* hand out free slots: at once, or when the schedule says so */
        int64_t now = bench_now_us();
        for (int k = 0; k < nc && next < r->n && !(r->stop && *r->stop); k++) {
            if (slots[k].busy) continue;
            if (r->rate > 0 && now < t0 + (int64_t)((double)next * 1e6 / r->rate)) break;
            issue(r, m, &slots[k], next++);
        }
        int running;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left, freed = 0;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            struct slot *s;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            long status = 0;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            int64_t lat = bench_now_us() - s->sent_us;
            curl_multi_remove_handle(m, msg->easy_handle);
            s->busy = false;
            freed++;
            done++;
            if (status >= 200 && status < 300) {
                r->ok++;
                bench_hist_record(&r->lat, lat);
            } else {
                r->failed++;
            }
            if (r->done)
                r->done(r->opaque, s->i, status, s->buf ? s->buf : "", s->len, s->sent_us, lat);
        }
        int wait_ms = 50;
        if (r->rate > 0 && next < r->n) {
            int64_t due = t0 + (int64_t)((double)next * 1e6 / r->rate) - bench_now_us();
            /* rounded up: a 0 ms poll until the next send time spun a core the
             * daemon and the WebSocket clients need */
            wait_ms = due <= 0 ? 0 : (int)((due + 999) / 1000);
        }
        bool can_issue = freed && next < r->n && !(r->stop && *r->stop);
        if (!(can_issue && (r->rate <= 0 || wait_ms == 0)))
            curl_multi_poll(m, NULL, 0, wait_ms > 50 ? 50 : wait_ms, NULL);
    }
    r->elapsed_s = (double)(bench_now_us() - t0) / 1e6;
    for (int k = 0; k < nc; k++) {
        curl_easy_cleanup(slots[k].easy);
        curl_slist_free_all(slots[k].hdrs);
        free(slots[k].buf);
    }
    free(slots);
    curl_multi_cleanup(m);
    return 0;
}

static size_t on_get(char *p, size_t sz, size_t nm, void *opaque)
{
    return on_body(p, sz, nm, opaque);
}

long bench_http_get(const char *url, const char *bearer, char **body)
{
    CURL *e = curl_easy_init();
    if (!e) return 0;
    struct slot s = {0};
    struct curl_slist *h = NULL;
    char auth[1024];
    if (bearer) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", bearer);
        h = curl_slist_append(h, auth);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_get);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (body)
        *body = s.buf;
    else
        free(s.buf);
    return status;
}

long bench_http_post(const char *url, const char *header, const char *body, char **answer)
{
    CURL *e = curl_easy_init();
    if (!e) return 0;
    struct slot s = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (header) h = curl_slist_append(h, header);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_get);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    if (answer)
        *answer = s.buf;
    else
        free(s.buf);
    return status;
}
