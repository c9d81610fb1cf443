/* test_marks.c - the lossy (subject, seq) set between sync and the enrich
 * service: a mark is found, what was never marked is not, a later mark on
 * the same slot replaces the earlier one, NULL marks nothing. */
#include <stdio.h>
#include "core/marks.h"
#include "tap.h"

START_TEST(marked_pairs_only)
{
    oh_marks *m = oh_marks_new(1024);
    ck_assert_ptr_nonnull(m);
    oh_marks_put(m, "c_a", 7);
    ck_assert(oh_marks_has(m, "c_a", 7));
    ck_assert(!oh_marks_has(m, "c_a", 8));
    ck_assert(!oh_marks_has(m, "c_a", 6));
    ck_assert(!oh_marks_has(m, "c_b", 7));
    ck_assert(!oh_marks_has(m, "", 7));
    ck_assert(!oh_marks_has(m, NULL, 7));
    oh_marks_put(m, NULL, 7); /* ignored */
    oh_marks_free(m);
}
END_TEST

START_TEST(bounded_and_lossy)
{
    /* 2,000 pairs in 64 slots: each slot holds the last mark that fell on
     * it, so at most 64 are found, every one of them marked, and the last
     * mark always */
    oh_marks *m = oh_marks_new(50);
    char conv[32];
    int found = 0;
    for (int i = 0; i < 2000; i++) {
        snprintf(conv, sizeof conv, "c_%d", i % 100);
        oh_marks_put(m, conv, i);
    }
    for (int i = 0; i < 4000; i++) {
        snprintf(conv, sizeof conv, "c_%d", i % 100);
        bool has = oh_marks_has(m, conv, i);
        ck_assert(!has || i < 2000);
        found += has;
    }
    ck_assert_int_le(found, 64);
    ck_assert_int_ge(found, 1);
    ck_assert(oh_marks_has(m, "c_99", 1999));
    oh_marks_free(m);
}
END_TEST

START_TEST(null_set)
{
    oh_marks_put(NULL, "c_a", 1);
    ck_assert(!oh_marks_has(NULL, "c_a", 1));
    oh_marks_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("marks");
    TCase *t = tcase_create("marks");
    tcase_add_test(t, marked_pairs_only);
    tcase_add_test(t, bounded_and_lossy);
    tcase_add_test(t, null_set);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
