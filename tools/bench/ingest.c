/* ingest.c - the ingest scenario: signed deliveries per channel over
 * keep-alive connections, acknowledged once durable, next to two ceilings
 * in the same run: nginx answering 200 to the very same requests, and Redis
 * appending the same payloads (XADD) with appendfsync always. The three
 * take turns over alternating rounds; correctness is checked afterwards,
 * in an untimed pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"

static void print_err(const char *what, const char *err)
{
    fprintf(stderr, "omnihub-bench: %s: %s\n", what, err);
}

/* One timed pass of F's requests against BASE. */
static void pass(const struct bench_opts *o, struct bench_feed *f, const char *base, int proto,
                 struct bench_http_run *out)
{
    memset(out, 0, sizeof *out);
    out->base_url = base;
    out->n = f->n;
    out->concurrency = o->concurrency;
    out->proto = proto;
    out->gen = proto == BENCH_PROTO_RESP ? bench_feed_gen_redis : bench_feed_gen;
    out->done = proto == BENCH_PROTO_RESP ? NULL : bench_feed_done;
    out->opaque = f;
    bench_http_load(out);
}

static double rate_of(const struct bench_http_run *r)
{
    return r->ok && r->elapsed_s > 0 ? (double)r->ok / r->elapsed_s : -1;
}

/* A thread's CPU seconds in a bench_proc_threads() row (0 when absent). */
static double cpu_of(const json_t *t)
{
    return json_real_value(json_object_get(t, "user_s")) +
           json_real_value(json_object_get(t, "sys_s"));
}

/* AFTER - BEFORE of bench_proc_threads' CPU seconds per thread name, as a
 * new object. */
static json_t *thread_delta(json_t *before, json_t *after)
{
    json_t *d = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(after, k, v)
    {
        double x = cpu_of(v) - cpu_of(json_object_get(before, k));
        if (x > 0.005) json_object_set_new(d, k, json_real(x));
    }
    return d;
}

/* AFTER - BEFORE of bench_proc_threads' rows, each figure per message
 * (CPU in µs, switches as counts) over N messages, as a new object. */
static json_t *detail_per_msg(json_t *before, json_t *after, size_t n)
{
    json_t *d = json_object();
    const char *name, *k;
    json_t *t, *v;
    json_object_foreach(after, name, t)
    {
        json_t *b = json_object_get(before, name), *row = json_object();
        double any = 0;
        json_object_foreach(t, k, v)
        {
            double x = json_real_value(v) - json_real_value(json_object_get(b, k));
            bool secs = strcmp(k, "user_s") == 0 || strcmp(k, "sys_s") == 0;
            any += x;
            const char *key = strcmp(k, "user_s") == 0  ? "user_us"
                              : strcmp(k, "sys_s") == 0 ? "sys_us"
                                                        : k;
            json_object_set_new(row, key, json_real(x * (secs ? 1e6 : 1) / (double)n));
        }
        if (any > 0) /* a thread that neither ran nor slept is left out */
            json_object_set_new(d, name, row);
        else
            json_decref(row);
    }
    return d;
}

/* One line per thread on stderr: user/sys µs and switches per message. */
static void print_threads(const json_t *per_msg)
{
    const char *name;
    json_t *t;
    json_object_foreach((json_t *)per_msg, name, t)
    {
        fprintf(stderr, "    %-16s user %6.1f sys %6.1f us/msg, %.2f switches/msg (%.2f forced)\n",
                name, json_real_value(json_object_get(t, "user_us")),
                json_real_value(json_object_get(t, "sys_us")),
                json_real_value(json_object_get(t, "switches")),
                json_real_value(json_object_get(t, "involuntary_switches")));
    }
}

struct round {
    struct bench_feed f;
    struct bench_http_run om, ng, rd;
    struct bench_proc p0, p1;
    json_t *threads; /* daemon CPU per thread over the omnihub pass */
    json_t *per_msg; /* and per message, user and system apart, switches */
};

int bench_ingest(const struct bench_opts *o, const char *channel)
{
    bool wa = strcmp(channel, "whatsapp") == 0;
    size_t n = o->messages > 0 ? (size_t)o->messages : 20000;
    int contacts = n < 100 ? (int)n : 100;
    int nr = o->rounds > 0 ? o->rounds : 3;
    const char *wa_kv[] = {
        "whatsapp.app_secret",   BENCH_WA_SECRET,         "whatsapp.verify_token",
        "bench-verify",          "whatsapp.access_token", "bench-access",
        "whatsapp.api_base_url", "http://127.0.0.1:9",    NULL};
    struct bench_daemon d;
    char err[512];
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, wa ? wa_kv : NULL, NULL, err, sizeof err)) {
        print_err("omnihubd", err);
        return -1;
    }
    struct bench_nginx ng = {0};
    struct bench_redis rd = {0};
    bool have_ng = false, have_rd = false;
    if (!o->no_ceiling) {
        if (bench_nginx_start(&ng, err, sizeof err) == 0)
            have_ng = true;
        else
            print_err("nginx", err);
        if (bench_redis_start(&rd, err, sizeof err) == 0)
            have_rd = true;
        else
            print_err("redis", err);
    }
    struct round *rs = calloc((size_t)nr, sizeof *rs);
    int bad = rs ? 0 : -1;
    for (int k = 0; !bad && k < nr; k++) {
        struct round *r = &rs[k];
        if (bench_feed_init(&r->f, channel, n, contacts, false)) { /* built now, untimed */
            bad = -1;
            break;
        }
        /* ABA order across rounds: omnihub first, then last, then first */
        for (int step = 0; step < 3; step++) {
            int who = k % 2 ? 2 - step : step; /* 0 omnihub, 1 nginx, 2 redis */
            if (who == 0) {
                json_t *t0 = json_object(), *t1 = json_object();
                if (d.pid) {
                    bench_proc_threads(d.pid, t0);
                    bench_proc_read(d.pid, &r->p0);
                }
                pass(o, &r->f, d.url, BENCH_PROTO_HTTP, &r->om);
                if (d.pid) {
                    bench_proc_read(d.pid, &r->p1);
                    bench_proc_threads(d.pid, t1);
                }
                r->threads = thread_delta(t0, t1);
                if (d.pid && r->om.ok) r->per_msg = detail_per_msg(t0, t1, r->om.ok);
                json_decref(t0);
                json_decref(t1);
            } else if (who == 1 && have_ng) {
                pass(o, &r->f, ng.url, BENCH_PROTO_HTTP, &r->ng);
            } else if (who == 2 && have_rd) {
                pass(o, &r->f, rd.url, BENCH_PROTO_RESP, &r->rd);
            }
        }
        fprintf(stderr,
                "  %s round %d: omnihub %.0f msg/s (%zu failed), nginx %.0f req/s, redis %.0f "
                "XADD/s\n",
                channel, k + 1, rate_of(&r->om), r->om.failed, rate_of(&r->ng), rate_of(&r->rd));
        if (r->per_msg) print_threads(r->per_msg);
    }
    if (have_ng) bench_nginx_stop(&ng);
    if (have_rd) bench_redis_stop(&rd);

    /* correctness, untimed: every acknowledged message once in the history */
    for (int k = 0; rs && k < nr && rs[k].f.n; k++) {
        struct round *r = &rs[k];
        size_t nconv = 0;
        const char *const *convs = bench_feed_convs(&r->f, d.url, &nconv);
        struct bench_check chk = {0};
        int crc = bench_check_history(d.url, convs, nconv, r->f.prefix, n, r->f.acked, 60, &chk);
        if (crc) bad = -1;
        struct bench_proc pe;
        if (d.pid && bench_proc_read(d.pid, &pe) == 0) r->p1.hwm_kb = pe.hwm_kb;
        double rate = rate_of(&r->om), ngr = rate_of(&r->ng), rdr = rate_of(&r->rd);
        double ratio = rate > 0 && ngr > 0 ? rate / ngr : -1;
        double rratio = rate > 0 && rdr > 0 ? rate / rdr : -1;
        char name[32], variant[32], rvariant[40];
        snprintf(name, sizeof name, "ingest:%s", channel);
        snprintf(variant, sizeof variant, "round %d", k + 1);
        snprintf(rvariant, sizeof rvariant, "round %d vs redis", k + 1);
        double cpu = d.pid ? r->p1.cpu_s - r->p0.cpu_s : -1;
        struct bench_row row = {.scenario = name,
                                .variant = variant,
                                .unit = "msg/s",
                                .rate = rate,
                                .lat = &r->om.lat,
                                .ceiling_rate = ngr,
                                .ceiling_name = "nginx return 200, same requests",
                                .ratio = ratio,
                                .target = "omnihub/nginx >= 0.5",
                                .pass = ratio < 0 ? -1 : ratio >= 0.5,
                                .cpu_s = cpu,
                                .hwm_kb = d.pid ? r->p1.hwm_kb : -1,
                                .acked = crc ? -1 : chk.acked,
                                .found = chk.found,
                                .dups = chk.dups};
        json_t *extra = json_pack(
            "{s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "sent",
            (json_int_t)n, "failed", (json_int_t)r->om.failed, "seq_gaps", (json_int_t)chk.gaps,
            "events_read", (json_int_t)chk.events, "concurrency", o->concurrency, "conversations",
            (int)nconv, "round", k + 1, "ceiling_latency",
            r->ng.ok ? bench_hist_json(&r->ng.lat) : json_null(), "redis_rate",
            rdr > 0 ? json_real(rdr) : json_null(), "redis_latency",
            r->rd.ok ? bench_hist_json(&r->rd.lat) : json_null(), "ratio_redis",
            rratio > 0 ? json_real(rratio) : json_null(), "daemon_cpu_us_per_msg",
            cpu > 0 && r->om.ok ? json_real(cpu * 1e6 / (double)r->om.ok) : json_null(),
            "client_cpu_us_per_req",
            r->om.ok ? json_real(r->om.client_cpu_s * 1e6 / (double)r->om.ok) : json_null(),
            "daemon_cpu_s_per_thread", r->threads ? json_incref(r->threads) : json_null(),
            "daemon_threads_per_msg", r->per_msg ? json_incref(r->per_msg) : json_null());
        bench_report_row(&row, extra);
        if (rdr > 0) {
            struct bench_row rrow = {.scenario = name,
                                     .variant = rvariant,
                                     .unit = "msg/s",
                                     .rate = rate,
                                     .lat = &r->om.lat,
                                     .ceiling_rate = rdr,
                                     .ceiling_name = "Redis XADD, appendfsync always, same payloads",
                                     .ratio = rratio,
                                     .target = "omnihub/redis >= 1",
                                     .pass = rratio >= 1,
                                     .cpu_s = -1,
                                     .hwm_kb = -1,
                                     .acked = -1};
            bench_report_row(&rrow, json_pack("{s:o}", "ceiling_latency",
                                              bench_hist_json(&r->rd.lat)));
        }
    }
    for (int k = 0; rs && k < nr; k++) {
        json_decref(rs[k].threads);
        json_decref(rs[k].per_msg);
        bench_feed_free(&rs[k].f);
    }
    free(rs);
    bench_daemon_stop(&d);
    return bad;
}
