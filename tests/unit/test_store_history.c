/* test_store_history.c - the store contract's history cases: dense
 * seqs, duplicates, atomic batches, paging, the stored text and its
 * checksum, positions and replay, the follow-up of a batch, bulk rates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "store_fixture.h"

START_TEST(t_seq_dense)
{
    const char *convs[] = {"c_alpha", "c_beta", "c_gamma"};
    int expect[3] = {0, 0, 0};
    int64_t off = 0;
    for (int b = 0; b < 10; b++) {
        json_t *evs[13];
        struct oh_store_item items[13];
        int64_t seqs[13];
        int which[13];
        for (int i = 0; i < 13; i++) {
            char id[64];
            which[i] = (b * 13 + i) % 3 == 2 ? 2 : (b + i) % 2;
            snprintf(id, sizeof id, "e_dense_%d_%d", b, i);
            evs[i] = mk_event(id, convs[which[i]], OH_EV_INBOUND, 1700000000000 + b * 100 + i, id);
        }
        ck_assert_int_eq(put(items, evs, 13, off, seqs), 0);
        off += 13;
        for (int i = 0; i < 13; i++)
            ck_assert_int_eq(seqs[i], ++expect[which[i]]);
    }
    for (int c = 0; c < 3; c++) {
        struct rows r = {.ok = true};
        ck_assert_int_eq(oh_store_history(st, convs[c], 0, 0, collect, &r), 0);
        ck_assert_int_eq(r.n, expect[c]);
        ck_assert(r.ok);
        for (int i = 0; i < r.n; i++)
            ck_assert_int_eq(r.seq[i], i + 1);
        struct oh_conversation cv;
        ck_assert_int_eq(oh_store_conversation_get(st, convs[c], &cv), 0);
        ck_assert_int_eq(cv.head, expect[c]);
    }
    int64_t next, published;
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 0, &next, &published), 0);
    ck_assert_int_eq(next, off);
}
END_TEST

struct text_row {
    char *text;
};

static int keep_text(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct text_row *t = opaque;
    free(t->text);
    t->text = strndup(json, len);
    return 0;
}

START_TEST(t_event_gets_seq_and_epoch)
{
    json_t *ev = mk_event("e_attr", "c_attr", OH_EV_INBOUND, 1700000000000, "m1");
    struct oh_store_item it = {.event = ev, .src_partition = 0, .src_offset = 0, .seq = -1};
    ck_assert_int_eq(oh_store_materialize(st, "g", &it, 1, NULL, 0), 0);
    ck_assert_int_eq(it.seq, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(ev, "seq")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "epoch")), oh_store_epoch(st));
    /* the stored text is exactly the event handed back, non-ASCII included */
    json_object_set_new(json_object_get(ev, "data"), "text", json_string("h\u00e9 \"q\" \\ \n"));
    json_t *ev2 = json_deep_copy(ev);
    json_object_set_new(ev2, "id", json_string("e_attr2"));
    struct oh_store_item it2 = {
        .event = ev2, .src_partition = 0, .src_offset = 1, .seq = -1, .want_text = true};
    ck_assert_int_eq(oh_store_materialize(st, "g", &it2, 1, NULL, 0), 0);
    ck_assert_int_eq(it2.seq, 2);
    char *want = json_dumps(ev2, JSON_COMPACT);
    /* the text handed back for forwarding is that same text (both backends:
     * sync forwards it without a dump of its own) */
    ck_assert_ptr_nonnull(it2.json);
    ck_assert_str_eq(it2.json, want);
    ck_assert_uint_eq(it2.len, strlen(want));
    free(it2.json);
    struct text_row tr = {0};
    ck_assert_int_eq(oh_store_history(st, "c_attr", 1, 1, keep_text, &tr), 0);
    ck_assert_str_eq(tr.text, want);
    free(want);
    free(tr.text);
    json_decref(ev2);
    json_decref(ev);
}
END_TEST

/* An event handed over with its record's text (the compact dump without
 * seq and epoch) is stored as that text with them appended, which is what
 * dumping it would give; one that carries a seq already is dumped. */
START_TEST(t_record_text)
{
    json_t *ev = mk_event("e_raw", "c_raw", OH_EV_INBOUND, 1700000000000, "m1");
    json_object_set_new(json_object_get(ev, "data"), "text", json_string("h\u00e9 \"q\" \\ \n"));
    size_t rlen;
    char *raw = oh_json_dump(ev, &rlen);
    ck_assert_ptr_nonnull(raw);
    json_t *stale = mk_event("e_raw2", "c_raw", OH_EV_INBOUND, 1700000000001, "m2");
    size_t slen;
    char *sraw = oh_json_dump(stale, &slen); /* the text before the seq below */
    json_object_set_new(stale, "seq", json_integer(77));
    struct oh_store_item it[2] = {
        {.event = ev, .seq = -1, .want_text = true, .raw = raw, .raw_len = rlen},
        {.event = stale, .src_offset = 1, .seq = -1, .want_text = true, .raw = sraw,
         .raw_len = slen}};
    ck_assert_int_eq(oh_store_materialize(st, "g", it, 2, NULL, 0), 0);
    ck_assert_int_eq(it[0].seq, 1);
    ck_assert_int_eq(it[1].seq, 2);
    for (int i = 0; i < 2; i++) {
        char *want = json_dumps(it[i].event, JSON_COMPACT);
        struct text_row tr = {0};
        ck_assert_int_eq(oh_store_history(st, "c_raw", i, 1, keep_text, &tr), 0);
        ck_assert_str_eq(tr.text, want);
        ck_assert_ptr_nonnull(it[i].json);
        ck_assert_str_eq(it[i].json, want);
        ck_assert_uint_eq(it[i].len, strlen(want));
        free(it[i].json);
        free(tr.text);
        free(want);
    }
    /* a repeated id in a conversation of its own stores nothing, not even
     * the conversation's row */
    json_t *again = mk_event("e_raw", "c_raw_other", OH_EV_INBOUND, 1700000000002, "m3");
    struct oh_store_item rep = {.event = again, .src_offset = 5, .seq = -1, .want_text = true};
    ck_assert_int_eq(oh_store_materialize(st, "g", &rep, 1, NULL, 0), 0);
    ck_assert_int_eq(rep.seq, 0);
    ck_assert_ptr_null(rep.json);
    ck_assert_ptr_null(json_object_get(again, "seq"));
    struct oh_conversation cv;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_raw_other", &cv), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_conversation_get(st, "c_raw", &cv), 0);
    ck_assert_int_eq(cv.head, 2);
    json_decref(again);
    json_decref(stale);
    json_decref(ev);
    free(sraw);
    free(raw);
}
END_TEST

/* A store that another writer of the same database moved a head past
 * refuses the batch (its seq is taken) and takes it on the retry. */
START_TEST(t_head_moved_elsewhere)
{
    if (use_pg) return; /* PostgreSQL keeps no heads in memory */
    oh_store *other = oh_test_store_open(cfg);
    ck_assert_int_eq(put1(mk_event("e_h1", "c_h", OH_EV_INBOUND, 1700000000000, "m1"), 0), 1);
    json_t *ev = mk_event("e_h2", "c_h", OH_EV_INBOUND, 1700000000001, "m2");
    struct oh_store_item it = {.event = ev, .src_offset = 1, .seq = -1};
    ck_assert_int_eq(oh_store_materialize(other, "g", &it, 1, NULL, 0), 0);
    ck_assert_int_eq(it.seq, 2);
    json_decref(ev);
    oh_store_close(other);
    json_t *evs[1] = {mk_event("e_h3", "c_h", OH_EV_INBOUND, 1700000000002, "m3")};
    struct oh_store_item items[1];
    int64_t seq = -1;
    json_incref(evs[0]);
    ck_assert_int_ne(put(items, evs, 1, 2, &seq), 0);
    ck_assert_int_eq(put(items, evs, 1, 2, &seq), 0);
    ck_assert_int_eq(seq, 3);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_h", 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 3);
    ck_assert(r.ok);
}
END_TEST

START_TEST(t_dedup)
{
    json_t *a[3] = {mk_event("e_a", "c_d", OH_EV_INBOUND, 1700000000000, "ma"),
                    mk_event("e_b", "c_d", OH_EV_INBOUND, 1700000000001, "mb"),
                    mk_event("e_a", "c_d", OH_EV_INBOUND, 1700000000000, "ma")};
    struct oh_store_item items[3];
    int64_t seqs[3];
    ck_assert_int_eq(put(items, a, 3, 0, seqs), 0);
    ck_assert_int_eq(seqs[0], 1);
    ck_assert_int_eq(seqs[1], 2);
    ck_assert_int_eq(seqs[2], 0); /* same batch */
    json_t *b[3] = {mk_event("e_b", "c_d", OH_EV_INBOUND, 1700000000001, "mb"),
                    mk_event("e_c", "c_d", OH_EV_INBOUND, 1700000000002, "mc"),
                    mk_event("e_a", "c_d", OH_EV_INBOUND, 1700000000000, "ma")};
    ck_assert_int_eq(put(items, b, 3, 3, seqs), 0);
    ck_assert_int_eq(seqs[0], 0);
    ck_assert_int_eq(seqs[1], 3);
    ck_assert_int_eq(seqs[2], 0);
    /* the first batch's records again (a retry whose commit answer was lost):
     * their stored seqs come back so they are forwarded again; nothing new */
    json_t *c[3] = {mk_event("e_a", "c_d", OH_EV_INBOUND, 1700000000000, "ma"),
                    mk_event("e_b", "c_d", OH_EV_INBOUND, 1700000000001, "mb"),
                    mk_event("e_a", "c_d", OH_EV_INBOUND, 1700000000000, "ma")};
    json_incref(c[1]);
    json_t *keep = c[1];
    ck_assert_int_eq(put(items, c, 3, 0, seqs), 0);
    ck_assert_int_eq(seqs[0], 1);
    ck_assert_int_eq(seqs[1], 2);
    ck_assert_int_eq(seqs[2], 0); /* offset 2 was a real duplicate */
    ck_assert_int_eq(json_integer_value(json_object_get(keep, "seq")), 2);
    ck_assert_str_eq(json_string_value(json_object_get(keep, "epoch")), oh_store_epoch(st));
    json_decref(keep);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_d", 0, 100, collect, &r), 0);
    ck_assert_int_eq(r.n, 3);
    struct oh_conversation cv;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_d", &cv), 0);
    ck_assert_int_eq(cv.head, 3);
}
END_TEST

START_TEST(t_atomic_batch)
{
    ck_assert_int_eq(put1(mk_event("e_first", "c_at", OH_EV_INBOUND, 1700000000000, "m0"), 0), 1);
    json_t *evs[3] = {mk_event("e_x1", "c_at", OH_EV_INBOUND, 1700000000001, "m1"),
                      mk_event("e_x2", "c_new", OH_EV_INBOUND, 1700000000002, "m2"),
                      json_pack("{s:s}", "type", OH_EV_INBOUND)}; /* no id: fails */
    json_incref(evs[0]);
    json_t *keep = evs[0];
    struct oh_store_item items[3];
    ck_assert_int_ne(put(items, evs, 3, 1, NULL), 0);
    ck_assert_int_eq(items[0].seq, 0);
    ck_assert_ptr_null(json_object_get(keep, "seq"));
    json_decref(keep);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_at", 0, 100, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(oh_store_history(st, "c_new", 0, 100, collect, &r), OH_ENOTFOUND);
    struct oh_store_ref ref;
    ck_assert_int_eq(oh_store_ref_get(st, "test", "acct", "m1", &ref), OH_ENOTFOUND);
    int64_t next, published;
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 0, &next, &published), 0);
    ck_assert_int_eq(next, 1); /* still the first batch's position */
    /* the same batch fixed goes through, with the seq the failed one did not take */
    ck_assert_int_eq(put1(mk_event("e_x1", "c_at", OH_EV_INBOUND, 1700000000001, "m1"), 1), 2);
}
END_TEST

START_TEST(t_history_paging)
{
    json_t *evs[25];
    struct oh_store_item items[25];
    for (int i = 0; i < 25; i++) {
        char id[32];
        snprintf(id, sizeof id, "e_p%d", i);
        evs[i] = mk_event(id, "c_page", OH_EV_INBOUND, 1700000000000 + i, id);
    }
    ck_assert_int_eq(put(items, evs, 25, 0, NULL), 0);
    int64_t after = 0;
    int pages = 0, total = 0;
    for (;;) {
        struct rows r = {.ok = true};
        ck_assert_int_eq(oh_store_history(st, "c_page", after, 10, collect, &r), 0);
        ck_assert(r.ok);
        if (r.n == 0) break;
        for (int i = 0; i < r.n; i++)
            ck_assert_int_eq(r.seq[i], after + i + 1);
        after = r.seq[r.n - 1];
        total += r.n;
        pages++;
    }
    ck_assert_int_eq(total, 25);
    ck_assert_int_eq(pages, 3);
    struct rows r = {.ok = true, .stop_after = 4};
    ck_assert_int_eq(oh_store_history(st, "c_page", 0, 100, collect, &r), 0);
    ck_assert_int_eq(r.n, 4);
    ck_assert_int_eq(oh_store_history(st, "c_none", 0, 10, collect, &r), OH_ENOTFOUND);
}
END_TEST

struct then_ctx {
    int rc;         /* what the follow-up returns */
    int64_t seq;    /* the seq it saw */
    int calls;
};

static int then_link(void *opaque, const struct oh_store_item *items, size_t n,
                     oh_store_contact_write_fn write, void *wctx)
{
    struct then_ctx *x = opaque;
    x->calls++;
    x->seq = n ? items[0].seq : -1;
    const char *conv = oh_event_subject(items[0].event);
    char key[64];
    snprintf(key, sizeof key, "k:%s", conv);
    const char *keys[] = {key}, *vals[] = {"\"p_th\""}, *convs[] = {conv}, *to[] = {"p_th"};
    int rc = write(wctx, keys, vals, 1, NULL, convs, to, 1);
    return rc ? rc : x->rc;
}

static void got_many(void *ctx, size_t i, const char *value)
{
    char(*out)[16] = ctx;
    snprintf(out[i], sizeof out[i], "%s", value);
}

/* A batch's follow-up (sync's contacts) sees the seqs and writes with it:
 * on SQLite in the batch's transaction (a failing follow-up takes the batch
 * back), on PostgreSQL after it; and many keys read at once. */
START_TEST(t_materialize_then)
{
    struct then_ctx x = {0};
    struct oh_store_then then = {then_link, &x};
    struct oh_store_item it = {.event = mk_event("e_th1", "c_th1", OH_EV_INBOUND, 1700000000000,
                                                 "m1"),
                               .src_offset = 1};
    struct oh_store_pos pos = {"omnihub.events", 0, 2};
    ck_assert_int_eq(oh_store_materialize_then(st, "omnihub-sync", &it, 1, &pos, 1, &then), 0);
    json_decref(it.event);
    ck_assert_int_eq(x.calls, 1);
    ck_assert_int_eq(x.seq, 1);
    struct oh_conversation cv;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_th1", &cv), 0);
    ck_assert_str_eq(cv.contact_ref, "p_th");
    char buf[64];
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, "k:c_th1", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "\"p_th\"");
    /* the follow-up fails */
    x.rc = OH_EIO;
    it = (struct oh_store_item){
        .event = mk_event("e_th2", "c_th2", OH_EV_INBOUND, 1700000000001, "m2"), .src_offset = 2};
    pos.next = 3;
    ck_assert_int_ne(oh_store_materialize_then(st, "omnihub-sync", &it, 1, &pos, 1, &then), 0);
    json_decref(it.event);
    int want = use_pg ? 0 : OH_ENOTFOUND; /* PostgreSQL: the batch was committed before */
    ck_assert_int_eq(oh_store_conversation_get(st, "c_th2", &cv), want);
    ck_assert_int_eq(oh_store_kv_get(st, OH_STORE_CONTACTS_NS, "k:c_th2", buf, sizeof buf), want);
    /* many keys at once: the present ones by index */
    ck_assert_int_eq(oh_store_kv_put(st, OH_STORE_CONTACTS_NS, "v:phone:+1 \"q\", {x}", "a"), 0);
    const char *keys[] = {"k:c_th1", "k:none", "v:phone:+1 \"q\", {x}"};
    char out[3][16] = {"", "", ""};
    ck_assert_int_eq(oh_store_kv_get_many(st, OH_STORE_CONTACTS_NS, keys, 3, got_many, out), 0);
    ck_assert_str_eq(out[0], "\"p_th\"");
    ck_assert_str_eq(out[1], "");
    ck_assert_str_eq(out[2], "a");
}
END_TEST

START_TEST(t_positions_and_since_source)
{
    struct oh_store_item items[6];
    json_t *evs[6];
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof id, "e_src%d", i);
        evs[i] = mk_event(id, i % 2 ? "c_s1" : "c_s2", OH_EV_INBOUND, 1700000000000 + i, id);
        items[i] = (struct oh_store_item){
            .event = evs[i], .src_partition = i < 3 ? 0 : 1, .src_offset = 10 + i, .seq = -1};
    }
    struct oh_store_pos pos[2] = {{"omnihub.events", 0, 13}, {"omnihub.events", 1, 16}};
    ck_assert_int_eq(oh_store_materialize(st, "omnihub-sync", items, 6, pos, 2), 0);
    for (int i = 0; i < 6; i++)
        json_decref(evs[i]);
    int64_t next, published;
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 1, &next, &published), 0);
    ck_assert_int_eq(next, 16);
    ck_assert_int_eq(published, 0);
    ck_assert_int_eq(oh_store_position_published(st, "omnihub-sync", "omnihub.events", 1, 15), 0);
    ck_assert_int_eq(
        oh_store_position_get(st, "omnihub-sync", "omnihub.events", 1, &next, &published), 0);
    ck_assert_int_eq(next, 16);
    ck_assert_int_eq(published, 15);
    ck_assert_int_eq(oh_store_position_get(st, "other", "omnihub.events", 1, &next, &published), 0);
    ck_assert_int_eq(next, 0);

    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_since_source(st, 1, 14, collect, &r), 0);
    ck_assert(r.ok);
    ck_assert_int_eq(r.n, 2); /* offsets 14 and 15 of partition 1 */
    ck_assert_str_eq(r.conv[0], "c_s2");
    ck_assert_int_eq(r.seq[0], 3);
    ck_assert_str_eq(r.conv[1], "c_s1");
    ck_assert_int_eq(r.seq[1], 3);
    r.n = 0;
    ck_assert_int_eq(oh_store_since_source(st, 0, 0, collect, &r), 0);
    ck_assert_int_eq(r.n, 3);
}
END_TEST

/* Flips one byte of a stored event's text behind the store's back. */
static void damage(const char *conv, int64_t seq)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE history SET json = replace(json, '\"seq\":%lld', '\"seq\":%lld') "
             "WHERE conversation_id = '%s' AND seq = %lld",
             (long long)seq, (long long)seq + 1, conv, (long long)seq);
#ifdef OH_HAVE_POSTGRES
    if (use_pg) {
        oh_test_pg_sql(cur_dsn, sql);
        return;
    }
#endif
    char path[600];
    snprintf(path, sizeof path, "%s/store.db", tmp);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_changes(db), 1);
    sqlite3_close(db);
}

/* A damaged event fails its history page (never handed out), is passed
 * over when republishing, and is counted by the start-up check. */
START_TEST(t_damaged_event)
{
    json_t *evs[3];
    struct oh_store_item items[3];
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof id, "e_d%d", i);
        evs[i] = mk_event(id, "c_dmg", OH_EV_INBOUND, 1700000000000 + i, id);
    }
    ck_assert_int_eq(put(items, evs, 3, 0, NULL), 0);
    struct oh_store_verify v;
    ck_assert_int_eq(oh_store_verify(st, &v), 0);
    ck_assert(v.checked == 3 && v.damaged == 0 && v.unverified == 0);
    damage("c_dmg", 2);
    struct rows r = {.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_dmg", 0, 10, collect, &r), OH_EDAMAGED);
    ck_assert_int_eq(r.n, 1); /* seq 1 went by; seq 2 was never handed out */
    r = (struct rows){.ok = true};
    ck_assert_int_eq(oh_store_history(st, "c_dmg", 2, 10, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    r = (struct rows){.ok = true};
    ck_assert_int_eq(oh_store_since_source(st, 0, 0, collect, &r), 0);
    ck_assert(r.n == 2 && r.seq[0] == 1 && r.seq[1] == 3 && r.ok);
    ck_assert_int_eq(oh_store_verify(st, &v), 0);
    ck_assert(v.checked == 3 && v.damaged == 1);
}
END_TEST

/* The stored text's checksum covers the text without its ",seq,epoch"
 * tail; the tail must be exactly the row's: the same answer as the
 * snprintf-made suffix, for every length of seq. */
START_TEST(t_text_crc)
{
    const char *epochs[] = {"ep0", "xo5gFwUvz5y6uEtzCaMBoA", ""};
    const int64_t seqs[] = {0, 1, 9, 10, 99, 100, 12345, 9007199254740993LL, -7, INT64_MAX - 1};
    for (size_t e = 0; e < OH_ARRAY_SIZE(epochs); e++)
        for (size_t i = 0; i < OH_ARRAY_SIZE(seqs); i++) {
            char text[256], body[] = "{\"id\":\"e_1\",\"data\":{\"text\":\"hi\"}";
            snprintf(text, sizeof text, "%s,\"seq\":%lld,\"epoch\":\"%s\"}", body,
                     (long long)seqs[i], epochs[e]);
            size_t len = strlen(text);
            uint32_t crc = 0;
            ck_assert_int_eq(oh_store_text_crc(text, len, seqs[i], epochs[e], &crc), 0);
            ck_assert_uint_eq(crc, oh_crc32c(oh_crc32c(0, body, strlen(body)), "}", 1));
            /* another seq, another epoch, a cut or changed tail: damaged */
            ck_assert_int_eq(oh_store_text_crc(text, len, seqs[i] + 1, epochs[e], &crc),
                             OH_EDAMAGED);
            ck_assert_int_eq(oh_store_text_crc(text, len, seqs[i], "other", &crc), OH_EDAMAGED);
            ck_assert_int_eq(oh_store_text_crc(text, len - 1, seqs[i], epochs[e], &crc),
                             OH_EDAMAGED);
            text[len - 1] = ']';
            ck_assert_int_eq(oh_store_text_crc(text, len, seqs[i], epochs[e], &crc), OH_EDAMAGED);
        }
    ck_assert_int_eq(oh_store_text_crc("}", 1, 1, "e", &(uint32_t){0}), OH_EDAMAGED);
}
END_TEST

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : def;
}

/* Bulk loading; OMNIHUB_TEST_BULK_N / _BATCH scale it for measurements. */
START_TEST(t_bulk_rate)
{
    int N = env_int("OMNIHUB_TEST_BULK_N", 20000), BATCH = env_int("OMNIHUB_TEST_BULK_BATCH", 512);
    N -= N % 50;
    struct oh_store_item *items = calloc((size_t)BATCH, sizeof *items);
    json_t **evs = calloc((size_t)BATCH, sizeof *evs);
    int64_t *seqs = calloc((size_t)BATCH, sizeof *seqs);
    int64_t t0 = oh_mono_us(), tput = 0;
    int64_t expect_head[50] = {0};
    for (int done = 0; done < N;) {
        int n = N - done < BATCH ? N - done : BATCH;
        for (int i = 0; i < n; i++) {
            char id[32], conv[32];
            snprintf(id, sizeof id, "e_bulk%d", done + i);
            snprintf(conv, sizeof conv, "c_bulk%d", (done + i) % 50);
            evs[i] = mk_event(id, conv, OH_EV_INBOUND, 1700000000000 + done + i, id);
        }
        int64_t t1 = oh_mono_us();
        ck_assert_int_eq(put(items, evs, (size_t)n, done, seqs), 0);
        tput += oh_mono_us() - t1;
        for (int i = 0; i < n; i++)
            ck_assert_int_eq(seqs[i], ++expect_head[(done + i) % 50]);
        done += n;
    }
    double secs = (double)(oh_mono_us() - t0) / 1e6;
    fprintf(stderr,
            "# %s: materialized %d events in batches of %d in %.2f s: %.0f events/s "
            "(%.0f events/s inside oh_store_materialize)\n",
            oh_store_backend(st), N, BATCH, secs, N / secs, N / ((double)tput / 1e6));
    struct oh_conversation c;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_bulk7", &c), 0);
    ck_assert_int_eq(c.head, N / 50);
    /* every event of a batch in a conversation of its own (first contacts) */
    t0 = oh_mono_us();
    int M = 5 * BATCH;
    for (int done = 0; done < M; done += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            char id[32];
            snprintf(id, sizeof id, "e_one%d", done + i);
            evs[i] = mk_event(id, id + 2, OH_EV_INBOUND, 1700000000000 + done + i, id);
        }
        ck_assert_int_eq(put(items, evs, (size_t)BATCH, N + done, seqs), 0);
        for (int i = 0; i < BATCH; i++)
            ck_assert_int_eq(seqs[i], 1);
    }
    secs = (double)(oh_mono_us() - t0) / 1e6;
    fprintf(stderr, "# %s: %d events, each opening a conversation: %.0f events/s\n",
            oh_store_backend(st), M, M / secs);
    free(items);
    free(evs);
    free(seqs);
}
END_TEST

void store_history_tests(TCase *tc)
{
    tcase_add_test(tc, t_seq_dense);
    tcase_add_test(tc, t_event_gets_seq_and_epoch);
    tcase_add_test(tc, t_dedup);
    tcase_add_test(tc, t_atomic_batch);
    tcase_add_test(tc, t_history_paging);
    tcase_add_test(tc, t_materialize_then);
    tcase_add_test(tc, t_record_text);
    tcase_add_test(tc, t_head_moved_elsewhere);
    tcase_add_test(tc, t_positions_and_since_source);
    tcase_add_test(tc, t_damaged_event);
    tcase_add_test(tc, t_text_crc);
    tcase_add_test(tc, t_bulk_rate);
}
