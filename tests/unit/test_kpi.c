/* test_kpi.c - the KPI fold (services/kpi_fold.c) on scripted histories:
 * FRT, bot FRT, NRT, handle time, breaches, private notes, re-opening by an
 * inbound message and by a PATCH, repeats; and the report arithmetic of
 * store/store_kpi.c (exact nearest-rank percentiles, key order). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/event.h"
#include "services/kpi_fold.h"
#include "store/store_int.h"
#include "tap.h"

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

int main(void)
{
    Suite *s = suite_create("kpi");
    TCase *tc = tcase_create("kpi");
    tcase_add_test(tc, one_episode_figures);
    tcase_add_test(tc, exact_percentiles_and_key_order);
    tcase_add_test(tc, merged_slices_equal_one_pass);
    suite_add_tcase(s, tc);
    return oh_test_run(s);
}
