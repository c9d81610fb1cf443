/* store_pg_kpi.c - the PostgreSQL store's knowledge-base articles and
 * KPIs, both on shard 0: the episodes' write with its daily aggregates
 * (kpi_days, migration 12) in one transaction, their fill for a store from
 * before, and the reports, which read whole days from the aggregates and
 * the rest from the rows in one read-only snapshot. The KPI arithmetic is
 * store_kpi.c's, shared with SQLite. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_pg_int.h"

/* ---- knowledge-base articles (shard 0) ---- */

int pg_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    char ms[24];
    pg_i64s(ms, sizeof ms, a->updated_ms);
    const char *vals[] = {a->id, a->title, a->body, a->locale, a->tags, ms};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_PUT, 6, vals, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1)
        *version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        rc = OH_EIO;
    PQclear(r);
    return rc;
}

static int pg_article_rows(PGresult *r, oh_store_article_fn fn, void *opaque)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct oh_store_article a = {
            .id = PQgetvalue(r, i, 0),
            .title = PQgetvalue(r, i, 1),
            .body = PQgetvalue(r, i, 2),
            .locale = PQgetvalue(r, i, 3),
            .tags = PQgetvalue(r, i, 4),
            .version = strtoll(PQgetvalue(r, i, 5), NULL, 10),
            .updated_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10),
        };
        int stop = fn(opaque, &a);
        if (stop) return stop < 0 ? stop : 0;
    }
    return 0;
}

int pg_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque)
{
    const char *vals[] = {id};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_GET, 1, vals, &r, true);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? pg_article_rows(r, fn, opaque) : OH_ENOTFOUND;
    PQclear(r);
    return rc;
}

int pg_article_del(oh_store *st, const char *id)
{
    const char *vals[] = {id};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_DEL, 1, vals, &r, true);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    PQclear(r);
    return rc;
}

int pg_articles(oh_store *st, oh_store_article_fn fn, void *opaque)
{
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_ALL, 0, NULL, &r, true);
    if (rc != 0) return rc;
    rc = pg_article_rows(r, fn, opaque);
    PQclear(r);
    return rc;
}

/* ---- KPIs (shard 0, like positions) ---- */

#define PG_KPI_COLS                                                                                \
    "conversation_id, episode, channel, agent, team, start_ms, resolved_ms, frt_ms, bot_frt_ms, "  \
    "nrt_sum_ms, nrt_count, aht_ms, reopened_ms, breached, bot_involved, agent_replied"
#define PG_KPI_SUM_COLS                                                                            \
    "episodes, frt_n, frt_sum_ms, nrt_n, nrt_sum_ms, aht_n, aht_sum_ms, resolution_sum_ms, "       \
    "sla_met, bot_involved, bot_open"

_Static_assert(OH_KPI_HIST_CAP == 14400, "fill_sql's last bucket is OH_KPI_HIST_CAP");
_Static_assert(OH_KPI_SUMS == 11, "PG_KPI_SUM_COLS are the OH_KPI_SUMS");

/* The episodes ($1, a JSON array; the last of a repeated one wins)
 * inserted or replaced, and the group's ($2) positions ($3) stored. */
static const char put_sql[] =
    "WITH x0 AS (SELECT * FROM ROWS FROM (json_to_recordset($1::json) AS (conversation_id text, "
    "episode bigint, channel text, agent text, team text, start_ms bigint, resolved_ms bigint, "
    "frt_ms bigint, bot_frt_ms bigint, nrt_sum_ms bigint, nrt_count bigint, aht_ms bigint, "
    "reopened_ms bigint, breached boolean, bot_involved boolean, agent_replied boolean)) "
    "WITH ORDINALITY AS x0(" PG_KPI_COLS ", ord)), "
    "x AS (SELECT DISTINCT ON (conversation_id, episode) " PG_KPI_COLS " FROM x0 "
    "ORDER BY conversation_id, episode, ord DESC), "
    "ins AS (INSERT INTO kpi_episodes SELECT " PG_KPI_COLS " FROM x "
    "ON CONFLICT (conversation_id, episode) DO "
    "UPDATE SET channel = EXCLUDED.channel, agent = EXCLUDED.agent, team = EXCLUDED.team, "
    "start_ms = EXCLUDED.start_ms, resolved_ms = EXCLUDED.resolved_ms, frt_ms = EXCLUDED.frt_ms, "
    "bot_frt_ms = EXCLUDED.bot_frt_ms, nrt_sum_ms = EXCLUDED.nrt_sum_ms, "
    "nrt_count = EXCLUDED.nrt_count, aht_ms = EXCLUDED.aht_ms, "
    "reopened_ms = EXCLUDED.reopened_ms, breached = EXCLUDED.breached, "
    "bot_involved = EXCLUDED.bot_involved, agent_replied = EXCLUDED.agent_replied) "
    "INSERT INTO positions (grp, topic, part, next) SELECT $2::text, topic, part, next "
    "FROM json_to_recordset($3::json) AS y(topic text, part int, next bigint) "
    "ON CONFLICT (grp, topic, part) DO UPDATE SET next = EXCLUDED.next";

/* The conversations of $1's episodes (a JSON array), locked until the
 * transaction ends, in one order. Two members can write the same episodes
 * at once (a partition between its old and its new owner): old_sql's FOR
 * UPDATE alone finds no row to lock for a new episode, both writers would
 * add it to kpi_days and the aggregates would count it twice. The second
 * waits here instead, and its old_sql, a later statement, reads what the
 * first stored. The two-key form keeps clear of the migrations' lock. */
#define PG_KPI_LOCK_CLASS "7041129" /* "kpi" */
static const char lock_sql[] =
    "SELECT count(pg_advisory_xact_lock(" PG_KPI_LOCK_CLASS ", k)) FROM (SELECT DISTINCT "
    "hashtext(conversation_id) AS k FROM json_to_recordset($1::json) AS x(conversation_id text) "
    "ORDER BY k) s";

/* The stored episodes that $1's (a JSON array) rewrite, locked. */
static const char old_sql[] =
    "SELECT " PG_KPI_COLS " FROM kpi_episodes WHERE (conversation_id, episode) IN "
    "(SELECT conversation_id, episode FROM json_to_recordset($1::json) AS "
    "x(conversation_id text, episode bigint)) FOR UPDATE";

/* The kpi_days rows of $1's keys (a JSON array of {dim, day, key}), locked. */
static const char days_sql[] =
    "SELECT k.dim, k.day, k.key, " PG_KPI_SUM_COLS ", frt_hist FROM kpi_days k JOIN "
    "json_to_recordset($1::json) AS x(dim text, day bigint, key text) "
    "ON k.dim = x.dim AND k.day = x.day AND k.key = x.key FOR UPDATE OF k";

/* $1's rows (a JSON array of {dim, day, key, s: sums, h: hex of frt_hist,
 * new: not read by days_sql}) written, or deleted when their episodes are
 * 0. A new row is a plain insert: another writer creating it meanwhile
 * makes this one fail on the key (OH_EDUP) and run again, where an upsert
 * would overwrite that writer's figures with ours. */
#define PG_KPI_DAY_KEY "k.dim = w.dim AND k.day = w.day AND k.key = w.key"
static const char days_put_sql[] =
    "WITH w AS (SELECT * FROM json_to_recordset($1::json) AS "
    "w(dim text, day bigint, key text, s bigint[], h text, new boolean)), "
    "del AS (DELETE FROM kpi_days k USING w WHERE NOT w.new AND w.s[1] = 0 AND " PG_KPI_DAY_KEY
    "), upd AS (UPDATE kpi_days k SET episodes = w.s[1], frt_n = w.s[2], frt_sum_ms = w.s[3], "
    "nrt_n = w.s[4], nrt_sum_ms = w.s[5], aht_n = w.s[6], aht_sum_ms = w.s[7], "
    "resolution_sum_ms = w.s[8], sla_met = w.s[9], bot_involved = w.s[10], bot_open = w.s[11], "
    "frt_hist = decode(w.h, 'hex') FROM w WHERE NOT w.new AND w.s[1] <> 0 AND " PG_KPI_DAY_KEY
    ") INSERT INTO kpi_days SELECT dim, day, key, s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], "
    "s[9], s[10], s[11], decode(h, 'hex') FROM w WHERE new AND s[1] <> 0";

/* kpi_days from kpi_episodes, when the first is empty and the second not
 * (a store from before migration 12), in SQL: the definitions are
 * oh_kpi_delta_add's (store_kpi.c; the unit test checks the two agree).
 * A plain insert: a second process filling at the same moment fails on
 * the keys (OH_EDUP). */
static const char fill_sql[] =
    "WITH go AS (SELECT NOT EXISTS (SELECT 1 FROM kpi_days) AND "
    "EXISTS (SELECT 1 FROM kpi_episodes) AS yes), "
    "g AS (SELECT e.*, k.dim, k.key, floor(e.resolved_ms::numeric / 86400000)::bigint AS day "
    "FROM kpi_episodes e CROSS JOIN LATERAL (VALUES ('none', 'all'), ('channel', e.channel), "
    "('team', coalesce(e.team, '')), ('agent', coalesce(e.agent, ''))) AS k(dim, key) "
    "WHERE (SELECT yes FROM go)), "
    "s AS (SELECT dim, day, key, count(*) AS episodes, count(frt_ms) AS frt_n, "
    "coalesce(sum(frt_ms), 0) AS frt_sum_ms, sum(nrt_count) AS nrt_n, "
    "sum(nrt_sum_ms) AS nrt_sum_ms, count(aht_ms) AS aht_n, coalesce(sum(aht_ms), 0) AS aht_sum_ms, "
    "sum(resolved_ms - start_ms) AS resolution_sum_ms, count(*) FILTER (WHERE NOT breached) "
    "AS sla_met, count(*) FILTER (WHERE bot_involved) AS bot_involved, count(*) FILTER (WHERE "
    "bot_involved AND NOT agent_replied AND reopened_ms IS NULL) AS bot_open "
    "FROM g GROUP BY dim, day, key), "
    "b AS (SELECT dim, day, key, least(frt_ms / 1000, 14400)::int AS bucket, count(*)::int AS n "
    "FROM g WHERE frt_ms IS NOT NULL GROUP BY 1, 2, 3, 4), "
    "h AS (SELECT dim, day, key, string_agg(int4send(bucket) || int4send(n), ''::bytea "
    "ORDER BY bucket) AS hist FROM b GROUP BY 1, 2, 3), "
    "ins AS (INSERT INTO kpi_days SELECT s.*, coalesce(h.hist, ''::bytea) FROM s "
    "LEFT JOIN h USING (dim, day, key) RETURNING 1) "
    "SELECT count(*) FROM ins";

static json_t *opt_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *opt_text(const char *v)
{
    return v[0] ? json_string(v) : json_null();
}

/* Big-endian pairs (PostgreSQL's, int4send) to little-endian ones
 * (store_kpi.c's) and back: each 32-bit word's bytes reversed. */
static void swap32s(uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i += 4) {
        uint8_t t = p[i];
        p[i] = p[i + 3];
        p[i + 3] = t;
        t = p[i + 1];
        p[i + 1] = p[i + 2];
        p[i + 2] = t;
    }
}

static int64_t num(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int64_t opt_num(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? -1 : num(r, row, col);
}

static bool boolean(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

/* The episode of row I of PG_KPI_COLS. */
static void episode_row(const PGresult *r, int i, struct oh_store_episode *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->conversation_id, sizeof e->conversation_id, "%s", PQgetvalue(r, i, 0));
    e->episode = num(r, i, 1);
    snprintf(e->channel, sizeof e->channel, "%s", PQgetvalue(r, i, 2));
    snprintf(e->agent, sizeof e->agent, "%s", PQgetvalue(r, i, 3)); /* NULL reads "" */
    snprintf(e->team, sizeof e->team, "%s", PQgetvalue(r, i, 4));
    e->start_ms = num(r, i, 5);
    e->resolved_ms = num(r, i, 6);
    e->frt_ms = opt_num(r, i, 7);
    e->bot_frt_ms = opt_num(r, i, 8);
    e->nrt_sum_ms = num(r, i, 9);
    e->nrt_count = num(r, i, 10);
    e->aht_ms = opt_num(r, i, 11);
    e->reopened_ms = opt_num(r, i, 12);
    e->breached = boolean(r, i, 13);
    e->bot_involved = boolean(r, i, 14);
    e->agent_replied = boolean(r, i, 15);
}

static const struct oh_store_episode *sort_eps;

static int by_episode(const void *pa, const void *pb)
{
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct oh_store_episode *x = &sort_eps[a], *y = &sort_eps[b];
    int c = strcmp(x->conversation_id, y->conversation_id);
    if (!c) c = (x->episode > y->episode) - (x->episode < y->episode);
    return c ? c : (a > b) - (a < b);
}

/* The batch's changes to kpi_days: the stored episodes it rewrites (OLD)
 * taken away, the last of each of its episodes added. */
static int batch_delta(const struct oh_store_episode *eps, size_t n, const PGresult *old,
                       struct oh_kpi_delta *d)
{
    int rc = OH_OK;
    for (int i = 0; rc == OH_OK && i < PQntuples(old); i++) {
        struct oh_store_episode was;
        episode_row(old, i, &was);
        rc = oh_kpi_delta_add(d, &was, -1);
    }
    size_t *ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix) return OH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        ix[i] = i;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* qsort has no context argument */
    pthread_mutex_lock(&mu);
    sort_eps = eps;
    qsort(ix, n, sizeof *ix, by_episode);
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; rc == OH_OK && i < n; i++) {
        const struct oh_store_episode *e = &eps[ix[i]], *next = i + 1 < n ? &eps[ix[i + 1]] : NULL;
        if (next && next->episode == e->episode &&
            strcmp(next->conversation_id, e->conversation_id) == 0)
            continue; /* a later copy wins */
        rc = oh_kpi_delta_add(d, e, 1);
    }
    free(ix);
    return rc;
}

/* The stored kpi_days rows of a write, by (dim, day, key). */
struct day_rows {
    const PGresult *r;
    int *ix; /* row numbers, sorted */
    int n;
};

static const PGresult *sort_days;

static int day_cmp(const PGresult *r, int i, const char *dim, int64_t day, const char *key)
{
    int c = strcmp(PQgetvalue(r, i, 0), dim);
    if (!c) {
        int64_t d = num(r, i, 1);
        c = (d > day) - (d < day);
    }
    return c ? c : strcmp(PQgetvalue(r, i, 2), key);
}

static int by_day(const void *pa, const void *pb)
{
    int b = *(const int *)pb;
    return day_cmp(sort_days, *(const int *)pa, PQgetvalue(sort_days, b, 0), num(sort_days, b, 1),
                   PQgetvalue(sort_days, b, 2));
}

static int day_find(const struct day_rows *dr, const char *dim, int64_t day, const char *key)
{
    int lo = 0, hi = dr->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2, c = day_cmp(dr->r, dr->ix[mid], dim, day, key);
        if (!c) return dr->ix[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

struct days_w {
    struct day_rows rows;
    json_t *keys, *out;
};

static int collect_key(void *opaque, const char *dim, int64_t day, const char *key,
                       const int64_t *v, const int64_t (*hist)[2], size_t n)
{
    struct days_w *w = opaque;
    return json_array_append_new(w->keys, json_pack("{s:s, s:I, s:s}", "dim", dim, "day",
                                                    (json_int_t)day, "key", key))
               ? OH_ENOMEM
               : OH_OK;
}

/* One changed kpi_days row: the stored one (if any) plus V and HIST. */
static int apply_day(void *opaque, const char *dim, int64_t day, const char *key,
                     const int64_t *v, const int64_t (*hist)[2], size_t n)
{
    struct days_w *w = opaque;
    int i = day_find(&w->rows, dim, day, key);
    int64_t sums[OH_KPI_SUMS] = {0};
    uint8_t *have = NULL, *blob = NULL;
    size_t hlen = 0, len = 0;
    if (i >= 0) {
        for (int j = 0; j < OH_KPI_SUMS; j++)
            sums[j] = num(w->rows.r, i, 3 + j);
        have = PQunescapeBytea((const unsigned char *)PQgetvalue(w->rows.r, i, 3 + OH_KPI_SUMS),
                               &hlen);
        if (!have) return OH_ENOMEM;
        swap32s(have, hlen);
    }
    int rc = oh_kpi_hist_apply(have, hlen, hist, n, &blob, &len);
    PQfreemem(have);
    bool negative = false;
    for (int j = 0; j < OH_KPI_SUMS; j++) {
        sums[j] += v[j];
        negative |= j != OH_KPI_FRT_SUM && j != OH_KPI_RES_SUM && sums[j] < 0;
    }
    if (rc == OH_OK && negative) rc = OH_EDAMAGED;
    if (rc == OH_EDAMAGED)
        OH_WARN("store", "kpi_days %s %lld %s: a count below 0", dim, (long long)day, key);
    char *hex = rc == OH_OK ? malloc(len * 2 + 1) : NULL;
    if (rc == OH_OK && !hex) rc = OH_ENOMEM;
    if (rc == OH_OK) {
        swap32s(blob, len);
        for (size_t j = 0; j < len; j++)
            snprintf(hex + 2 * j, 3, "%02x", blob[j]);
        hex[len * 2] = '\0';
        json_t *s = json_array();
        for (int j = 0; s && j < OH_KPI_SUMS; j++)
            json_array_append_new(s, json_integer(sums[j]));
        json_t *row = s ? json_pack("{s:s, s:I, s:s, s:o, s:s, s:b}", "dim", dim, "day",
                                    (json_int_t)day, "key", key, "s", s, "h", hex, "new", i < 0)
                        : NULL;
        if (!row || json_array_append_new(w->out, row)) rc = OH_ENOMEM;
    }
    free(hex);
    free(blob);
    return rc;
}

static int held_json(struct oh_pg_pool *p, struct oh_pg_conn *c, const char *sql, json_t *arg,
                     PGresult **res)
{
    char *text = arg ? json_dumps(arg, JSON_COMPACT) : NULL;
    if (!text) return OH_ENOMEM;
    const char *vals[] = {text};
    int rc = oh_pg_held_exec(p, c, sql, 1, vals, res);
    free(text);
    return rc;
}

static int simple_held(struct oh_pg_pool *p, struct oh_pg_conn *c, const char *sql)
{
    PGresult *r = NULL;
    int rc = oh_pg_held_exec(p, c, sql, 0, NULL, &r);
    PQclear(r);
    return rc;
}

/* One transaction: the episodes' conversations locked (lock_sql), the
 * rewritten episodes and their kpi_days rows read and locked, the
 * episodes and positions written (put_sql), the changed kpi_days rows
 * written. */
static int put_once(struct oh_pg_pool *p, const char *rtext, const char *group, const char *ptext,
                    const struct oh_store_episode *eps, size_t n)
{
    struct oh_pg_conn *c;
    int rc = oh_pg_hold(p, &c);
    if (rc) return rc;
    PGresult *old = NULL, *days = NULL, *r = NULL;
    struct oh_kpi_delta *d = oh_kpi_delta_new();
    struct days_w w = {.keys = json_array(), .out = json_array()};
    const char *vals[] = {rtext, group, ptext};
    rc = d && w.keys && w.out ? simple_held(p, c, "BEGIN") : OH_ENOMEM;
    if (rc == OH_OK && n) rc = oh_pg_held_exec(p, c, lock_sql, 1, vals, &r);
    PQclear(r);
    r = NULL;
    if (rc == OH_OK && n) rc = oh_pg_held_exec(p, c, old_sql, 1, vals, &old);
    if (rc == OH_OK && n) rc = batch_delta(eps, n, old, d);
    if (rc == OH_OK) rc = oh_pg_held_exec(p, c, put_sql, 3, vals, &r);
    if (rc == OH_OK && n) rc = oh_kpi_delta_each(d, collect_key, &w);
    if (rc == OH_OK && n) rc = held_json(p, c, days_sql, w.keys, &days);
    if (rc == OH_OK && n) {
        w.rows = (struct day_rows){days, malloc(((size_t)PQntuples(days) + 1) * sizeof(int)),
                                   PQntuples(days)};
        if (!w.rows.ix) rc = OH_ENOMEM;
        for (int i = 0; rc == OH_OK && i < w.rows.n; i++)
            w.rows.ix[i] = i;
        static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* qsort has no context */
        pthread_mutex_lock(&mu);
        sort_days = days;
        if (rc == OH_OK) qsort(w.rows.ix, (size_t)w.rows.n, sizeof(int), by_day);
        pthread_mutex_unlock(&mu);
    }
    if (rc == OH_OK && n) rc = oh_kpi_delta_each(d, apply_day, &w);
    PQclear(r);
    r = NULL;
    if (rc == OH_OK && n) rc = held_json(p, c, days_put_sql, w.out, &r);
    if (rc == OH_OK) rc = simple_held(p, c, "COMMIT");
    PQclear(r);
    PQclear(old);
    PQclear(days);
    free(w.rows.ix);
    json_decref(w.keys);
    json_decref(w.out);
    oh_kpi_delta_free(d);
    oh_pg_unhold(p, c); /* rolls back what failed */
    return rc;
}

int pg_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
               const struct oh_store_pos *pos, size_t npos)
{
    struct oh_pg_pool *p = SHARD0(st);
    json_t *rows = json_array(), *jpos = json_array();
    for (size_t i = 0; rows && i < n; i++) {
        const struct oh_store_episode *e = &eps[i];
        json_t *o = json_pack(
            "{s:s, s:I, s:s, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:b, s:b, s:b}",
            "conversation_id", e->conversation_id, "episode", (json_int_t)e->episode, "channel",
            e->channel, "agent", opt_text(e->agent), "team", opt_text(e->team), "start_ms",
            (json_int_t)e->start_ms, "resolved_ms", (json_int_t)e->resolved_ms, "frt_ms",
            opt_int(e->frt_ms), "bot_frt_ms", opt_int(e->bot_frt_ms), "nrt_sum_ms",
            (json_int_t)e->nrt_sum_ms, "nrt_count", (json_int_t)e->nrt_count, "aht_ms",
            opt_int(e->aht_ms), "reopened_ms", opt_int(e->reopened_ms), "breached", e->breached,
            "bot_involved", e->bot_involved, "agent_replied", e->agent_replied);
        if (!o || json_array_append_new(rows, o)) {
            json_decref(rows);
            rows = NULL;
        }
    }
    for (size_t i = 0; jpos && i < npos; i++)
        json_array_append_new(jpos,
                              json_pack("{s:s, s:i, s:I}", "topic", pos[i].topic, "part",
                                        (int)pos[i].partition, "next", (json_int_t)pos[i].next));
    char *rtext = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    char *ptext = jpos ? json_dumps(jpos, JSON_COMPACT) : NULL;
    int rc = OH_ENOMEM;
    /* two writers creating the same kpi_days row, or locking in another
     * order: the loser's transaction is rolled back and runs again */
    for (int attempt = 0; rtext && ptext && attempt < 5; attempt++) {
        rc = put_once(p, rtext, group, ptext, eps, n);
        if (rc != OH_EDUP && rc != OH_ERETRY) break;
        OH_INFO("store", "kpi: write conflict (%s); again", oh_strerror(rc));
    }
    free(rtext);
    free(ptext);
    json_decref(rows);
    json_decref(jpos);
    return rc;
}

int oh_pg_kpi_days_fill(struct oh_pg_pool *p)
{
    PGresult *r;
    int rc = oh_pg_exec_sql(p, fill_sql, 0, NULL, &r, true);
    if (rc == OH_EDUP) return OH_OK; /* another process filled them */
    if (rc) return rc;
    long long rows = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    if (rows) OH_INFO("store", "kpi: filled %lld kpi_days rows from kpi_episodes", rows);
    PQclear(r);
    return OH_OK;
}

/* ---- reports ---- */

/* A report's snapshot: one held connection in a read-only REPEATABLE READ
 * transaction, so the aggregates and the rows read after them agree. */
struct snap {
    struct oh_pg_pool *p;
    struct oh_pg_conn *c;
    const char *col;  /* the group key's column; NULL: group_by none */
    int64_t from, to; /* the whole days, in ms */
    int64_t window_ms;
};

static int snap_exec(struct snap *s, const char *sql, int n, const char *const *vals,
                     PGresult **res)
{
    return oh_pg_held_exec(s->p, s->c, sql, n, vals, res);
}

/* The rows of [FROM, TO) into ACC, one by one (the partial days). */
static int add_rows(struct snap *s, const char *key, int64_t from, int64_t to,
                    struct oh_kpi_acc *acc)
{
    if (from >= to) return OH_OK;
    char sql[512], a[24], b[24];
    snprintf(sql, sizeof sql,
             "SELECT %s, frt_ms, nrt_sum_ms, nrt_count, aht_ms, resolved_ms - start_ms, "
             "breached::int, bot_involved::int, agent_replied::int, reopened_ms - resolved_ms "
             "FROM kpi_episodes WHERE resolved_ms >= $1::bigint AND resolved_ms < $2::bigint",
             key);
    pg_i64s(a, sizeof a, from);
    pg_i64s(b, sizeof b, to);
    const char *vals[] = {a, b};
    PGresult *r;
    int rc = snap_exec(s, sql, 2, vals, &r);
    for (int i = 0; rc == OH_OK && r && i < PQntuples(r); i++) {
        struct oh_kpi_acc_ep e = {
            .frt_ms = PQgetisnull(r, i, 1) ? -1 : num(r, i, 1),
            .nrt_sum_ms = num(r, i, 2),
            .nrt_count = num(r, i, 3),
            .aht_ms = PQgetisnull(r, i, 4) ? -1 : num(r, i, 4),
            .resolution_ms = num(r, i, 5),
            .breached = num(r, i, 6) != 0,
            .bot_involved = num(r, i, 7) != 0,
        };
        /* bot only, and not reopened within the window */
        e.bot_resolved = e.bot_involved && num(r, i, 8) == 0 &&
                         (PQgetisnull(r, i, 9) || num(r, i, 9) >= s->window_ms);
        rc = oh_kpi_acc_add(acc, PQgetisnull(r, i, 0) ? NULL : PQgetvalue(r, i, 0), &e);
    }
    PQclear(r);
    return rc;
}

/* The whole days' aggregates into ACC, with the bot-resolved episodes that
 * were reopened after the window (kpi_days counts the never reopened):
 * one statement, kinds 0 (a day's row) then 1 (a key's reopened bot
 * episodes). */
static int add_days(struct snap *s, int dim, const char *key, int64_t first, int64_t last,
                    struct oh_kpi_acc *acc)
{
    char sql[1200], a[24], b[24], c[24], d[24], w[24];
    snprintf(sql, sizeof sql,
             "SELECT 0 AS kind, key, " PG_KPI_SUM_COLS ", frt_hist FROM kpi_days "
             "WHERE dim = $1::text AND day >= $2::bigint AND day < $3::bigint "
             "UNION ALL SELECT 1, %s COLLATE \"C\", count(*), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL "
             "FROM kpi_episodes WHERE bot_involved AND NOT agent_replied AND reopened_ms IS NOT "
             "NULL AND resolved_ms >= $4::bigint AND resolved_ms < $5::bigint "
             "AND reopened_ms - resolved_ms >= $6::bigint GROUP BY 2 ORDER BY 1",
             key);
    pg_i64s(a, sizeof a, first);
    pg_i64s(b, sizeof b, last);
    pg_i64s(c, sizeof c, s->from);
    pg_i64s(d, sizeof d, s->to);
    pg_i64s(w, sizeof w, s->window_ms);
    const char *vals[] = {oh_kpi_dims[dim], a, b, c, d, w};
    PGresult *r;
    int rc = snap_exec(s, sql, 6, vals, &r);
    for (int i = 0; rc == OH_OK && r && i < PQntuples(r); i++) {
        /* "" (kind 0) and NULL (kind 1) are the null agent or team */
        const char *k = PQgetisnull(r, i, 1) ? NULL : PQgetvalue(r, i, 1);
        if (k && !k[0] && dim >= 2) k = NULL;
        if (num(r, i, 0) == 1) {
            rc = oh_kpi_acc_add_bot(acc, k, num(r, i, 2));
            continue;
        }
        int64_t v[OH_KPI_SUMS];
        for (int j = 0; j < OH_KPI_SUMS; j++)
            v[j] = num(r, i, 2 + j);
        size_t len = 0;
        uint8_t *blob =
            PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2 + OH_KPI_SUMS), &len);
        if (!blob) {
            rc = OH_ENOMEM;
            break;
        }
        swap32s(blob, len);
        rc = oh_kpi_acc_add_day(acc, k, v, blob, len);
        PQfreemem(blob);
    }
    PQclear(r);
    return rc;
}

/* oh_kpi_frt_fn: the N stored first response times of KEY in [LO, HI) ms,
 * resolved in the whole days, in the snapshot. */
static int frt_values(void *opaque, const char *key, int64_t lo, int64_t hi, int64_t *out,
                      size_t n)
{
    struct snap *s = opaque;
    char sql[400], a[24], b[24], c[24], d[24];
    snprintf(sql, sizeof sql,
             "SELECT frt_ms FROM kpi_episodes WHERE frt_ms IS NOT NULL AND frt_ms >= $1::bigint "
             "AND frt_ms < $2::bigint AND resolved_ms >= $3::bigint AND resolved_ms < $4::bigint%s%s%s",
             s->col ? " AND " : "", s->col ? s->col : "",
             s->col ? " IS NOT DISTINCT FROM $5::text" : "");
    pg_i64s(a, sizeof a, lo);
    pg_i64s(b, sizeof b, hi);
    pg_i64s(c, sizeof c, s->from);
    pg_i64s(d, sizeof d, s->to);
    const char *vals[] = {a, b, c, d, key};
    PGresult *r;
    int rc = snap_exec(s, sql, s->col ? 5 : 4, vals, &r);
    if (rc) return rc;
    size_t got = (size_t)PQntuples(r);
    for (size_t i = 0; i < got && i < n; i++)
        out[i] = num(r, (int)i, 0);
    PQclear(r);
    if (got != n) {
        OH_WARN("store", "kpi_days: %zu first response times in [%lld, %lld) for %s, rows have %zu",
                n, (long long)lo, (long long)hi, key ? key : "(none)", got);
        return OH_EDAMAGED;
    }
    return OH_OK;
}

/* Every episode of the range through one GROUP BY (an agent's own report,
 * or a range without a whole UTC day). */
static int rows_report(struct oh_pg_pool *p, const struct oh_store_kpi_query *q,
                       oh_store_kpi_fn fn, void *opaque)
{
    char sql[4096], from[24], to[24], win[24];
    int rc = oh_store_kpi_sql(sql, sizeof sql, q->group_by, '$');
    if (rc) return rc;
    pg_i64s(from, sizeof from, q->from_ms);
    pg_i64s(to, sizeof to, q->to_ms);
    pg_i64s(win, sizeof win, q->reopen_window_ms);
    const char *vals[] = {from, to, q->agent, win};
    PGresult *r;
    if ((rc = oh_pg_exec_sql(p, sql, 4, vals, &r, true))) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        struct oh_store_kpi_row row = {.key_null = PQgetisnull(r, i, 0)};
        snprintf(row.key, sizeof row.key, "%s", PQgetvalue(r, i, 0));
        int64_t *v[] = {&row.episodes,          &row.frt_n,      &row.frt_sum_ms,
                        &row.frt_p50_ms,        &row.frt_p90_ms, &row.nrt_n,
                        &row.nrt_sum_ms,        &row.aht_n,      &row.aht_sum_ms,
                        &row.resolution_sum_ms, &row.sla_met,    &row.bot_involved,
                        &row.bot_resolved};
        for (int k = 0; k < (int)OH_ARRAY_SIZE(v); k++)
            *v[k] = PQgetisnull(r, i, k + 1) ? -1 : strtoll(PQgetvalue(r, i, k + 1), NULL, 10);
        int stop = fn(opaque, &row);
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

int pg_kpi_report(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                  void *opaque)
{
    struct oh_pg_pool *p = SHARD0(st);
    static const char *const keys[4] = {"'all'", "channel", "team", "agent"};
    int dim = -1;
    for (int i = 0; i < 4 && dim < 0; i++)
        if (strcmp(kq->group_by, oh_kpi_dims[i]) == 0) dim = i;
    if (dim < 0) return OH_EINVAL;
    int64_t first = oh_kpi_day_of(kq->from_ms - 1) + 1, last = oh_kpi_day_of(kq->to_ms);
    if (kq->agent || first >= last) return rows_report(p, kq, fn, opaque);
    struct snap s = {p, NULL, dim ? keys[dim] : NULL, first * OH_KPI_DAY_MS, last * OH_KPI_DAY_MS,
                     kq->reopen_window_ms};
    struct oh_kpi_acc *acc = oh_kpi_acc_new();
    if (!acc) return OH_ENOMEM;
    int rc = oh_pg_hold(p, &s.c);
    if (rc) {
        oh_kpi_acc_free(acc);
        return rc;
    }
    PGresult *r = NULL;
    rc = snap_exec(&s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, &r);
    PQclear(r);
    /* the partial days at the ends, then the whole days */
    if (rc == OH_OK) rc = add_rows(&s, keys[dim], kq->from_ms, s.from, acc);
    if (rc == OH_OK) rc = add_rows(&s, keys[dim], s.to, kq->to_ms, acc);
    if (rc == OH_OK) rc = add_days(&s, dim, keys[dim], first, last, acc);
    if (rc == OH_OK) rc = oh_kpi_acc_emit_days(acc, fn, opaque, frt_values, &s);
    if (rc == OH_OK) {
        rc = snap_exec(&s, "COMMIT", 0, NULL, &r);
        PQclear(r);
    }
    oh_pg_unhold(p, s.c);
    oh_kpi_acc_free(acc);
    return rc;
}
