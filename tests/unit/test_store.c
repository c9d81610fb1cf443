/* test_store.c - the store contract, run against SQLite and, when built as
 * test_store_pg (OH_TEST_PG) or with OMNIHUB_TEST_PG_DSN set, PostgreSQL.
 * This file holds the suite, opening and reopening a store, the schema
 * files and concurrent use; the other cases are in test_store_history.c,
 * test_store_desk.c and test_store_kpi.c, what they share in
 * store_fixture.c. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store_fixture.h"

#ifdef OH_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

#include "store/store_sqlite_schema.inc"
#ifdef OH_HAVE_POSTGRES
#include "store/store_pg_schema.inc"
#endif

START_TEST(t_epoch_stable)
{
    char epoch[64];
    snprintf(epoch, sizeof epoch, "%s", oh_store_epoch(st));
    ck_assert_uint_ge(strlen(epoch), 16);
    ck_assert_int_eq(put1(mk_event("e_ep", "c_ep", OH_EV_INBOUND, 1700000000000, "m"), 0), 1);
    oh_store_close(st);
    st = oh_test_store_open(cfg);
    ck_assert_str_eq(oh_store_epoch(st), epoch);
    struct oh_conversation cv;
    ck_assert_int_eq(oh_store_conversation_get(st, "c_ep", &cv), 0);
    ck_assert_int_eq(cv.head, 1);
    ck_assert_int_eq(oh_store_ping(st), 0);
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
        oh_test_pg_newdb(where, sizeof where);
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
    tcase_add_test(tc, t_epoch_stable);
    store_history_tests(tc);
    store_desk_tests(tc);
    store_kpi_tests(tc);
    tcase_add_test(tc, t_schema_files);
    tcase_add_test(tc, t_concurrent_readers);
    tcase_add_test(tc, t_concurrent_writers);
    tcase_add_test(tc, t_concurrent_open);
    suite_add_tcase(s, tc);
#ifdef OH_TEST_PG
    pg_add_tests(s);
#endif
    return s;
}

#ifdef OH_HAVE_POSTGRES
static void on_signal(int sig)
{
    oh_test_pg_stop();
    _exit(128 + sig);
}
#endif

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
#else
    if (use_pg) {
        if (!oh_test_pg_start()) return 1;
        signal(SIGTERM, on_signal); /* a meson timeout must not leave a server behind */
        signal(SIGINT, on_signal);
    }
#endif
    int rc = oh_test_run(suite());
#ifdef OH_HAVE_POSTGRES
    if (use_pg) oh_test_pg_stop();
#endif
    return rc;
}
