/* test_log_file.c - the local log's file: an older log.db (versions 0-2,
 * one records table) converted when opened, and topic names bound, never
 * put into SQL. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "log/log.h"
#include "log_harness.h"
#include "tap.h"

/* One record of the old single table records(topic, off, ...). */
struct old_rec {
    const char *topic;
    int64_t off, ts_ms;
    const char *key, *value;
    const char *type, *subject, *author, *time; /* NULL: absent */
    int64_t seq;
    int internal; /* -1: NULL */
};

static const struct old_rec old_recs[] = {
    {"events", 0, 1700000000001, "c1", "{\"e\":0}", "omnihub.message.inbound", "c1", "customer",
     NULL, 0, -1},
    {"events", 1, 1700000000002, NULL, "{\"e\":1}", NULL, NULL, NULL, NULL, 0, -1},
    {"events", 2, 1700000000003, "c2", "", "omnihub.message.status", "c2", "system", NULL, 0, -1},
    /* a timeline that does not start at 0 (as after a restore) */
    {"timeline", 3, 1700000000004, "c1", "{\"t\":3}", "omnihub.message.outbound", "c1", "agent",
     "2026-01-01T00:00:01Z", 7, 1},
    {"timeline", 4, 1700000000005, "c1", "{\"t\":4}", "omnihub.message.inbound", "c1", "customer",
     "2026-01-01T00:00:02Z", 8, 0},
    {"x'); DROP TABLE topics; --", 0, 1700000000006, "k", "{}", NULL, NULL, NULL, NULL, 0, -1},
};

static void sql_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql, msg);
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Writes DIR/log.db as omnihubd wrote it at VERSION (0: no metadata
 * columns; 2: all of them), with old_recs, a group position and an id. */
static void write_old_log(const char *dir, int version)
{
    char path[600];
    snprintf(path, sizeof path, "%s/log.db", dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sql_ok(db, "PRAGMA journal_mode=WAL;"
               "CREATE TABLE records(topic TEXT NOT NULL, off INTEGER NOT NULL,"
               " ts_ms INTEGER NOT NULL, key TEXT, value BLOB NOT NULL, PRIMARY KEY(topic, off));"
               "CREATE TABLE group_offsets(grp TEXT NOT NULL, topic TEXT NOT NULL,"
               " part INTEGER NOT NULL, next INTEGER NOT NULL, ts_ms INTEGER NOT NULL,"
               " PRIMARY KEY(grp, topic, part));"
               "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
               "INSERT INTO meta VALUES('id', 'old-log-id');"
               "INSERT INTO group_offsets VALUES('omnihub-sync', 'events', 0, 2, 1700000000009);");
    if (version == 2)
        sql_ok(db, "ALTER TABLE records ADD COLUMN type TEXT;"
                   "ALTER TABLE records ADD COLUMN subject TEXT;"
                   "ALTER TABLE records ADD COLUMN seq INTEGER;"
                   "ALTER TABLE records ADD COLUMN author TEXT;"
                   "ALTER TABLE records ADD COLUMN time TEXT;"
                   "ALTER TABLE records ADD COLUMN internal INTEGER;"
                   "PRAGMA user_version=2;");
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db,
                                        version == 2
                                            ? "INSERT INTO records VALUES(?,?,?,?,?,?,?,?,?,?,?)"
                                            : "INSERT INTO records VALUES(?,?,?,?,?)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (size_t i = 0; i < OH_ARRAY_SIZE(old_recs); i++) {
        const struct old_rec *r = &old_recs[i];
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_text(st, 1, r->topic, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, r->off);
        sqlite3_bind_int64(st, 3, r->ts_ms);
        bind_opt(st, 4, r->key);
        sqlite3_bind_blob(st, 5, r->value, (int)strlen(r->value), SQLITE_STATIC);
        if (version == 2) {
            bind_opt(st, 6, r->type);
            bind_opt(st, 7, r->subject);
            if (r->seq) sqlite3_bind_int64(st, 8, r->seq);
            bind_opt(st, 9, r->author);
            bind_opt(st, 10, r->time);
            if (r->internal >= 0) sqlite3_bind_int(st, 11, r->internal);
        }
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    }
    sqlite3_finalize(st);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

static void str_opt_eq(const char *got, const char *want)
{
    if (want)
        ck_assert_str_eq(got, want);
    else
        ck_assert_ptr_null(got);
}

/* Every record of TOPIC in old_recs, read back from LOG by offset, with its
 * metadata when WITH_META. */
static void check_old_topic(oh_log *log, const char *topic, bool with_meta)
{
    char err[256];
    oh_log_consumer *c = oh_log_consumer_new(log, NULL, topic, NULL, err, sizeof err);
    ck_assert_msg(c, "consumer: %s", err);
    struct oh_log_record recs[8];
    int n = oh_log_poll(c, recs, 8, 1000), k = 0;
    for (size_t i = 0; i < OH_ARRAY_SIZE(old_recs); i++) {
        const struct old_rec *r = &old_recs[i];
        if (strcmp(r->topic, topic)) continue;
        ck_assert_int_lt(k, n);
        const struct oh_log_record *g = &recs[k++];
        ck_assert_int_eq(g->offset, r->off);
        ck_assert_int_eq(g->timestamp_ms, r->ts_ms);
        str_opt_eq(g->key, r->key);
        ck_assert_uint_eq(g->len, strlen(r->value));
        ck_assert_int_eq(memcmp(g->value, r->value, g->len), 0);
        str_opt_eq(g->meta.type, with_meta ? r->type : NULL);
        str_opt_eq(g->meta.subject, with_meta ? r->subject : NULL);
        str_opt_eq(g->meta.author, with_meta ? r->author : NULL);
        str_opt_eq(g->meta.time, with_meta ? r->time : NULL);
        ck_assert_int_eq(g->meta.seq, with_meta ? r->seq : 0);
        ck_assert_int_eq(g->meta.internal, with_meta && r->internal == 1);
    }
    ck_assert_int_eq(n, k);
    oh_log_consumer_close(c);
}

/* A log.db of version 0 or 2 (one table records(topic, off, ...)) is moved
 * into one table per topic when opened: the same records at the same
 * offsets with their metadata, group positions and id kept, and appends
 * continue after them. */
START_TEST(local_migrates_old_file)
{
    for (int version = 0; version <= 2; version += 2) {
        char *dir = oh_test_tmpdir();
        write_old_log(dir, version);
        oh_config *cfg;
        oh_log *log = oh_test_log_open((const char *const[]){"data_dir", dir, NULL}, &cfg);
        char id[128];
        ck_assert_int_eq(oh_log_identity(log, id, sizeof id), 0);
        ck_assert_str_eq(id, "local:old-log-id");
        for (size_t i = 0; i < OH_ARRAY_SIZE(old_recs); i++)
            if (i == 0 || strcmp(old_recs[i].topic, old_recs[i - 1].topic))
                check_old_topic(log, old_recs[i].topic, version == 2);
        struct oh_log_lag lag;
        ck_assert_int_eq(oh_log_lag(log, OH_GROUP_SYNC, OH_TOPIC_EVENTS, &lag, 1), 1);
        ck_assert_int_eq(lag.committed, 2);
        ck_assert_int_eq(lag.end, 3);
        ck_assert_int_eq(lag.oldest_ts, 1700000000003);
        ck_assert_int_eq(oh_log_lag(log, "none", OH_TOPIC_TIMELINE, &lag, 1), 1);
        ck_assert_int_eq(lag.end, 5);
        ck_assert_int_eq(lag.oldest_ts, 1700000000004); /* the first record, at 3 */
        /* appends continue where the old table ended */
        char err[256];
        oh_log_consumer *c =
            oh_log_consumer_new(log, NULL, OH_TOPIC_TIMELINE, NULL, err, sizeof err);
        ck_assert_int_eq(oh_log_seek_end(c), 0);
        oh_test_log_append_wait(log, OH_TOPIC_TIMELINE, 1, "new");
        struct oh_log_record rec;
        ck_assert_int_eq(oh_log_poll(c, &rec, 1, 1000), 1);
        ck_assert_int_eq(rec.offset, 5);
        oh_log_consumer_close(c);
        oh_log_close(log);
        oh_config_free(cfg);

        char path[600];
        snprintf(path, sizeof path, "%s/log.db", dir);
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_int(st, 0), 3);
        sqlite3_finalize(st);
        ck_assert_int_ne(sqlite3_prepare_v2(db, "SELECT 1 FROM records", -1, &st, NULL),
                         SQLITE_OK); /* the old table is gone */
        sqlite3_close(db);
        /* opened again: nothing more to do, the same records */
        log = oh_test_log_open((const char *const[]){"data_dir", dir, NULL}, &cfg);
        check_old_topic(log, OH_TOPIC_EVENTS, version == 2);
        oh_log_close(log);
        oh_config_free(cfg);
        free(dir);
    }
}
END_TEST

/* Topic names are bound, never part of SQL, and bounded. */
START_TEST(local_topic_names)
{
    char *dir = oh_test_tmpdir();
    oh_config *cfg;
    oh_log *log = oh_test_log_open((const char *const[]){"data_dir", dir, NULL}, &cfg);
    char big[300], err[256];
    memset(big, 't', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(oh_log_append(log, "", "k", "{}", 2, NULL, NULL), OH_EINVAL);
    ck_assert_int_eq(oh_log_append(log, big, "k", "{}", 2, NULL, NULL), OH_EINVAL);
    ck_assert_ptr_null(oh_log_consumer_new(log, NULL, big, NULL, err, sizeof err));
    const char *odd = "x'); DROP TABLE topics; --";
    oh_test_log_append_wait(log, odd, 3, "odd");
    oh_test_log_append_wait(log, OH_TOPIC_EVENTS, 2, "ev");
    oh_config *cfg2;
    oh_log *other = oh_test_log_open((const char *const[]){"data_dir", dir, NULL}, &cfg2);
    oh_log_consumer *c = oh_log_consumer_new(other, NULL, odd, NULL, err, sizeof err);
    ck_assert_msg(c, "consumer: %s", err);
    struct oh_log_record recs[4];
    ck_assert_int_eq(oh_log_poll(c, recs, 4, 1000), 3);
    ck_assert_int_eq(recs[2].offset, 2);
    ck_assert_str_eq(recs[2].value, "{\"odd\":2}");
    oh_log_consumer_close(c);
    /* a topic nobody wrote yet: empty, and read once written */
    c = oh_log_consumer_new(other, NULL, "later", NULL, err, sizeof err);
    ck_assert_int_eq(oh_log_seek_end(c), 0);
    ck_assert_int_eq(oh_log_poll(c, recs, 4, 50), 0);
    oh_test_log_append_wait(log, "later", 1, "l");
    ck_assert_int_eq(oh_log_poll(c, recs, 4, 2000), 1);
    ck_assert_int_eq(recs[0].offset, 0);
    oh_log_consumer_close(c);
    oh_log_close(other);
    oh_log_close(log);
    oh_config_free(cfg2);
    oh_config_free(cfg);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("log_file");
    TCase *tc = tcase_create("local");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, local_migrates_old_file);
    tcase_add_test(tc, local_topic_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
