/* test_store_desk.c - the store contract's directory and desk cases:
 * conversations, the inbox, references, states, cursors, key/values. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "store_fixture.h"

#include "store/store_sqlite_schema.inc"
#ifdef OH_HAVE_POSTGRES
#include "store/store_pg_schema.inc"
#endif

/* The directory's times are the broker's clock when the event was
 * materialized (the event times below even go backwards); last_inbound_ms
 * is the customer message's own time. */
START_TEST(t_conversations)
{
    int64_t t0 = 1700000000000, mark[5];
    mark[0] = oh_now_ms();
    usleep(3000);
    ck_assert_int_eq(put1(mk_event("e_c1", "c_one", OH_EV_INBOUND, t0 + 4000, "m1"), 0), 1);
    usleep(3000);
    mark[1] = oh_now_ms();
    usleep(3000);
    ck_assert_int_eq(put1(mk_event("e_c2", "c_two", OH_EV_OUTBOUND, t0 + 3000, "m2"), 1), 1);
    usleep(3000);
    mark[2] = oh_now_ms();
    usleep(3000);
    ck_assert_int_eq(put1(mk_event("e_c3", "c_three", OH_EV_INBOUND, t0 + 2000, "m3"), 2), 1);
    usleep(3000);
    mark[3] = oh_now_ms();
    usleep(3000);
    ck_assert_int_eq(put1(mk_event("e_c4", "c_one", OH_EV_OUTBOUND, t0 + 1000, "m4"), 3), 2);
    usleep(3000);
    mark[4] = oh_now_ms();
    struct convs l = {0};
    ck_assert_int_eq(oh_store_conversations(st, 0, 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.id[0], "c_one");
    ck_assert_str_eq(l.id[1], "c_three");
    ck_assert_str_eq(l.id[2], "c_two");
    l.n = 0;
    ck_assert_int_eq(oh_store_conversations(st, mark[2], 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.id[0], "c_one");
    ck_assert_str_eq(l.id[1], "c_three");
    l.n = 0;
    ck_assert_int_eq(oh_store_conversations(st, mark[4], 10, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_int_eq(oh_store_conversations(st, 0, 1, collect_conv, &l), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.id[0], "c_one");

    struct oh_conversation c;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_one", &c), 0);
    ck_assert_str_eq(c.channel, "test");
    ck_assert_str_eq(c.account, "acct");
    ck_assert_str_eq(c.contact_id, "u1");
    ck_assert_str_eq(c.contact_name, "User One");
    ck_assert_int_eq(c.head, 2);
    ck_assert_int_ge(c.created_ms, mark[0]);
    ck_assert_int_le(c.created_ms, mark[1]);
    ck_assert_int_ge(c.updated_ms, mark[3]);
    ck_assert_int_le(c.updated_ms, mark[4]);
    ck_assert_int_eq(c.last_inbound_ms, t0 + 4000);
    ck_assert_int_eq(oh_store_conversation_get(st, "c_two", &c), 0);
    ck_assert_int_eq(c.last_inbound_ms, 0);
    ck_assert_int_eq(oh_store_conversation_get(st, "c_zzz", &c), OH_ENOTFOUND);
}
END_TEST

/* ---------- the inbox (issue 16) ---------- */

struct inbox {
    int n;
    char id[8][OH_ID_MAX];
    int64_t read[8];
};

static int inbox_row(void *opaque, const struct oh_conversation *c, int64_t read_seq)
{
    struct inbox *l = opaque;
    if (l->n < 8) {
        snprintf(l->id[l->n], OH_ID_MAX, "%s", c->id);
        l->read[l->n] = read_seq;
    }
    l->n++;
    return 0;
}

static int inbox_change(void *opaque, const struct oh_conversation *c)
{
    return inbox_row(opaque, c, 0);
}

static void set_data(json_t *ev, const char *key, json_t *v)
{
    json_object_set_new(json_object_get(ev, "data"), key, v);
}

START_TEST(t_inbox)
{
    char now[OH_STORE_POS_MAX], p1[OH_STORE_POS_MAX], p2[OH_STORE_POS_MAX];
    struct inbox l = {0};
    ck_assert_int_eq(oh_store_changes(st, "", 10, inbox_change, &l, now), 0);
    ck_assert_int_eq(l.n, 0);
    /* a mail with a subject, a private note, a status; a long text elsewhere */
    char long_text[700] = "";
    for (int i = 0; i < 300; i++)
        strcat(long_text, i < 199 ? "\xc3\xa9" : "x"); /* 199 x é, then x */
    json_t *evs[4] = {mk_event("e_i1", "c_mail", OH_EV_INBOUND, 1700000000000, "m1"),
                      mk_event("e_i2", "c_mail", OH_EV_OUTBOUND, 1700000001000, "m2"),
                      mk_status("e_i3", "c_mail", "m1", "read", NULL),
                      mk_event("e_i4", "c_long", OH_EV_INBOUND, 1700000002000, "m4")};
    set_data(evs[0], "subject", json_string("Quarterly Invoice overdue"));
    set_data(evs[0], "kind", json_string("email"));
    set_data(evs[1], "internal", json_true());
    set_data(evs[1], "text", json_string("a private remark"));
    set_data(evs[3], "text", json_string(long_text));
    struct oh_store_item items[4];
    ck_assert_int_eq(put(items, evs, 4, 0, NULL), 0);
    struct oh_conversation c;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_mail", &c), 0);
    ck_assert_int_eq(c.head, 3);
    ck_assert_int_eq(c.last_seq, 1); /* neither the note nor the status */
    ck_assert_str_eq(c.last_direction, "inbound");
    ck_assert_str_eq(c.last_kind, "email");
    ck_assert_str_eq(c.last_text, "hello");
    ck_assert_int_eq(c.last_ms, 1700000000000);
    int64_t rev_mail = c.rev;
    ck_assert_int_gt(rev_mail, 0);
    ck_assert_int_eq(oh_store_conversation_get(st, "c_long", &c), 0);
    ck_assert_int_eq(strlen(c.last_text), 199 * 2 + 1); /* 200 characters */
    ck_assert_int_ne(c.rev, rev_mail);

    struct oh_store_filter f = {.limit = 10, .q = "invoice"};
    l.n = 0;
    ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.id[0], "c_mail");
    const char *none[] = {"nothing", "\"", "   ", "remark invoice hello zzz"};
    for (size_t i = 0; i < OH_ARRAY_SIZE(none); i++) {
        f.q = none[i];
        l.n = 0;
        ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
        ck_assert_int_eq(l.n, 0);
    }
    f.q = "REMARK"; /* notes are searchable by agents */
    l.n = 0;
    ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
    ck_assert_int_eq(l.n, 1);
    /* read cursors of the reader come with the rows */
    ck_assert_int_eq(oh_store_cursor_set(st, "c_mail", "agent", "ag", "d1", 2), 0);
    f = (struct oh_store_filter){.limit = 10, .reader_role = "agent", .reader = "ag"};
    l.n = 0;
    ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
    ck_assert_int_eq(l.n, 2);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(l.read[i], strcmp(l.id[i], "c_mail") == 0 ? 2 : 0);

    /* changes: both after "now", then only what changed after that */
    l.n = 0;
    ck_assert_int_eq(oh_store_changes(st, now, 10, inbox_change, &l, p1), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(put1(mk_event("e_i5", "c_long", OH_EV_OUTBOUND, 1700000003000, "m5"), 4), 2);
    l.n = 0;
    ck_assert_int_eq(oh_store_changes(st, p1, 10, inbox_change, &l, p2), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.id[0], "c_long");
    l.n = 0;
    ck_assert_int_eq(oh_store_changes(st, p2, 10, inbox_change, &l, p1), 0);
    ck_assert_int_eq(l.n, 0);
    ck_assert_str_eq(p1, p2);
    l.n = 0; /* one at a time: the position moves by the row handed out */
    ck_assert_int_eq(oh_store_changes(st, "r0", 1, inbox_change, &l, p1), 0);
    ck_assert_int_eq(oh_store_changes(st, p1, 1, inbox_change, &l, p2), 0);
    ck_assert_int_eq(oh_store_changes(st, p2, 1, inbox_change, &l, p1), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_ne(l.id[0], l.id[1]);
    ck_assert_int_eq(oh_store_changes(st, "bogus", 1, inbox_change, &l, p1), OH_EINVAL);

    /* a word in more messages than PostgreSQL looks up first (Q_RARE): the
     * other plan, same answer */
    enum { NCOMMON = 2100 };
    json_t **many = calloc(NCOMMON, sizeof *many);
    struct oh_store_item *mitems = calloc(NCOMMON, sizeof *mitems);
    for (int i = 0; i < NCOMMON; i++) {
        char id[32], conv[32], mid[32];
        snprintf(id, sizeof id, "e_many%d", i);
        snprintf(conv, sizeof conv, "c_many%02d", i % 21);
        snprintf(mid, sizeof mid, "mm%d", i);
        many[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + i, mid);
        set_data(many[i], "text", json_string("a common word"));
    }
    ck_assert_int_eq(put(mitems, many, NCOMMON, 100, NULL), 0);
    free(many);
    free(mitems);
    f = (struct oh_store_filter){.limit = 8, .q = "common words"};
    l.n = 0;
    ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
    ck_assert_int_eq(l.n, 0);
    f.q = "Common";
    l.n = 0;
    ck_assert_int_eq(oh_store_list(st, &f, inbox_row, &l), 0);
    ck_assert_int_eq(l.n, 8);
    for (int i = 0; i < 8; i++)
        ck_assert(strncmp(l.id[i], "c_many", 6) == 0);
    ck_assert_int_eq(oh_store_changes(st, "r1.2.3", 1, inbox_change, &l, p1), OH_EINVAL);
}
END_TEST

START_TEST(t_refs)
{
    struct oh_store_ref r;
    ck_assert_int_eq(put1(mk_event("e_r1", "c_ref", OH_EV_OUTBOUND, 1700000000000, "m_out1"), 0),
                     1);
    ck_assert_int_eq(oh_store_ref_get(st, "test", "acct", "m_out1", &r), 0);
    ck_assert_str_eq(r.conversation_id, "c_ref");
    ck_assert_str_eq(r.message_id, "m_out1");
    /* the provider's id for our message, learnt from a status event */
    ck_assert_int_eq(put1(mk_status("e_s1", "c_ref", "m_out1", "sent", "wamid.XYZ"), 1), 2);
    ck_assert_int_eq(oh_store_ref_get(st, "test", "acct", "wamid.XYZ", &r), 0);
    ck_assert_str_eq(r.conversation_id, "c_ref");
    ck_assert_str_eq(r.message_id, "m_out1");
    ck_assert_int_eq(oh_store_ref_get(st, "test", "other", "wamid.XYZ", &r), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_ref_put(st, "email", "box", "<abc@host>", "c_ref", "m_out1"), 0);
    ck_assert_int_eq(oh_store_ref_get(st, "email", "box", "<abc@host>", &r), 0);
    ck_assert_str_eq(r.message_id, "m_out1");
    ck_assert_int_eq(oh_store_ref_put(st, "email", "box", "<abc@host>", "c_ref", "m_out2"), 0);
    ck_assert_int_eq(oh_store_ref_get(st, "email", "box", "<abc@host>", &r), 0);
    ck_assert_str_eq(r.message_id, "m_out2");
}
END_TEST

START_TEST(t_state_never_backwards)
{
    char state[16];
    ck_assert_int_eq(oh_store_message_state(st, "c_st", "m1", state), OH_ENOTFOUND);
    ck_assert_int_eq(put1(mk_status("e_st1", "c_st", "m1", "sent", NULL), 0), 1);
    ck_assert_int_eq(oh_store_message_state(st, "c_st", "m1", state), 0);
    ck_assert_str_eq(state, "sent");
    ck_assert_int_eq(put1(mk_status("e_st2", "c_st", "m1", "read", NULL), 1), 2);
    ck_assert_int_eq(put1(mk_status("e_st3", "c_st", "m1", "delivered", NULL), 2), 3);
    ck_assert_int_eq(oh_store_message_state(st, "c_st", "m1", state), 0);
    ck_assert_str_eq(state, "read");
    /* within one batch too: failed then delivered then sent */
    json_t *evs[3] = {mk_status("e_st4", "c_st", "m2", "failed", NULL),
                      mk_status("e_st5", "c_st", "m2", "delivered", NULL),
                      mk_status("e_st6", "c_st", "m2", "sent", NULL)};
    struct oh_store_item items[3];
    ck_assert_int_eq(put(items, evs, 3, 3, NULL), 0);
    ck_assert_int_eq(oh_store_message_state(st, "c_st", "m2", state), 0);
    ck_assert_str_eq(state, "delivered");
    ck_assert_int_eq(oh_store_state_rank("sent"), 1);
    ck_assert_int_eq(oh_store_state_rank("failed"), 2);
    ck_assert_int_eq(oh_store_state_rank("delivered"), 3);
    ck_assert_int_eq(oh_store_state_rank("read"), 4);
    ck_assert_int_eq(oh_store_state_rank("bogus"), 0);
}
END_TEST

struct curs {
    int n;
    char dev[8][32];
    int64_t seq[8];
};

static int collect_cursor(void *opaque, const char *device, int64_t seq)
{
    struct curs *c = opaque;
    snprintf(c->dev[c->n], sizeof c->dev[0], "%s", device);
    c->seq[c->n++] = seq;
    return 0;
}

START_TEST(t_cursors)
{
    ck_assert_int_eq(oh_store_cursor_set(st, "c_cur", "agent", "alice", "phone", 5), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_cur", "agent", "alice", "phone", 3), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_cur", "agent", "alice", "laptop", 2), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_cur", "agent", "alice", "laptop", 7), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_cur", "agent", "bob", "phone", 1), 0);
    struct curs c = {0};
    ck_assert_int_eq(oh_store_cursors(st, "c_cur", "agent", "alice", collect_cursor, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.dev[0], "laptop");
    ck_assert_int_eq(c.seq[0], 7);
    ck_assert_str_eq(c.dev[1], "phone");
    ck_assert_int_eq(c.seq[1], 5);
}
END_TEST

struct kvs {
    int n;
    char key[8][32];
    char val[8][32];
};

static int collect_kv(void *opaque, const char *key, const char *value)
{
    struct kvs *k = opaque;
    snprintf(k->key[k->n], 32, "%s", key);
    snprintf(k->val[k->n++], 32, "%s", value);
    return 0;
}

/* kv_get_many's answers, named by the keys asked for (many_keys). */
static const char *const *many_keys;
static void collect_many(void *opaque, size_t i, const char *value)
{
    collect_kv(opaque, many_keys[i], value);
}

/* An agent and a customer may share a sub: each has their own cursors. */
START_TEST(t_cursor_roles)
{
    ck_assert_int_eq(oh_store_cursor_set(st, "c_role", "agent", "bob", "phone", 4), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_role", "customer", "bob", "phone", 2), 0);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_role", "customer", "bob", "tablet", 1), 0);
    struct curs a = {0}, c = {0};
    ck_assert_int_eq(oh_store_cursors(st, "c_role", "agent", "bob", collect_cursor, &a), 0);
    ck_assert_int_eq(a.n, 1);
    ck_assert_str_eq(a.dev[0], "phone");
    ck_assert_int_eq(a.seq[0], 4);
    ck_assert_int_eq(oh_store_cursors(st, "c_role", "customer", "bob", collect_cursor, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.dev[0], "phone");
    ck_assert_int_eq(c.seq[0], 2);
    ck_assert_str_eq(c.dev[1], "tablet");
    ck_assert_int_eq(c.seq[1], 1);
}
END_TEST

/* A store of schema 1 (cursors keyed on the sub only) migrates, and its
 * cursors stay readable; a newer cursor of the same device wins. */
START_TEST(t_cursor_rows_before_roles)
{
    oh_store_close(st);
    st = NULL;
    const char *old_rows = "INSERT INTO cursors (conversation_id, user_id, device, seq) VALUES "
                           "('c_old', 'alice', 'phone', 4), ('c_old', 'alice', 'laptop', 6)";
    if (use_pg) {
#ifdef OH_HAVE_POSTGRES
        char dsn[600];
        oh_test_pg_newdb(dsn, sizeof dsn);
        oh_test_pg_sql(dsn, pg_migrations[0]);
        oh_test_pg_sql(dsn, "CREATE TABLE schema_version (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now()); "
                    "INSERT INTO schema_version (version) VALUES (1)");
        oh_test_pg_sql(dsn, old_rows);
        oh_config_free(cfg);
        cfg = make_cfg(dsn, NULL);
#endif
    } else {
        char path[600];
        snprintf(path, sizeof path, "%s/store.db", tmp);
        ck_assert_int_eq(unlink(path), 0);
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, sq_migrations[0], NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db,
                                      "INSERT INTO meta (key, value) VALUES "
                                      "('schema_version', '1')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(db, old_rows, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
    }
    st = oh_test_store_open(cfg);
    ck_assert_int_eq(oh_store_cursor_set(st, "c_old", "customer", "alice", "phone", 5), 0);
    struct curs a = {0}, c = {0};
    ck_assert_int_eq(oh_store_cursors(st, "c_old", "agent", "alice", collect_cursor, &a), 0);
    ck_assert_int_eq(a.n, 2);
    ck_assert_str_eq(a.dev[0], "laptop");
    ck_assert_int_eq(a.seq[0], 6);
    ck_assert_str_eq(a.dev[1], "phone");
    ck_assert_int_eq(a.seq[1], 4);
    ck_assert_int_eq(oh_store_cursors(st, "c_old", "customer", "alice", collect_cursor, &c), 0);
    ck_assert_int_eq(c.n, 2);
    ck_assert_str_eq(c.dev[1], "phone");
    ck_assert_int_eq(c.seq[1], 5);
}
END_TEST

START_TEST(t_kv)
{
    char buf[64];
    ck_assert_int_eq(oh_store_kv_get(st, "email", "uidvalidity", buf, sizeof buf), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_kv_put(st, "email", "uidvalidity", "123"), 0);
    ck_assert_int_eq(oh_store_kv_put(st, "email", "last_uid", "9"), 0);
    ck_assert_int_eq(oh_store_kv_put(st, "email", "last_uid", "10"), 0);
    ck_assert_int_eq(oh_store_kv_put(st, "x", "last_uid", "other"), 0);
    ck_assert_int_eq(oh_store_kv_get(st, "email", "last_uid", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "10");
    ck_assert_int_eq(oh_store_kv_get(st, "email", "uidvalidity", buf, 3), OH_ETOOBIG);
    struct kvs k = {0};
    ck_assert_int_eq(oh_store_kv_scan(st, "email", collect_kv, &k), 0);
    ck_assert_int_eq(k.n, 2);
    ck_assert_str_eq(k.key[0], "last_uid");
    ck_assert_str_eq(k.val[0], "10");
    ck_assert_str_eq(k.key[1], "uidvalidity");
    /* many at once: missing keys skipped, other namespaces not read, a key
     * with a quote and a backslash found as itself */
    ck_assert_int_eq(oh_store_kv_put(st, "email", "a\"b\\c,{d}", "odd"), 0);
    const char *keys[] = {"uidvalidity", "nope", "a\"b\\c,{d}", "last_uid"};
    struct kvs m = {0};
    many_keys = keys;
    ck_assert_int_eq(oh_store_kv_get_many(st, "email", keys, 4, collect_many, &m), 0);
    ck_assert_int_eq(m.n, 3);
    int seen = 0;
    for (int i = 0; i < m.n; i++) {
        if (strcmp(m.key[i], "uidvalidity") == 0 && strcmp(m.val[i], "123") == 0) seen |= 1;
        if (strcmp(m.key[i], "a\"b\\c,{d}") == 0 && strcmp(m.val[i], "odd") == 0) seen |= 2;
        if (strcmp(m.key[i], "last_uid") == 0 && strcmp(m.val[i], "10") == 0) seen |= 4;
    }
    ck_assert_int_eq(seen, 7);
    m.n = 0;
    ck_assert_int_eq(oh_store_kv_get_many(st, "x", keys, 4, collect_many, &m), 0);
    ck_assert_int_eq(m.n, 1);
    ck_assert_str_eq(m.val[0], "other");
    ck_assert_int_eq(oh_store_kv_get_many(st, "email", keys, 0, collect_many, &m), 0);
    ck_assert_int_eq(oh_store_kv_del(st, "email", "a\"b\\c,{d}"), 0);
    ck_assert_int_eq(oh_store_kv_del(st, "email", "last_uid"), 0);
    ck_assert_int_eq(oh_store_kv_get(st, "email", "last_uid", buf, sizeof buf), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_kv_get(st, "x", "last_uid", buf, sizeof buf), 0);
    char *big = malloc(70 * 1024);
    memset(big, 'a', 70 * 1024 - 1);
    big[70 * 1024 - 1] = '\0';
    ck_assert_int_eq(oh_store_kv_put(st, "email", "big", big), OH_ETOOBIG);
    big[64 * 1024] = '\0';
    ck_assert_int_eq(oh_store_kv_put(st, "email", "big", big), 0);
    char *back = malloc(64 * 1024 + 1);
    ck_assert_int_eq(oh_store_kv_get(st, "email", "big", back, 64 * 1024 + 1), 0);
    ck_assert_str_eq(back, big);
    free(back);
    free(big);
}
END_TEST

/* Increments "n" of "swap" COUNT times, each a read and a swap tried
 * again until it wins. */
static void *count_up(void *count)
{
    for (int i = 0; i < *(int *)count; i++) {
        int rc;
        do {
            char now[32] = "", next[32];
            int got = oh_store_kv_get(st, "swap", "n", now, sizeof now);
            ck_assert(got == OH_OK || got == OH_ENOTFOUND);
            snprintf(next, sizeof next, "%lld", got == OH_OK ? atoll(now) + 1 : 1LL);
            rc = oh_store_kv_swap(st, "swap", "n", got == OH_OK ? now : NULL, next);
        } while (rc == OH_ERETRY);
        ck_assert_int_eq(rc, OH_OK);
    }
    return NULL;
}

START_TEST(t_kv_swap)
{
    char buf[64];
    /* NULL expected: only where absent */
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "k", NULL, "one"), OH_OK);
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "k", NULL, "two"), OH_ERETRY);
    ck_assert_int_eq(oh_store_kv_get(st, "swap", "k", buf, sizeof buf), OH_OK);
    ck_assert_str_eq(buf, "one");
    /* a value: only where the key holds it */
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "k", "other", "two"), OH_ERETRY);
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "k", "one", "two"), OH_OK);
    ck_assert_int_eq(oh_store_kv_get(st, "swap", "k", buf, sizeof buf), OH_OK);
    ck_assert_str_eq(buf, "two");
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "absent", "two", "x"), OH_ERETRY);
    ck_assert_int_eq(oh_store_kv_get(st, "swap", "absent", buf, sizeof buf), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_kv_swap(st, "swap", "k", "two", NULL), OH_EINVAL);
    /* two threads counting on one key: no increment lost (with get and put
     * instead of swap, most are) */
    int each = 150;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, count_up, &each), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert_int_eq(oh_store_kv_get(st, "swap", "n", buf, sizeof buf), OH_OK);
    ck_assert_int_eq(atoll(buf), 2 * each);
}
END_TEST

void store_desk_tests(TCase *tc)
{
    tcase_add_test(tc, t_conversations);
    tcase_add_test(tc, t_inbox);
    tcase_add_test(tc, t_refs);
    tcase_add_test(tc, t_state_never_backwards);
    tcase_add_test(tc, t_cursors);
    tcase_add_test(tc, t_cursor_roles);
    tcase_add_test(tc, t_cursor_rows_before_roles);
    tcase_add_test(tc, t_kv);
    tcase_add_test(tc, t_kv_swap);
}
