/* desk.c - the desk scenario (issue 16): the agents' inbox list with
 * filters, with q (full text), and claims, on a PostgreSQL store holding N
 * conversations / M events against an almost empty one (100 conversations)
 * in the same run, the two daemons alternating in rounds. The large store is
 * written by SQL (generate_series) straight into the store's tables, after
 * oh_store_open created the schema: the list and the claim read the
 * conversation rows and the full-text index, never the preloaded events'
 * text, so those are short valid events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "core/daemon.h"
#include "oh_build_config.h"
#include "pg.h"
#include "store/store.h"

#define DESK_ROUNDS 3
#define DESK_WORDS  100000 /* distinct rare words "w<n>" in the message texts */

/* One store and its daemon. */
struct desk_side {
    const char *name;
    char dsn[600];
    long convs;
    struct bench_daemon d;
    char *auth;
    unsigned seed;
    long next_claim; /* the next conversation to claim */
    int what;        /* DESK_* of the running load */
    char path[256];
    struct bench_hist h[4];
    long errors[4];
};

enum { DESK_FILTER, DESK_Q_RARE, DESK_Q_COMMON, DESK_CLAIM };
static const char *const desk_names[] = {"list status+priority", "list q rare word",
                                         "list q common word", "claim"};

#ifdef OH_HAVE_POSTGRES
/* Creates the schema through the store itself (migrations, epoch). */
static int desk_schema(const char *dsn)
{
    char err[512], env_dsn[700];
    snprintf(env_dsn, sizeof env_dsn, "OMNIHUB_STORE_POSTGRES_DSN=%s", dsn);
    char *envp[] = {"OMNIHUB_STORE_BACKEND=postgres", env_dsn, NULL};
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), envp, err, sizeof err);
    oh_store *st = cfg ? oh_store_open(cfg, err, sizeof err) : NULL;
    if (!st) fprintf(stderr, "omnihub-bench: desk: %s\n", err);
    oh_store_close(st);
    oh_config_free(cfg);
    return st ? 0 : -1;
}

/* N conversations of M / N events each: statuses, priorities, assignees
 * and labels spread as an inbox has them; message texts of a few common
 * words and one rare word each. */
static int desk_fill(const char *dsn, long n, long m)
{
    long per = m / n < 1 ? 1 : m / n;
    char sql[4096], err[512];
    snprintf(
        sql, sizeof sql,
        "SET synchronous_commit = off;"
        "INSERT INTO conversations (id, channel, account, contact_id, contact_name, head, "
        "created_ms, updated_ms, last_inbound_ms, status, assignee, team, priority, labels, "
        "last_seq, last_direction, last_kind, last_text, last_ms, rev) "
        "SELECT 'dc' || i, 'api:bench', 'desk', 'u' || i, 'Desk Contact', %ld, "
        "1700000000000 + i * 10, 1700000000000 + i * 10, 1700000000000 + i * 10, "
        "(ARRAY['open','open','pending','resolved','snoozed'])[1 + i %% 5], "
        "CASE WHEN i %% 3 = 0 THEN 'agent-' || (i %% 50) ELSE '' END, "
        "CASE WHEN i %% 4 = 0 THEN 'billing' ELSE '' END, "
        "(ARRAY['normal','normal','high','low','urgent'])[1 + (i / 5) %% 5], "
        "CASE WHEN i %% 7 = 0 THEN '[\"vip\"]'::jsonb ELSE '[]'::jsonb END, "
        "%ld, 'inbound', 'text', 'hello', 1700000000000 + i * 10, i "
        "FROM generate_series(1::bigint, %ld) i;"
        "UPDATE revs SET rev = %ld;"
        "INSERT INTO history (conversation_id, seq, event_id, type, src_partition, src_offset, "
        "ts_ms, json) SELECT 'dc' || i, s, 'de' || i || '-' || s, 'omnihub.message.inbound', 0, "
        "i * %ld + s, 1700000000000 + i * 10, "
        "'{\"specversion\":\"1.0\",\"id\":\"de' || i || '-' || s || '\",\"source\":"
        "\"/omnihub/api:bench/desk\",\"type\":\"omnihub.message.inbound\",\"time\":"
        "\"2023-11-14T22:13:20Z\",\"subject\":\"dc' || i || '\",\"datacontenttype\":"
        "\"application/json\",\"data\":{}}' "
        "FROM generate_series(1::bigint, %ld) i, generate_series(1, %ld) s;"
        /* in bulk through GIN's pending list (flushed in batches), then
         * the index as the store keeps it (migration 10: no pending list) */
        "ALTER INDEX search_tsv SET (fastupdate = on);"
        "INSERT INTO search (conversation_id, seq, tsv) SELECT 'dc' || i, s, "
        "to_tsvector('simple', 'hello my order ' || (ARRAY['refund','delivery','size',"
        "'invoice','password','warranty','coupon','return','tracking','payment'])"
        "[1 + (i * 31 + s) %% 10] || ' code w' || ((i * 7919 + s * 104729) %% %d)) "
        "FROM generate_series(1::bigint, %ld) i, generate_series(1, %ld) s;"
        "SELECT gin_clean_pending_list('search_tsv'::regclass);"
        "ALTER INDEX search_tsv SET (fastupdate = off);"
        "ANALYZE;",
        per, per, n, n, per, n, per, DESK_WORDS, n, per);
    if (bench_pg_exec(dsn, sql, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: desk: preload: %s\n", err);
        return -1;
    }
    return 0;
}
#endif

static void desk_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct desk_side *s = opaque;
    switch (s->what) {
    case DESK_FILTER:
        snprintf(s->path, sizeof s->path, "/v1/conversations?status=open&priority=high&limit=50");
        break;
    case DESK_Q_RARE:
        snprintf(s->path, sizeof s->path, "/v1/conversations?q=w%d&limit=50",
                 rand_r(&s->seed) % DESK_WORDS);
        break;
    case DESK_Q_COMMON:
        snprintf(s->path, sizeof s->path, "/v1/conversations?q=refund&limit=50");
        break;
    default: /* open and unassigned: i % 5 in {0, 1} (open) and i % 3 != 0 */
        do
            s->next_claim++;
        while (s->next_claim % 5 > 1 || s->next_claim % 3 == 0);
        snprintf(s->path, sizeof s->path, "/v1/conversations/dc%ld/claim", s->next_claim);
        req->body = "";
        req->len = 0;
        break;
    }
    req->path = s->path;
    req->hdr[0] = s->auth;
}

static void desk_done(void *opaque, size_t i, long status, const char *body, size_t len,
                      int64_t sent_us, int64_t lat_us)
{
    struct desk_side *s = opaque;
    if (status != 200) s->errors[s->what]++;
}

/* N requests of kind WHAT over 8 connections into the side's histogram. */
static void desk_load(struct desk_side *s, int what, size_t n)
{
    s->what = what;
    struct bench_http_run r = {.base_url = s->d.url,
                               .n = n,
                               .concurrency = what == DESK_CLAIM ? 4 : 8,
                               .gen = desk_gen,
                               .done = desk_done,
                               .opaque = s};
    bench_http_load(&r);
    bench_hist_merge(&s->h[what], &r.lat);
}

static void desk_row(int what, const struct desk_side *big, const struct desk_side *small,
                     long events)
{
    double p50s = (double)bench_hist_pct(&small->h[what], 50);
    double p50b = (double)bench_hist_pct(&big->h[what], 50);
    double p99b = (double)bench_hist_pct(&big->h[what], 99) / 1000.0;
    double ratio = p50s > 0 ? p50b / p50s : -1;
    bool q = what == DESK_Q_RARE || what == DESK_Q_COMMON;
    char target[64];
    snprintf(target, sizeof target, q ? "large/empty <= 1.5, p99 <= 100 ms" : "large/empty <= 1.5");
    struct bench_row r = {.scenario = "desk",
                          .variant = desk_names[what],
                          .unit = "req",
                          .rate = -1,
                          .lat = &big->h[what],
                          .ceiling_rate = -1,
                          .ceiling_name = "empty store",
                          .ratio = ratio,
                          .target = target,
                          .pass = ratio < 0 ? -1 : ratio <= 1.5 && (!q || p99b <= 100),
                          .cpu_s = -1,
                          .hwm_kb = -1,
                          .acked = -1};
    json_t *extra = json_pack(
        "{s:I, s:I, s:o, s:I, s:I}", "conversations", (json_int_t)big->convs, "events",
        (json_int_t)events, "empty_latency_us", bench_hist_json(&small->h[what]), "errors",
        (json_int_t)big->errors[what], "empty_errors", (json_int_t)small->errors[what]);
    bench_report_row(&r, extra);
}

int bench_desk(const struct bench_opts *o)
{
#ifndef OH_HAVE_POSTGRES
    fprintf(stderr, "omnihub-bench: desk: built without PostgreSQL (libpq)\n");
    return 2;
#else
    if (o->url) {
        fprintf(stderr, "omnihub-bench: desk starts its own daemons (no --url)\n");
        return 2;
    }
    long n = o->conversations > 0 ? o->conversations : 100000;
    long m = o->scale_events > 0 ? o->scale_events : n * 10;
    struct bench_pg pg = {0};
    struct desk_side big = {.name = "large", .convs = n, .seed = 1},
                     small = {.name = "empty", .convs = 100, .seed = 2};
    char err[512];
    int rc = 0;
    if (bench_pg_start(&pg, o->pg_dsn, err, sizeof err) ||
        bench_pg_createdb(&pg, "desk_large", big.dsn, sizeof big.dsn, err, sizeof err) ||
        bench_pg_createdb(&pg, "desk_empty", small.dsn, sizeof small.dsn, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: desk: %s\n", err);
        bench_pg_stop(&pg);
        return 1;
    }
    int64_t t0 = bench_now_us();
    if (desk_schema(big.dsn) || desk_schema(small.dsn) || desk_fill(big.dsn, n, m) ||
        desk_fill(small.dsn, 100, 1000)) {
        bench_pg_stop(&pg);
        return 1;
    }
    fprintf(stderr, "  desk: preloaded %ld conversations / %ld events in %.0f s\n", n, m,
            (double)(bench_now_us() - t0) / 1e6);
    struct desk_side *sides[] = {&small, &big};
    for (int i = 0; i < 2 && rc == 0; i++) {
        const char *kv[] = {
            "store.backend", "postgres", "store.postgres.dsn", sides[i]->dsn, "routing.enabled",
            "false",         NULL};
        if (bench_daemon_start(&sides[i]->d, o, kv, NULL, err, sizeof err)) {
            fprintf(stderr, "omnihub-bench: desk: omnihubd: %s\n", err);
            rc = 1;
            break;
        }
        char *tok = bench_agent_token();
        if (!tok || asprintf(&sides[i]->auth, "Authorization: Bearer %s", tok) < 0)
            sides[i]->auth = NULL;
        free(tok);
        for (int k = 0; k < 4; k++)
            bench_hist_reset(&sides[i]->h[k]);
    }
    if (rc == 0) {
        /* warm-up (connections, prepared statements, caches), not counted */
        for (int i = 0; i < 2; i++)
            for (int w = 0; w < DESK_CLAIM; w++) {
                desk_load(sides[i], w, 32);
                bench_hist_reset(&sides[i]->h[w]);
                sides[i]->errors[w] = 0;
            }
        /* the small store has 100 conversations: about 26 open and
         * unassigned to claim, so claims per round stay under that */
        for (int round = 0; round < DESK_ROUNDS; round++)
            for (int i = 0; i < 2; i++) {
                struct desk_side *s = round % 2 ? sides[1 - i] : sides[i];
                desk_load(s, DESK_FILTER, 300);
                desk_load(s, DESK_Q_RARE, 300);
                desk_load(s, DESK_Q_COMMON, 100);
                desk_load(s, DESK_CLAIM, 8);
            }
        for (int w = 0; w <= DESK_CLAIM; w++)
            desk_row(w, &big, &small, m);
    }
    for (int i = 0; i < 2; i++) {
        if (sides[i]->d.pid) bench_daemon_stop(&sides[i]->d);
        free(sides[i]->auth);
    }
    bench_pg_stop(&pg);
    return rc;
#endif
}
