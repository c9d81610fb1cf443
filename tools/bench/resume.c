/* resume.c - the resume scenario: a client that missed K events subscribes
 * and is timed until the last of them arrives, in alternating rounds with
 * the same client resuming from the ceiling (resume_ceiling.c: the same rows
 * read straight from the daemon's store and sent over loopback as frames).
 * A direct SQL read of the rows alone is reported beside them: the SQLite
 * file, or with --store postgres the database of a throwaway server. */
#include "oh_build_config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#ifdef OH_HAVE_POSTGRES
#include <libpq-fe.h>
#include "pg.h"
#endif

/* A direct read of CONV's K rows after AFTER, REPEAT times; 0 or -1. */
static int sql_ceiling(const char *db, const char *conv, int64_t after, int k, int repeat,
                       struct bench_hist *h)
{
    sqlite3 *s = NULL;
    if (sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(s);
        return -1;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s,
                                "SELECT seq, json FROM history WHERE conversation_id = ?1 "
                                "AND seq > ?2 ORDER BY seq LIMIT ?3",
                                -1, &st, NULL);
    bench_hist_reset(h);
    for (int r = 0; rc == SQLITE_OK && r < repeat; r++) {
        int64_t t0 = bench_now_us();
        sqlite3_bind_text(st, 1, conv, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int(st, 3, k);
        int rows = 0;
        /* the rows leave the database as the server's would: copied out */
        while (sqlite3_step(st) == SQLITE_ROW) {
            int n = sqlite3_column_bytes(st, 1);
            char *copy = malloc((size_t)n + 1);
            if (copy) {
                memcpy(copy, sqlite3_column_text(st, 1), (size_t)n);
                copy[n] = '\0';
            }
            free(copy);
            rows++;
        }
        sqlite3_reset(st);
        bench_hist_record(h, bench_now_us() - t0);
        if (rows != k) rc = SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
    return rc == SQLITE_OK ? 0 : -1;
}

#ifdef OH_HAVE_POSTGRES
/* The same read through libpq from the daemon's PostgreSQL database, the
 * statement the store prepares; 0 or -1. */
static int pg_ceiling(const char *dsn, const char *conv, int64_t after, int k, int repeat,
                      struct bench_hist *h)
{
    PGconn *pc = PQconnectdb(dsn);
    int rc = PQstatus(pc) == CONNECTION_OK ? 0 : -1;
    PGresult *prep = rc ? NULL
                        : PQprepare(pc, "resume",
                                    "SELECT seq, json FROM history WHERE conversation_id = $1 "
                                    "AND seq > $2 ORDER BY seq LIMIT $3",
                                    3, NULL);
    if (prep && PQresultStatus(prep) != PGRES_COMMAND_OK) rc = -1;
    PQclear(prep);
    bench_hist_reset(h);
    char a[32], l[16];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(l, sizeof l, "%d", k);
    const char *params[] = {conv, a, l};
    for (int r = 0; rc == 0 && r < repeat; r++) {
        int64_t t0 = bench_now_us();
        PGresult *res = PQexecPrepared(pc, "resume", 3, params, NULL, NULL, 0);
        int rows = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1;
        for (int i = 0; i < rows; i++) { /* copied out, as the server's rows are */
            size_t n = (size_t)PQgetlength(res, i, 1);
            char *copy = malloc(n + 1);
            if (copy) {
                memcpy(copy, PQgetvalue(res, i, 1), n);
                copy[n] = '\0';
            }
            free(copy);
        }
        PQclear(res);
        bench_hist_record(h, bench_now_us() - t0);
        if (rows != k) rc = -1;
    }
    PQfinish(pc);
    return rc;
}
#endif

int bench_resume_ws(const char *url, const char *conv, int64_t after, int repeat,
                    struct bench_hist *h, struct bench_hist *first)
{
    char *tok = bench_agent_token();
    bench_hist_reset(h);
    if (first) bench_hist_reset(first);
    int ok = 0;
    for (int r = 0; r < repeat; r++) {
        char err[128];
        struct bench_ws *ws = bench_ws_new(err, sizeof err);
        if (!ws) break;
        const char *convs[] = {conv};
        struct bench_ws_spec spec = {
            .base_url = url, .n = 1, .conv = convs, .nconv = 1, .after = after, .token = tok};
        struct bench_ws_stats st;
        if (bench_ws_connect(ws, &spec, 30) == 1) {
            bench_ws_stats(ws, &st);
            if (!st.dups && !st.gaps) {
                bench_hist_merge(h, bench_ws_catchup(ws));
                if (first) bench_hist_merge(first, bench_ws_first(ws));
                ok++;
            }
        }
        bench_ws_free(ws);
    }
    free(tok);
    return ok;
}

/* Latencies of one side: last event (the measure) and first event. */
struct side {
    struct bench_hist last, first;
};

/* One side of a round: REPEAT resumes from URL into R (and ALL). */
static int resume_side(const char *url, const char *conv, int repeat, struct side *r,
                       struct side *all)
{
    int ok = bench_resume_ws(url, conv, 0, repeat, &r->last, &r->first);
    bench_hist_merge(&all->last, &r->last);
    bench_hist_merge(&all->first, &r->first);
    return ok;
}

static double p50_ms(const struct bench_hist *h)
{
    return (double)bench_hist_pct(h, 50) / 1000.0;
}

int bench_resume(const struct bench_opts *o)
{
    int k = o->events > 0 ? o->events : 1000;
    int repeat = o->repeat > 0 ? o->repeat : 50;
    int rounds = o->rounds > 0 ? o->rounds : 3;
    char err[512];
    bool pg = o->pg_dsn || (o->store && strcmp(o->store, "postgres") == 0);
    if ((o->store && !pg && strcmp(o->store, "sqlite") != 0) || (pg && o->url)) {
        fprintf(stderr, "omnihub-bench: resume: --store sqlite|postgres (not with --url)\n");
        return 2;
    }
    char dsn[600] = "";
    /* the conversation holds exactly the K messages: no enrichment events
     * beside them (they would double what the resume carries) */
    const char *kv_pg[] = {"store.backend", "postgres", "store.postgres.dsn", dsn, "triage.enabled",
                           "false",         NULL};
    const char *kv_sq[] = {"triage.enabled", "false", NULL};
#ifdef OH_HAVE_POSTGRES
    struct bench_pg server = {0};
    if (pg && (bench_pg_start(&server, o->pg_dsn, err, sizeof err) ||
               bench_pg_createdb(&server, "resume", dsn, sizeof dsn, err, sizeof err))) {
        fprintf(stderr, "omnihub-bench: resume: %s\n", err);
        bench_pg_stop(&server);
        return -1;
    }
#else
    if (pg) {
        fprintf(stderr, "omnihub-bench: resume: built without PostgreSQL (libpq)\n");
        return 2;
    }
#endif
    struct bench_daemon d;
    if (o->url ? bench_daemon_attach(&d, o)
               : bench_daemon_start(&d, o, pg ? kv_pg : kv_sq, NULL, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
#ifdef OH_HAVE_POSTGRES
        if (pg) bench_pg_stop(&server);
#endif
        return -1;
    }
    /* one conversation holding K events: what the client missed */
    struct bench_feed f = {0};
    struct bench_resume_ceiling *ceil = NULL;
    int rc = -1;
    struct bench_check chk = {.acked = -1};
    const char *const *convs = &o->conversation;
    if (o->conversation) { /* --url: one that is there already (tools/perf) */
        if (!o->url) {
            fprintf(stderr, "omnihub-bench: resume: --conversation needs --url\n");
            goto out;
        }
        goto filled;
    }
    if (bench_feed_init(&f, "api", (size_t)k, 1, false)) goto out;
    struct bench_http_run r = {.base_url = d.url,
                               .n = (size_t)k,
                               .concurrency = 8,
                               .gen = bench_feed_gen,
                               .done = bench_feed_done,
                               .opaque = &f};
    bench_http_load(&r);
    size_t nconv;
    convs = bench_feed_convs(&f, d.url, &nconv);
    if (nconv != 1 ||
        bench_check_history(d.url, convs, 1, f.prefix, (size_t)k, f.acked, 60, &chk) ||
        chk.found != k) {
        fprintf(stderr, "omnihub-bench: resume: the conversation did not fill (%ld of %d)\n",
                chk.found, k);
        goto out;
    }
    fprintf(stderr, "  conversation %s holds the %d events\n", convs[0], k);
filled:;
    char db[400], curl[64];
    snprintf(db, sizeof db, "%s/store.db", d.data_dir);
    bool have_ceil = !o->url && !o->no_ceiling;
    if (have_ceil && !(ceil = bench_resume_ceiling_start(db, pg ? dsn : NULL, convs[0], k, curl,
                                                         sizeof curl, err, sizeof err))) {
        fprintf(stderr, "omnihub-bench: resume: %s\n", err);
        have_ceil = false;
    }
    /* alternating rounds: omnihub then the ceiling, then the other way */
    static struct side om, ce, omr, cer;
    static struct bench_hist hs;
    bench_hist_reset(&om.last);
    bench_hist_reset(&om.first);
    bench_hist_reset(&ce.last);
    bench_hist_reset(&ce.first);
    json_t *jrounds = json_array();
    int ok = 0, cok = 0;
    double cpu_s = 0;
    for (int i = 0; i < rounds; i++) {
        bool ceiling_first = i % 2 == 1;
        if (have_ceil && ceiling_first) cok += resume_side(curl, convs[0], repeat, &cer, &ce);
        struct bench_proc p0 = {0}, p1 = {0};
        if (d.pid) bench_proc_read(d.pid, &p0);
        ok += resume_side(d.url, convs[0], repeat, &omr, &om);
        if (d.pid) bench_proc_read(d.pid, &p1);
        cpu_s += p1.cpu_s - p0.cpu_s;
        if (have_ceil && !ceiling_first) cok += resume_side(curl, convs[0], repeat, &cer, &ce);
        double a = p50_ms(&omr.last), b = have_ceil ? p50_ms(&cer.last) : -1;
        fprintf(stderr,
                "  round %d: omnihub p50 %.3f ms (first event %.3f), ceiling p50 %.3f ms (first "
                "event %.3f), ratio %.2f\n",
                i + 1, a, p50_ms(&omr.first), b, have_ceil ? p50_ms(&cer.first) : -1,
                b > 0 ? a / b : -1);
        json_array_append_new(
            jrounds,
            json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "round", i + 1, "omnihub_p50_ms",
                      a, "omnihub_p99_ms", (double)bench_hist_pct(&omr.last, 99) / 1000.0,
                      "omnihub_first_event_p50_ms", p50_ms(&omr.first), "ceiling_p50_ms", b,
                      "ceiling_p99_ms",
                      have_ceil ? (double)bench_hist_pct(&cer.last, 99) / 1000.0 : -1,
                      "ceiling_first_event_p50_ms", have_ceil ? p50_ms(&cer.first) : -1, "ratio",
                      b > 0 ? a / b : -1));
    }
    /* for scale: the read alone, no framing, no socket, no client */
    bool have_sql = have_ceil;
#ifdef OH_HAVE_POSTGRES
    if (have_sql && pg) have_sql = pg_ceiling(dsn, convs[0], 0, k, repeat, &hs) == 0;
#endif
    if (have_sql && !pg) have_sql = sql_ceiling(db, convs[0], 0, k, repeat, &hs) == 0;
    double p50 = p50_ms(&om.last);
    double c50 = have_ceil ? p50_ms(&ce.last) : -1;
    double sql50 = have_sql ? (double)bench_hist_pct(&hs, 50) / 1000.0 : -1;
    double ratio = have_ceil && c50 > 0 ? p50 / c50 : -1;
    fprintf(stderr,
            "  resume %d events: %d/%d resumes, p50 %.3f ms; ceiling (read + loopback send) "
            "%d/%d, p50 %.3f ms; the read alone p50 %.3f ms\n",
            k, ok, repeat * rounds, p50, cok, have_ceil ? repeat * rounds : 0, c50, sql50);
    struct bench_row row = {
        .scenario = "resume",
        .variant = pg ? "postgres" : "embedded",
        .unit = "resume/s",
        .rate = om.last.n ? 1e6 / (om.last.sum / (double)om.last.n) : -1,
        .lat = &om.last,
        .ceiling_rate = have_ceil && ce.last.n ? 1e6 / (ce.last.sum / (double)ce.last.n) : -1,
        .ceiling_name = pg ? "the same rows read through libpq and sent as frames over "
                             "loopback to the same client"
                           : "the same rows read from SQLite and sent as frames over "
                             "loopback to the same client",
        .ratio = ratio,
        .target = "p50 <= 2 x ceiling, <= 20 ms",
        .pass = ratio < 0 ? -1 : (ratio <= 2 && p50 <= 20),
        .cpu_s = d.pid ? cpu_s : -1,
        .hwm_kb = -1,
        .acked = chk.acked,
        .found = chk.found,
        .dups = chk.dups};
    if (d.pid) {
        struct bench_proc pe = {0};
        bench_proc_read(d.pid, &pe);
        row.hwm_kb = pe.hwm_kb;
    }
    bench_report_row(
        &row, json_pack("{s:i, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o}", "missed_events", k,
                        "repeat", repeat, "rounds", rounds, "resumes_complete", ok,
                        "ceiling_resumes_complete", cok, "rounds_p50", jrounds,
                        "first_event_latency", bench_hist_json(&om.first), "ceiling_latency",
                        have_ceil ? bench_hist_json(&ce.last) : json_null(),
                        "ceiling_first_event_latency",
                        have_ceil ? bench_hist_json(&ce.first) : json_null(), "read_alone_latency",
                        have_sql ? bench_hist_json(&hs) : json_null()));
    rc = ok == repeat * rounds && (!have_ceil || cok == repeat * rounds) && chk.dups == 0 ? 0 : 1;
out:
    if (bench_resume_ceiling_stop(ceil)) rc = 1;
    bench_feed_free(&f);
    bench_daemon_stop(&d);
#ifdef OH_HAVE_POSTGRES
    if (pg) bench_pg_stop(&server);
#endif
    return rc;
}
