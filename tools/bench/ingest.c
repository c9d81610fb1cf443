/* ingest.c - the ingest scenario: signed deliveries per channel over
 * keep-alive connections, acknowledged once durable; nginx answering 200 to
 * the very same requests is the ceiling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

static void print_err(const char *what, const char *err)
{
    fprintf(stderr, "omnihub-bench: %s: %s\n", what, err);
}

/* The same requests against nginx: its rate and latency. */
static int ceiling(const struct bench_opts *o, struct bench_feed *f, struct bench_http_run *out)
{
    struct bench_nginx ng;
    char err[256];
    if (bench_nginx_start(&ng, err, sizeof err)) {
        print_err("nginx", err);
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->base_url = ng.url;
    out->n = f->n;
    out->concurrency = o->concurrency;
    out->gen = bench_feed_gen;
    out->opaque = f;
    int rc = bench_http_load(out);
    bench_nginx_stop(&ng);
    return rc;
}

int bench_ingest_run(const struct bench_opts *o, const char *channel, const char *variant,
                     const char *const *kv, struct bench_http_run *ceil_run)
{
    bool wa = strcmp(channel, "whatsapp") == 0;
    size_t n = o->messages > 0 ? (size_t)o->messages : 20000;
    int contacts = n < 100 ? (int)n : 100;
    struct bench_feed f;
    if (bench_feed_init(&f, channel, n, contacts, false)) {
        bench_feed_free(&f);
        return -1;
    }
    const char *wa_kv[] = {
        "whatsapp.app_secret",   BENCH_WA_SECRET,         "whatsapp.verify_token",
        "bench-verify",          "whatsapp.access_token", "bench-access",
        "whatsapp.api_base_url", "http://127.0.0.1:9",    NULL};
    const char *all_kv[40];
    int k = 0;
    for (const char *const *p = kv; p && *p && k < 20; p++)
        all_kv[k++] = *p;
    for (const char *const *p = wa ? wa_kv : NULL; p && *p; p++)
        all_kv[k++] = *p;
    all_kv[k] = NULL;
    struct bench_daemon d;
    char err[512];
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, all_kv, NULL, err, sizeof err)) {
        print_err("omnihubd", err);
        bench_feed_free(&f);
        return -1;
    }
    struct bench_proc p0 = {0}, p1 = {0};
    if (d.pid) bench_proc_read(d.pid, &p0);
    struct bench_http_run r = {.base_url = d.url,
                               .n = n,
                               .concurrency = o->concurrency,
                               .gen = bench_feed_gen,
                               .done = bench_feed_done,
                               .opaque = &f};
    bench_http_load(&r);
    if (d.pid) bench_proc_read(d.pid, &p1);
    double rate = (double)r.ok / r.elapsed_s;
    fprintf(stderr, "  %s %s: %zu acknowledged, %zu failed in %.2f s (%.0f msg/s)\n", channel,
            variant, r.ok, r.failed, r.elapsed_s, rate);

    size_t nconv = 0;
    const char *const *convs = bench_feed_convs(&f, d.url, &nconv);
    struct bench_check chk = {0};
    int crc = bench_check_history(d.url, convs, nconv, f.prefix, n, f.acked, 60, &chk);
    if (d.pid) { /* the peak includes materializing and reading back */
        struct bench_proc p2;
        if (bench_proc_read(d.pid, &p2) == 0) p1.hwm_kb = p2.hwm_kb;
    }

    /* the ceiling: measured once per run and shared by the variants */
    struct bench_http_run ng = {0};
    bool have_ceiling = false;
    if (ceil_run && ceil_run->ok > 0) {
        ng = *ceil_run;
        have_ceiling = true;
    } else if (!o->no_ceiling && ceiling(o, &f, &ng) == 0 && ng.ok > 0) {
        have_ceiling = true;
        if (ceil_run) *ceil_run = ng;
    }
    double ng_rate = have_ceiling ? (double)ng.ok / ng.elapsed_s : -1;
    double ratio = have_ceiling ? rate / ng_rate : -1;

    char name[32];
    snprintf(name, sizeof name, "ingest:%s", channel);
    struct bench_row row = {.scenario = name,
                            .variant = variant,
                            .unit = "msg/s",
                            .rate = rate,
                            .lat = &r.lat,
                            .ceiling_rate = ng_rate,
                            .ceiling_name = "nginx return 200, same requests",
                            .ratio = ratio,
                            .target = "omnihub/nginx >= 0.5",
                            .pass = ratio < 0 ? -1 : ratio >= 0.5,
                            .cpu_s = d.pid ? p1.cpu_s - p0.cpu_s : -1,
                            .hwm_kb = d.pid ? p1.hwm_kb : -1,
                            .acked = crc ? -1 : chk.acked,
                            .found = chk.found,
                            .dups = chk.dups};
    json_t *extra = json_pack("{s:I, s:I, s:I, s:I, s:i, s:i, s:o}", "sent", (json_int_t)n,
                              "failed", (json_int_t)r.failed, "seq_gaps", (json_int_t)chk.gaps,
                              "events_read", (json_int_t)chk.events, "concurrency", o->concurrency,
                              "conversations", (int)nconv, "ceiling_latency",
                              have_ceiling ? bench_hist_json(&ng.lat) : json_null());
    bench_report_row(&row, extra);
    bench_daemon_stop(&d);
    bench_feed_free(&f);
    return crc;
}

int bench_ingest(const struct bench_opts *o, const char *channel)
{
    return bench_ingest_run(o, channel, "embedded", NULL, NULL);
}
