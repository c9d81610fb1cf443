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
    snprintf(args, sizeof args, "%s %s", cmd, oh_test_pg_dir());
    ck_assert_msg(oh_test_pg_helper(args, NULL, 0) == 0, "pg_server.py %s failed", cmd);
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
    if (!oh_test_pg_dir()[0]) return; /* an external server: we cannot restart it */
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
    oh_test_pg_newdb(d0, sizeof d0);
    oh_test_pg_newdb(d1, sizeof d1);
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

/* Two sync members (two stores) materialize the same batch of new
 * conversations at the same time while they know different shard lists:
 * one still places over the ring, the other over the ring and an added
 * shard. The placement directory makes them agree: each conversation on
 * one shard, each event stored once. */
enum { RACE_CONVS = 40, RACE_PER = 3 };

struct race_arg {
    oh_store *st;
    pthread_barrier_t *go;
    int rc;
};

static void *race_put(void *p)
{
    struct race_arg *a = p;
    json_t *evs[RACE_CONVS * RACE_PER];
    struct oh_store_item items[RACE_CONVS * RACE_PER];
    for (int i = 0; i < RACE_CONVS * RACE_PER; i++) {
        char id[32], conv[16];
        snprintf(id, sizeof id, "e_race%d", i);
        snprintf(conv, sizeof conv, "c_race%d", i % RACE_CONVS);
        evs[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + i, id);
        items[i] = (struct oh_store_item){.event = evs[i], .src_offset = i, .seq = -1};
    }
    pthread_barrier_wait(a->go);
    /* the same events committed by the other member meanwhile: a unique
     * violation or a deadlock, and the retry (as sync's) finds them stored */
    for (int attempt = 0; attempt < 20; attempt++) {
        a->rc = oh_store_materialize(a->st, NULL, items, RACE_CONVS * RACE_PER, NULL, 0);
        if (a->rc != OH_EDUP && a->rc != OH_ERETRY) break;
    }
    for (int i = 0; i < RACE_CONVS * RACE_PER; i++)
        json_decref(evs[i]);
    return NULL;
}

static int count_shard(void *opaque, const struct oh_store_shard *sh)
{
    int *n = opaque;
    ck_assert_int_eq(sh->index, *n);
    ck_assert_int_eq(sh->ring, *n < 2 ? *n : -1);
    ++*n;
    return 0;
}

START_TEST(t_pg_shard_added)
{
    char d0[600], d1[600], d2[600], list[1300], err[512];
    oh_test_pg_newdb(d0, sizeof d0);
    oh_test_pg_newdb(d1, sizeof d1);
    oh_test_pg_newdb(d2, sizeof d2);
    snprintf(list, sizeof list, "%s,%s", d0, d1);
    oh_store_close(st);
    oh_config_free(cfg);
    cfg = make_cfg(NULL, list);
    st = open_cfg(cfg);
    char feed[OH_STORE_POS_MAX];
    ck_assert_int_eq(oh_store_changes(st, "", 10, NULL, NULL, feed), 0); /* two positions */
    ck_assert_int_eq(oh_store_shard_add(st, "bad name", d2, err, sizeof err), OH_EINVAL);
    ck_assert_int_eq(oh_store_shard_add(st, "x", d1, err, sizeof err), OH_EINVAL); /* s1 */
    ck_assert_int_eq(oh_store_shard_add(st, "x", d2, err, sizeof err), 0);
    ck_assert_int_eq(oh_store_shard_add(st, "x", d2, err, sizeof err), 0); /* again */
    int n = 0;
    ck_assert_int_eq(oh_store_shards(st, count_shard, &n), 0);
    ck_assert_int_eq(n, 3);
    /* the second member starts later and sees x taking new conversations;
     * the first refreshed its list just now and still places over the ring */
    oh_test_pg_sql(d0, "UPDATE shards SET added_at = now() - interval '1 hour'");
    oh_store *other = open_cfg(cfg);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    struct race_arg a = {st, &go, -1}, b = {other, &go, -1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race_put, &a);
    pthread_create(&tb, NULL, race_put, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
    const char *dbs[] = {d0, d1, d2};
    long convs = 0, events = 0;
    for (int i = 0; i < 3; i++) {
        convs += pg_count(dbs[i], "SELECT count(*) FROM conversations");
        events += pg_count(dbs[i], "SELECT count(*) FROM history");
    }
    ck_assert_int_eq(convs, RACE_CONVS);
    ck_assert_int_eq(events, RACE_CONVS * RACE_PER);
    ck_assert_int_eq(pg_count(d0, "SELECT count(*) FROM placements"), RACE_CONVS);
    /* (whichever member wrote the placements first, both read them back) */
    for (int c = 0; c < RACE_CONVS; c++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c_race%d", c);
        oh_store *both[] = {st, other};
        for (int k = 0; k < 2; k++) {
            struct rows r = {.ok = true};
            ck_assert_int_eq(oh_store_history(both[k], conv, 0, 0, collect, &r), 0);
            ck_assert_int_eq(r.n, RACE_PER);
            for (int i = 0; i < RACE_PER; i++)
                ck_assert_int_eq(r.seq[i], i + 1);
        }
    }
    /* a changes position from before the add reads the added shard from its start */
    struct convs ch = {0};
    ck_assert_int_eq(oh_store_changes(other, feed, 100, collect_conv, &ch, feed), 0);
    ck_assert_int_eq(ch.n, RACE_CONVS);
    ck_assert_int_eq((int)strspn(feed, "r0123456789."), (int)strlen(feed));
    ck_assert_ptr_nonnull(strchr(strchr(feed, '.') + 1, '.')); /* three positions now */
    /* the member that knows x places new conversations there too */
    oh_store *keep = st;
    st = other;
    json_t *evs[20];
    struct oh_store_item items[20];
    for (int c = 0; c < 20; c++) {
        char id[32], conv[16];
        snprintf(id, sizeof id, "e_late%d", c);
        snprintf(conv, sizeof conv, "c_late%d", c);
        evs[c] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + c, id);
    }
    ck_assert_int_eq(put(items, evs, 20, 1000, NULL), 0);
    st = keep;
    ck_assert_int_gt(pg_count(d2, "SELECT count(*) FROM conversations"), 0);
    oh_store_close(other);
    /* the ring is recorded: a longer list, or a reordered one, is refused */
    snprintf(list, sizeof list, "%s,%s,%s", d0, d1, d2);
    oh_config *longer = make_cfg(NULL, list);
    ck_assert_ptr_null(oh_store_open(longer, err, sizeof err));
    oh_config_free(longer);
    snprintf(list, sizeof list, "%s,%s", d1, d0);
    oh_config *reordered = make_cfg(NULL, list);
    ck_assert_ptr_null(oh_store_open(reordered, err, sizeof err));
    oh_config_free(reordered);
}
END_TEST

START_TEST(t_pg_concurrent_open)
{
    char dsn[600];
    oh_test_pg_newdb(dsn, sizeof dsn);
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
    oh_test_pg_newdb(replica, sizeof replica); /* an empty "replica" that lags behind */
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
    tcase_add_test(tc, t_pg_shard_added);
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
