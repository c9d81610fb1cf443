/* test_store_kpi.c - the store contract's knowledge-base cases (the KPI
 * reports are tested through the KPI service, test_kpi.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"

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

void store_kpi_tests(TCase *tc)
{
    tcase_add_test(tc, t_articles);
}
