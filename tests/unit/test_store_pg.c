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
    st = oh_test_store_open(cfg);
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
    st = oh_test_store_open(cfg);
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
    st = oh_test_store_open(cfg);
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
    oh_store *other = oh_test_store_open(cfg);
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
    oh_store_close(oh_test_store_open(rc)); /* same schema, as a streaming replica would have */
    oh_config_free(rc);
    oh_store_close(st);
    ck_assert_int_eq(oh_config_set(cfg, "store.postgres.read_dsn", replica, err, sizeof err), 0);
    st = oh_test_store_open(cfg);
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
    st = oh_test_store_open(cfg);
    ck_assert_int_eq(oh_store_history(st, "c_rd", 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    /* an unreachable replica: the primary answers */
    oh_store_close(st);
    ck_assert_int_eq(oh_config_set(cfg, "store.postgres.read_dsn",
                                   "host=127.0.0.1 port=1 dbname=x connect_timeout=2", err,
                                   sizeof err),
                     0);
    st = oh_test_store_open(cfg);
    r.n = 0;
    ck_assert_int_eq(oh_store_history(st, "c_rd", 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(oh_store_conversations(st, 0, 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 1);
}
END_TEST

/* ---- two sync members on one contact directory ---- */

struct link_arg {
    oh_store *st;
    pthread_barrier_t *go;
    char conv[32];
    struct oh_contact_ident ids[2];
    char root[OH_ID_MAX];
    int rc;
};

static void *link_main(void *p)
{
    struct link_arg *a = p;
    struct oh_contact_dir d;
    oh_store_contact_dir(a->st, &d);
    pthread_barrier_wait(a->go);
    a->rc = oh_contact_link(&d, a->conv, a->ids, 2, "Ann", a->root);
    return NULL;
}

static struct oh_contact_ident ident(const char *type, const char *value)
{
    struct oh_contact_ident id = {.verified = true};
    snprintf(id.type, sizeof id.type, "%s", type);
    snprintf(id.value, sizeof id.value, "%s", value);
    return id;
}

/* Whether contact object C lists identifier TYPE:VALUE and conversation CONV. */
static bool holds(const json_t *c, const char *type, const char *value, const char *conv)
{
    bool id = false, cv = !conv;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(c, "identifiers"), i, v) id |=
        strcmp(json_string_value(json_object_get(v, "type")), type) == 0 &&
        strcmp(json_string_value(json_object_get(v, "value")), value) == 0;
    json_array_foreach(json_object_get(c, "conversations"), i, v) cv |=
        conv && strcmp(json_string_value(v), conv) == 0;
    return id && cv;
}

static void run_two(void *(*fa)(void *), void *a, void *(*fb)(void *), void *b)
{
    pthread_t ta, tb;
    pthread_create(&ta, NULL, fa, a);
    pthread_create(&tb, NULL, fb, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
}

/* Two members (two stores) link one person's conversations at once, each
 * bringing the shared phone and an identifier of its own channel; in odd
 * rounds the channel's id comes first, so each would create a contact of
 * its own. Afterwards one contact holds every identifier and both
 * conversations. */
START_TEST(t_pg_two_members_link_one_person)
{
    oh_store *b = oh_test_store_open(cfg);
    struct oh_contact_dir d;
    oh_store_contact_dir(st, &d);
    /* the checked write itself: decided from a key read as absent, which
     * another member wrote meanwhile, it writes nothing */
    const char *keys[] = {"k:c_x"}, *one[] = {"\"p_1\""}, *two[] = {"\"p_2\""}, *absent[] = {NULL};
    const struct oh_contact_seen seen = {keys, absent, 1};
    char got[32];
    ck_assert_int_eq(oh_store_contact_write(st, keys, one, 1, &seen, NULL, NULL, 0), 0);
    ck_assert_int_eq(oh_store_contact_write(b, keys, two, 1, &seen, NULL, NULL, 0), OH_ERETRY);
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, "k:c_x", got, sizeof got), 0);
    ck_assert_str_eq(got, one[0]);
    const struct oh_contact_seen now = {keys, one, 1};
    ck_assert_int_eq(oh_store_contact_write(b, keys, two, 1, &now, NULL, NULL, 0), 0);
    for (int round = 0; round < 40; round++) {
        char phone[24], wa[24], tg[24];
        snprintf(phone, sizeof phone, "+4915112%05d", round);
        snprintf(wa, sizeof wa, "wa%d", round);
        snprintf(tg, sizeof tg, "tg%d", round);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct link_arg la = {.st = st, .go = &go}, lb = {.st = b, .go = &go};
        snprintf(la.conv, sizeof la.conv, "c_la%d", round);
        snprintf(lb.conv, sizeof lb.conv, "c_lb%d", round);
        bool own_first = round % 2;
        la.ids[own_first] = ident("phone", phone);
        la.ids[!own_first] = ident("whatsapp", wa);
        lb.ids[own_first] = ident("phone", phone);
        lb.ids[!own_first] = ident("telegram", tg);
        run_two(link_main, &la, link_main, &lb);
        pthread_barrier_destroy(&go);
        ck_assert_int_eq(la.rc, 0);
        ck_assert_int_eq(lb.rc, 0);
        char root[OH_ID_MAX];
        ck_assert_int_eq(oh_contact_find(&d, "phone", phone, NULL, root), 0);
        json_t *c = NULL;
        ck_assert_int_eq(oh_contact_get(&d, root, &c), 0);
        ck_assert_msg(holds(c, "phone", phone, la.conv) && holds(c, "whatsapp", wa, lb.conv) &&
                          holds(c, "telegram", tg, NULL),
                      "round %d: one contact holds all: %s", round,
                      json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS));
        json_decref(c);
        char ra[OH_ID_MAX], rb[OH_ID_MAX];
        ck_assert_int_eq(oh_contact_find(&d, "whatsapp", wa, NULL, ra), 0);
        ck_assert_int_eq(oh_contact_find(&d, "telegram", tg, NULL, rb), 0);
        ck_assert_str_eq(ra, root);
        ck_assert_str_eq(rb, root);
    }
    oh_store_close(b);
}
END_TEST

/* One member linking N conversations "<prefix><i>" of the person with
 * phone PHONE, one checked write each; a write another member's beat is
 * linked again, as sync stores a batch again. */
struct many_arg {
    oh_store *st;
    pthread_barrier_t *go;
    const char *prefix, *phone;
    int n, rc;
};

static void *many_main(void *p)
{
    struct many_arg *a = p;
    struct oh_contact_dir d;
    struct oh_contact_ident id = ident("phone", a->phone);
    char conv[32], root[OH_ID_MAX];
    oh_store_contact_dir(a->st, &d);
    pthread_barrier_wait(a->go);
    for (int i = 0; i < a->n && a->rc == 0; i++) {
        snprintf(conv, sizeof conv, "%s%d", a->prefix, i);
        while ((a->rc = oh_contact_link(&d, conv, &id, 1, "", root)) == OH_ERETRY) {
        }
    }
    return NULL;
}

/* A person whose record's own page is nearly full (990 conversations)
 * gets 2 x 60 more from two members at once: both append to the same
 * further page, and the checked write (the page read, then checked)
 * loses none. */
START_TEST(t_pg_two_members_fill_pages)
{
    enum { FULL = 990, EACH = 60 };
    oh_store *b = oh_test_store_open(cfg);
    struct oh_contact_dir d;
    oh_store_contact_dir(st, &d);
    struct oh_contact_ident id = ident("phone", "+4915113000001");
    char root[OH_ID_MAX], key[OH_ID_MAX + 8];
    ck_assert_int_eq(oh_contact_link(&d, "c_p0", &id, 1, "", root), 0);
    static char rec[64 * 1024];
    snprintf(key, sizeof key, "c:%s", root);
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, key, rec, sizeof rec), 0);
    json_t *r = json_loads(rec, 0, NULL);
    for (int i = 1; i < FULL; i++) {
        char conv[32];
        snprintf(conv, sizeof conv, "c_p0_%04d", i);
        json_array_append_new(json_object_get(r, "convs"), json_string(conv));
    }
    char *text = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_int_eq(oh_store_kv_put(st, OH_STORE_CONTACTS_NS, key, text), 0);
    free(text);
    json_decref(r);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, 2);
    struct many_arg x = {st, &go, "c_pa", id.value, EACH, 0},
                    y = {b, &go, "c_pb", id.value, EACH, 0};
    run_two(many_main, &x, many_main, &y);
    pthread_barrier_destroy(&go);
    ck_assert_int_eq(x.rc, 0);
    ck_assert_int_eq(y.rc, 0);
    json_t *c = NULL;
    ck_assert_int_eq(oh_contact_get(&d, root, &c), 0);
    json_t *convs = json_object_get(c, "conversations");
    ck_assert_int_eq(json_array_size(convs), FULL + 2 * EACH);
    for (int i = 0; i < EACH; i++) {
        char ca[32], cb[32];
        snprintf(ca, sizeof ca, "c_pa%d", i);
        snprintf(cb, sizeof cb, "c_pb%d", i);
        ck_assert_msg(holds(c, "phone", x.phone, ca) && holds(c, "phone", x.phone, cb),
                      "%s or %s not listed", ca, cb);
    }
    json_decref(c);
    char v[64];
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, "k:c_pb59", v, sizeof v), 0);
    snprintf(key, sizeof key, "p:%s:1", root); /* past the record's own page */
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, key, rec, sizeof rec), 0);
    oh_store_close(b);
}
END_TEST

struct merge_arg {
    oh_store *st;
    pthread_barrier_t *go;
    json_t *cmd;
    struct oh_contact_result r;
};

static void *merge_main(void *p)
{
    struct merge_arg *a = p;
    struct oh_contact_dir d;
    oh_store_contact_dir(a->st, &d);
    pthread_barrier_wait(a->go);
    oh_contact_command(&d, a->cmd, NULL, NULL, &a->r);
    return NULL;
}

/* One member merges contact B into A while the other links a new
 * conversation, with a new identifier, to B (the owner of the phone it
 * brings). Afterwards B is merged into A, and A holds the identifier and
 * the conversation, whichever came first. */
START_TEST(t_pg_merge_while_linking)
{
    oh_store *b = oh_test_store_open(cfg);
    struct oh_contact_dir d;
    oh_store_contact_dir(st, &d);
    for (int round = 0; round < 40; round++) {
        char pa[24], pb[24], mail[40], ca[24], cb[24], ra[OH_ID_MAX], rb[OH_ID_MAX];
        snprintf(pa, sizeof pa, "+4915113%05d", round);
        snprintf(pb, sizeof pb, "+4915114%05d", round);
        snprintf(mail, sizeof mail, "b%d@example.com", round);
        snprintf(ca, sizeof ca, "c_ma%d", round);
        snprintf(cb, sizeof cb, "c_mb%d", round);
        struct oh_contact_ident ia = ident("phone", pa), ib = ident("phone", pb);
        ck_assert_int_eq(oh_contact_link(&d, ca, &ia, 1, "A", ra), 0);
        ck_assert_int_eq(oh_contact_link(&d, cb, &ib, 1, "B", rb), 0);
        ck_assert_str_ne(ra, rb);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct merge_arg m = {.st = st, .go = &go};
        m.cmd = json_pack("{s:s, s:s, s:s}", "contact_id", ra, "op", "merge", "other", rb);
        struct link_arg l = {.st = b, .go = &go};
        snprintf(l.conv, sizeof l.conv, "c_mc%d", round);
        l.ids[0] = ident("phone", pb);
        l.ids[1] = ident("email", mail);
        run_two(merge_main, &m, link_main, &l);
        pthread_barrier_destroy(&go);
        ck_assert_int_eq(m.r.code, 200);
        ck_assert_int_eq(l.rc, 0);
        char root[OH_ID_MAX];
        ck_assert_int_eq(oh_contact_root(&d, rb, root), 0);
        ck_assert_msg(strcmp(root, ra) == 0, "round %d: the merge was undone", round);
        ck_assert_int_eq(oh_contact_find(&d, "email", mail, NULL, root), 0);
        ck_assert_str_eq(root, ra);
        json_t *c = NULL;
        ck_assert_int_eq(oh_contact_get(&d, ra, &c), 0);
        ck_assert_msg(holds(c, "email", mail, l.conv) && holds(c, "phone", pb, cb) &&
                          holds(c, "phone", pa, ca),
                      "round %d: the survivor holds all: %s", round,
                      json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS));
        json_decref(c);
        oh_contact_result_clear(&m.r);
        json_decref(m.cmd);
    }
    oh_store_close(b);
}
END_TEST

/* ---- merges chained at once: the conversations follow the roots ---- */

/* One member merges B into A while another merges A into C. Whichever
 * decides first, C is the root of all three afterwards, and every
 * conversation's contact_ref (the inbox's contact filter) says C: the
 * re-pointing is part of each merge's checked write, so one decided from a
 * directory that moved meanwhile is decided again, never applied late. */
START_TEST(t_pg_chained_merges_point_at_the_root)
{
    oh_store *b = oh_test_store_open(cfg);
    struct oh_contact_dir d;
    oh_store_contact_dir(st, &d);
    int stale = 0;
    for (int round = 0; round < 12; round++) {
        char conv[3][24], root[3][OH_ID_MAX], phone[24];
        for (int i = 0; i < 3; i++) {
            snprintf(conv[i], sizeof conv[i], "c_ch%d_%d", round, i);
            snprintf(phone, sizeof phone, "+4915115%03d%02d", round, i);
            json_t *ev = mk_event(conv[i], conv[i], OH_EV_INBOUND, 1700000000000, "hi");
            struct oh_store_item it = {.event = ev, .src_offset = round * 3 + i};
            ck_assert_int_eq(oh_store_materialize(st, NULL, &it, 1, NULL, 0), 0);
            json_decref(ev);
            struct oh_contact_ident id = ident("phone", phone);
            ck_assert_int_eq(oh_contact_link(&d, conv[i], &id, 1, "P", root[i]), 0);
        }
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct merge_arg m1 = {.st = st, .go = &go}, m2 = {.st = b, .go = &go};
        m1.cmd =
            json_pack("{s:s, s:s, s:s}", "contact_id", root[0], "op", "merge", "other", root[1]);
        m2.cmd =
            json_pack("{s:s, s:s, s:s}", "contact_id", root[2], "op", "merge", "other", root[0]);
        run_two(merge_main, &m1, merge_main, &m2);
        pthread_barrier_destroy(&go);
        ck_assert_int_eq(m1.r.code, 200);
        ck_assert_int_eq(m2.r.code, 200);
        char top[OH_ID_MAX];
        ck_assert_int_eq(oh_contact_root(&d, root[1], top), 0);
        ck_assert_str_eq(top, root[2]);
        for (int i = 0; i < 3; i++) {
            struct oh_conversation c;
            ck_assert_int_eq(oh_store_conversation_get(st, conv[i], &c), 0);
            if (strcmp(c.contact_ref, top) != 0) stale++;
        }
        for (int i = 0; i < 2; i++) {
            struct merge_arg *m = i ? &m2 : &m1;
            oh_contact_result_clear(&m->r);
            json_decref(m->cmd);
        }
    }
    ck_assert_msg(stale == 0, "%d conversations point at a merged-away contact", stale);
    oh_store_close(b);
}
END_TEST

/* ---- erasure while a member stores the conversation ---- */

enum { ER_FIRST = 30, ER_BATCHES = 12, ER_PER = 3 };

struct store_arg {
    oh_store *st;
    pthread_barrier_t *go;
    const char *conv;
    int round, rc;
};

static void *store_main(void *p)
{
    struct store_arg *a = p;
    pthread_barrier_wait(a->go);
    for (int k = 0; k < ER_BATCHES && a->rc == 0; k++) {
        json_t *evs[ER_PER];
        struct oh_store_item items[ER_PER];
        for (int i = 0; i < ER_PER; i++) {
            char id[48];
            snprintf(id, sizeof id, "e_es%d_%d", a->round, k * ER_PER + i);
            evs[i] = mk_event(id, a->conv, OH_EV_INBOUND, 1700000000000 + k, id);
            items[i] = (struct oh_store_item){.event = evs[i], .src_offset = k * ER_PER + i};
        }
        a->rc = oh_store_materialize(a->st, NULL, items, ER_PER, NULL, 0);
        for (int i = 0; i < ER_PER; i++)
            json_decref(evs[i]);
    }
    return NULL;
}

struct erase_arg {
    oh_store *st;
    pthread_barrier_t *go;
    const char *conv;
    int64_t count;
    int rc;
};

/* As sync's erasure removes each message's media (a file, a request):
 * it takes a while. */
static void media_gone(void *opaque, const json_t *event)
{
    (void)opaque;
    (void)event;
    usleep(200);
}

static void *erase_main(void *p)
{
    struct erase_arg *a = p;
    pthread_barrier_wait(a->go);
    usleep((useconds_t)(rand() % 20) * 1000);
    a->rc = oh_store_erase(a->st, &a->conv, 1, media_gone, NULL, &a->count);
    return NULL;
}

struct erased_rows {
    int n, tombstones, live;
    bool prefix; /* every tombstone comes before every live message */
};

static int erased_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct erased_rows *r = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    ck_assert_int_eq(seq, ++r->n);
    if (strcmp(oh_event_get_type(ev), OH_EV_ERASED) == 0) {
        r->prefix &= r->live == 0;
        r->tombstones++;
    } else {
        r->live++;
    }
    json_decref(ev);
    return 0;
}

/* One member stores a conversation's events in batches while another
 * erases it. As on SQLite, the erasure lies between two batches: the
 * messages before it are tombstones (as many as it counted, none left in
 * the search index), those after are kept, and the conversation's contact
 * and preview are cleared only when nothing came after. */
START_TEST(t_pg_erase_while_storing)
{
    oh_store *b = oh_test_store_open(cfg);
    srand(7);
    for (int round = 0; round < 30; round++) {
        char conv[24], q[200];
        snprintf(conv, sizeof conv, "c_es%d", round);
        json_t *evs[ER_FIRST];
        struct oh_store_item items[ER_FIRST];
        for (int i = 0; i < ER_FIRST; i++) {
            char id[48];
            snprintf(id, sizeof id, "e_es%d_first%d", round, i);
            evs[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000, id);
        }
        ck_assert_int_eq(put(items, evs, ER_FIRST, 0, NULL), 0);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        struct store_arg sa = {.st = st, .go = &go, .conv = conv, .round = round};
        struct erase_arg ea = {.st = b, .go = &go, .conv = conv};
        run_two(store_main, &sa, erase_main, &ea);
        pthread_barrier_destroy(&go);
        ck_assert_int_eq(sa.rc, 0);
        ck_assert_int_eq(ea.rc, 0);
        struct erased_rows r = {.prefix = true};
        ck_assert_int_eq(oh_store_history(st, conv, 0, 0, erased_row, &r), 0);
        ck_assert_int_eq(r.n, ER_FIRST + ER_BATCHES * ER_PER);
        ck_assert_msg(r.prefix, "round %d: a message stored before the erasure was kept", round);
        ck_assert_int_eq(r.tombstones, ea.count);
        ck_assert_int_ge(r.tombstones, ER_FIRST);
        ck_assert_int_eq((r.tombstones - ER_FIRST) % ER_PER, 0); /* whole batches */
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM search WHERE conversation_id = '%s' AND seq <= %d", conv,
                 r.tombstones);
        ck_assert_int_eq(pg_count(cur_dsn, q), 0);
        struct oh_conversation c;
        ck_assert_int_eq(oh_store_conversation_get(st, conv, &c), 0);
        if (r.live) {
            ck_assert_msg(strcmp(c.contact_id, "u1") == 0 && c.last_text[0],
                          "round %d: %d messages after the erasure, contact '%s', preview '%s'",
                          round, r.live, c.contact_id, c.last_text);
        } else {
            ck_assert_str_eq(c.contact_id, "");
            ck_assert_str_eq(c.last_text, "");
        }
    }
    oh_store_close(b);
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
    tcase_add_test(tc, t_pg_two_members_link_one_person);
    tcase_add_test(tc, t_pg_two_members_fill_pages);
    tcase_add_test(tc, t_pg_merge_while_linking);
    tcase_add_test(tc, t_pg_chained_merges_point_at_the_root);
    tcase_add_test(tc, t_pg_erase_while_storing);
    suite_add_tcase(s, tc);
}
#else
static void pg_add_tests(Suite *s)
{
    (void)s;
}
#endif
