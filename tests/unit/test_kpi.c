/* test_kpi.c - the KPI fold (services/kpi_fold.c) on scripted histories:
 * FRT, bot FRT, NRT, handle time, breaches, private notes, re-opening by an
 * inbound message and by a PATCH, repeats; folding from the timeline's
 * metadata against folding the bodies, through the local log; the report
 * arithmetic of
 * store/store_kpi.c (exact nearest-rank percentiles, key order); the
 * SQLite and PostgreSQL stores' daily aggregates (kpi_days) against the
 * rows, with rewritten episodes, partial days and a store filled when it
 * opens. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "core/config.h"
#include "core/contacts.h"
#include "core/event.h"
#include "log/log.h"
#include "services/kpi_fold.h"
#include "store/store_int.h"
#include "tap.h"
#include "hub_fixture.h"
#include "oh_build_config.h"
#ifdef OH_HAVE_POSTGRES
#include "pg_harness.h"
#endif

#define T0 1767225600000LL

static struct oh_kpi_conv conv;
static struct oh_kpi_out out;
static int64_t seq;

static void ev(const char *type, int64_t at_s, const char *data_fmt, ...)
{
    char when[32], data[1024];
    va_list ap;
    va_start(ap, data_fmt);
    vsnprintf(data, sizeof data, data_fmt, ap);
    va_end(ap);
    oh_time_rfc3339(when, T0 + at_s * 1000);
    json_t *d = json_loads(data, 0, NULL);
    ck_assert_ptr_nonnull(d);
    json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:o}", "type", type, "time", when, "subject", "c1",
                          "seq", (json_int_t)(seq + 1), "data", d);
    oh_kpi_fold(&conv, e, ++seq, &out);
    json_decref(e);
}

#define IN(t) ev(OH_EV_INBOUND, t, "{\"channel\":\"api:x\",\"author\":{\"kind\":\"customer\"}}")
#define OUT(t, kind)                                                                               \
    ev(OH_EV_OUTBOUND, t, "{\"channel\":\"api:x\",\"author\":{\"kind\":\"%s\"}}", kind)
#define STATE(t, status, assignee, episode, reason)                                                \
    ev(OH_EV_UPDATED, t,                                                                           \
       "{\"channel\":\"api:x\",\"reason\":\"%s\",\"state\":{\"status\":\"%s\",\"assignee\":%s,"    \
       "\"team\":\"t1\",\"episode\":%d}}",                                                         \
       reason, status, assignee, episode)

START_TEST(one_episode_figures)
{
    oh_kpi_conv_init(&conv, "c1", NULL);
    seq = 0;
    IN(0);
    ck_assert(conv.in_episode);
    OUT(2, "bot");
    STATE(5, "open", "\"a1\"", 1, "patch");
    ev(OH_EV_OUTBOUND, 6, "{\"internal\":true,\"author\":{\"kind\":\"agent\"}}"); /* a note */
    ck_assert_int_eq(conv.cur.frt_ms, -1);
    OUT(10, "agent");
    ck_assert(out.frt_s == 10.0);
    IN(20);
    IN(25); /* still waiting since 20 */
    OUT(30, "agent");
    STATE(31, "open", "\"a1\"", 1, "sla_breach:nrt");
    STATE(40, "pending", "\"a1\"", 1, "patch");
    STATE(50, "open", "\"a1\"", 1, "patch");
    ck_assert_int_eq(out.nrows, 0);
    STATE(60, "resolved", "\"a1\"", 1, "patch");
    ck_assert_int_eq(out.nrows, 1);
    const struct oh_store_episode *e = &out.rows[0];
    ck_assert_str_eq(e->conversation_id, "c1");
    ck_assert_str_eq(e->channel, "api:x");
    ck_assert_str_eq(e->agent, "a1");
    ck_assert_str_eq(e->team, "t1");
    ck_assert_int_eq(e->episode, 1);
    ck_assert_int_eq(e->start_ms, T0);
    ck_assert_int_eq(e->resolved_ms, T0 + 60000);
    ck_assert_int_eq(e->frt_ms, 10000);
    ck_assert_int_eq(e->bot_frt_ms, 2000);
    ck_assert_int_eq(e->nrt_sum_ms, 10000);
    ck_assert_int_eq(e->nrt_count, 1);
    ck_assert_int_eq(e->aht_ms, 45000); /* 5..40 and 50..60 */
    ck_assert_int_eq(e->reopened_ms, -1);
    ck_assert(e->breached && e->bot_involved && e->agent_replied);
    ck_assert(out.handle_s == 45.0);
    ck_assert(!conv.in_episode);

    /* an agent message after resolved belongs to no episode */
    OUT(70, "agent");
    ck_assert_int_eq(out.nrows, 0);
    /* an inbound message re-opens: episode 2, and episode 1 learns it */
    IN(100);
    ck_assert_int_eq(out.nrows, 1);
    ck_assert_int_eq(out.rows[0].episode, 1);
    ck_assert_int_eq(out.rows[0].reopened_ms, T0 + 100000);
    ck_assert_int_eq(conv.cur.episode, 2);
    STATE(100, "open", "\"a1\"", 2, "inbound");
    STATE(130, "resolved", "\"a1\"", 2, "patch");
    ck_assert_int_eq(out.nrows, 1);
    e = &out.rows[0];
    ck_assert_int_eq(e->episode, 2);
    ck_assert_int_eq(e->frt_ms, -1);
    ck_assert_int_eq(e->aht_ms, 30000);
    ck_assert(!e->breached && !e->bot_involved && !e->agent_replied);

    /* a repeat changes nothing */
    json_t *again =
        json_pack("{s:s, s:s}", "type", OH_EV_INBOUND, "time", "2026-01-01T00:10:00.000Z");
    oh_kpi_fold(&conv, again, seq, &out);
    json_decref(again);
    ck_assert_int_eq(out.nrows, 0);
    ck_assert(!conv.in_episode);
    ck_assert_int_eq(conv.last_seq, seq);

    /* an agent's PATCH re-opens without a message: episode 3 starts then */
    STATE(200, "open", "null", 3, "patch");
    ck_assert(conv.in_episode);
    ck_assert_int_eq(conv.cur.episode, 3);
    ck_assert_int_eq(out.nrows, 1); /* episode 2 reopened */
    ck_assert_int_eq(out.rows[0].episode, 2);
    STATE(210, "resolved", "null", 3, "patch");
    ck_assert_int_eq(out.rows[0].start_ms, T0 + 200000);
    ck_assert_int_eq(out.rows[0].aht_ms, -1); /* never assigned while open */
    ck_assert_str_eq(out.rows[0].agent, "");
}
END_TEST

/* ---- folding from metadata ------------------------------------------------ */

static unsigned rnd_state;

static unsigned rnd(unsigned n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 16) % n;
}

/* One random event of conversation CONV at *T_MS (advanced): messages in
 * and out by every author kind, private notes both ways, state changes
 * (open, pending, resolved; assigned or not; episodes that move; breaches),
 * events the fold does not count, times with offsets and unparsable ones.
 * ID: the conversation; CHANNEL NULL: the data has none. */
static json_t *random_event(const char *id, const char *channel, int64_t *t_ms, int *episode)
{
    static const char *const kinds[] = {"agent", "bot", "customer", "system", NULL};
    static const char *const statuses[] = {"open", "open", "pending", "resolved", "snoozed"};
    static const char *const assignees[] = {NULL, "a1", "a2"};
    static const char *const reasons[] = {"patch", "inbound", "sla_breach:frt", "sla_breach:nrt"};
    static const char *const others[] = {OH_EV_STATUS, OH_EV_ENRICHED, OH_EV_ERASED};
    *t_ms += 1 + (int64_t)rnd(90000);
    char when[40];
    oh_time_rfc3339(when, *t_ms);
    if (rnd(20) == 0) snprintf(when, sizeof when, "2026-01-01T03:00:00.5+02:00");
    if (rnd(50) == 0) snprintf(when, sizeof when, "yesterday");
    json_t *data = json_pack("{s:s}", "conversation_id", id);
    if (channel) json_object_set_new(data, "channel", json_string(channel));
    const char *type;
    unsigned pick = rnd(10);
    if (pick < 7) {
        type = pick < 3 ? OH_EV_INBOUND : OH_EV_OUTBOUND;
        const char *kind = pick < 3 ? "customer" : kinds[rnd(5)];
        if (kind) json_object_set_new(data, "author", json_pack("{s:s}", "kind", kind));
        if (rnd(8) == 0) json_object_set_new(data, "internal", json_true());
        if (rnd(16) == 0) json_object_set_new(data, "internal", json_false());
    } else if (pick < 9) {
        type = OH_EV_UPDATED;
        if (rnd(6) == 0) ++*episode;
        const char *who = assignees[rnd(3)];
        json_object_set_new(data, "reason", json_string(reasons[rnd(4)]));
        json_object_set_new(data, "state",
                            json_pack("{s:s, s:s?, s:s, s:i}", "status", statuses[rnd(5)],
                                      "assignee", who, "team", rnd(2) ? "t1" : "t2", "episode",
                                      *episode));
    } else {
        type = others[rnd(3)];
    }
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:o}", "specversion", "1.0", "type", type, "time",
                           when, "subject", id, "data", data);
    ck_assert_ptr_nonnull(ev);
    return ev;
}

static void appended(void *opaque, int err, int32_t partition, int64_t offset)
{
    ck_assert_int_eq(err, 0);
    atomic_fetch_add((atomic_int *)opaque, 1);
}

static void same_out(const struct oh_kpi_out *a, const struct oh_kpi_out *b, int64_t s)
{
    ck_assert_msg(a->nrows == b->nrows, "seq %lld: %d rows, %d", (long long)s, a->nrows, b->nrows);
    ck_assert(a->frt_s == b->frt_s && a->handle_s == b->handle_s);
    for (int i = 0; i < a->nrows; i++)
        ck_assert_msg(memcmp(&a->rows[i], &b->rows[i], sizeof a->rows[i]) == 0,
                      "seq %lld: row %d (episode %lld) differs", (long long)s, i,
                      (long long)a->rows[i].episode);
}

/* Sync's timeline records (metadata from oh_log_meta_of, some forwarded
 * twice) through the local log, folded as the kpi service folds them
 * (metadata where they suffice, else the body) and as every body: the
 * same conversations after each record, the same rows. */
START_TEST(metadata_fold_equals_body_fold)
{
    enum { NCONV = 4, PER = 400 };
    static const char *const convs[NCONV] = {"ca", "cb", "cc", "cd"};
    char *dir = oh_test_tmpdir(), err[256];
    oh_config *cfg = oh_test_cfg(dir, NULL);
    oh_log *log = oh_log_open(cfg, err, sizeof err);
    ck_assert_msg(log, "%s", err);

    rnd_state = 21;
    int64_t t[NCONV], seqs[NCONV] = {0};
    int eps[NCONV];
    atomic_int done = 0;
    int appends = 0;
    for (int i = 0; i < NCONV; i++) {
        t[i] = T0;
        eps[i] = 1;
    }
    for (int k = 0; k < NCONV * PER; k++) {
        int i = (int)rnd(NCONV);
        /* "cb" names no channel in its first events, "cd" in none */
        const char *channel = i == 3 || (i == 1 && seqs[i] < 5) ? NULL : "api:x";
        json_t *ev = random_event(convs[i], channel, &t[i], &eps[i]);
        json_object_set_new(ev, "seq", json_integer(++seqs[i]));
        size_t len;
        char *text = json_dumps(ev, JSON_COMPACT);
        len = strlen(text);
        struct oh_log_meta m = oh_log_meta_of(ev, seqs[i]);
        int copies = rnd(25) == 0 ? 2 : 1; /* forwarded again after a crash */
        for (int c = 0; c < copies; c++, appends++)
            ck_assert_int_eq(oh_log_append_meta(log, OH_TOPIC_TIMELINE, convs[i], &m, text, len,
                                                appended, &done),
                             0);
        free(text);
        json_decref(ev);
    }
    for (int i = 0; i < 3000 && atomic_load(&done) < appends; i++)
        usleep(10000);
    ck_assert_int_eq(atomic_load(&done), appends);

    struct oh_kpi_conv *by_body = calloc(NCONV, sizeof *by_body);
    struct oh_kpi_conv *by_meta = calloc(NCONV, sizeof *by_meta);
    for (int i = 0; i < NCONV; i++) {
        oh_kpi_conv_init(&by_body[i], convs[i], NULL);
        oh_kpi_conv_init(&by_meta[i], convs[i], NULL);
    }
    oh_log_consumer *c = oh_log_consumer_new(log, NULL, OH_TOPIC_TIMELINE, NULL, err, sizeof err);
    ck_assert_msg(c, "%s", err);
    struct oh_log_record recs[256];
    int seen = 0, from_meta = 0, notes_from_meta = 0, rows = 0;
    for (int n; seen < appends && (n = oh_log_poll(c, recs, 256, 2000)) > 0; seen += n)
        for (int k = 0; k < n; k++) {
            const struct oh_log_record *r = &recs[k];
            ck_assert_ptr_nonnull(r->meta.time);
            if (!oh_kpi_wants(r->meta.type)) continue; /* as the service: unread */
            int i = 0;
            while (strcmp(convs[i], r->meta.subject))
                i++;
            json_t *ev = json_loadb(r->value, r->len, 0, NULL);
            ck_assert_ptr_nonnull(ev);
            struct oh_kpi_out a, b;
            oh_kpi_fold(&by_body[i], ev, json_integer_value(json_object_get(ev, "seq")), &a);
            if (oh_kpi_fold_meta(&by_meta[i], &r->meta, &b)) {
                from_meta++;
                notes_from_meta += r->meta.internal;
            } else {
                oh_kpi_fold(&by_meta[i], ev, r->meta.seq, &b);
            }
            json_decref(ev);
            same_out(&a, &b, r->meta.seq);
            ck_assert_msg(memcmp(&by_body[i], &by_meta[i], sizeof by_body[i]) == 0,
                          "%s seq %lld: the conversations differ", convs[i],
                          (long long)r->meta.seq);
            rows += a.nrows;
        }
    ck_assert_int_eq(seen, appends);
    /* the mix exercised both ways and produced figures */
    ck_assert_int_gt(from_meta, appends / 2);
    ck_assert_int_gt(notes_from_meta, 10);
    ck_assert_int_gt(rows, 50);
    ck_assert_str_eq(by_meta[0].channel, "api:x");
    ck_assert_str_eq(by_meta[1].channel, "api:x");
    ck_assert_str_eq(by_meta[3].channel, "");
    oh_log_consumer_close(c);
    free(by_body);
    free(by_meta);
    oh_log_close(log);
    oh_config_free(cfg);
    free(dir);
}
END_TEST

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct got {
    struct oh_store_kpi_row rows[8];
    int n;
};

static int collect(void *opaque, const struct oh_store_kpi_row *r)
{
    struct got *g = opaque;
    g->rows[g->n++] = *r;
    return 0;
}

START_TEST(exact_percentiles_and_key_order)
{
    srand(7);
    for (int round = 0; round < 200; round++) {
        struct oh_kpi_acc *acc = oh_kpi_acc_new();
        int n = 1 + rand() % 300;
        int64_t *v = calloc((size_t)n, sizeof *v);
        for (int i = 0; i < n; i++) {
            /* many repeats: the partition must cope with equal keys */
            v[i] = round % 2 ? rand() % 50 : rand();
            struct oh_kpi_acc_ep e = {.frt_ms = v[i], .aht_ms = -1, .resolution_ms = 1};
            ck_assert_int_eq(oh_kpi_acc_add(acc, "k", &e), 0);
        }
        qsort(v, (size_t)n, sizeof *v, cmp64);
        struct got g = {.n = 0};
        ck_assert_int_eq(oh_kpi_acc_emit(acc, collect, &g), 0);
        ck_assert_int_eq(g.n, 1);
        ck_assert_int_eq(g.rows[0].frt_p50_ms, v[(n + 1) / 2 - 1]);
        ck_assert_int_eq(g.rows[0].frt_p90_ms, v[(9 * n + 9) / 10 - 1]);
        free(v);
        oh_kpi_acc_free(acc);
    }
    struct oh_kpi_acc *acc = oh_kpi_acc_new();
    const char *keys[] = {"b", NULL, "a", "b", "c"};
    for (int i = 0; i < 5; i++) {
        struct oh_kpi_acc_ep e = {.frt_ms = -1,
                                  .aht_ms = i,
                                  .resolution_ms = 10,
                                  .breached = i == 3,
                                  .bot_involved = true,
                                  .bot_resolved = i == 0};
        oh_kpi_acc_add(acc, keys[i], &e);
    }
    struct got g = {.n = 0};
    oh_kpi_acc_emit(acc, collect, &g);
    ck_assert_int_eq(g.n, 4);
    ck_assert(g.rows[0].key_null);
    ck_assert_str_eq(g.rows[1].key, "a");
    ck_assert_str_eq(g.rows[2].key, "b");
    ck_assert_int_eq(g.rows[2].episodes, 2);
    ck_assert_int_eq(g.rows[2].sla_met, 1);
    ck_assert_int_eq(g.rows[2].aht_sum_ms, 3);
    ck_assert_int_eq(g.rows[2].bot_resolved, 1);
    ck_assert_int_eq(g.rows[2].frt_n, 0);
    ck_assert_int_eq(g.rows[2].frt_p50_ms, -1);
    oh_kpi_acc_free(acc);
    char sql[4096];
    ck_assert_int_eq(oh_store_kpi_sql(sql, sizeof sql, "day", '$'), OH_EINVAL);
    ck_assert_int_eq(oh_store_kpi_sql(sql, sizeof sql, "agent", '$'), 0);
}
END_TEST

/* Slices aggregated apart and merged give what one pass gives. */
START_TEST(merged_slices_equal_one_pass)
{
    srand(11);
    static const char *const keys[] = {NULL, "a", "b", "c", "d"};
    struct oh_kpi_acc *one = oh_kpi_acc_new(),
                      *part[3] = {oh_kpi_acc_new(), oh_kpi_acc_new(), oh_kpi_acc_new()};
    for (int i = 0; i < 3000; i++) {
        struct oh_kpi_acc_ep e = {.frt_ms = rand() % 7 ? rand() % 100000 : -1,
                                  .nrt_sum_ms = rand() % 1000,
                                  .nrt_count = rand() % 3,
                                  .aht_ms = rand() % 5 ? rand() % 5000 : -1,
                                  .resolution_ms = rand() % 9000,
                                  .breached = rand() % 4 == 0,
                                  .bot_involved = rand() % 3 == 0,
                                  .bot_resolved = rand() % 9 == 0};
        /* slice 2 never sees key "d": merged in whole */
        const char *key = keys[rand() % 5];
        int slice = i % 3;
        if (slice == 2 && key && !strcmp(key, "d")) slice = 1;
        ck_assert_int_eq(oh_kpi_acc_add(one, key, &e), 0);
        ck_assert_int_eq(oh_kpi_acc_add(part[slice], key, &e), 0);
    }
    ck_assert_int_eq(oh_kpi_acc_merge(part[0], part[1]), 0);
    ck_assert_int_eq(oh_kpi_acc_merge(part[0], part[2]), 0);
    struct got a = {.n = 0}, b = {.n = 0};
    oh_kpi_acc_emit(one, collect, &a);
    oh_kpi_acc_emit(part[0], collect, &b);
    ck_assert_int_eq(a.n, 5);
    ck_assert_int_eq(b.n, 5);
    ck_assert(memcmp(a.rows, b.rows, sizeof a.rows) == 0);
    oh_kpi_acc_free(one);
    for (int i = 0; i < 3; i++)
        oh_kpi_acc_free(part[i]);
}
END_TEST

/* ---- kpi_days: a SQLite store's reports against the rows' arithmetic ---- */

#define NCONV 150
#define DAYS  6

static struct oh_store_episode final[NCONV][2];
static bool have[NCONV][2];

static void random_episode(struct oh_store_episode *e, int cid, int episode)
{
    static const char *const agents[] = {"", "a1", "a2", "a3"}, *const teams[] = {"", "t1", "t2"},
                             *const channels[] = {"api:x", "email:y", ""};
    memset(e, 0, sizeof *e);
    snprintf(e->conversation_id, sizeof e->conversation_id, "c%03d", cid);
    e->episode = episode;
    snprintf(e->channel, sizeof e->channel, "%s", channels[rand() % 3]);
    snprintf(e->agent, sizeof e->agent, "%s", agents[rand() % 4]);
    snprintf(e->team, sizeof e->team, "%s", teams[rand() % 3]);
    e->resolved_ms = T0 + (int64_t)(rand() % DAYS) * 86400000 + rand() % 86400000;
    e->start_ms = e->resolved_ms - rand() % 100000;
    /* few distinct seconds (ties within a bucket), a few past the last bucket */
    int f = rand() % 10;
    e->frt_ms = f == 0   ? -1
                : f == 1 ? (int64_t)OH_KPI_HIST_CAP * 1000 + rand() % 5000000
                         : (int64_t)(rand() % 20) * 1000 + rand() % 3 * 7;
    e->bot_frt_ms = -1;
    e->nrt_sum_ms = rand() % 5000;
    e->nrt_count = rand() % 3;
    e->aht_ms = rand() % 4 ? rand() % 90000 : -1;
    e->reopened_ms = rand() % 3 ? -1 : e->resolved_ms + (rand() % 2 ? 1000 : 10000000);
    e->breached = rand() % 4 == 0;
    e->bot_involved = rand() % 2;
    e->agent_replied = rand() % 3 == 0;
}

struct rows {
    struct oh_store_kpi_row r[16];
    int n;
};

static int collect16(void *opaque, const struct oh_store_kpi_row *r)
{
    struct rows *g = opaque;
    ck_assert_int_lt(g->n, 16);
    g->r[g->n++] = *r;
    return 0;
}

/* What the rows of [FROM, TO) give, through the rows' arithmetic */
static void expected(const char *by, int64_t from, int64_t to, int64_t window, struct rows *g)
{
    struct oh_kpi_acc *acc = oh_kpi_acc_new();
    for (int c = 0; c < NCONV; c++)
        for (int i = 0; i < 2; i++) {
            const struct oh_store_episode *e = &final[c][i];
            if (!have[c][i] || e->resolved_ms < from || e->resolved_ms >= to) continue;
            const char *key = !strcmp(by, "none")      ? "all"
                              : !strcmp(by, "channel") ? e->channel
                              : !strcmp(by, "team")    ? (e->team[0] ? e->team : NULL)
                                                       : (e->agent[0] ? e->agent : NULL);
            struct oh_kpi_acc_ep x = {
                .frt_ms = e->frt_ms,
                .nrt_sum_ms = e->nrt_sum_ms,
                .nrt_count = e->nrt_count,
                .aht_ms = e->aht_ms,
                .resolution_ms = e->resolved_ms - e->start_ms,
                .breached = e->breached,
                .bot_involved = e->bot_involved,
                .bot_resolved = e->bot_involved && !e->agent_replied &&
                                (e->reopened_ms < 0 || e->reopened_ms - e->resolved_ms >= window)};
            ck_assert_int_eq(oh_kpi_acc_add(acc, key, &x), 0);
        }
    ck_assert_int_eq(oh_kpi_acc_emit(acc, collect16, g), 0);
    oh_kpi_acc_free(acc);
}

static void check_reports(oh_store *st)
{
    static const char *const bys[] = {"none", "channel", "team", "agent"};
    const int64_t D = 86400000;
    /* whole days only, partial days at both ends, within one day, everything */
    const int64_t ranges[][2] = {{T0 + D, T0 + 4 * D},
                                 {T0 + 3600000, T0 + 5 * D + 7200000},
                                 {T0 + D + 5, T0 + D + 80000000},
                                 {0, (int64_t)1 << 62}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (int b = 0; b < 4; b++) {
            struct rows want = {.n = 0}, got = {.n = 0};
            expected(bys[b], ranges[r][0], ranges[r][1], 3600000, &want);
            struct oh_store_kpi_query q = {ranges[r][0], ranges[r][1], bys[b], NULL, 3600000};
            ck_assert_int_eq(oh_store_kpi_report(st, &q, collect16, &got), 0);
            ck_assert_int_eq(got.n, want.n);
            for (int i = 0; i < want.n; i++)
                ck_assert_msg(memcmp(&got.r[i], &want.r[i], sizeof want.r[i]) == 0,
                              "range %zu by %s row %d (%s): p50 %lld/%lld p90 %lld/%lld "
                              "episodes %lld/%lld bot_resolved %lld/%lld",
                              r, bys[b], i, want.r[i].key, (long long)got.r[i].frt_p50_ms,
                              (long long)want.r[i].frt_p50_ms, (long long)got.r[i].frt_p90_ms,
                              (long long)want.r[i].frt_p90_ms, (long long)got.r[i].episodes,
                              (long long)want.r[i].episodes, (long long)got.r[i].bot_resolved,
                              (long long)want.r[i].bot_resolved);
        }
}

/* Batches that rewrite earlier episodes (other day, agent, FRT, reopened),
 * and repeat one episode within a batch, into ST. */
static void put_random_batches(oh_store *st)
{
    srand(23);
    memset(have, 0, sizeof have);
    for (int round = 0; round < 12; round++) {
        struct oh_store_episode batch[60];
        size_t n = 0;
        for (; n < 60; n++) {
            int c = rand() % NCONV, i = rand() % 2;
            if (n == 59) {
                c = atoi(batch[0].conversation_id + 1);
                i = (int)batch[0].episode;
            }
            random_episode(&batch[n], c, i);
            final[c][i] = batch[n];
            have[c][i] = true;
        }
        ck_assert_int_eq(oh_store_kpi_put(st, "g", batch, n, NULL, 0), 0);
    }
}

static oh_config *store_cfg(const char *dir, const char *pg_dsn)
{
    const char *const pg[] = {"store.backend", "postgres", "store.postgres.dsn", pg_dsn, NULL};
    return oh_test_cfg(dir, pg_dsn ? pg : NULL);
}

START_TEST(daily_aggregates_equal_the_rows)
{
    char *dir = oh_test_tmpdir();
    oh_config *cfg = store_cfg(dir, NULL);
    oh_store *st = oh_test_store_open(cfg);
    put_random_batches(st);
    check_reports(st);
    oh_store_close(st);
    /* a store from before migration 8: kpi_days refilled when it opens */
    char path[600];
    snprintf(path, sizeof path, "%s/store.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM kpi_days", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    st = oh_test_store_open(cfg);
    check_reports(st);
    oh_store_close(st);
    oh_config_free(cfg);
    free(dir);
}
END_TEST

#ifdef OH_HAVE_POSTGRES
/* The same on a PostgreSQL store (its migration 12): the aggregates the
 * write statement adds, and those its open fills for a store from before. */
START_TEST(pg_daily_aggregates_equal_the_rows)
{
    ck_assert_msg(oh_test_pg_start(), "no PostgreSQL server for the test");
    char dsn[700];
    oh_test_pg_newdb(dsn, sizeof dsn);
    char *dir = oh_test_tmpdir();
    oh_config *cfg = store_cfg(dir, dsn);
    oh_store *st = oh_test_store_open(cfg);
    put_random_batches(st);
    check_reports(st);
    oh_store_close(st);
    oh_test_pg_sql(dsn, "DELETE FROM kpi_days");
    st = oh_test_store_open(cfg);
    check_reports(st);
    oh_store_close(st);
    oh_config_free(cfg);
    free(dir);
}
END_TEST

/* Two members writing at once: the same episodes, new ones among them (a
 * partition between its old and new owner in a rebalance), or episodes of
 * different conversations that create the same new kpi_days rows (two
 * partitions' first episodes of a day). The aggregates count each episode
 * once, as the rows do. */
struct two_writers {
    oh_store *st;
    pthread_barrier_t *go;
    const struct oh_store_episode *batch;
    size_t n;
    int rc;
};

static void *write_batch(void *p)
{
    struct two_writers *w = p;
    pthread_barrier_wait(w->go);
    w->rc = oh_store_kpi_put(w->st, "g", w->batch, w->n, NULL, 0);
    return NULL;
}

START_TEST(pg_two_writers_count_each_episode_once)
{
    ck_assert_msg(oh_test_pg_start(), "no PostgreSQL server for the test");
    char dsn[700];
    oh_test_pg_newdb(dsn, sizeof dsn);
    char *dir = oh_test_tmpdir();
    oh_config *cfg = store_cfg(dir, dsn);
    oh_store *a = oh_test_store_open(cfg), *b = oh_test_store_open(cfg);
    srand(29);
    memset(have, 0, sizeof have);
    for (int round = 0; round < 40; round++) {
        /* even rounds: one batch for both; odd rounds: even conversations
         * for one, odd for the other, in a week of their own */
        bool split = round % 2;
        int64_t shift = split ? (int64_t)(round + 1) * 7 * 86400000 : 0;
        struct oh_store_episode batch[20];
        for (int n = 0; n < 20; n++) {
            int c = rand() % NCONV, i = rand() % 2;
            if (split) c = (c & ~1) + (n >= 10);
            random_episode(&batch[n], c, i);
            batch[n].resolved_ms += shift;
            batch[n].start_ms += shift;
            final[c][i] = batch[n];
            have[c][i] = true;
        }
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct two_writers wa = {a, &go, batch, split ? 10 : 20, -1},
                           wb = {b, &go, split ? batch + 10 : batch, split ? 10 : 20, -1};
        pthread_t ta, tb;
        pthread_create(&ta, NULL, write_batch, &wa);
        pthread_create(&tb, NULL, write_batch, &wb);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&go);
        ck_assert_int_eq(wa.rc, 0);
        ck_assert_int_eq(wb.rc, 0);
    }
    check_reports(a);
    oh_store_close(a);
    oh_store_close(b);
    oh_config_free(cfg);
    free(dir);
}
END_TEST
#endif

static int64_t delta_counts[OH_KPI_HIST_CAP + 1];

static int delta_check(void *opaque, const char *dim, int64_t day, const char *key,
                       const int64_t *sums, const int64_t (*hist)[2], size_t n)
{
    if (strcmp(dim, "none") != 0) return 0;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        ck_assert(i == 0 || hist[i][0] > hist[i - 1][0]); /* by bucket, once each */
        ck_assert_int_eq(hist[i][1], delta_counts[hist[i][0]]);
        total += hist[i][1];
    }
    ck_assert_int_eq(total, sums[OH_KPI_FRT_N]);
    *(int *)opaque += 1;
    return 0;
}

/* A long batch keeps one histogram pair per bucket, counts intact. */
START_TEST(long_delta_compacts)
{
    struct oh_kpi_delta *d = oh_kpi_delta_new();
    memset(delta_counts, 0, sizeof delta_counts);
    for (int i = 0; i < 50000; i++) {
        struct oh_store_episode e = {.episode = 1,
                                     .resolved_ms = T0 + 5,
                                     .start_ms = T0,
                                     .frt_ms = (int64_t)(i % 6000) * 3000 + i % 7,
                                     .aht_ms = -1,
                                     .reopened_ms = -1};
        snprintf(e.channel, sizeof e.channel, "c%d", i % 3);
        int sign = i % 5 == 4 ? -1 : 1;
        ck_assert_int_eq(oh_kpi_delta_add(d, &e, sign), 0);
        delta_counts[oh_kpi_bucket(e.frt_ms)] += sign;
    }
    int days = 0;
    ck_assert_int_eq(oh_kpi_delta_each(d, delta_check, &days), 0);
    ck_assert_int_eq(days, 1);
    oh_kpi_delta_free(d);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kpi");
    TCase *tc = tcase_create("kpi");
    tcase_add_test(tc, one_episode_figures);
    tcase_add_test(tc, metadata_fold_equals_body_fold);
    tcase_add_test(tc, exact_percentiles_and_key_order);
    tcase_add_test(tc, merged_slices_equal_one_pass);
    tcase_add_test(tc, daily_aggregates_equal_the_rows);
    tcase_add_test(tc, long_delta_compacts);
#ifdef OH_HAVE_POSTGRES
    tcase_add_test(tc, pg_daily_aggregates_equal_the_rows);
    tcase_add_test(tc, pg_two_writers_count_each_episode_once);
#endif
    suite_add_tcase(s, tc);
    int rc = oh_test_run(s);
#ifdef OH_HAVE_POSTGRES
    oh_test_pg_stop();
#endif
    return rc;
}
