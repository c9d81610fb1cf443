/* test_store.c - the store contract, run against SQLite and, when built as
 * test_store_pg (OH_TEST_PG) or with OMNIHUB_TEST_PG_DSN set, PostgreSQL. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "oh_build_config.h"
#include "tap.h"
#include "core/crypto.h"
#include "core/daemon.h"
#include "store/store_fields.h"
#include "core/json_dump.h"
#include "store/store_int.h"

#include <sqlite3.h>
#ifdef OH_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

#include "store/store_sqlite_schema.inc"
#ifdef OH_HAVE_POSTGRES
#include "store/store_pg_schema.inc"
#endif

static bool use_pg;
static char pg_base[512]; /* DSN of the server's "postgres" database */
static char pg_dir[512];  /* our throwaway server's directory, "" for an external one */
static int db_counter __attribute__((unused));

static char *tmp;
static oh_config *cfg;
static oh_store *st;
static char cur_dsn[600];

/* ---------- test server plumbing ---------- */

static int run_helper(const char *args, char *out, size_t outlen)
{
    char *script = oh_test_src("tests/pg_server.py");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", script, args);
    free(script);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = out ? fread(out, 1, outlen - 1, p) : 0;
    if (out)
        out[n] = '\0';
    else {
        char sink[256];
        while (fread(sink, 1, sizeof sink, p) > 0) {
        }
    }
    return pclose(p) == 0 ? 0 : -1;
}

#ifdef OH_HAVE_POSTGRES
static void pg_sql(const char *dsn, const char *sql)
{
    PGconn *c = PQconnectdb(dsn);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* A fresh database on the test server; its DSN in OUT. */
static void pg_newdb(char *out, size_t outlen)
{
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE oh_t%d_%d", (int)getpid(), ++db_counter);
    pg_sql(pg_base, sql);
    snprintf(out, outlen, "%s dbname=oh_t%d_%d", pg_base, (int)getpid(), db_counter);
}
#endif

static void pg_global_start(void)
{
    const char *dsn = getenv("OMNIHUB_TEST_PG_DSN");
    if (dsn && *dsn) {
        snprintf(pg_base, sizeof pg_base, "%s", dsn);
        return;
    }
    char out[1200];
    if (run_helper("start", out, sizeof out) != 0) {
        fprintf(stderr, "pg_server.py start failed: %s\n", out);
        exit(1);
    }
    char *nl = strchr(out, '\n');
    if (!nl) {
        fprintf(stderr, "pg_server.py: unexpected output %s\n", out);
        exit(1);
    }
    *nl = '\0';
    snprintf(pg_base, sizeof pg_base, "%.500s", out);
    snprintf(pg_dir, sizeof pg_dir, "%.*s", (int)strcspn(nl + 1, "\n"), nl + 1);
}

static void pg_global_stop(void)
{
#ifdef OH_HAVE_POSTGRES
    if (!pg_dir[0]) { /* an external server: drop what we created */
        PGconn *c = PQconnectdb(pg_base);
        for (int i = 1; i <= db_counter && PQstatus(c) == CONNECTION_OK; i++) {
            char sql[128];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS oh_t%d_%d WITH (FORCE)",
                     (int)getpid(), i);
            PQclear(PQexec(c, sql));
        }
        PQfinish(c);
    }
#endif
    if (pg_dir[0]) {
        char args[600];
        snprintf(args, sizeof args, "stop %s", pg_dir);
        run_helper(args, NULL, 0);
    }
}

/* ---------- fixture ---------- */

static oh_config *make_cfg(const char *dsn, const char *shards)
{
    const struct oh_config_key *const tables[] = {oh_core_keys, oh_store_keys, NULL};
    char *const envp[] = {NULL};
    char err[256];
    oh_config *c = oh_config_load(NULL, tables, envp, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_int_eq(oh_config_set(c, "data_dir", tmp, err, sizeof err), 0);
    if (use_pg) {
        ck_assert_int_eq(oh_config_set(c, "store.backend", "postgres", err, sizeof err), 0);
        if (dsn) ck_assert_int_eq(oh_config_set(c, "store.postgres.dsn", dsn, err, sizeof err), 0);
        if (shards)
            ck_assert_int_eq(oh_config_set(c, "store.postgres.shards", shards, err, sizeof err), 0);
    }
    return c;
}

static oh_store *open_cfg(const oh_config *c)
{
    char err[512] = "";
    oh_store *s = oh_store_open(c, err, sizeof err);
    ck_assert_msg(s != NULL, "open: %s", err);
    return s;
}

static void setup(void)
{
    tmp = oh_test_tmpdir();
    cur_dsn[0] = '\0';
#ifdef OH_HAVE_POSTGRES
    if (use_pg) pg_newdb(cur_dsn, sizeof cur_dsn);
#endif
    cfg = make_cfg(cur_dsn, NULL);
    st = open_cfg(cfg);
}

static void teardown(void)
{
    oh_store_close(st);
    st = NULL;
    oh_config_free(cfg);
    cfg = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
    free(tmp);
}

/* ---------- events ---------- */

static json_t *mk_event(const char *id, const char *conv, const char *type, int64_t ms,
                        const char *message_id)
{
    char when[32];
    oh_time_rfc3339(when, ms);
    bool in = strcmp(type, OH_EV_INBOUND) == 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s,s:s}}",
                     "specversion", "1.0", "id", id, "source", "/omnihub/test/acct", "type", type,
                     "time", when, "subject", conv, "datacontenttype", "application/json", "data",
                     "conversation_id", conv, "channel", "test", "account", "acct", "direction",
                     in ? "inbound" : "outbound", "contact", "id", "u1", "name", "User One",
                     "message_id", message_id, "kind", "text", "text", "hello");
}

static json_t *mk_status(const char *id, const char *conv, const char *mid, const char *state,
                         const char *provider_id)
{
    json_t *ev = mk_event(id, conv, OH_EV_STATUS, 1700000000000, "");
    json_t *status = json_pack("{s:s,s:s}", "message_id", mid, "state", state);
    if (provider_id) json_object_set_new(status, "provider_message_id", json_string(provider_id));
    json_object_set_new(json_object_get(ev, "data"), "status", status);
    return ev;
}

/* Materializes the events (takes the references) in one batch. */
static int put(struct oh_store_item *items, json_t **evs, size_t n, int64_t first_offset,
               int64_t *seqs)
{
    for (size_t i = 0; i < n; i++)
        items[i] = (struct oh_store_item){.event = evs[i],
                                          .src_partition = 0,
                                          .src_offset = first_offset + (int64_t)i,
                                          .seq = -1};
    struct oh_store_pos pos = {"omnihub.events", 0, first_offset + (int64_t)n};
    int rc = oh_store_materialize(st, "omnihub-sync", items, n, &pos, 1);
    for (size_t i = 0; i < n; i++) {
        if (seqs) seqs[i] = items[i].seq;
        json_decref(evs[i]);
    }
    return rc;
}

static int put1(json_t *ev, int64_t offset)
{
    struct oh_store_item it;
    int64_t seq;
    ck_assert_int_eq(put(&it, &ev, 1, offset, &seq), 0);
    return (int)seq;
}

struct rows {
    int n;
    int64_t seq[600];
    char conv[600][OH_ID_MAX];
    int stop_after;
    bool ok;
};

static int collect(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct rows *r = opaque;
    json_error_t e;
    json_t *ev = json_loadb(json, len, 0, &e);
    r->ok = r->ok && ev && json_integer_value(json_object_get(ev, "seq")) == seq &&
            strcmp(json_string_value(json_object_get(ev, "epoch")), oh_store_epoch(st)) == 0 &&
            strcmp(json_string_value(json_object_get(ev, "subject")), conv) == 0;
    json_decref(ev);
    if (r->n < 600) {
        r->seq[r->n] = seq;
        snprintf(r->conv[r->n], OH_ID_MAX, "%s", conv);
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

/* ---------- the contract ---------- */

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
    /* the text handed back for forwarding is that same text */
    if (strcmp(oh_store_backend(st), "sqlite") == 0) ck_assert_ptr_nonnull(it2.json);
    if (it2.json) {
        ck_assert_str_eq(it2.json, want);
        ck_assert_uint_eq(it2.len, strlen(want));
        free(it2.json);
    }
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
        if (it[i].json) ck_assert_str_eq(it[i].json, want);
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
    oh_store *other = open_cfg(cfg);
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

START_TEST(t_epoch_stable)
{
    char epoch[64];
    snprintf(epoch, sizeof epoch, "%s", oh_store_epoch(st));
    ck_assert_uint_ge(strlen(epoch), 16);
    ck_assert_int_eq(put1(mk_event("e_ep", "c_ep", OH_EV_INBOUND, 1700000000000, "m"), 0), 1);
    oh_store_close(st);
    st = open_cfg(cfg);
    ck_assert_str_eq(oh_store_epoch(st), epoch);
    struct oh_conversation cv;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_ep", &cv), 0);
    ck_assert_int_eq(cv.head, 1);
    ck_assert_int_eq(oh_store_ping(st), 0);
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

struct convs {
    int n;
    char id[16][OH_ID_MAX];
};

static int collect_conv(void *opaque, const struct oh_conversation *c)
{
    struct convs *l = opaque;
    if (l->n < 16) snprintf(l->id[l->n], OH_ID_MAX, "%s", c->id);
    l->n++;
    return 0;
}

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
        pg_newdb(dsn, sizeof dsn);
        pg_sql(dsn, pg_migrations[0]);
        pg_sql(dsn, "CREATE TABLE schema_version (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now()); "
                    "INSERT INTO schema_version (version) VALUES (1)");
        pg_sql(dsn, old_rows);
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
    st = open_cfg(cfg);
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
    int rc = write(wctx, keys, vals, 1, convs, to, 1);
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

struct arts {
    int n;
    char ids[4][32];
    int64_t versions[4];
    char title[64];
};

static int collect_art(void *opaque, const struct oh_store_article *a)
{
    struct arts *l = opaque;
    if (l->n < 4) {
        snprintf(l->ids[l->n], sizeof l->ids[0], "%s", a->id);
        l->versions[l->n] = a->version;
        snprintf(l->title, sizeof l->title, "%s", a->title);
        l->n++;
    }
    return 0;
}

START_TEST(t_articles)
{
    struct oh_store_article a = {.id = "b",
                                 .title = "Returns",
                                 .body = "Free within 30 days.",
                                 .locale = "en",
                                 .tags = "[\"returns\"]",
                                 .updated_ms = 1000};
    int64_t v = 0;
    struct arts l = {0};
    ck_assert_int_eq(oh_store_article_get(st, "b", collect_art, &l), OH_ENOTFOUND);
    ck_assert_int_eq(oh_store_article_put(st, &a, &v), 0);
    ck_assert_int_eq(v, 1);
    a.title = "Returns, updated";
    ck_assert_int_eq(oh_store_article_put(st, &a, &v), 0);
    ck_assert_int_eq(v, 2);
    a.id = "a";
    ck_assert_int_eq(oh_store_article_put(st, &a, &v), 0);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(oh_store_article_get(st, "b", collect_art, &l), 0);
    ck_assert_int_eq(l.n, 1);
    ck_assert_int_eq(l.versions[0], 2);
    ck_assert_str_eq(l.title, "Returns, updated");
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(oh_store_articles(st, collect_art, &l), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.ids[0], "a"); /* by id */
    ck_assert_str_eq(l.ids[1], "b");
    ck_assert_int_eq(oh_store_article_del(st, "b"), 0);
    ck_assert_int_eq(oh_store_article_del(st, "b"), OH_ENOTFOUND);
    memset(&l, 0, sizeof l);
    ck_assert_int_eq(oh_store_articles(st, collect_art, &l), 0);
    ck_assert_int_eq(l.n, 1);
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

/* The schema files in schemas/sql are the text the backends apply. */
static void check_schema_file(const char *rel, const char *embedded)
{
    char *path = oh_test_src(rel);
    char *text = oh_test_read(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    ck_assert_msg(strcmp(text, embedded) == 0,
                  "%s differs from the SQL embedded in the binary: run schemas/sql/embed.py", rel);
    free(text);
    free(path);
}

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
        pg_sql(cur_dsn, sql);
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

START_TEST(t_schema_files)
{
    ck_assert_uint_eq(OH_ARRAY_SIZE(sq_migration_files), OH_ARRAY_SIZE(sq_migrations));
    for (size_t i = 0; i < OH_ARRAY_SIZE(sq_migrations); i++)
        check_schema_file(sq_migration_files[i], sq_migrations[i]);
#ifdef OH_HAVE_POSTGRES
    ck_assert_uint_eq(OH_ARRAY_SIZE(pg_migration_files), OH_ARRAY_SIZE(pg_migrations));
    for (size_t i = 0; i < OH_ARRAY_SIZE(pg_migrations); i++)
        check_schema_file(pg_migration_files[i], pg_migrations[i]);
#endif
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

/* Readers run while the writer materializes. */
struct reader_arg {
    int rounds, errors;
};

static int count_rows(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    (*(int *)opaque)++;
    return 0;
}

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    for (int i = 0; i < a->rounds; i++) {
        int n = 0;
        int rc = oh_store_history(st, "c_conc", 0, 1000, count_rows, &n);
        if (rc != 0 && rc != OH_ENOTFOUND) a->errors++;
    }
    return NULL;
}

START_TEST(t_concurrent_readers)
{
    pthread_t th[3];
    struct reader_arg args[3] = {{200, 0}, {200, 0}, {200, 0}};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, reader_main, &args[i]);
    for (int b = 0; b < 20; b++) {
        json_t *evs[10];
        struct oh_store_item items[10];
        for (int i = 0; i < 10; i++) {
            char id[32];
            snprintf(id, sizeof id, "e_conc%d_%d", b, i);
            evs[i] = mk_event(id, "c_conc", OH_EV_INBOUND, 1700000000000 + b * 10 + i, id);
        }
        ck_assert_int_eq(put(items, evs, 10, b * 10, NULL), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].errors, 0);
    }
    int n = 0;
    ck_assert_int_eq(oh_store_history(st, "c_conc", 0, 1000, count_rows, &n), 0);
    ck_assert_int_eq(n, 200);
}
END_TEST

struct open_arg {
    const oh_config *cfg;
    oh_store *st;
    char err[256];
};

static void *open_main(void *p)
{
    struct open_arg *a = p;
    a->st = oh_store_open(a->cfg, a->err, sizeof a->err);
    return NULL;
}

/* Opens C's store from 4 threads at once; each gets it, with one epoch. */
static void open_at_once(oh_config *c, struct open_arg a[4])
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct open_arg){.cfg = c};
        pthread_create(&th[i], NULL, open_main, &a[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(a[i].st != NULL, "open %d: %s", i, a[i].err);
        ck_assert_str_eq(oh_store_epoch(a[i].st), oh_store_epoch(a[0].st));
    }
}

/* Several handles (threads, or processes) open a new store at once: one
 * schema, one epoch, and what one writes the others read. */
START_TEST(t_concurrent_open)
{
    char where[600], err[256];
    oh_config *c;
    if (use_pg) {
#ifdef OH_HAVE_POSTGRES
        pg_newdb(where, sizeof where);
#endif
        c = make_cfg(where, NULL);
    } else {
        snprintf(where, sizeof where, "%s/shared/store.db", tmp);
        c = make_cfg(NULL, NULL);
        ck_assert_int_eq(oh_config_set(c, "store.sqlite.path", where, err, sizeof err), 0);
    }
    struct open_arg a[4];
    open_at_once(c, a);
    json_t *ev = mk_event("e_shared", "c_shared", OH_EV_INBOUND, 1700000000000, "m");
    struct oh_store_item it = {.event = ev, .src_partition = 0, .src_offset = 0, .seq = -1};
    ck_assert_int_eq(oh_store_materialize(a[1].st, "g", &it, 1, NULL, 0), 0);
    json_decref(ev);
    struct oh_conversation conv;
    ck_assert_int_eq(oh_store_conversation_get(a[3].st, "c_shared", &conv), 0);
    ck_assert_int_eq(conv.head, 1);
    for (int i = 0; i < 4; i++)
        oh_store_close(a[i].st);
    oh_config_free(c);
}
END_TEST

/* Several writers on the same conversations: seqs stay dense. */
struct writer_arg {
    int id, failures;
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    for (int b = 0; b < 25; b++) {
        for (int attempt = 0; attempt < 50; attempt++) {
            json_t *evs[8];
            struct oh_store_item items[8];
            for (int i = 0; i < 8; i++) {
                char id[48];
                snprintf(id, sizeof id, "e_w%d_%d_%d", a->id, b, i);
                evs[i] =
                    mk_event(id, i % 2 ? "c_w1" : "c_w2", OH_EV_INBOUND, 1700000000000 + b, id);
                items[i] = (struct oh_store_item){
                    .event = evs[i], .src_partition = a->id, .src_offset = b * 8 + i, .seq = -1};
            }
            struct oh_store_pos pos = {"omnihub.events", a->id, b * 8 + 8};
            int rc = oh_store_materialize(st, "omnihub-sync", items, 8, &pos, 1);
            for (int i = 0; i < 8; i++)
                json_decref(evs[i]);
            if (rc == 0) break;
            a->failures++; /* a conflicting writer (OH_EDUP/OH_ERETRY): retry */
            usleep(10 * 1000);
        }
    }
    return NULL;
}

START_TEST(t_concurrent_writers)
{
    pthread_t th[4];
    struct writer_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct writer_arg){i, 0};
        pthread_create(&th[i], NULL, writer_main, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int c = 1; c <= 2; c++) {
        char conv[16];
        snprintf(conv, sizeof conv, "c_w%d", c);
        struct rows r = {.ok = true};
        ck_assert_int_eq(oh_store_history(st, conv, 0, 0, collect, &r), 0);
        ck_assert(r.ok);
        ck_assert_int_eq(r.n, 400);
        for (int i = 0; i < r.n; i++)
            ck_assert_int_eq(r.seq[i], i + 1);
    }
}
END_TEST

#ifdef OH_TEST_PG
/* test_store_pg.c: the cases only a PostgreSQL store has */
static void pg_add_tests(Suite *s);
#endif

static Suite *suite(void)
{
    Suite *s = suite_create(use_pg ? "store_pg" : "store");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 240);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t_seq_dense);
    tcase_add_test(tc, t_event_gets_seq_and_epoch);
    tcase_add_test(tc, t_dedup);
    tcase_add_test(tc, t_atomic_batch);
    tcase_add_test(tc, t_epoch_stable);
    tcase_add_test(tc, t_history_paging);
    tcase_add_test(tc, t_conversations);
    tcase_add_test(tc, t_inbox);
    tcase_add_test(tc, t_refs);
    tcase_add_test(tc, t_state_never_backwards);
    tcase_add_test(tc, t_cursors);
    tcase_add_test(tc, t_cursor_roles);
    tcase_add_test(tc, t_cursor_rows_before_roles);
    tcase_add_test(tc, t_kv);
    tcase_add_test(tc, t_materialize_then);
    tcase_add_test(tc, t_record_text);
    tcase_add_test(tc, t_head_moved_elsewhere);
    tcase_add_test(tc, t_articles);
    tcase_add_test(tc, t_positions_and_since_source);
    tcase_add_test(tc, t_schema_files);
    tcase_add_test(tc, t_damaged_event);
    tcase_add_test(tc, t_text_crc);
    tcase_add_test(tc, t_bulk_rate);
    tcase_add_test(tc, t_concurrent_readers);
    tcase_add_test(tc, t_concurrent_writers);
    tcase_add_test(tc, t_concurrent_open);
    suite_add_tcase(s, tc);
#ifdef OH_TEST_PG
    pg_add_tests(s);
#endif
    return s;
}

static void on_signal(int sig)
{
    pg_global_stop();
    _exit(128 + sig);
}

int main(void)
{
#ifdef OH_TEST_PG
    use_pg = true;
#endif
    const char *env = getenv("OMNIHUB_TEST_PG_DSN");
    if (env && *env) use_pg = true;
#ifndef OH_HAVE_POSTGRES
    if (use_pg) {
        printf("1..0 # SKIP built without libpq\n");
        return 0;
    }
#endif
    if (use_pg) {
        pg_global_start();
        signal(SIGTERM, on_signal); /* a meson timeout must not leave a server behind */
        signal(SIGINT, on_signal);
    }
    int rc = oh_test_run(suite());
    if (use_pg) pg_global_stop();
    return rc;
}
