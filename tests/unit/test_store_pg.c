/* test_store_pg.c - the store suite of test_store.c against a throwaway
 * PostgreSQL started by tests/pg_server.py (or OMNIHUB_TEST_PG_DSN), plus
 * what only the PostgreSQL store has: a server restart under load, shards,
 * concurrent migrations and the read/write split. */
#define OH_TEST_PG 1
#include "test_store.c"

#ifdef OH_HAVE_POSTGRES
static long pg_count(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    ck_assert(PQstatus(c) == CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    long v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

static void helper_dir(const char *cmd)
{
    char args[700];
    snprintf(args, sizeof args, "%s %s", cmd, pg_dir);
    ck_assert_msg(run_helper(args, NULL, 0) == 0, "pg_server.py %s failed", cmd);
}

/* Materializes events e_rs<first>.. (N of them) over 3 conversations,
 * retrying while the store answers OH_EUNAVAIL; returns the attempts. */
static int rs_batch(int first, int n)
{
    for (int attempt = 1;; attempt++) {
        json_t *evs[64];
        struct oh_store_item items[64];
        for (int i = 0; i < n; i++) {
            char id[32], conv[16];
            snprintf(id, sizeof id, "e_rs%d", first + i);
            snprintf(conv, sizeof conv, "c_rs%d", (first + i) % 3);
            evs[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + first + i, id);
        }
        int rc = put(items, evs, (size_t)n, first, NULL);
        if (rc == 0) return attempt;
        ck_assert_int_eq(rc, OH_EUNAVAIL);
        ck_assert_int_lt(attempt, 200);
        usleep(100 * 1000);
    }
}

static void check_rs_history(int total)
{
    int seen = 0;
    for (int c = 0; c < 3; c++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c_rs%d", c);
        struct rows r = {.ok = true};
        ck_assert_int_eq(oh_store_history(st, conv, 0, 0, collect, &r), 0);
        ck_assert(r.ok);
        for (int i = 0; i < r.n; i++)
            ck_assert_int_eq(r.seq[i], i + 1); /* no gap, no duplicate */
        seen += r.n;
    }
    ck_assert_int_eq(seen, total);
}

START_TEST(t_pg_restart)
{
    if (!pg_dir[0]) return; /* an external server: we cannot restart it */
    int off = 0;
    rs_batch(off, 40);
    off += 40;
    helper_dir("restart"); /* pg_ctl restart -m fast between batches */
    rs_batch(off, 40);
    off += 40;
    helper_dir("stop-only");
    ck_assert_int_eq(oh_store_ping(st), OH_EUNAVAIL);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_rs0", 0, 0, collect, &r), OH_EUNAVAIL);
    char buf[8];
    ck_assert_int_eq(oh_store_kv_get(st, "x", "y", buf, sizeof buf), OH_EUNAVAIL);
    json_t *ev = mk_event("e_down", "c_rs0", OH_EV_INBOUND, 1700000000000, "m");
    struct oh_store_item it;
    ck_assert_int_eq(put(&it, &ev, 1, off, NULL), OH_EUNAVAIL);
    helper_dir("start-only");
    rs_batch(off, 40); /* may see OH_EUNAVAIL until the backoff expires */
    off += 40;
    int64_t t0 = oh_mono_ms();
    while (oh_store_ping(st) != 0 && oh_mono_ms() - t0 < 10000)
        usleep(50 * 1000);
    ck_assert_int_eq(oh_store_ping(st), 0);
    /* a replay of the last batch after a crash: harmless */
    json_t *evs[40];
    struct oh_store_item items[40];
    int64_t seqs[40];
    for (int i = 0; i < 40; i++) {
        char id[32], conv[16];
        snprintf(id, sizeof id, "e_rs%d", off - 40 + i);
        snprintf(conv, sizeof conv, "c_rs%d", (off - 40 + i) % 3);
        evs[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + off - 40 + i, id);
    }
    ck_assert_int_eq(put(items, evs, 40, off - 40, seqs), 0);
    for (int i = 0; i < 40; i++) /* the same records: their stored seqs, nothing new */
        ck_assert_int_eq(seqs[i], (off - 40 + i) / 3 + 1);
    check_rs_history(off);
    int64_t next, published;
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 0, &next, &published), 0);
    ck_assert_int_eq(next, off);
}
END_TEST

START_TEST(t_pg_shards)
{
    char d0[600], d1[600], list[1300];
    pg_newdb(d0, sizeof d0);
    pg_newdb(d1, sizeof d1);
    snprintf(list, sizeof list, "%s,%s", d0, d1);
    oh_store_close(st);
    oh_config_free(cfg);
    cfg = make_cfg(NULL, list);
    st = open_cfg(cfg);
    enum { CONVS = 40, PER = 5 };
    int64_t off = 0;
    for (int b = 0; b < PER; b++) {
        json_t *evs[CONVS];
        struct oh_store_item items[CONVS];
        int64_t seqs[CONVS];
        for (int c = 0; c < CONVS; c++) {
            char id[32], conv[16];
            snprintf(id, sizeof id, "e_sh%d_%d", c, b);
            snprintf(conv, sizeof conv, "c_sh%d", c);
            evs[c] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + b * 100 + c, id);
        }
        ck_assert_int_eq(put(items, evs, CONVS, off, seqs), 0);
        off += CONVS;
        for (int c = 0; c < CONVS; c++)
            ck_assert_int_eq(seqs[c], b + 1);
    }
    long n0 = pg_count(d0, "SELECT count(*) FROM conversations");
    long n1 = pg_count(d1, "SELECT count(*) FROM conversations");
    ck_assert_int_gt(n0, 0);
    ck_assert_int_gt(n1, 0);
    ck_assert_int_eq(n0 + n1, CONVS);
    for (int c = 0; c < CONVS; c++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c_sh%d", c);
        struct rows r = {.ok = true};
        ck_assert_int_eq(oh_store_history(st, conv, 0, 0, collect, &r), 0);
        ck_assert_int_eq(r.n, PER);
        for (int i = 0; i < PER; i++)
            ck_assert_int_eq(r.seq[i], i + 1);
    }
    /* the list merges the shards: most recent first, then id descending */
    struct convs all = {0}, top = {0};
    ck_assert_int_eq(oh_store_conversations(st, 0, 16, collect_conv, &all), 0);
    ck_assert_int_eq(all.n, 16);
    ck_assert_int_eq(oh_store_conversations(st, 0, 5, collect_conv, &top), 0);
    ck_assert_int_eq(top.n, 5);
    struct oh_conversation prev, cur;
    for (int i = 0; i < all.n; i++) {
        ck_assert_int_eq(oh_store_conversation_get(st, all.id[i], &cur), 0);
        if (i > 0)
            ck_assert(prev.updated_ms > cur.updated_ms ||
                      (prev.updated_ms == cur.updated_ms && strcmp(prev.id, cur.id) > 0));
        if (i < 5) ck_assert_str_eq(top.id[i], all.id[i]);
        prev = cur;
    }
    /* replay in source order across shards */
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_since_source(st, 0, off - CONVS, collect, &r), 0);
    ck_assert_int_eq(r.n, CONVS);
    for (int c = 0; c < CONVS; c++) {
        char want[16];
        snprintf(want, sizeof want, "c_sh%d", c);
        ck_assert_str_eq(r.conv[c], want);
        ck_assert_int_eq(r.seq[c], PER);
    }
    struct oh_store_ref ref;
    for (int c = 0; c < CONVS; c++) {
        char mid[32], conv[16];
        snprintf(mid, sizeof mid, "e_sh%d_0", c);
        snprintf(conv, sizeof conv, "c_sh%d", c);
        ck_assert_int_eq(oh_store_ref_get(st, "test", "acct", mid, &ref), 0);
        ck_assert_str_eq(ref.conversation_id, conv);
    }
    int64_t next, published;
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 0, &next, &published), 0);
    ck_assert_int_eq(next, off);
    /* a replayed batch spanning both shards stores nothing twice */
    json_t *evs[CONVS];
    struct oh_store_item items[CONVS];
    int64_t seqs[CONVS];
    for (int c = 0; c < CONVS; c++) {
        char id[32], conv[16];
        snprintf(id, sizeof id, "e_sh%d_%d", c, PER - 1);
        snprintf(conv, sizeof conv, "c_sh%d", c);
        evs[c] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000, id);
    }
    ck_assert_int_eq(put(items, evs, CONVS, off - CONVS, seqs), 0);
    for (int c = 0; c < CONVS; c++) /* the same records: stored seqs, nothing new */
        ck_assert_int_eq(seqs[c], PER);
    ck_assert_int_eq(pg_count(d0, "SELECT count(*) FROM history") +
                         pg_count(d1, "SELECT count(*) FROM history"),
                     CONVS * PER);
    char epoch[64];
    snprintf(epoch, sizeof epoch, "%s", oh_store_epoch(st));
    oh_store_close(st);
    st = open_cfg(cfg);
    ck_assert_str_eq(oh_store_epoch(st), epoch);
}
END_TEST

START_TEST(t_pg_concurrent_open)
{
    char dsn[600];
    pg_newdb(dsn, sizeof dsn);
    oh_config *c = make_cfg(dsn, NULL);
    struct open_arg a[4];
    open_at_once(c, a);
    /* each migration applied once */
    ck_assert_int_eq(pg_count(dsn, "SELECT count(*) FROM schema_version"),
                     (int)OH_ARRAY_SIZE(pg_migrations));
    for (int i = 0; i < 4; i++)
        oh_store_close(a[i].st);
    oh_config_free(c);
}
END_TEST

/* History and lists come from read_dsn; everything else from the primary. */
START_TEST(t_pg_read_split)
{
    char replica[600], err[256];
    pg_newdb(replica, sizeof replica); /* an empty "replica" that lags behind */
    oh_config *rc = make_cfg(replica, NULL);
    oh_store_close(open_cfg(rc)); /* same schema, as a streaming replica would have */
    oh_config_free(rc);
    oh_store_close(st);
    ck_assert_int_eq(oh_config_set(cfg, "store.postgres.read_dsn", replica, err, sizeof err), 0);
    st = open_cfg(cfg);
    ck_assert_int_eq(put1(mk_event("e_rd", "c_rd", OH_EV_INBOUND, 1700000000000, "m_rd"), 0), 1);
    struct oh_conversation c;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_rd", &c), 0); /* primary */
    struct oh_store_ref ref;
    ck_assert_int_eq(oh_store_ref_get(st, "test", "acct", "m_rd", &ref), 0);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_rd", 0, 0, collect, &r), OH_ENOTFOUND); /* replica */
    struct convs l = {0};
    ck_assert_int_eq(oh_store_conversations(st, 0, 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 0);
    /* the replica catches up (here: becomes the primary's database) */
    oh_store_close(st);
    ck_assert_int_eq(oh_config_set(cfg, "store.postgres.read_dsn", cur_dsn, err, sizeof err), 0);
    st = open_cfg(cfg);
    ck_assert_int_eq(oh_store_history(st, "c_rd", 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    /* an unreachable replica: the primary answers */
    oh_store_close(st);
    ck_assert_int_eq(oh_config_set(cfg, "store.postgres.read_dsn",
                                   "host=127.0.0.1 port=1 dbname=x connect_timeout=2", err,
                                   sizeof err),
                     0);
    st = open_cfg(cfg);
    r.n = 0;
    ck_assert_int_eq(oh_store_history(st, "c_rd", 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(oh_store_conversations(st, 0, 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 1);
}
END_TEST

static void pg_add_tests(Suite *s)
{
    TCase *tc = tcase_create("postgres");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_pg_concurrent_open);
    tcase_add_test(tc, t_pg_shards);
    tcase_add_test(tc, t_pg_read_split);
    tcase_add_test(tc, t_pg_restart);
    suite_add_tcase(s, tc);
}
#else
static void pg_add_tests(Suite *s)
{
    (void)s;
}
#endif
