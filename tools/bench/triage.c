/* triage.c - the triage scenario: ingest with the enrichment service on
 * against off in the same run (alternating daemons), the daemon's extra CPU
 * per scored message, and the delay from a message's 202 to its
 * omnihub.message.enriched event on an agent's WebSocket at a fixed rate. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

/* The sum of every series of metric NAME on URL's /metrics; -1 when it
 * cannot be read. */
static double metric(const char *url, const char *name)
{
    char u[256], *body = NULL;
    snprintf(u, sizeof u, "%s/metrics", url);
    if (bench_http_get(u, NULL, &body) != 200 || !body) {
        free(body);
        return -1;
    }
    double sum = 0;
    size_t nl = strlen(name);
    for (char *line = body; line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        if (strncmp(line, name, nl) == 0 && (line[nl] == ' ' || line[nl] == '{')) {
            char *sp = strrchr(line, ' ');
            if (sp) sum += strtod(sp + 1, NULL);
        }
        line = next;
    }
    free(body);
    return sum;
}

/* Waits (up to TIMEOUT_S) until URL has materialized WANT events and, when
 * SCORED > 0, scored that many messages. Seconds waited, or -1. */
static double settle(const char *url, double want, double scored, int timeout_s)
{
    int64_t t0 = bench_now_us(), end = t0 + (int64_t)timeout_s * 1000000;
    while (bench_now_us() < end) {
        if (metric(url, "omnihub_sync_materialized_total") >= want &&
            (scored <= 0 || metric(url, "omnihub_triage_messages_total") >= scored))
            return (double)(bench_now_us() - t0) / 1e6;
        usleep(20000);
    }
    return -1;
}

struct ingest_result {
    double rate;   /* acknowledged per second */
    double cpu_s;  /* daemon CPU from the first post until everything settled */
    double wait_s; /* from the last 202 until everything settled */
    size_t acked;
    struct bench_hist lat;
};

static int ingest_once(const struct bench_opts *o, bool on, size_t n, struct ingest_result *out)
{
    const char *kv[] = {"triage.enabled", on ? "true" : "false", NULL};
    struct bench_daemon d;
    char err[512];
    if (bench_daemon_start(&d, o, kv, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return -1;
    }
    struct bench_feed f;
    int rc = -1;
    if (bench_feed_init(&f, "api", n, 100, false)) goto out;
    struct bench_proc p0 = {0}, p1 = {0};
    bench_proc_read(d.pid, &p0);
    struct bench_http_run r = {.base_url = d.url,
                               .n = n,
                               .concurrency = o->concurrency,
                               .gen = bench_feed_gen,
                               .done = bench_feed_done,
                               .opaque = &f};
    bench_http_load(&r);
    /* every message stored, and with triage its enriched event too */
    double acked = (double)r.ok;
    out->wait_s = settle(d.url, on ? 2 * acked : acked, on ? acked : 0, 60);
    bench_proc_read(d.pid, &p1);
    out->rate = (double)r.ok / r.elapsed_s;
    out->cpu_s = p1.cpu_s - p0.cpu_s;
    out->acked = r.ok;
    out->lat = r.lat;
    fprintf(stderr,
            "  triage %s: %zu acknowledged in %.2f s (%.0f msg/s), settled %.2f s later, "
            "daemon CPU %.2f s\n",
            on ? "on" : "off", r.ok, r.elapsed_s, out->rate, out->wait_s, out->cpu_s);
    rc = r.ok == n && out->wait_s >= 0 ? 0 : -1;
out:
    bench_feed_free(&f);
    bench_daemon_stop(&d);
    return rc;
}

/* ---- 202 -> enriched ---- */

struct delays {
    struct bench_feed *feed;
    pthread_mutex_t mu;
    json_t *index;    /* message event id -> its index */
    json_t *early;    /* message event id -> enriched receipt (before its 202 was read) */
    int64_t *ack_us;  /* when each 202 came, 0 none */
    int64_t *enr_us;  /* when each enriched event came, 0 none */
    size_t scored;    /* enriched events of this run received */
};

static void delay_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    bench_feed_gen(((struct delays *)opaque)->feed, i, req);
}

/* on the HTTP thread */
static void delay_done(void *opaque, size_t i, long status, const char *body, size_t len,
                       int64_t sent_us, int64_t lat_us)
{
    struct delays *d = opaque;
    bench_feed_done(d->feed, i, status, body, len, sent_us, lat_us);
    json_t *a = status == 202 && body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(a, "event_id"));
    if (id) {
        pthread_mutex_lock(&d->mu);
        d->ack_us[i] = sent_us + lat_us;
        json_t *e = json_object_get(d->early, id);
        if (e) d->enr_us[i] = json_integer_value(e);
        json_object_set_new(d->index, id, json_integer((json_int_t)i));
        pthread_mutex_unlock(&d->mu);
    }
    json_decref(a);
}

/* on the WebSocket thread */
static void delay_event(void *opaque, const char *json, size_t len, int64_t now_us)
{
    static const char mark[] = "\"omnihub.message.enriched\"";
    if (!memmem(json, len, mark, sizeof mark - 1)) return;
    struct delays *d = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    const char *id = json_string_value(
        json_object_get(json_object_get(ev, "data"), "message_event_id"));
    if (id) {
        pthread_mutex_lock(&d->mu);
        json_t *i = json_object_get(d->index, id);
        if (i) {
            size_t k = (size_t)json_integer_value(i);
            if (!d->enr_us[k]) d->scored++;
            if (!d->enr_us[k]) d->enr_us[k] = now_us;
        } else if (!json_object_get(d->early, id)) {
            json_object_set_new(d->early, id, json_integer(now_us));
            d->scored++;
        }
        pthread_mutex_unlock(&d->mu);
    }
    json_decref(ev);
}

struct feeder {
    struct bench_http_run run;
    struct bench_ws *ws;
    volatile int done;
};

static void *feed_thread(void *opaque)
{
    struct feeder *f = opaque;
    bench_http_load(&f->run);
    f->done = 1;
    bench_ws_wake(f->ws);
    return NULL;
}

static int delay_run(const struct bench_opts *o, struct bench_hist *h, double *rate, size_t *missing)
{
    const char *kv[] = {"triage.enabled", "true", NULL};
    struct bench_daemon dm;
    char err[512];
    if (bench_daemon_start(&dm, o, kv, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return -1;
    }
    size_t n = (size_t)o->rate * (size_t)o->seconds;
    struct bench_feed f = {0};
    struct delays d = {.feed = &f, .mu = PTHREAD_MUTEX_INITIALIZER};
    struct bench_ws *ws = NULL;
    int rc = -1;
    char *tok = bench_agent_token();
    if (bench_feed_init(&f, "api", n, 100, false) || !(d.index = json_object()) ||
        !(d.early = json_object()) || !(d.ack_us = calloc(n, sizeof *d.ack_us)) ||
        !(d.enr_us = calloc(n, sizeof *d.enr_us)) || !(ws = bench_ws_new(err, sizeof err)))
        goto out;
    const char *star[] = {"*"};
    struct bench_ws_spec spec = {.base_url = dm.url, .n = 1, .conv = star, .nconv = 1, .token = tok};
    if (bench_ws_connect(ws, &spec, 30) != 1) {
        fprintf(stderr, "omnihub-bench: the agent's WebSocket did not subscribe\n");
        goto out;
    }
    bench_ws_on_event(ws, delay_event, &d);
    struct feeder fd = {.run = {.base_url = dm.url,
                                .n = n,
                                .concurrency = o->concurrency,
                                .rate = o->rate,
                                .gen = delay_gen,
                                .done = delay_done,
                                .opaque = &d},
                        .ws = ws};
    pthread_t th;
    pthread_create(&th, NULL, feed_thread, &fd);
    while (!fd.done)
        bench_ws_run(ws, &fd.done, 200);
    pthread_join(th, NULL);
    int64_t end = bench_now_us() + 20 * 1000000LL;
    while (bench_now_us() < end) {
        pthread_mutex_lock(&d.mu);
        bool all = d.scored >= fd.run.ok;
        pthread_mutex_unlock(&d.mu);
        if (all) break;
        bench_ws_run(ws, NULL, 100);
    }
    bench_hist_reset(h);
    *missing = 0;
    for (size_t i = 0; i < n; i++) {
        if (!d.ack_us[i]) continue;
        if (!d.enr_us[i]) {
            (*missing)++;
            continue;
        }
        /* scored before the client read its 202: no delay to speak of */
        bench_hist_record(h, d.enr_us[i] > d.ack_us[i] ? d.enr_us[i] - d.ack_us[i] : 0);
    }
    *rate = (double)fd.run.ok / fd.run.elapsed_s;
    fprintf(stderr,
            "  triage delay: %zu acknowledged at %.0f msg/s, %zu enriched events seen, %zu "
            "missing; 202 -> enriched p50 %.1f ms, p99 %.1f ms\n",
            fd.run.ok, *rate, (size_t)h->n, *missing, (double)bench_hist_pct(h, 50) / 1000.0,
            (double)bench_hist_pct(h, 99) / 1000.0);
    rc = 0;
out:
    free(tok);
    bench_ws_free(ws);
    bench_feed_free(&f);
    json_decref(d.index);
    json_decref(d.early);
    free(d.ack_us);
    free(d.enr_us);
    bench_daemon_stop(&dm);
    return rc;
}

int bench_triage(const struct bench_opts *o)
{
    if (o->url) {
        fprintf(stderr, "omnihub-bench: triage starts its own daemons (no --url)\n");
        return 1;
    }
    size_t n = o->messages > 0 ? (size_t)o->messages : 10000;
    /* off, on, off, on: drift of the machine touches both alike */
    struct ingest_result res[2][2];
    for (int round = 0; round < 2; round++)
        for (int on = 0; on < 2; on++)
            if (ingest_once(o, on, n, &res[on][round])) return 1;
    double rate[2], cpu[2];
    struct bench_hist lat[2];
    for (int on = 0; on < 2; on++) {
        rate[on] = (res[on][0].rate + res[on][1].rate) / 2;
        cpu[on] = (res[on][0].cpu_s + res[on][1].cpu_s) / 2;
        lat[on] = res[on][0].lat;
        bench_hist_merge(&lat[on], &res[on][1].lat);
    }
    double ratio = rate[1] / rate[0];
    double extra_us = (cpu[1] - cpu[0]) / (double)n * 1e6;
    for (int on = 0; on < 2; on++) {
        struct bench_row row = {.scenario = "triage:ingest",
                                .variant = on ? "triage on" : "triage off",
                                .unit = "msg/s",
                                .rate = rate[on],
                                .lat = &lat[on],
                                .ceiling_rate = on ? rate[0] : -1,
                                .ceiling_name = on ? "the same ingest, triage off" : "",
                                .ratio = on ? ratio : -1,
                                .target = on ? "on/off >= 0.9" : "",
                                .pass = on ? ratio >= 0.9 : -1,
                                .cpu_s = cpu[on],
                                .hwm_kb = -1,
                                .acked = -1};
        json_t *extra = json_pack("{s:I, s:i, s:f, s:f, s:f, s:f}", "messages", (json_int_t)n,
                                  "concurrency", o->concurrency, "rate_round1", res[on][0].rate,
                                  "rate_round2", res[on][1].rate, "settle_s_round1",
                                  res[on][0].wait_s, "settle_s_round2", res[on][1].wait_s);
        if (on) json_object_set_new(extra, "daemon_cpu_us_per_message_extra", json_real(extra_us));
        bench_report_row(&row, extra);
    }
    fprintf(stderr, "  triage: on/off ingest %.2f, daemon CPU +%.1f us per scored message\n",
            ratio, extra_us);
    struct bench_hist *h = calloc(1, sizeof *h);
    double drate = 0;
    size_t missing = 0;
    int rc = h ? delay_run(o, h, &drate, &missing) : -1;
    if (rc == 0) {
        struct bench_row row = {.scenario = "triage:delay",
                                .variant = "202 -> enriched on WebSocket",
                                .unit = "msg/s",
                                .rate = drate,
                                .lat = h,
                                .ceiling_rate = -1,
                                .ratio = -1,
                                .target = "",
                                .pass = -1,
                                .cpu_s = -1,
                                .hwm_kb = -1,
                                .acked = -1};
        bench_report_row(&row, json_pack("{s:i, s:I}", "offered_rate", o->rate, "missing",
                                         (json_int_t)missing));
    }
    free(h);
    return rc || missing ? 1 : 0;
}
