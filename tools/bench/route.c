/* route.c - the desk's routing and SLA clocks under load (issue 17,
 * `desk --agents N`): N agents online over WebSocket, new conversations at
 * --rate for --seconds, each assigned by the router and, with nobody
 * replying, breaching its 1 s first response target. Read back from the
 * histories: inbound (the request sent) -> the "routed" event's time, and
 * the breach's time - its deadline; every conversation routed and breached
 * exactly once. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include "bench.h"
#include "core/auth.h"
#include "core/event.h"

struct route_run {
    struct bench_feed feed;
    int64_t *sent_wall_ms; /* per delivery: when its request was sent (wall clock) */
    int64_t wall_minus_mono_us;
    struct bench_http_run run;
    volatile int done;
};

static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void route_done(void *opaque, size_t i, long status, const char *body, size_t len,
                       int64_t sent_us, int64_t lat_us)
{
    struct route_run *rr = opaque;
    rr->sent_wall_ms[i] = (sent_us + rr->wall_minus_mono_us) / 1000;
    bench_feed_done(&rr->feed, i, status, body, len, sent_us, lat_us);
}

static void route_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct route_run *rr = opaque;
    bench_feed_gen(&rr->feed, i, req);
}

static void *feed_thread(void *arg)
{
    struct route_run *rr = arg;
    bench_http_load(&rr->run);
    rr->done = 1;
    return NULL;
}

/* What one conversation's history says: 1 when both events are there. */
struct seen {
    int routed, breached;
    int64_t routed_ms, breach_ms, due_ms;
};

static int read_history(const char *base, const char *tok, const char *conv, struct seen *s)
{
    char url[512], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/conversations/%s/events?after=0&limit=100", base, conv);
    long st = bench_http_get(url, tok, &body);
    json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    memset(s, 0, sizeof *s);
    size_t k;
    json_t *ev;
    json_array_foreach(json_object_get(j, "events"), k, ev)
    {
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (!type || strcmp(type, "omnihub.conversation.updated") != 0) continue;
        const json_t *data = json_object_get(ev, "data");
        const char *reason = json_string_value(json_object_get(data, "reason"));
        int64_t t = 0;
        oh_time_parse(json_string_value(json_object_get(ev, "time")), &t);
        if (reason && strcmp(reason, "routed") == 0) {
            if (!s->routed++) s->routed_ms = t;
        } else if (reason && strcmp(reason, "sla_breach:frt") == 0) {
            if (!s->breached++) {
                s->breach_ms = t;
                const json_t *sla = json_object_get(json_object_get(data, "changes"), "sla");
                oh_time_parse(json_string_value(json_object_get(sla, "first_response_due")),
                              &s->due_ms);
            }
        }
    }
    json_decref(j);
    return s->routed && s->breached;
}

int bench_desk_route(const struct bench_opts *o)
{
    int agents = o->agents, rc = 1;
    size_t n = (size_t)o->rate * (size_t)o->seconds;
    struct bench_daemon d = {0};
    struct bench_ws *ws = NULL;
    struct route_run rr = {0};
    char err[512], cap[16], **toks = calloc((size_t)agents, sizeof *toks);
    /* room for every conversation of the run: the latency is the router's,
     * not a wait for a free slot */
    snprintf(cap, sizeof cap, "%zu", n / (size_t)agents + 2);
    const char *kv[] = {"routing.enabled",
                        "true",
                        "routing.capacity",
                        cap,
                        "sla.enabled",
                        "true",
                        "sla.frt_s.normal",
                        "1",
                        NULL};
    if (!toks) return 1;
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, kv, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: desk: omnihubd: %s\n", err);
        goto out;
    }
    for (int i = 0; i < agents; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "bench-agent-%d", i);
        toks[i] = oh_auth_issue(BENCH_JWT_SECRET, sub, "agent", "bench", 24 * 3600);
    }
    if (!(ws = bench_ws_new(err, sizeof err))) goto out;
    const char *star[] = {"*"};
    struct bench_ws_spec spec = {.base_url = d.url,
                                 .n = agents,
                                 .conv = star,
                                 .nconv = 1,
                                 .tokens = (const char *const *)toks,
                                 .ntokens = agents,
                                 .presence = "online"};
    int up = bench_ws_connect(ws, &spec, 60);
    bench_ws_run(ws, NULL, 500); /* the presence frames are read */
    fprintf(stderr, "  desk routing: %d/%d agents online\n", up, agents);
    if (bench_feed_init(&rr.feed, "api", n, (int)n, false)) goto out;
    if (!(rr.sent_wall_ms = calloc(n, sizeof *rr.sent_wall_ms))) goto out;
    rr.wall_minus_mono_us = wall_us() - bench_now_us();
    rr.run = (struct bench_http_run){.base_url = d.url,
                                     .n = n,
                                     .concurrency = o->concurrency,
                                     .rate = o->rate,
                                     .gen = route_gen,
                                     .done = route_done,
                                     .opaque = &rr};
    pthread_t th;
    pthread_create(&th, NULL, feed_thread, &rr);
    while (!rr.done)
        bench_ws_run(ws, &rr.done, 200);
    pthread_join(th, NULL);
    /* the last breaches are due 1 s after the last message */
    int64_t end = bench_now_us() + 20 * 1000000LL;
    struct bench_hist assign, late;
    bench_hist_reset(&assign);
    bench_hist_reset(&late);
    char *tok = bench_agent_token();
    long routed = 0, breached = 0, routed_twice = 0, breached_twice = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rr.feed.acked[i] || !rr.feed.conv[i]) continue;
        struct seen s;
        while (!read_history(d.url, tok, rr.feed.conv[i], &s) && bench_now_us() < end) {
            bench_ws_run(ws, NULL, 100);
        }
        if (s.routed) {
            routed++;
            int64_t us = (s.routed_ms - rr.sent_wall_ms[i]) * 1000;
            bench_hist_record(&assign, us > 0 ? us : 0);
        }
        if (s.breached) {
            breached++;
            int64_t us = (s.breach_ms - s.due_ms) * 1000;
            bench_hist_record(&late, us > 0 ? us : 0);
        }
        routed_twice += s.routed > 1;
        breached_twice += s.breached > 1;
    }
    free(tok);
    double rate = rr.run.elapsed_s > 0 ? (double)rr.run.ok / rr.run.elapsed_s : -1;
    double p99a = (double)bench_hist_pct(&assign, 99) / 1000.0;
    double p99l = (double)bench_hist_pct(&late, 99) / 1000.0;
    fprintf(stderr,
            "  desk routing: %zu acknowledged (%.0f/s), %ld routed (%ld twice), %ld breached "
            "(%ld twice)\n",
            rr.run.ok, rate, routed, routed_twice, breached, breached_twice);
    struct bench_row ra = {.scenario = "desk",
                           .variant = "inbound -> assigned (router)",
                           .unit = "conv/s",
                           .rate = rate,
                           .lat = &assign,
                           .ceiling_rate = -1,
                           .ceiling_name = "",
                           .ratio = -1,
                           .target = "p99 <= 100 ms",
                           .pass = routed > 0 ? p99a <= 100 : 0,
                           .cpu_s = -1,
                           .hwm_kb = -1,
                           .acked = (long)rr.run.ok,
                           .found = routed,
                           .dups = routed_twice};
    /* the ingest's own answer is part of the figure: shown beside it */
    bench_report_row(&ra, json_pack("{s:i, s:i, s:i, s:o}", "agents", agents, "agents_online", up,
                                    "offered_rate", o->rate, "ingest_ack_latency",
                                    bench_hist_json(&rr.run.lat)));
    struct bench_row rl = {.scenario = "desk",
                           .variant = "SLA breach lateness",
                           .unit = "conv/s",
                           .rate = -1,
                           .lat = &late,
                           .ceiling_rate = -1,
                           .ceiling_name = "",
                           .ratio = -1,
                           .target = "p99 <= 1000 ms",
                           .pass = breached > 0 ? p99l <= 1000 : 0,
                           .cpu_s = -1,
                           .hwm_kb = -1,
                           .acked = (long)rr.run.ok,
                           .found = breached,
                           .dups = breached_twice};
    bench_report_row(&rl, json_pack("{s:i}", "frt_target_s", 1));
    rc =
        routed == (long)rr.run.ok && breached == (long)rr.run.ok && !routed_twice && !breached_twice
            ? 0
            : 1;
out:
    bench_ws_free(ws);
    if (rr.feed.n) bench_feed_free(&rr.feed);
    free(rr.sent_wall_ms);
    for (int i = 0; i < agents; i++)
        free(toks[i]);
    free(toks);
    if (d.pid) bench_daemon_stop(&d);
    return rc;
}
