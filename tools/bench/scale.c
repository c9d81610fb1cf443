/* scale.c - the scale scenario: a store preloaded with N conversations and
 * M events (written through the store's own materialize path, as the sync
 * service writes them) against an empty store in the same run: history
 * reads, resume latency and ingest rate; the target is within 1.5x. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "bench.h"
#include "daemon.h"
#include "store.h"

#define SCALE_ACCOUNT "scale"
#define SCALE_BATCH   4096

static void scale_conv(char out[OH_ID_MAX], long c)
{
    char contact[32];
    snprintf(contact, sizeof contact, "s%ld", c);
    oh_conversation_id(out, "api:bench", SCALE_ACCOUNT, contact);
}

/* One event as the api connector builds it. */
static json_t *scale_event(long c, long k, int64_t t)
{
    char contact[32], mid[48], id[OH_ID_MAX], conv[OH_ID_MAX], when[32];
    snprintf(contact, sizeof contact, "s%ld", c);
    snprintf(mid, sizeof mid, "s%ld-%ld", c, k);
    oh_event_id(id, "api:bench", SCALE_ACCOUNT, mid, (const char *)NULL);
    oh_conversation_id(conv, "api:bench", SCALE_ACCOUNT, contact);
    oh_time_rfc3339(when, t);
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "conversation_id",
        conv, "channel", "api:bench", "account", SCALE_ACCOUNT, "direction", "inbound", "contact",
        "id", contact, "name", "Scale Contact", "message_id", mid, "kind", "text", "text",
        "Hello, this is a message preloaded into a large store for the scale benchmark.", "sent_at",
        when, "author", "kind", "customer", "id", contact);
    return oh_event_new(OH_EV_INBOUND, id, t, data);
}

/* Writes CONVS conversations and EVENTS events into DATA_DIR's store. */
static int preload(const char *data_dir, long convs, long events, double *secs)
{
    char env_dir[400];
    snprintf(env_dir, sizeof env_dir, "OMNIHUB_DATA_DIR=%s", data_dir);
    char *envp[] = {env_dir, NULL};
    char err[256];
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), envp, err, sizeof err);
    oh_store *st = cfg ? oh_store_open(cfg, err, sizeof err) : NULL;
    if (!st) {
        fprintf(stderr, "omnihub-bench: scale: %s\n", err);
        oh_config_free(cfg);
        return -1;
    }
    struct oh_store_item *items = calloc(SCALE_BATCH, sizeof *items);
    int64_t t0 = bench_now_us(), base = 1700000000000;
    long per = events / convs, extra = events % convs, done = 0, off = 0;
    int rc = items ? 0 : -1;
    size_t n = 0;
    /* round-robin over conversations, as traffic arrives */
    for (long k = 0; rc == 0 && k <= per; k++)
        for (long c = 0; rc == 0 && c < convs; c++) {
            if (k == per && c >= extra) break;
            items[n++] = (struct oh_store_item){scale_event(c, k, base + done), 1000, off++, 0};
            done++;
            if (n == SCALE_BATCH || done == events) {
                rc = oh_store_materialize(st, "omnihub-bench-preload", items, n, NULL, 0);
                for (size_t i = 0; i < n; i++)
                    json_decref(items[i].event);
                n = 0;
                if (done % 1000000 < SCALE_BATCH && done >= 1000000)
                    fprintf(stderr, "  scale: %ld events stored\n", done);
            }
        }
    *secs = (double)(bench_now_us() - t0) / 1e6;
    free(items);
    oh_store_close(st);
    oh_config_free(cfg);
    return rc;
}

struct reads {
    char (*conv)[OH_ID_MAX];
    long n;
    char *auth;
    char path[OH_ID_MAX + 128];
    unsigned seed;
};

static void read_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct reads *r = opaque;
    long c = rand_r(&r->seed) % r->n;
    snprintf(r->path, sizeof r->path, "/v1/conversations/%s/events?after=0&limit=100", r->conv[c]);
    req->path = r->path;
    req->hdr[0] = r->auth;
}

struct measure {
    double read_rate, ingest_rate;
    struct bench_hist read, resume, ingest;
    long acked, found, dups;
    double cpu_s;
    long hwm_kb;
};

/* History reads, resumes and ingest on one daemon; CONVS are the ones read. */
static int measure(const struct bench_opts *o, const char *data_dir, char (*conv)[OH_ID_MAX],
                   long nconv, struct measure *m)
{
    char err[512];
    struct bench_daemon d;
    if (bench_daemon_start(&d, o, NULL, data_dir, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return -1;
    }
    struct bench_proc p0, p1;
    bench_proc_read(d.pid, &p0);
    char *tok = bench_agent_token();
    struct reads rd = {.conv = conv, .n = nconv, .seed = 7};
    if (asprintf(&rd.auth, "Authorization: Bearer %s", tok) < 0) rd.auth = NULL;
    struct bench_http_run r = {
        .base_url = d.url, .n = 5000, .concurrency = 8, .gen = read_gen, .opaque = &rd};
    bench_http_load(&r);
    m->read = r.lat;
    m->read_rate = (double)r.ok / r.elapsed_s;
    bench_resume_ws(d.url, conv[nconv / 2], 0, 30, &m->resume);
    /* ingest into fresh conversations */
    struct bench_feed f;
    size_t n = 5000;
    int rc = bench_feed_init(&f, "api", n, 100, false);
    struct bench_http_run w = {.base_url = d.url,
                               .n = n,
                               .concurrency = o->concurrency,
                               .gen = bench_feed_gen,
                               .done = bench_feed_done,
                               .opaque = &f};
    if (rc == 0) bench_http_load(&w);
    m->ingest = w.lat;
    m->ingest_rate = w.elapsed_s > 0 ? (double)w.ok / w.elapsed_s : 0;
    bench_proc_read(d.pid, &p1);
    size_t nc = 0;
    const char *const *convs = rc == 0 ? bench_feed_convs(&f, d.url, &nc) : NULL;
    struct bench_check chk = {0};
    if (rc == 0) rc = bench_check_history(d.url, convs, nc, f.prefix, n, f.acked, 60, &chk);
    m->acked = rc ? -1 : chk.acked;
    m->found = chk.found;
    m->dups = chk.dups;
    m->cpu_s = p1.cpu_s - p0.cpu_s;
    bench_proc_read(d.pid, &p1);
    m->hwm_kb = p1.hwm_kb;
    bench_feed_free(&f);
    free(rd.auth);
    free(tok);
    bench_daemon_stop(&d);
    return rc;
}

static void row(const char *what, const char *variant, const char *unit, double rate,
                const struct bench_hist *lat, double ratio, const char *ceiling_name,
                double ceiling_rate, const struct measure *m, json_t *extra)
{
    struct bench_row r = {.scenario = what,
                          .variant = variant,
                          .unit = unit,
                          .rate = rate,
                          .lat = lat,
                          .ceiling_rate = ceiling_rate,
                          .ceiling_name = ceiling_name,
                          .ratio = ratio,
                          .target = ratio >= 0 ? "large/empty <= 1.5" : "",
                          .pass = ratio < 0 ? -1 : ratio <= 1.5,
                          .cpu_s = m->cpu_s,
                          .hwm_kb = m->hwm_kb,
                          .acked = strcmp(what, "scale:ingest") == 0 ? m->acked : -1,
                          .found = m->found,
                          .dups = m->dups};
    bench_report_row(&r, extra);
}

static double p50_ratio(const struct bench_hist *big, const struct bench_hist *small)
{
    double s = (double)bench_hist_pct(small, 50);
    return s > 0 ? (double)bench_hist_pct(big, 50) / s : -1;
}

int bench_scale(const struct bench_opts *o)
{
    if (o->url) {
        fprintf(stderr, "omnihub-bench: scale starts its own daemons (no --url)\n");
        return 2;
    }
    long convs = o->conversations > 0 ? o->conversations : 1000000;
    long events = o->scale_events > 0 ? o->scale_events : 10000000;
    if (events < convs) events = convs;
    char root[256];
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/omnihub-bench-scale-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) return -1;
    char big[300], empty[300];
    snprintf(big, sizeof big, "%s/large", root);
    snprintf(empty, sizeof empty, "%s/empty", root);
    mkdir(big, 0700);
    mkdir(empty, 0700);
    fprintf(stderr, "  scale: preloading %ld conversations, %ld events\n", convs, events);
    double load_s = 0;
    int rc = preload(big, convs, events, &load_s);
    /* the conversations read: random preloaded ones; in the empty store the
     * same shape written the same way (100 conversations, same events each) */
    long nread = convs < 10000 ? convs : 10000;
    char(*conv)[OH_ID_MAX] = calloc((size_t)nread, OH_ID_MAX);
    unsigned seed = 11;
    for (long i = 0; conv && i < nread; i++)
        scale_conv(conv[i], convs <= nread ? i : (long)rand_r(&seed) % convs);
    long small_convs = 100, small_events = 100 * (events / convs);
    double small_s = 0;
    if (rc == 0) rc = preload(empty, small_convs, small_events, &small_s);
    char(*sconv)[OH_ID_MAX] = calloc((size_t)small_convs, OH_ID_MAX);
    for (long i = 0; sconv && i < small_convs; i++)
        scale_conv(sconv[i], i);
    struct measure L = {0}, E = {0};
    if (rc == 0 && conv && sconv) rc = measure(o, empty, sconv, small_convs, &E);
    if (rc == 0 && conv) rc = measure(o, big, conv, nread, &L);
    struct stat sb;
    char dbp[400];
    snprintf(dbp, sizeof dbp, "%s/store.db", big);
    long long db_bytes = stat(dbp, &sb) == 0 ? (long long)sb.st_size : -1;
    if (rc == 0) {
        char variant[48];
        snprintf(variant, sizeof variant, "%ldc/%lde", convs, events);
        const char *ce = "the same on an almost empty store, same run";
        row("scale:history", "empty", "read/s", E.read_rate, &E.read, -1, "", -1, &E, NULL);
        row("scale:history", variant, "read/s", L.read_rate, &L.read, p50_ratio(&L.read, &E.read),
            ce, E.read_rate, &L,
            json_pack("{s:I, s:I, s:f, s:f, s:I}", "conversations", (json_int_t)convs, "events",
                      (json_int_t)events, "preload_s", load_s, "preload_events_per_s",
                      (double)events / load_s, "store_bytes", (json_int_t)db_bytes));
        row("scale:resume", "empty", "resume/s",
            E.resume.n ? 1e6 * (double)E.resume.n / E.resume.sum : -1, &E.resume, -1, "", -1, &E,
            NULL);
        row("scale:resume", variant, "resume/s",
            L.resume.n ? 1e6 * (double)L.resume.n / L.resume.sum : -1, &L.resume,
            p50_ratio(&L.resume, &E.resume), ce,
            E.resume.n ? 1e6 * (double)E.resume.n / E.resume.sum : -1, &L, NULL);
        row("scale:ingest", "empty", "msg/s", E.ingest_rate, &E.ingest, -1, "", -1, &E, NULL);
        row("scale:ingest", variant, "msg/s", L.ingest_rate, &L.ingest,
            L.ingest_rate > 0 ? E.ingest_rate / L.ingest_rate : -1, ce, E.ingest_rate, &L, NULL);
        fprintf(stderr, "  scale: preload %.1f s (%.0f events/s), store %.1f MiB\n", load_s,
                (double)events / load_s, (double)db_bytes / 1048576.0);
    }
    free(conv);
    free(sconv);
    if (getenv("OMNIHUB_BENCH_KEEP"))
        fprintf(stderr, "kept %s\n", root);
    else
        bench_rmtree(root);
    return rc ? 1 : (L.found == L.acked && E.found == E.acked && !L.dups && !E.dups ? 0 : 1);
}
