/* store_sqlite_kpi.c - the SQLite store's knowledge-base articles and
 * KPIs: finished episodes (kpi_episodes), the daily aggregates kept beside
 * them (kpi_days) and the reports read from both. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store/store_sqlite_int.h"

/* ---- knowledge-base articles ---- */

/* Runs write statement I (bound from A) for its one returned row: column 0
 * into *OUT; OH_ENOTFOUND when it returned none. */
static int sq_write_returning(struct sq_store *s, enum sq_stmt i, const struct sq_args *a,
                              int64_t *out)
{
    pthread_mutex_lock(&s->wmu);
    sqlite3_stmt *q = sq_stmt(s->w, i);
    int rc = OH_EIO;
    if (q) {
        sq_bind_args(q, a);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            if (out) *out = sqlite3_column_int64(q, 0);
            r = sqlite3_step(q); /* to the end: the change is made */
        } else if (r == SQLITE_DONE) {
            r = SQLITE_DONE + 1000; /* no row */
        }
        sqlite3_reset(q);
        if (r == SQLITE_DONE)
            rc = 0;
        else if (r == SQLITE_DONE + 1000)
            rc = OH_ENOTFOUND;
        else {
            OH_WARN("store", "sqlite: %s", sqlite3_errmsg(s->w->db));
            rc = sq_err(r);
        }
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

int sq_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    struct sq_args q = {5, {a->id, a->title, a->body, a->locale, a->tags}, {a->updated_ms, 0}};
    return sq_write_returning((struct sq_store *)st, S_ART_PUT, &q, version);
}

struct sq_arts {
    oh_store_article_fn fn;
    void *opaque;
};

static int row_article(sqlite3_stmt *q, void *ctx)
{
    struct sq_arts *l = ctx;
    struct oh_store_article a = {
        .id = (const char *)sqlite3_column_text(q, 0),
        .title = (const char *)sqlite3_column_text(q, 1),
        .body = (const char *)sqlite3_column_text(q, 2),
        .locale = (const char *)sqlite3_column_text(q, 3),
        .tags = (const char *)sqlite3_column_text(q, 4),
        .version = sqlite3_column_int64(q, 5),
        .updated_ms = sqlite3_column_int64(q, 6),
    };
    return l->fn(l->opaque, &a);
}

int sq_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque)
{
    struct sq_arts l = {fn, opaque};
    struct sq_args a = {1, {id}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_ART_GET, &a, row_article, &l, &n);
    return rc ? rc : n ? 0 : OH_ENOTFOUND;
}

int sq_article_del(oh_store *st, const char *id)
{
    struct sq_args a = {1, {id}, {0, 0}};
    return sq_write_returning((struct sq_store *)st, S_ART_DEL, &a, NULL);
}

int sq_articles(oh_store *st, oh_store_article_fn fn, void *opaque)
{
    struct sq_arts l = {fn, opaque};
    struct sq_args a = {0, {NULL}, {0, 0}};
    return sq_read((struct sq_store *)st, S_ART_ALL, &a, row_article, &l, NULL);
}

/* ---- KPIs ---- */

static const char sq_kpi_put_sql[] =
    "INSERT OR REPLACE INTO kpi_episodes (conversation_id, episode, channel, agent, team, "
    "start_ms, resolved_ms, frt_ms, bot_frt_ms, nrt_sum_ms, nrt_count, aht_ms, reopened_ms, "
    "breached, bot_involved, agent_replied) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/* V, or NULL when it is "none" (-1, or "" for a text) */
static void bind_opt_int(sqlite3_stmt *q, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_int64(q, i, v);
}

static void bind_opt_text(sqlite3_stmt *q, int i, const char *v)
{
    if (!v[0])
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
}

#define SQ_EP_COLS                                                                                 \
    "conversation_id, episode, channel, agent, team, start_ms, resolved_ms, frt_ms, bot_frt_ms, "  \
    "nrt_sum_ms, nrt_count, aht_ms, reopened_ms, breached, bot_involved, agent_replied"

static int64_t col_opt_int(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, i);
}

static void col_str(sqlite3_stmt *q, int i, char *out, size_t len)
{
    const unsigned char *v = sqlite3_column_text(q, i);
    snprintf(out, len, "%s", v ? (const char *)v : "");
}

/* The episode of a row of SQ_EP_COLS. */
static void sq_episode_row(sqlite3_stmt *q, struct oh_store_episode *e)
{
    memset(e, 0, sizeof *e);
    col_str(q, 0, e->conversation_id, sizeof e->conversation_id);
    e->episode = sqlite3_column_int64(q, 1);
    col_str(q, 2, e->channel, sizeof e->channel);
    col_str(q, 3, e->agent, sizeof e->agent);
    col_str(q, 4, e->team, sizeof e->team);
    e->start_ms = sqlite3_column_int64(q, 5);
    e->resolved_ms = sqlite3_column_int64(q, 6);
    e->frt_ms = col_opt_int(q, 7);
    e->bot_frt_ms = col_opt_int(q, 8);
    e->nrt_sum_ms = sqlite3_column_int64(q, 9);
    e->nrt_count = sqlite3_column_int64(q, 10);
    e->aht_ms = col_opt_int(q, 11);
    e->reopened_ms = col_opt_int(q, 12);
    e->breached = sqlite3_column_int(q, 13) != 0;
    e->bot_involved = sqlite3_column_int(q, 14) != 0;
    e->agent_replied = sqlite3_column_int(q, 15) != 0;
}

/* The statements of kpi_days' writes, prepared once per transaction. */
struct sq_kpi_days_w {
    struct sq_conn *c;
    sqlite3_stmt *sel, *put, *del;
};

static int sq_kpi_days_w_open(struct sq_kpi_days_w *w, struct sq_conn *c)
{
    *w = (struct sq_kpi_days_w){.c = c};
    if (sqlite3_prepare_v2(c->db,
                           "SELECT episodes, frt_n, frt_sum_ms, nrt_n, nrt_sum_ms, aht_n, "
                           "aht_sum_ms, resolution_sum_ms, sla_met, bot_involved, bot_open, "
                           "frt_hist FROM kpi_days WHERE dim = ?1 AND day = ?2 AND key = ?3",
                           -1, &w->sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO kpi_days VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                           "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                           -1, &w->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "DELETE FROM kpi_days WHERE dim = ?1 AND day = ?2 AND key = ?3",
                           -1, &w->del, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi_days: %s", sqlite3_errmsg(c->db));
        return OH_EIO;
    }
    return OH_OK;
}

static void sq_kpi_days_w_close(struct sq_kpi_days_w *w)
{
    sqlite3_finalize(w->sel);
    sqlite3_finalize(w->put);
    sqlite3_finalize(w->del);
}

/* One changed kpi_days row: read, added to, written (deleted at 0). */
static int sq_kpi_day_apply(void *opaque, const char *dim, int64_t day, const char *key,
                            const int64_t *v, const int64_t (*hist)[2], size_t n)
{
    struct sq_kpi_days_w *kw = opaque;
    sqlite3_stmt *q = kw->sel, *w;
    int64_t sums[OH_KPI_SUMS] = {0};
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc, r;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, dim, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, day);
    sqlite3_bind_text(q, 3, key, -1, SQLITE_STATIC);
    r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        for (int i = 0; i < OH_KPI_SUMS; i++)
            sums[i] = sqlite3_column_int64(q, i);
        rc = oh_kpi_hist_apply(sqlite3_column_blob(q, OH_KPI_SUMS),
                               (size_t)sqlite3_column_bytes(q, OH_KPI_SUMS), hist, n, &blob, &len);
    } else if (r == SQLITE_DONE) {
        rc = oh_kpi_hist_apply(NULL, 0, hist, n, &blob, &len);
    } else {
        rc = sq_err(r);
    }
    sqlite3_reset(q);
    if (rc) goto out;
    bool negative = false;
    for (int i = 0; i < OH_KPI_SUMS; i++) {
        sums[i] += v[i];
        negative |= i != OH_KPI_FRT_SUM && i != OH_KPI_RES_SUM && sums[i] < 0;
    }
    if (negative) {
        OH_WARN("store", "kpi_days %s %lld %s: a count below 0", dim, (long long)day, key);
        rc = OH_EDAMAGED;
        goto out;
    }
    w = sums[OH_KPI_EPISODES] == 0 ? kw->del : kw->put;
    sqlite3_reset(w);
    if (w == kw->put) {
        for (int i = 0; i < OH_KPI_SUMS; i++)
            sqlite3_bind_int64(w, 4 + i, sums[i]);
        sqlite3_bind_blob(w, 4 + OH_KPI_SUMS, blob ? (const void *)blob : "", (int)len,
                          SQLITE_STATIC);
    }
    sqlite3_bind_text(w, 1, dim, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, day);
    sqlite3_bind_text(w, 3, key, -1, SQLITE_STATIC);
    r = sqlite3_step(w);
    sqlite3_reset(w);
    rc = r == SQLITE_DONE ? OH_OK : sq_err(r);
    if (rc) OH_WARN("store", "kpi_days: %s", sqlite3_errmsg(kw->c->db));
out:
    if (rc == OH_EDAMAGED && r == SQLITE_ROW)
        OH_WARN("store", "kpi_days %s %lld %s: histogram below 0", dim, (long long)day, key);
    free(blob);
    return rc;
}

/* Every changed kpi_days row of D, on the writer C (in its transaction). */
static int sq_kpi_days_write(struct sq_conn *c, struct oh_kpi_delta *d)
{
    struct sq_kpi_days_w w;
    int rc = sq_kpi_days_w_open(&w, c);
    if (rc == OH_OK) rc = oh_kpi_delta_each(d, sq_kpi_day_apply, &w);
    sq_kpi_days_w_close(&w);
    return rc;
}

int sq_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
               const struct oh_store_pos *pos, size_t npos)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    struct sq_conn *c = s->w;
    sqlite3_stmt *ins = NULL, *old = NULL;
    struct oh_kpi_delta *d = n ? oh_kpi_delta_new() : NULL;
    int rc = n && !d ? OH_ENOMEM : sq_exec(c, S_BEGIN_IMM);
    if (rc == 0 && n &&
        (sqlite3_prepare_v2(c->db, sq_kpi_put_sql, -1, &ins, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(c->db,
                            "SELECT " SQ_EP_COLS " FROM kpi_episodes INDEXED BY kpi_episodes_id "
                            "WHERE conversation_id = ?1 AND episode = ?2",
                            -1, &old, NULL) != SQLITE_OK)) {
        OH_ERROR("store", "kpi: %s", sqlite3_errmsg(c->db));
        rc = OH_EIO;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct oh_store_episode *e = &eps[i];
        /* a rewritten episode: its old contribution to kpi_days goes first */
        sqlite3_reset(old);
        sq_bind_text(old, 1, e->conversation_id);
        sqlite3_bind_int64(old, 2, e->episode);
        int r = sqlite3_step(old);
        if (r == SQLITE_ROW) {
            struct oh_store_episode was;
            sq_episode_row(old, &was);
            rc = oh_kpi_delta_add(d, &was, -1);
        } else if (r != SQLITE_DONE) {
            rc = sq_err(r);
        }
        if (rc == 0) rc = oh_kpi_delta_add(d, e, 1);
        if (rc) break;
        sqlite3_reset(ins);
        sq_bind_text(ins, 1, e->conversation_id);
        sqlite3_bind_int64(ins, 2, e->episode);
        sq_bind_text(ins, 3, e->channel);
        bind_opt_text(ins, 4, e->agent);
        bind_opt_text(ins, 5, e->team);
        sqlite3_bind_int64(ins, 6, e->start_ms);
        sqlite3_bind_int64(ins, 7, e->resolved_ms);
        bind_opt_int(ins, 8, e->frt_ms);
        bind_opt_int(ins, 9, e->bot_frt_ms);
        sqlite3_bind_int64(ins, 10, e->nrt_sum_ms);
        sqlite3_bind_int64(ins, 11, e->nrt_count);
        bind_opt_int(ins, 12, e->aht_ms);
        bind_opt_int(ins, 13, e->reopened_ms);
        sqlite3_bind_int(ins, 14, e->breached);
        sqlite3_bind_int(ins, 15, e->bot_involved);
        sqlite3_bind_int(ins, 16, e->agent_replied);
        r = sqlite3_step(ins);
        if (r != SQLITE_DONE) {
            OH_WARN("store", "kpi: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(old);
    if (rc == 0 && d) rc = sq_kpi_days_write(c, d);
    oh_kpi_delta_free(d);
    if (rc == 0) rc = sq_pos_write(c, group, pos, npos);
    rc = sq_finish(c, rc);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* kpi_days from kpi_episodes when the first is empty and the second not
 * (a store older than migration 9), in one transaction. */
int sq_kpi_days_fill(struct sq_store *s)
{
    struct sq_conn *c = s->w;
    sqlite3_stmt *q = NULL;
    bool fill = false;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT EXISTS (SELECT 1 FROM kpi_episodes) AND "
                           "NOT EXISTS (SELECT 1 FROM kpi_days)",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        fill = sqlite3_column_int(q, 0) != 0;
    sqlite3_finalize(q);
    q = NULL;
    if (!fill) return OH_OK;
    OH_INFO("store", "kpi: filling kpi_days from kpi_episodes");
    struct oh_kpi_delta *d = oh_kpi_delta_new();
    int rc = d ? sq_exec(c, S_BEGIN_IMM) : OH_ENOMEM;
    if (rc == 0 && sqlite3_prepare_v2(c->db, "SELECT " SQ_EP_COLS " FROM kpi_episodes", -1, &q,
                                      NULL) != SQLITE_OK)
        rc = OH_EIO;
    int r = SQLITE_DONE;
    while (rc == 0 && (r = sqlite3_step(q)) == SQLITE_ROW) {
        struct oh_store_episode e;
        sq_episode_row(q, &e);
        rc = oh_kpi_delta_add(d, &e, 1);
    }
    if (rc == 0 && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    if (rc == 0) rc = sq_kpi_days_write(c, d);
    oh_kpi_delta_free(d);
    if (rc == 0) rc = sq_exec(c, S_COMMIT);
    if (rc != 0) {
        OH_ERROR("store", "kpi: filling kpi_days: %s", sqlite3_errmsg(c->db));
        sq_exec(c, S_ROLLBACK);
    }
    return rc;
}

/* One pass over the episodes of the range, aggregated in C (store_kpi.c):
 * SQLite's GROUP BY and window sort take three times as long. */
/* One reader's pass over the episodes resolved in [FROM, TO) into ACC. */
struct sq_kpi_scan {
    struct sq_store *s;
    const char *sql;
    const struct oh_store_kpi_query *kq;
    int64_t from, to;
    struct oh_kpi_acc *acc;
    int rc;
    pthread_t thread;
    bool running;
};

/* The rows of [FROM, TO) into ACC, on connection C. */
static int sq_kpi_rows(struct sq_conn *c, const char *sql, const struct oh_store_kpi_query *kq,
                       int64_t from, int64_t to, struct oh_kpi_acc *acc)
{
    sqlite3_stmt *q = NULL;
    int rc = OH_OK, r = SQLITE_DONE;
    if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(c->db));
        rc = OH_EIO;
    } else {
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int64(q, 2, to);
        if (kq->agent) sqlite3_bind_text(q, 3, kq->agent, -1, SQLITE_STATIC);
        while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
            bool null = sqlite3_column_type(q, 0) == SQLITE_NULL;
            bool reopened = sqlite3_column_type(q, 9) != SQLITE_NULL;
            struct oh_kpi_acc_ep e = {
                .frt_ms =
                    sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 1),
                .nrt_sum_ms = sqlite3_column_int64(q, 2),
                .nrt_count = sqlite3_column_int64(q, 3),
                .aht_ms =
                    sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4),
                .resolution_ms = sqlite3_column_int64(q, 5),
                .breached = sqlite3_column_int(q, 6) != 0,
                .bot_involved = sqlite3_column_int(q, 7) != 0,
            };
            /* resolved by the bot: no agent message, not reopened within the window */
            e.bot_resolved = e.bot_involved && !sqlite3_column_int(q, 8) &&
                             (!reopened || sqlite3_column_int64(q, 9) >= kq->reopen_window_ms);
            rc = oh_kpi_acc_add(acc, null ? NULL : (const char *)sqlite3_column_text(q, 0), &e);
        }
        if (rc == OH_OK && r != SQLITE_DONE) {
            OH_WARN("store", "kpi report: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
    }
    sqlite3_finalize(q);
    return rc;
}

static void *sq_kpi_scan(void *arg)
{
    struct sq_kpi_scan *sc = arg;
    struct sq_conn *c = sq_reader(sc->s);
    if (!c) {
        sc->rc = OH_EIO;
        return NULL;
    }
    /* the range is read whole: mapped, not copied page by page through pread */
    sqlite3_exec(c->db, "PRAGMA mmap_size=4294967296", NULL, NULL, NULL);
    sc->rc = sq_kpi_rows(c, sc->sql, sc->kq, sc->from, sc->to, sc->acc);
    sq_reader_put(sc->s, c);
    return NULL;
}

/* Where the episodes of [FROM, TO) begin and end (*LO > *HI: none). */
static int sq_kpi_bounds(struct sq_store *s, int64_t from, int64_t to, int64_t *lo, int64_t *hi)
{
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = NULL;
    int rc = OH_EIO;
    *lo = 1;
    *hi = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT min(resolved_ms), max(resolved_ms) FROM kpi_episodes "
                           "WHERE resolved_ms >= ?1 AND resolved_ms < ?2",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int64(q, 2, to);
        if (sqlite3_step(q) == SQLITE_ROW) {
            rc = OH_OK;
            if (sqlite3_column_type(q, 0) != SQLITE_NULL) {
                *lo = sqlite3_column_int64(q, 0);
                *hi = sqlite3_column_int64(q, 1);
            }
        }
    }
    sqlite3_finalize(q);
    sq_reader_put(s, c);
    return rc;
}

#define SQ_KPI_SCANS 4

/* Streams the episodes of the range and aggregates them in C
 * (store_kpi.c): SQLite's GROUP BY and window sort take three times as
 * long. A report over everyone's episodes reads the range in up to one
 * slice per CPU (at most 4), each on its own reader connection, and merges
 * them: a row is in exactly one slice (its resolved_ms never changes). */
static int sq_kpi_report_rows(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                              void *opaque)
{
    static const char *const keys[][2] = {
        {"agent", "agent"}, {"team", "team"}, {"channel", "channel"}, {"none", "'all'"}};
    const char *key = NULL;
    for (size_t i = 0; i < OH_ARRAY_SIZE(keys) && !key; i++)
        if (strcmp(kq->group_by, keys[i][0]) == 0) key = keys[i][1];
    if (!key) return OH_EINVAL;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, frt_ms, nrt_sum_ms, nrt_count, aht_ms, resolved_ms - start_ms, breached, "
             "bot_involved, agent_replied, reopened_ms - resolved_ms FROM kpi_episodes "
             "WHERE resolved_ms >= ?1 AND resolved_ms < ?2%s",
             key, kq->agent ? " AND agent = ?3" : "");
    struct sq_store *s = (struct sq_store *)st;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = kq->agent ? 1 : cpus < 1 ? 1 : cpus > SQ_KPI_SCANS ? SQ_KPI_SCANS : (int)cpus;
    int64_t lo = kq->from_ms, hi = kq->to_ms - 1;
    int rc = n > 1 ? sq_kpi_bounds(s, kq->from_ms, kq->to_ms, &lo, &hi) : OH_OK;
    if (rc) return rc;
    if (lo > hi) n = 1; /* nothing to read */
    if (n > 1 && (hi - lo) / n < 1) n = 1;
    struct sq_kpi_scan sc[SQ_KPI_SCANS];
    memset(sc, 0, sizeof sc);
    int64_t step = (hi - lo) / n + 1;
    for (int i = 0; i < n; i++) {
        /* contiguous slices of [from, to), never past it */
        int64_t a = i ? lo + step * i : kq->from_ms;
        int64_t b = i + 1 < n ? lo + step * (i + 1) : kq->to_ms;
        sc[i] = (struct sq_kpi_scan){s,
                                     sql,
                                     kq,
                                     a < kq->to_ms ? a : kq->to_ms,
                                     b < kq->to_ms ? b : kq->to_ms,
                                     oh_kpi_acc_new(),
                                     0,
                                     0,
                                     false};
        if (!sc[i].acc) rc = OH_ENOMEM;
    }
    for (int i = 1; i < n && rc == OH_OK; i++)
        sc[i].running = pthread_create(&sc[i].thread, NULL, sq_kpi_scan, &sc[i]) == 0;
    if (rc == OH_OK) sq_kpi_scan(&sc[0]);
    for (int i = 1; i < n; i++) {
        if (sc[i].running)
            pthread_join(sc[i].thread, NULL);
        else if (rc == OH_OK)
            sq_kpi_scan(&sc[i]); /* no thread: here */
    }
    for (int i = 0; i < n && rc == OH_OK; i++)
        rc = sc[i].rc;
    for (int i = 1; i < n && rc == OH_OK; i++)
        rc = oh_kpi_acc_merge(sc[0].acc, sc[i].acc);
    if (rc == OH_OK) rc = oh_kpi_acc_emit(sc[0].acc, fn, opaque);
    for (int i = 0; i < n; i++)
        oh_kpi_acc_free(sc[i].acc);
    return rc;
}

/* A report over kpi_days: the whole days of the range from there, the
 * rest from the rows, all in one read transaction. */
struct sq_kpi_days {
    struct sq_conn *c;
    const char *col;  /* NULL: group_by none */
    int64_t from, to; /* the whole days, in ms */
};

static int sq_kpi_frt(void *opaque, const char *key, int64_t lo, int64_t hi, int64_t *out, size_t n)
{
    struct sq_kpi_days *kd = opaque;
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT frt_ms FROM kpi_episodes INDEXED BY kpi_episodes_frt WHERE frt_ms IS NOT NULL "
             "AND frt_ms >= ?1 AND frt_ms < ?2 AND resolved_ms >= ?3 AND resolved_ms < ?4%s%s%s "
             "ORDER BY frt_ms",
             kd->col ? " AND " : "", kd->col ? kd->col : "", kd->col ? " IS ?5" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(kd->c->db, sql, -1, &q, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(kd->c->db));
        return OH_EIO;
    }
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    sqlite3_bind_int64(q, 3, kd->from);
    sqlite3_bind_int64(q, 4, kd->to);
    if (kd->col && key) sqlite3_bind_text(q, 5, key, -1, SQLITE_STATIC);
    size_t got = 0;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (got < n) out[got] = sqlite3_column_int64(q, 0);
        got++;
    }
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return sq_err(r);
    if (got != n) {
        OH_WARN("store", "kpi_days: %zu first response times in [%lld, %lld) for %s, rows have %zu",
                n, (long long)lo, (long long)hi, key ? key : "(none)", got);
        return OH_EDAMAGED;
    }
    return OH_OK;
}

static int sq_kpi_report_days(struct sq_conn *c, const struct oh_store_kpi_query *kq, int dim,
                              const char *key, int64_t first, int64_t last, struct oh_kpi_acc *acc)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, frt_ms, nrt_sum_ms, nrt_count, aht_ms, resolved_ms - start_ms, breached, "
             "bot_involved, agent_replied, reopened_ms - resolved_ms FROM kpi_episodes "
             "WHERE resolved_ms >= ?1 AND resolved_ms < ?2",
             key);
    /* the partial days at the ends */
    int rc = sq_kpi_rows(c, sql, kq, kq->from_ms, first * OH_KPI_DAY_MS, acc);
    if (rc == OH_OK) rc = sq_kpi_rows(c, sql, kq, last * OH_KPI_DAY_MS, kq->to_ms, acc);
    if (rc) return rc;
    sqlite3_stmt *q = NULL;
    int r = SQLITE_DONE;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT key, episodes, frt_n, frt_sum_ms, nrt_n, nrt_sum_ms, aht_n, "
                           "aht_sum_ms, resolution_sum_ms, sla_met, bot_involved, bot_open, "
                           "frt_hist FROM kpi_days WHERE dim = ?1 AND day >= ?2 AND day < ?3",
                           -1, &q, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(q, 1, oh_kpi_dims[dim], -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, first);
    sqlite3_bind_int64(q, 3, last);
    while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        int64_t v[OH_KPI_SUMS];
        for (int i = 0; i < OH_KPI_SUMS; i++)
            v[i] = sqlite3_column_int64(q, 1 + i);
        /* "" is the null agent or team */
        rc = oh_kpi_acc_add_day(acc, dim >= 2 && !k[0] ? NULL : k, v,
                                sqlite3_column_blob(q, 1 + OH_KPI_SUMS),
                                (size_t)sqlite3_column_bytes(q, 1 + OH_KPI_SUMS));
    }
    if (rc == OH_OK && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    q = NULL;
    if (rc) return rc;
    /* bot only and reopened: resolved by the bot when not within the window */
    snprintf(sql, sizeof sql,
             "SELECT %s, count(*) FROM kpi_episodes INDEXED BY kpi_episodes_bot "
             "WHERE bot_involved = 1 AND agent_replied = 0 AND reopened_ms IS NOT NULL "
             "AND resolved_ms >= ?1 AND resolved_ms < ?2 AND reopened_ms - resolved_ms >= ?3 "
             "GROUP BY 1",
             key);
    if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK) goto fail;
    sqlite3_bind_int64(q, 1, first * OH_KPI_DAY_MS);
    sqlite3_bind_int64(q, 2, last * OH_KPI_DAY_MS);
    sqlite3_bind_int64(q, 3, kq->reopen_window_ms);
    while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW)
        rc = oh_kpi_acc_add_bot(acc,
                                sqlite3_column_type(q, 0) == SQLITE_NULL
                                    ? NULL
                                    : (const char *)sqlite3_column_text(q, 0),
                                sqlite3_column_int64(q, 1));
    if (rc == OH_OK && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    return rc;
fail:
    OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(q);
    return OH_EIO;
}

/* Reports over everyone's episodes that span a whole UTC day read kpi_days
 * for the whole days (migration 8); the others read the rows. */
int sq_kpi_report(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                  void *opaque)
{
    static const char *const keys[4] = {"'all'", "channel", "team", "agent"};
    int dim = -1;
    for (int i = 0; i < 4 && dim < 0; i++)
        if (strcmp(kq->group_by, oh_kpi_dims[i]) == 0) dim = i;
    if (dim < 0) return OH_EINVAL;
    int64_t first = oh_kpi_day_of(kq->from_ms - 1) + 1, last = oh_kpi_day_of(kq->to_ms);
    if (kq->agent || first >= last) return sq_kpi_report_rows(st, kq, fn, opaque);
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    struct oh_kpi_acc *acc = oh_kpi_acc_new();
    int rc = !acc                                                          ? OH_ENOMEM
             : sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? OH_OK
                                                                           : OH_EIO;
    if (rc == OH_OK) {
        struct sq_kpi_days kd = {c, dim ? keys[dim] : NULL, first * OH_KPI_DAY_MS,
                                 last * OH_KPI_DAY_MS};
        rc = sq_kpi_report_days(c, kq, dim, keys[dim], first, last, acc);
        if (rc == OH_OK) rc = oh_kpi_acc_emit_days(acc, fn, opaque, sq_kpi_frt, &kd);
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    }
    oh_kpi_acc_free(acc);
    sq_reader_put(s, c);
    return rc;
}
