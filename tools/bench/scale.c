/* scale.c - the scale scenario: a store preloaded with N conversations and
 * M events (written through the store's own materialize path, as the sync
 * service writes them) against an empty store in the same run: history
 * reads, resume latency and ingest rate; the target is within 1.5x. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench.h"
#include "core/daemon.h"
#include "oh_build_config.h"
#include "pg.h"
#include "store/store.h"

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

/* Where a store lives: a data dir (SQLite) or a database (PostgreSQL). */
struct scale_store {
    char dir[300];
    char dsn[600]; /* "" for SQLite */
};

/* Takes EV: the Cth conversation's next event; LAST when it is its last. */
typedef int (*scale_sink)(void *ctx, long c, json_t *ev, int32_t part, int64_t off, bool last);

/* The events of CONVS conversations, EVENTS in all, round-robin over the
 * conversations as traffic arrives. */
static int scale_each(long convs, long events, scale_sink fn, void *ctx)
{
    int64_t base = 1700000000000;
    long per = events / convs, extra = events % convs, done = 0;
    int rc = 0;
    for (long k = 0; rc == 0 && k <= per; k++)
        for (long c = 0; rc == 0 && c < convs; c++) {
            if (k == per && c >= extra) break;
            bool last = k == (c < extra ? per : per - 1);
            json_t *ev = scale_event(c, k, base + done);
            rc = ev ? fn(ctx, c, ev, 1000, done, last) : -1;
            done++;
            if (done % 1000000 == 0) fprintf(stderr, "  scale: %ld events stored\n", done);
        }
    return rc;
}

static oh_config *store_config(const struct scale_store *s, char *err, size_t errlen)
{
    char env_dir[400], env_dsn[700];
    snprintf(env_dir, sizeof env_dir, "OMNIHUB_DATA_DIR=%s", s->dir);
    snprintf(env_dsn, sizeof env_dsn, "OMNIHUB_STORE_POSTGRES_DSN=%s", s->dsn);
    char *envp[] = {env_dir, s->dsn[0] ? "OMNIHUB_STORE_BACKEND=postgres" : NULL, env_dsn, NULL};
    return oh_config_load(NULL, oh_config_tables(), envp, err, errlen);
}

/* Through the store's own write path, as the sync service writes. */
struct mat {
    oh_store *st;
    struct oh_store_item items[SCALE_BATCH];
    size_t n;
};

static int mat_flush(struct mat *m)
{
    int rc =
        m->n ? oh_store_materialize(m->st, "omnihub-bench-preload", m->items, m->n, NULL, 0) : 0;
    for (size_t i = 0; i < m->n; i++)
        json_decref(m->items[i].event);
    m->n = 0;
    return rc;
}

static int mat_add(void *ctx, long c, json_t *ev, int32_t part, int64_t off, bool last)
{
    struct mat *m = ctx;
    m->items[m->n++] =
        (struct oh_store_item){.event = ev, .src_partition = part, .src_offset = off};
    return m->n == SCALE_BATCH ? mat_flush(m) : 0;
}

static int preload_materialize(const struct scale_store *s, long convs, long events)
{
    char err[256];
    oh_config *cfg = store_config(s, err, sizeof err);
    struct mat *m = calloc(1, sizeof *m);
    if (m && cfg) m->st = oh_store_open(cfg, err, sizeof err);
    int rc = m && m->st ? scale_each(convs, events, mat_add, m) : -1;
    if (rc == 0) rc = mat_flush(m);
    if (!m || !m->st) fprintf(stderr, "omnihub-bench: scale: %s\n", m ? err : "out of memory");
    if (m) oh_store_close(m->st);
    free(m);
    oh_config_free(cfg);
    return rc;
}

#ifdef OH_HAVE_POSTGRES
static int bulk_add(void *ctx, long c, json_t *ev, int32_t part, int64_t off, bool last)
{
    int rc = bench_pgload_add(ctx, c, ev, part, off, last);
    json_decref(ev);
    return rc;
}

/* COPY of the rows materialize would write (tools/bench/pgload.c). */
static int preload_bulk(const struct scale_store *s, long convs, long events)
{
    char err[512] = "a COPY failed";
    struct bench_pgload *l = bench_pgload_begin(s->dsn, convs, err, sizeof err);
    int rc = l ? scale_each(convs, events, bulk_add, l) : -1;
    if (l && bench_pgload_end(l, err, sizeof err)) rc = -1;
    if (rc) fprintf(stderr, "omnihub-bench: scale: bulk preload: %s\n", err);
    return rc;
}
#endif

/* Writes CONVS conversations and EVENTS events into S; SECS the time taken. */
static int preload(const struct scale_store *s, bool bulk, long convs, long events, double *secs)
{
    int64_t t0 = bench_now_us();
    int rc;
#ifdef OH_HAVE_POSTGRES
    if (bulk)
        rc = preload_bulk(s, convs, events);
    else
#endif
        rc = preload_materialize(s, convs, events);
    *secs = (double)(bench_now_us() - t0) / 1e6;
    return rc;
}

#define SCALE_ROUNDS      5    /* history read rounds, alternating the two stores */
#define SCALE_ROUND_READS 1000 /* reads per round */

/* One store under test: its daemon, the conversations read, the results. */
struct side {
    const struct scale_store *store;
    char (*conv)[OH_ID_MAX];
    long nconv;
    struct bench_daemon d;
    struct bench_proc p0;
    char *auth;
    char path[OH_ID_MAX + 128];
    unsigned seed;
    int pick; /* PICK_* */
    /* results */
    struct bench_hist first, read, resume, ingest;
    double first_rate, read_rate, ingest_rate, round_ratio[SCALE_ROUNDS];
    double read_cpu_s; /* daemon and store server CPU over the rounds, -1 unknown */
    long acked, found, dups;
    long reads, read_errors; /* history reads; those not 200 with the whole conversation */
    double cpu_s;
    long hwm_kb;
};

/* Which conversation request I reads. */
enum { PICK_RANDOM, PICK_EACH /* conv[i] */, PICK_FIRST /* conv[0] only */ };

static void read_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct side *r = opaque;
    long c = r->pick == PICK_EACH    ? (long)i % r->nconv
             : r->pick == PICK_FIRST ? 0
                                     : rand_r(&r->seed) % r->nconv;
    snprintf(r->path, sizeof r->path, "/v1/conversations/%s/events?after=0&limit=100", r->conv[c]);
    req->path = r->path;
    req->hdr[0] = r->auth;
}

/* Each history read must answer 200 with the whole conversation: a head
 * above 0 and a page ending at it (limit 100 exceeds every head read). */
static void read_done(void *opaque, size_t i, long status, const char *body, size_t len,
                      int64_t sent_us, int64_t lat_us)
{
    struct side *sd = opaque;
    const char *h = status == 200 ? strstr(body, "\"head\":") : NULL;
    const char *n = h ? strstr(body, "\"next_after\":") : NULL;
    long long head = h ? atoll(h + 7) : 0;
    sd->reads++;
    if (!n || head <= 0 || atoll(n + 13) != head) sd->read_errors++;
}

/* CPU seconds of the daemon plus, for a PostgreSQL server the driver
 * started, the server's processes (only one side reads at a time). */
static double side_cpu(const struct side *sd, const void *server)
{
    struct bench_proc p;
    double s = bench_proc_read(sd->d.pid, &p) == 0 ? p.cpu_s : -1;
#ifdef OH_HAVE_POSTGRES
    if (s >= 0 && sd->store->dsn[0]) {
        double pg = bench_pg_cpu_s(server); /* -1: not ours, the daemon's only */
        s += pg > 0 ? pg : 0;
    }
#endif
    return s;
}

/* N history reads over 8 connections; the latencies merged into H, the
 * CPU used added to the side's read_cpu_s (when SERVER is given). */
static double reads(struct side *sd, size_t n, int pick, struct bench_hist *h, const void *server)
{
    sd->pick = pick;
    struct bench_http_run r = {.base_url = sd->d.url,
                               .n = n,
                               .concurrency = 8,
                               .gen = read_gen,
                               .done = read_done,
                               .opaque = sd};
    double c0 = server ? side_cpu(sd, server) : -1;
    bench_http_load(&r);
    double c1 = server ? side_cpu(sd, server) : -1;
    if (server && (c0 < 0 || c1 < 0 || sd->read_cpu_s < 0))
        sd->read_cpu_s = -1;
    else if (server)
        sd->read_cpu_s += c1 - c0;
    bench_hist_merge(h, &r.lat);
    return r.elapsed_s > 0 ? (double)r.ok / r.elapsed_s : 0;
}

static int side_start(const struct bench_opts *o, struct side *sd)
{
    char err[512];
    const struct scale_store *s = sd->store;
    const char *pg[] = {"store.backend", "postgres", "store.postgres.dsn", s->dsn, NULL};
    if (bench_daemon_start(&sd->d, o, s->dsn[0] ? pg : NULL, s->dsn[0] ? NULL : s->dir, err,
                           sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        return -1;
    }
    bench_proc_read(sd->d.pid, &sd->p0);
    char *tok = bench_agent_token();
    if (asprintf(&sd->auth, "Authorization: Bearer %s", tok) < 0) sd->auth = NULL;
    free(tok);
    bench_hist_reset(&sd->first);
    bench_hist_reset(&sd->read);
    return sd->auth ? 0 : -1;
}

/* Ingest into fresh conversations, and every acknowledged message read back. */
static int side_ingest(const struct bench_opts *o, struct side *sd)
{
    struct bench_feed f;
    size_t n = 5000;
    int rc = bench_feed_init(&f, "api", n, 100, false);
    struct bench_http_run w = {.base_url = sd->d.url,
                               .n = n,
                               .concurrency = o->concurrency,
                               .gen = bench_feed_gen,
                               .done = bench_feed_done,
                               .opaque = &f};
    if (rc == 0) bench_http_load(&w);
    sd->ingest = w.lat;
    sd->ingest_rate = w.elapsed_s > 0 ? (double)w.ok / w.elapsed_s : 0;
    struct bench_proc p1;
    bench_proc_read(sd->d.pid, &p1);
    sd->cpu_s = p1.cpu_s - sd->p0.cpu_s;
    size_t nc = 0;
    const char *const *convs = rc == 0 ? bench_feed_convs(&f, sd->d.url, &nc) : NULL;
    struct bench_check chk = {0};
    if (rc == 0) rc = bench_check_history(sd->d.url, convs, nc, f.prefix, n, f.acked, 60, &chk);
    sd->acked = rc ? -1 : chk.acked;
    sd->found = chk.found;
    sd->dups = chk.dups;
    bench_proc_read(sd->d.pid, &p1);
    sd->hwm_kb = p1.hwm_kb;
    bench_feed_free(&f);
    return rc;
}

static double p50_ratio(const struct bench_hist *big, const struct bench_hist *small)
{
    double s = (double)bench_hist_pct(small, 50);
    return s > 0 ? (double)bench_hist_pct(big, 50) / s : -1;
}

/* Both daemons run at once and the history reads alternate between them in
 * rounds, so that the load of a shared machine hits both alike. After 64
 * reads of one conversation (connections, prepared statements), each
 * conversation read is read once (the first read since the preload, from
 * wherever the store's pages are by then), then SCALE_ROUNDS rounds of
 * random reads. Then resumes and ingest, the empty store first. */
static int measure(const struct bench_opts *o, struct side *e, struct side *l, const void *server)
{
    int rc = side_start(o, e);
    if (rc == 0) rc = side_start(o, l);
    if (rc == 0) {
        /* connections and prepared statements first, on one conversation */
        struct bench_hist warm;
        bench_hist_reset(&warm);
        reads(e, 64, PICK_FIRST, &warm, NULL);
        reads(l, 64, PICK_FIRST, &warm, NULL);
        e->first_rate = reads(e, (size_t)e->nconv, PICK_EACH, &e->first, NULL);
        l->first_rate = reads(l, (size_t)l->nconv, PICK_EACH, &l->first, NULL);
        double te = 0, tl = 0;
        for (int k = 0; k < SCALE_ROUNDS; k++) {
            struct bench_hist he, hl;
            bench_hist_reset(&he);
            bench_hist_reset(&hl);
            te += SCALE_ROUND_READS / reads(e, SCALE_ROUND_READS, PICK_RANDOM, &he, server);
            tl += SCALE_ROUND_READS / reads(l, SCALE_ROUND_READS, PICK_RANDOM, &hl, server);
            l->round_ratio[k] = p50_ratio(&hl, &he);
            bench_hist_merge(&e->read, &he);
            bench_hist_merge(&l->read, &hl);
        }
        e->read_rate = SCALE_ROUNDS * SCALE_ROUND_READS / te;
        l->read_rate = SCALE_ROUNDS * SCALE_ROUND_READS / tl;
        bench_resume_ws(e->d.url, e->conv[e->nconv / 2], 0, 30, &e->resume, NULL);
        bench_resume_ws(l->d.url, l->conv[l->nconv / 2], 0, 30, &l->resume, NULL);
        rc = side_ingest(o, e);
        if (rc == 0) rc = side_ingest(o, l);
    }
    for (int i = 0; i < 2; i++) {
        struct side *sd = i ? l : e;
        if (sd->d.pid) bench_daemon_stop(&sd->d);
        free(sd->auth);
        sd->auth = NULL;
    }
    return rc;
}

static void row(const char *what, const char *variant, const char *unit, double rate,
                const struct bench_hist *lat, double ratio, const char *ceiling_name,
                double ceiling_rate, const struct side *m, json_t *extra)
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

#ifdef OH_HAVE_POSTGRES
/* The bulk path checked against materialize on a small store of the same
 * shape, in the same server: both must answer alike through the store API. */
static int check_bulk(struct bench_pg *pg, long per)
{
    char err[512];
    struct scale_store m = {0}, b = {0};
    long convs = 300, events = convs * (per < 1 ? 1 : per > 20 ? 20 : per) + convs / 3;
    double secs;
    int rc = bench_pg_createdb(pg, "check_m", m.dsn, sizeof m.dsn, err, sizeof err) ||
                     bench_pg_createdb(pg, "check_b", b.dsn, sizeof b.dsn, err, sizeof err)
                 ? -1
                 : 0;
    if (rc == 0) rc = preload(&m, false, convs, events, &secs);
    if (rc == 0) rc = preload(&b, true, convs, events, &secs);
    if (rc == 0) rc = bench_pg_compare(m.dsn, b.dsn, err, sizeof err);
    if (rc)
        fprintf(stderr, "omnihub-bench: scale: bulk preload differs from materialize: %s\n", err);
    else
        fprintf(stderr,
                "  scale: bulk preload = materialize on %ld conversations, %ld events "
                "(history, directory, references)\n",
                convs, events);
    return rc;
}
#endif

/* The two stores, and the server when they are PostgreSQL databases. */
static int scale_setup(const struct bench_opts *o, bool pg, bool bulk, long per, void *server,
                       struct scale_store *big, struct scale_store *empty)
{
    if (!pg) return 0;
#ifdef OH_HAVE_POSTGRES
    char err[512];
    if (bench_pg_start(server, o->pg_dsn, err, sizeof err) ||
        bench_pg_createdb(server, "large", big->dsn, sizeof big->dsn, err, sizeof err) ||
        bench_pg_createdb(server, "empty", empty->dsn, sizeof empty->dsn, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: scale: %s\n", err);
        return -1;
    }
    return bulk ? check_bulk(server, per) : 0;
#else
    fprintf(stderr, "omnihub-bench: scale: built without PostgreSQL (libpq)\n");
    return -1;
#endif
}

int bench_scale(const struct bench_opts *o)
{
    if (o->url) {
        fprintf(stderr, "omnihub-bench: scale starts its own daemons (no --url)\n");
        return 2;
    }
    bool pg = o->pg_dsn || (o->store && strcmp(o->store, "postgres") == 0);
    bool bulk = o->preload ? strcmp(o->preload, "bulk") == 0 : pg;
    if ((o->store && !pg && strcmp(o->store, "sqlite") != 0) ||
        (o->preload && !bulk && strcmp(o->preload, "materialize") != 0) || (bulk && !pg) ||
        (o->pg_cluster && !pg)) {
        fprintf(stderr, "omnihub-bench: scale: --store sqlite|postgres, --preload "
                        "materialize|bulk (bulk: postgres only)\n");
        return 2;
    }
    long convs = o->conversations > 0 ? o->conversations : 1000000;
    long events = o->scale_events > 0 ? o->scale_events : 10000000;
    if (events < convs) events = convs;
    char root[256];
    const char *t = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/omnihub-bench-scale-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(root)) return -1;
    struct scale_store big = {0}, empty = {0};
    snprintf(big.dir, sizeof big.dir, "%s/large", root);
    snprintf(empty.dir, sizeof empty.dir, "%s/empty", root);
    mkdir(big.dir, 0700);
    mkdir(empty.dir, 0700);
#ifdef OH_HAVE_POSTGRES
    struct bench_pg server = {0};
#else
    char server[1];
#endif
    int rc = scale_setup(o, pg, bulk, events / convs, &server, &big, &empty);
    if (rc == 0)
        fprintf(stderr, "  scale: %s store, preloading %ld conversations, %ld events (%s)\n",
                pg ? "postgres" : "sqlite", convs, events, bulk ? "bulk COPY" : "materialize");
    double load_s = 0;
    if (rc == 0) rc = preload(&big, bulk, convs, events, &load_s);
    /* the conversations read: random preloaded ones; in the empty store the
     * same shape written the same way (100 conversations, same events each) */
    long nread = convs < 10000 ? convs : 10000;
    char(*conv)[OH_ID_MAX] = calloc((size_t)nread, OH_ID_MAX);
    unsigned seed = 11;
    for (long i = 0; conv && i < nread; i++)
        scale_conv(conv[i], convs <= nread ? i : (long)rand_r(&seed) % convs);
    long small_convs = 100, small_events = 100 * (events / convs);
    double small_s = 0;
    if (rc == 0) rc = preload(&empty, bulk, small_convs, small_events, &small_s);
    double cluster_s = 0;
#ifdef OH_HAVE_POSTGRES
    /* the history in conversation order, as CLUSTER (or pg_repack) leaves it */
    char err[512];
    int64_t t0 = bench_now_us();
    const char *cl = "SET maintenance_work_mem = '1GB'; CLUSTER history USING history_pkey; "
                     "ANALYZE history";
    if (rc == 0 && o->pg_cluster &&
        (bench_pg_exec(big.dsn, cl, err, sizeof err) ||
         bench_pg_exec(empty.dsn, cl, err, sizeof err))) {
        fprintf(stderr, "omnihub-bench: scale: %s\n", err);
        rc = -1;
    }
    cluster_s = (double)(bench_now_us() - t0) / 1e6;
    if (rc == 0 && o->pg_cluster) fprintf(stderr, "  scale: CLUSTER took %.1f s\n", cluster_s);
#endif
    char(*sconv)[OH_ID_MAX] = calloc((size_t)small_convs, OH_ID_MAX);
    for (long i = 0; sconv && i < small_convs; i++)
        scale_conv(sconv[i], i);
    if (rc == 0 && o->settle > 0) {
        /* what is not read for a while leaves the page cache (see docs/performance.md) */
        fprintf(stderr, "  scale: leaving the stores idle for %d s\n", o->settle);
        sleep((unsigned)o->settle);
    }
    struct side *E = calloc(1, sizeof *E), *L = calloc(1, sizeof *L);
    if (!E || !L) rc = -1;
    if (rc == 0 && conv && sconv) {
        *E = (struct side){.store = &empty, .conv = sconv, .nconv = small_convs, .seed = 7};
        *L = (struct side){.store = &big, .conv = conv, .nconv = nread, .seed = 7};
        rc = measure(o, E, L, &server);
    }
    long long db_bytes = -1;
#ifdef OH_HAVE_POSTGRES
    if (pg) db_bytes = bench_pg_db_size(big.dsn);
#endif
    struct stat sb;
    char dbp[400];
    snprintf(dbp, sizeof dbp, "%s/store.db", big.dir);
    if (!pg && stat(dbp, &sb) == 0) db_bytes = (long long)sb.st_size;
    if (rc == 0) {
        char variant[48];
        snprintf(variant, sizeof variant, "%s %ldc/%lde",
                 pg ? o->pg_cluster ? "pg-clustered" : "pg" : "sqlite", convs, events);
        const char *ce = "the same on an almost empty store, same run";
        double reads_n = SCALE_ROUNDS * SCALE_ROUND_READS;
        bool server_cpu = false; /* the PostgreSQL server's CPU is included */
#ifdef OH_HAVE_POSTGRES
        server_cpu = pg && bench_pg_cpu_s(&server) >= 0;
#endif
        double cpu_e = E->read_cpu_s > 0 ? 1e6 * E->read_cpu_s / reads_n : -1;
        double cpu_l = L->read_cpu_s >= 0 ? 1e6 * L->read_cpu_s / reads_n : -1;
        json_t *rounds = json_array();
        double lo = 1e9, hi = 0;
        for (int k = 0; k < SCALE_ROUNDS; k++) {
            json_array_append_new(rounds, json_real(L->round_ratio[k]));
            lo = L->round_ratio[k] < lo ? L->round_ratio[k] : lo;
            hi = L->round_ratio[k] > hi ? L->round_ratio[k] : hi;
        }
        row("scale:history", "empty", "read/s", E->read_rate, &E->read, -1, "", -1, E,
            json_pack("{s:f, s:I, s:I}", "cpu_us_per_read", cpu_e, "reads", (json_int_t)E->reads,
                      "read_errors", (json_int_t)E->read_errors));
        row("scale:history", variant, "read/s", L->read_rate, &L->read,
            p50_ratio(&L->read, &E->read), ce, E->read_rate, L,
            json_pack(
                "{s:s, s:s, s:I, s:I, s:f, s:f, s:I, s:s, s:f, s:o, s:f, s:b, s:I, s:f, s:I, s:I}",
                "store", pg ? "postgres" : "sqlite", "preload", bulk ? "bulk" : "materialize",
                "conversations", (json_int_t)convs, "events", (json_int_t)events, "preload_s",
                load_s, "preload_events_per_s", (double)events / load_s, "store_bytes",
                (json_int_t)db_bytes, "layout",
                o->pg_cluster ? "clustered by conversation" : "arrival order", "cluster_s",
                cluster_s, "round_p50_ratios", rounds, "cpu_us_per_read", cpu_l,
                "cpu_includes_postgres", (int)server_cpu, "settle_s", (json_int_t)o->settle,
                "cpu_ratio", cpu_e > 0 && cpu_l >= 0 ? cpu_l / cpu_e : -1.0, "reads",
                (json_int_t)L->reads, "read_errors", (json_int_t)L->read_errors));
        row("scale:history-first", "empty", "read/s", E->first_rate, &E->first, -1, "", -1, E,
            NULL);
        row("scale:history-first", variant, "read/s", L->first_rate, &L->first,
            p50_ratio(&L->first, &E->first), ce, E->first_rate, L, NULL);
        row("scale:resume", "empty", "resume/s",
            E->resume.n ? 1e6 * (double)E->resume.n / E->resume.sum : -1, &E->resume, -1, "", -1, E,
            NULL);
        row("scale:resume", variant, "resume/s",
            L->resume.n ? 1e6 * (double)L->resume.n / L->resume.sum : -1, &L->resume,
            p50_ratio(&L->resume, &E->resume), ce,
            E->resume.n ? 1e6 * (double)E->resume.n / E->resume.sum : -1, L, NULL);
        row("scale:ingest", "empty", "msg/s", E->ingest_rate, &E->ingest, -1, "", -1, E, NULL);
        row("scale:ingest", variant, "msg/s", L->ingest_rate, &L->ingest,
            L->ingest_rate > 0 ? E->ingest_rate / L->ingest_rate : -1, ce, E->ingest_rate, L, NULL);
        fprintf(stderr,
                "  scale: preload %.1f s (%.0f events/s), store %.1f MiB; history p50 ratio "
                "per round %.2f .. %.2f; CPU per read (daemon%s) empty %.0f us, large %.0f us\n",
                load_s, (double)events / load_s, (double)db_bytes / 1048576.0, lo, hi,
                pg && server_cpu ? " + postgres" : "", cpu_e, cpu_l);
    }
    bool ok = rc == 0 && L->found == L->acked && E->found == E->acked && !L->dups && !E->dups &&
              !L->read_errors && !E->read_errors;
    if (rc == 0)
        fprintf(stderr, "  scale: history reads answered in full: empty %ld/%ld, large %ld/%ld\n",
                E->reads - E->read_errors, E->reads, L->reads - L->read_errors, L->reads);
    free(E);
    free(L);
    free(conv);
    free(sconv);
#ifdef OH_HAVE_POSTGRES
    if (pg) bench_pg_stop(&server);
#endif
    if (getenv("OMNIHUB_BENCH_KEEP"))
        fprintf(stderr, "kept %s\n", root);
    else
        bench_rmtree(root);
    return ok ? 0 : 1;
}
