/* store_pg_kpi.c - the PostgreSQL store's knowledge-base articles and
 * KPIs (finished episodes and their reports), both on shard 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_pg_int.h"

/* ---- knowledge-base articles (shard 0) ---- */

int pg_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    char ms[24];
    i64s(ms, sizeof ms, a->updated_ms);
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

/* One statement: the episodes ($1, a JSON array) inserted or replaced and
 * the group's ($2) positions ($3) stored, all or nothing. */
static const char pg_kpi_put_sql[] =
    "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(conversation_id text, "
    "episode bigint, channel text, agent text, team text, start_ms bigint, resolved_ms bigint, "
    "frt_ms bigint, bot_frt_ms bigint, nrt_sum_ms bigint, nrt_count bigint, aht_ms bigint, "
    "reopened_ms bigint, breached boolean, bot_involved boolean, agent_replied boolean)), "
    "ins AS (INSERT INTO kpi_episodes SELECT conversation_id, episode, channel, agent, team, "
    "start_ms, resolved_ms, frt_ms, bot_frt_ms, nrt_sum_ms, nrt_count, aht_ms, reopened_ms, "
    "breached, bot_involved, agent_replied FROM x ON CONFLICT (conversation_id, episode) DO "
    "UPDATE SET channel = EXCLUDED.channel, agent = EXCLUDED.agent, team = EXCLUDED.team, "
    "start_ms = EXCLUDED.start_ms, resolved_ms = EXCLUDED.resolved_ms, frt_ms = EXCLUDED.frt_ms, "
    "bot_frt_ms = EXCLUDED.bot_frt_ms, nrt_sum_ms = EXCLUDED.nrt_sum_ms, "
    "nrt_count = EXCLUDED.nrt_count, aht_ms = EXCLUDED.aht_ms, "
    "reopened_ms = EXCLUDED.reopened_ms, breached = EXCLUDED.breached, "
    "bot_involved = EXCLUDED.bot_involved, agent_replied = EXCLUDED.agent_replied) "
    "INSERT INTO positions (grp, topic, part, next) SELECT $2::text, topic, part, next "
    "FROM json_to_recordset($3::json) AS y(topic text, part int, next bigint) "
    "ON CONFLICT (grp, topic, part) DO UPDATE SET next = EXCLUDED.next";

static json_t *opt_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *opt_text(const char *v)
{
    return v[0] ? json_string(v) : json_null();
}

int pg_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
               const struct oh_store_pos *pos, size_t npos)
{
    struct pg_store *s = (struct pg_store *)st;
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
    if (rtext && ptext) {
        const char *vals[] = {rtext, group, ptext};
        PGresult *r;
        rc = oh_pg_exec_sql(s->dir.at[0].pool, pg_kpi_put_sql, 3, vals, &r, true);
        if (rc == 0) PQclear(r);
    }
    free(rtext);
    free(ptext);
    json_decref(rows);
    json_decref(jpos);
    return rc;
}

int pg_kpi_report(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                  void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    char sql[4096], from[24], to[24], win[24];
    int rc = oh_store_kpi_sql(sql, sizeof sql, q->group_by, '$');
    if (rc) return rc;
    i64s(from, sizeof from, q->from_ms);
    i64s(to, sizeof to, q->to_ms);
    i64s(win, sizeof win, q->reopen_window_ms);
    const char *vals[] = {from, to, q->agent, win};
    PGresult *r;
    if ((rc = oh_pg_exec_sql(s->dir.at[0].pool, sql, 4, vals, &r, true))) return rc;
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
