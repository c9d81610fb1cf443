/* fanout.c - ingest -> WebSocket push: N clients hold subscriptions while
 * signed messages arrive at a fixed rate (fanout) or as fast as they are
 * acknowledged (kafka and its embedded twin); push latency, memory per idle
 * connection, and every acknowledged message delivered once to each
 * subscriber and stored once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"

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

int bench_push_run(const struct bench_opts *o, struct bench_push_cfg *cfg, double ceiling_rate,
                   const char *ceiling_name)
{
    char err[512];
    struct bench_daemon d;
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, cfg->kv, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return -1;
    }
    int nconv = cfg->clients > 0 ? (cfg->clients + cfg->per_conv - 1) / cfg->per_conv
                                 : (cfg->conversations > 0 ? cfg->conversations : 100);
    int rc = -1;
    struct bench_ws *ws = NULL;
    char **per = NULL;
    /* one message per conversation first: the conversations exist */
    struct bench_feed warm = {0}, live = {0};
    const char *const *convs = bench_feed_warm(&warm, d.url, nconv, 60);
    if (!convs) goto out;
    ws = bench_ws_new(err, sizeof err);
    if (!ws) goto out;
    int total = cfg->clients + cfg->agents;
    per = calloc((size_t)total, sizeof *per);
    for (int i = 0; i < total; i++)
        per[i] = (char *)(i < cfg->clients ? convs[i / cfg->per_conv] : "*");
    char *tok = bench_agent_token();
    struct bench_proc before = {0}, idle = {0}, p0 = {0}, p1 = {0};
    if (d.pid) bench_proc_read(d.pid, &before);
    struct bench_ws_spec spec = {.base_url = d.url,
                                 .n = total,
                                 .conv = (const char *const *)per,
                                 .nconv = total,
                                 .token = tok};
    int64_t t0 = bench_now_us();
    int up = bench_ws_connect(ws, &spec, 180);
    double connect_s = (double)(bench_now_us() - t0) / 1e6;
    free(tok);
    bench_ws_run(ws, NULL, 1000); /* settle */
    if (d.pid) bench_proc_read(d.pid, &idle);
    double per_conn_kib = up > 0 && d.pid ? (double)(idle.rss_kb - before.rss_kb) / (double)up : -1;
    fprintf(stderr, "  %s %s: %d/%d WebSocket clients subscribed in %.1f s (%.1f KiB each)\n",
            cfg->scenario, cfg->variant, up, total, connect_s, per_conn_kib);

    if (bench_feed_init(&live, "api", cfg->messages, nconv, true)) goto out;
    memcpy(live.account, warm.account, sizeof live.account); /* the same conversations */
    bench_ws_track(ws, live.prefix, cfg->messages);
    bench_ws_reset_stats(ws);
    struct feeder fd = {.run = {.base_url = d.url,
                                .n = cfg->messages,
                                .concurrency = cfg->concurrency,
                                .rate = cfg->rate,
                                .gen = bench_feed_gen,
                                .done = bench_feed_done,
                                .opaque = &live},
                        .ws = ws};
    if (d.pid) bench_proc_read(d.pid, &p0);
    pthread_t th;
    pthread_create(&th, NULL, feed_thread, &fd);
    while (!fd.done)
        bench_ws_run(ws, &fd.done, 200);
    pthread_join(th, NULL);
    if (d.pid) bench_proc_read(d.pid, &p1);
    /* drain: what was acknowledged must reach every subscriber */
    int per_msg = (cfg->clients > 0 ? cfg->per_conv : 0) + cfg->agents;
    uint64_t want = (uint64_t)live.nacked * (uint64_t)per_msg;
    int64_t drain_end = bench_now_us() + 15 * 1000000LL;
    struct bench_ws_stats st;
    for (;;) {
        bench_ws_stats(ws, &st);
        if (st.live >= want || bench_now_us() > drain_end) break;
        bench_ws_run(ws, NULL, 100);
    }
    bench_ws_stats(ws, &st);
    const unsigned *cnt = bench_ws_counts(ws);
    long push_missing = 0, push_dups = 0, short_msgs = 0;
    for (size_t i = 0; i < cfg->messages; i++) {
        if (live.acked[i] && cnt[i] < (unsigned)per_msg) {
            push_missing += per_msg - (long)cnt[i];
            short_msgs++;
        }
        if (cnt[i] > (unsigned)per_msg) push_dups += (long)cnt[i] - per_msg;
    }
    cfg->acked_rate = (double)fd.run.ok / fd.run.elapsed_s;
    cfg->push = st.push;
    fprintf(stderr, "  %s %s: %zu acknowledged (%.0f/s), %llu pushes, %ld missing, %ld dup\n",
            cfg->scenario, cfg->variant, fd.run.ok, cfg->acked_rate, (unsigned long long)st.live,
            push_missing, push_dups);

    struct bench_check chk = {0};
    int64_t tc = bench_now_us();
    int crc = bench_check_history(d.url, convs, (size_t)nconv, live.prefix, cfg->messages,
                                  live.acked, 60, &chk);
    fprintf(stderr, "  %s %s: history of %zu conversations checked in %.1f s\n", cfg->scenario,
            cfg->variant, (size_t)nconv, (double)(bench_now_us() - tc) / 1e6);
    struct bench_proc pe = {0};
    if (d.pid) bench_proc_read(d.pid, &pe);
    double p99 = (double)bench_hist_pct(&st.push, 99) / 1000.0;
    double ratio = ceiling_rate > 0 ? cfg->acked_rate / ceiling_rate : -1;
    char target[64];
    snprintf(target, sizeof target, "push p99 <= %.0f ms", cfg->p99_target_ms);
    bool ok_conn = up == total;
    struct bench_row row = {.scenario = cfg->scenario,
                            .variant = cfg->variant,
                            .unit = "msg/s",
                            .rate = cfg->acked_rate,
                            .lat = &st.push,
                            .ceiling_rate = ceiling_rate,
                            .ceiling_name = ceiling_name ? ceiling_name : "",
                            .ratio = ratio,
                            .target = cfg->p99_target_ms > 0 ? target : "",
                            .pass = cfg->p99_target_ms > 0 ? (p99 <= cfg->p99_target_ms && ok_conn)
                                                           : -1,
                            .cpu_s = d.pid ? p1.cpu_s - p0.cpu_s : -1,
                            .hwm_kb = d.pid ? pe.hwm_kb : -1,
                            .acked = crc ? -1 : chk.acked,
                            /* accounted for: stored once and pushed to each subscriber */
                            .found = chk.found > short_msgs ? chk.found - short_msgs : 0,
                            .dups = chk.dups + push_dups};
    json_t *extra = json_pack(
        "{s:i, s:i, s:i, s:f, s:o, s:o, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:i}",
        "clients", total, "clients_subscribed", up, "subscribers_per_message", per_msg, "connect_s",
        connect_s, "rss_per_idle_connection_kib",
        per_conn_kib < 0 ? json_null() : json_real(per_conn_kib), "catchup_latency",
        bench_hist_json(bench_ws_catchup(ws)), "offered_rate", cfg->rate, "pushes",
        (json_int_t)st.live, "push_missing", (json_int_t)push_missing, "push_duplicates",
        (json_int_t)push_dups, "push_seq_gaps", (json_int_t)st.gaps, "history_found",
        (json_int_t)chk.found, "history_duplicates", (json_int_t)chk.dups, "history_seq_gaps",
        (json_int_t)chk.gaps, "pushes_per_s", (double)st.live / fd.run.elapsed_s, "conversations",
        nconv);
    json_object_set_new(extra, "ack_latency", bench_hist_json(&fd.run.lat));
    json_object_set_new(extra, "clients_closed", json_integer((json_int_t)st.closed));
    json_object_set_new(extra, "ws_errors", json_integer((json_int_t)st.errors));
    bench_report_row(&row, extra);
    rc = crc || push_missing || push_dups ? 1 : 0;
out:
    bench_ws_free(ws);
    free(per);
    bench_feed_free(&warm);
    if (live.n) bench_feed_free(&live);
    bench_daemon_stop(&d);
    return rc;
}

int bench_fanout(const struct bench_opts *o)
{
    struct bench_push_cfg cfg = {
        .scenario = "fanout",
        .variant = "embedded",
        .clients = o->clients,
        .per_conv = o->per_conv,
        .agents = 1,
        .rate = o->rate,
        .messages = (size_t)o->rate * (size_t)o->seconds,
        /* enough connections that the offered rate holds while acks queue */
        .concurrency = o->concurrency > 256 ? o->concurrency : 256,
        .p99_target_ms = 50};
    return bench_push_run(o, &cfg, -1, NULL);
}
