/* kpis.c - the kpis scenario (issue 17): GET /v1/reports/kpis over a store
 * holding N finished episodes (--episodes, default 1,000,000) spread over a
 * year, 50 agents, 8 teams, 6 channels. The episodes are written through the
 * store's own write path (oh_store_kpi_put, what the kpi service uses) into
 * a SQLite store, or a PostgreSQL one with --pg-dsn; then a daemon on that
 * store answers the reports one at a time (--repeat each): every grouping
 * over the whole year, an agent grouping over 30 days, an agent's own
 * report. Goal: p99 <= 500 ms at 1M episodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "core/auth.h"
#include "core/daemon.h"
#include "store/store.h"

#define KPI_BATCH 10000
#define YEAR_MS   (365LL * 86400 * 1000)
#define T0_MS     1767225600000LL /* 2026-01-01 */

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void episode(struct oh_store_episode *e, long i)
{
    static const char *const channels[] = {"whatsapp", "email",    "webchat",
                                           "telegram", "api:shop", "messenger"};
    memset(e, 0, sizeof *e);
    snprintf(e->conversation_id, sizeof e->conversation_id, "c_bench%09ld", i / 2);
    e->episode = 1 + i % 2;
    snprintf(e->channel, sizeof e->channel, "%s", channels[rnd() % 6]);
    if (rnd() % 10) snprintf(e->agent, sizeof e->agent, "agent-%02d", (int)(rnd() % 50));
    if (rnd() % 4) snprintf(e->team, sizeof e->team, "team-%d", (int)(rnd() % 8));
    e->start_ms = T0_MS + (int64_t)(rnd() % (uint64_t)YEAR_MS);
    e->frt_ms = rnd() % 8 ? (int64_t)(rnd() % 3600000) : -1;
    e->bot_frt_ms = rnd() % 5 ? -1 : (int64_t)(rnd() % 5000);
    e->nrt_count = (int64_t)(rnd() % 4);
    e->nrt_sum_ms = e->nrt_count * (int64_t)(rnd() % 600000);
    e->aht_ms = e->agent[0] ? (int64_t)(rnd() % 7200000) : -1;
    e->resolved_ms = e->start_ms + (e->frt_ms > 0 ? e->frt_ms : 0) + (int64_t)(rnd() % 86400000);
    e->reopened_ms = e->episode == 1 && rnd() % 3 == 0 ? e->resolved_ms + 3600000 : -1;
    e->breached = rnd() % 7 == 0;
    e->bot_involved = e->bot_frt_ms >= 0;
    e->agent_replied = e->frt_ms >= 0;
}

static oh_config *kpi_config(const char *dir, const char *dsn, char *err, size_t errlen)
{
    char env_dir[400], env_dsn[700];
    snprintf(env_dir, sizeof env_dir, "OMNIHUB_DATA_DIR=%s", dir);
    snprintf(env_dsn, sizeof env_dsn, "OMNIHUB_STORE_POSTGRES_DSN=%s", dsn ? dsn : "");
    char *envp[] = {env_dir, dsn ? "OMNIHUB_STORE_BACKEND=postgres" : NULL, env_dsn, NULL};
    if (!dsn) envp[1] = NULL;
    return oh_config_load(NULL, oh_config_tables(), envp, err, errlen);
}

/* Writes N episodes; the seconds it took in *SECS. 0 or -1. */
static int kpi_fill(const char *dir, const char *dsn, long n, double *secs)
{
    char err[512];
    oh_config *cfg = kpi_config(dir, dsn, err, sizeof err);
    oh_store *st = cfg ? oh_store_open(cfg, err, sizeof err) : NULL;
    struct oh_store_episode *rows = calloc(KPI_BATCH, sizeof *rows);
    int rc = st && rows ? 0 : -1;
    if (!st) fprintf(stderr, "omnihub-bench: kpis: %s\n", err);
    int64_t t0 = bench_now_us();
    for (long done = 0; rc == 0 && done < n; done += KPI_BATCH) {
        long k = n - done < KPI_BATCH ? n - done : KPI_BATCH;
        for (long i = 0; i < k; i++)
            episode(&rows[i], done + i);
        if (oh_store_kpi_put(st, "omnihub-bench", rows, (size_t)k, NULL, 0)) rc = -1;
    }
    *secs = (double)(bench_now_us() - t0) / 1e6;
    free(rows);
    oh_store_close(st);
    oh_config_free(cfg);
    return rc;
}

struct kpi_load {
    const char *path;
    const char *auth;
};

static void kpi_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct kpi_load *l = opaque;
    req->path = l->path;
    req->hdr[0] = l->auth;
}

static void kpi_done(void *opaque, size_t i, long status, const char *body, size_t len,
                     int64_t sent_us, int64_t lat_us)
{
}

int bench_kpis(const struct bench_opts *o)
{
    long n = o->episodes > 0 ? o->episodes : 1000000;
    int repeat = o->repeat > 0 ? o->repeat : 50;
    char dir[] = "/tmp/omnihub-bench-kpis-XXXXXX";
    if (!mkdtemp(dir)) return -1;
    double fill_s = 0;
    if (kpi_fill(dir, o->pg_dsn, n, &fill_s)) {
        bench_rmtree(dir);
        return -1;
    }
    fprintf(stderr, "omnihub-bench: kpis: %ld episodes written in %.1f s (%.0f/s)\n", n, fill_s,
            (double)n / fill_s);
    struct bench_daemon d = {0};
    char err[512];
    const char *pg[] = {"store.backend", "postgres", "store.postgres.dsn", o->pg_dsn, NULL};
    if (bench_daemon_start(&d, o, o->pg_dsn ? pg : NULL, o->pg_dsn ? NULL : dir, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: omnihubd: %s\n", err);
        bench_rmtree(dir);
        return -1;
    }
    char *admin = oh_auth_issue(BENCH_JWT_SECRET, "bench-admin", "admin", "bench", 3600);
    char *agent = oh_auth_issue(BENCH_JWT_SECRET, "agent-07", "agent", "bench", 3600);
    char admin_h[1200], agent_h[1200];
    snprintf(admin_h, sizeof admin_h, "Authorization: Bearer %s", admin ? admin : "");
    snprintf(agent_h, sizeof agent_h, "Authorization: Bearer %s", agent ? agent : "");
    static const struct {
        const char *variant, *path;
        bool agent;
    } queries[] = {
        {"none, 1 year", "/v1/reports/kpis?group_by=none", false},
        {"channel, 1 year", "/v1/reports/kpis?group_by=channel", false},
        {"team, 1 year", "/v1/reports/kpis?group_by=team", false},
        {"agent, 1 year", "/v1/reports/kpis?group_by=agent", false},
        {"agent, 30 days",
         "/v1/reports/kpis?group_by=agent&from=2026-06-01T00:00:00Z&to=2026-07-01T00:00:00Z",
         false},
        {"an agent's own, 1 year", "/v1/reports/kpis?group_by=channel", true},
    };
    /* correctness: the report counts every episode written, once */
    char url[256], *body = NULL;
    snprintf(url, sizeof url, "%s/v1/reports/kpis?group_by=none", d.url);
    long status = bench_http_get(url, admin, &body);
    json_t *rep = body ? json_loads(body, 0, NULL) : NULL;
    long found = (long)json_integer_value(
        json_object_get(json_array_get(json_object_get(rep, "rows"), 0), "episodes_resolved"));
    json_decref(rep);
    free(body);
    int bad = status != 200 || found != n;
    if (bad)
        fprintf(stderr, "omnihub-bench: kpis: the report counts %ld episodes of %ld (HTTP %ld)\n",
                found, n, status);
    char variant[96];
    for (size_t q = 0; q < sizeof queries / sizeof queries[0]; q++) {
        struct kpi_load l = {queries[q].path, queries[q].agent ? agent_h : admin_h};
        struct bench_http_run run = {.base_url = d.url,
                                     .n = (size_t)repeat,
                                     .concurrency = 1,
                                     .gen = kpi_gen,
                                     .done = kpi_done,
                                     .opaque = &l};
        if (bench_http_load(&run) || run.failed) bad = 1;
        double p99 = (double)bench_hist_pct(&run.lat, 99) / 1000.0;
        snprintf(variant, sizeof variant, "%s, %ldk episodes, %s", queries[q].variant, n / 1000,
                 o->pg_dsn ? "postgres" : "sqlite");
        struct bench_row r = {.scenario = "kpis",
                              .variant = variant,
                              .unit = "req/s",
                              .rate = run.elapsed_s > 0 ? (double)run.ok / run.elapsed_s : -1,
                              .lat = &run.lat,
                              .ceiling_rate = -1,
                              .ratio = -1,
                              .target = "p99<=500ms",
                              .pass = p99 <= 500.0,
                              .cpu_s = -1,
                              .acked = q == 0 ? n : -1,
                              .found = found,
                              .dups = 0};
        bench_report_row(&r, json_pack("{s:I, s:f}", "episodes", (json_int_t)n, "fill_s", fill_s));
    }
    free(admin);
    free(agent);
    bench_daemon_stop(&d);
    bench_rmtree(dir);
    return bad;
}
