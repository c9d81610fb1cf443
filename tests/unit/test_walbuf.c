/* test_walbuf.c - the write-combining VFS: what its connections write is
 * what other connections read, a commit's frames are on disk once it
 * returns, and a transaction rolled back after spilling frames leaves no
 * bytes behind to land over another connection's commit. */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/walbuf.h"
#include "tap.h"

static sqlite3 *open_db(const char *path, bool walbuf)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     walbuf ? oh_walbuf_vfs() : NULL),
                     SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL),
        SQLITE_OK);
    return db;
}

static long long one(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    long long v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return v;
}

static void ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : sqlite3_errstr(rc));
}

static void integrity(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
}

static char *db_path(const char *dir)
{
    char *p = malloc(strlen(dir) + 16);
    sprintf(p, "%s/t.db", dir);
    return p;
}

START_TEST(commits_read_elsewhere)
{
    ck_assert_str_eq(oh_walbuf_vfs(), "omnihub-walbuf");
    char *dir = oh_test_tmpdir(), *path = db_path(dir);
    sqlite3 *w = open_db(path, true), *r = open_db(path, false);
    ok(w, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
    /* transactions of 1 to 60 frames (more than one buffer's worth), each
     * read back at once by another connection */
    for (int i = 1; i <= 60; i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %d)"
                 " INSERT INTO t(v) SELECT randomblob(3000) FROM n",
                 i);
        ok(w, sql);
        ck_assert_int_eq(one(r, "SELECT count(*) FROM t"), (long long)i * (i + 1) / 2);
    }
    /* a checkpoint reads the frames back; the WAL starts over after it */
    ok(w, "PRAGMA wal_checkpoint(TRUNCATE)");
    ok(w, "UPDATE t SET v = randomblob(100) WHERE k % 7 = 0");
    ck_assert_int_eq(one(r, "SELECT count(*) FROM t WHERE length(v) = 100"), 1830 / 7);
    integrity(r);
    sqlite3_close(w);
    sqlite3_close(r);
    /* and from the files alone (the WAL recovered) */
    sqlite3 *again = open_db(path, false);
    ck_assert_int_eq(one(again, "SELECT count(*) FROM t"), 1830);
    integrity(again);
    sqlite3_close(again);
    free(path);
    free(dir);
}
END_TEST

START_TEST(rollback_after_spill_leaves_nothing)
{
    char *dir = oh_test_tmpdir(), *path = db_path(dir);
    sqlite3 *a = open_db(path, true), *b = open_db(path, false);
    ok(a, "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB)");
    ok(a, "INSERT INTO t(v) VALUES (randomblob(10))");
    /* a small cache: the transaction spills frames to the WAL before it
     * is rolled back */
    ok(a, "PRAGMA cache_size=10");
    ok(a, "BEGIN IMMEDIATE");
    ok(a, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200)"
          " INSERT INTO t(v) SELECT randomblob(3000) FROM n");
    ok(a, "ROLLBACK");
    /* another connection commits where those frames were */
    ok(b, "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5)"
          " INSERT INTO t(v) SELECT randomblob(2000) FROM n");
    /* the first one reads and writes again: nothing of its rolled-back
     * transaction may reach the file now */
    ck_assert_int_eq(one(a, "SELECT count(*) FROM t"), 6);
    ok(a, "INSERT INTO t(v) VALUES (randomblob(10))");
    ck_assert_int_eq(one(b, "SELECT count(*) FROM t"), 7);
    sqlite3_close(a);
    sqlite3_close(b);
    sqlite3 *c = open_db(path, false);
    ck_assert_int_eq(one(c, "SELECT count(*) FROM t WHERE length(v) = 2000"), 5);
    integrity(c);
    sqlite3_close(c);
    free(path);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("walbuf");
    TCase *t = tcase_create("walbuf");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, commits_read_elsewhere);
    tcase_add_test(t, rollback_after_spill_leaves_nothing);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
