/* test_ratelimit.c - token buckets: burst, refill, Retry-After, separate
 * keys, and a table that stays bounded under a flood of new keys. */
#include <stdio.h>
#include <string.h>
#include "core/ratelimit.h"
#include "tap.h"

START_TEST(off_when_rate_is_zero)
{
    ck_assert_ptr_null(oh_ratelimit_new(0, 100));
    ck_assert_int_eq(oh_ratelimit_take(NULL, "k", 1, 0), 0);
    oh_ratelimit_free(NULL);
}
END_TEST

START_TEST(burst_then_refill)
{
    oh_ratelimit *rl = oh_ratelimit_new(5, 100);
    for (int i = 0; i < 10; i++) /* burst: twice the rate */
        ck_assert_int_eq(oh_ratelimit_take(rl, "ip", 2, 1000), 0);
    ck_assert_int_eq(oh_ratelimit_take(rl, "ip", 2, 1000), 1); /* Retry-After 1 s */
    ck_assert_int_eq(oh_ratelimit_take(rl, "ip", 2, 1100), 1);
    ck_assert_int_eq(oh_ratelimit_take(rl, "ip", 2, 1200), 0); /* 200 ms = one token */
    ck_assert_int_ne(oh_ratelimit_take(rl, "ip", 2, 1200), 0);
    /* other keys have their own bucket */
    ck_assert_int_eq(oh_ratelimit_take(rl, "other", 5, 1200), 0);
    /* a clock going backwards takes nothing back */
    ck_assert_int_ne(oh_ratelimit_take(rl, "ip", 2, 500), 0);
    ck_assert_int_eq(oh_ratelimit_take(rl, "ip", 2, 100000), 0);
    oh_ratelimit_free(rl);
}
END_TEST

START_TEST(slow_rate_retry_after)
{
    oh_ratelimit *rl = oh_ratelimit_new(0.1, 10); /* one per 10 s, burst 1 */
    ck_assert_int_eq(oh_ratelimit_take(rl, "t", 1, 0), 0);
    ck_assert_int_eq(oh_ratelimit_take(rl, "t", 1, 0), 10);
    oh_ratelimit_free(rl);
}
END_TEST

START_TEST(flood_of_keys_stays_bounded)
{
    oh_ratelimit *rl = oh_ratelimit_new(1, 64);
    /* a key over its limit ... */
    ck_assert_int_eq(oh_ratelimit_take(rl, "hot", 3, 0), 0);
    ck_assert_int_eq(oh_ratelimit_take(rl, "hot", 3, 0), 0);
    ck_assert_int_ne(oh_ratelimit_take(rl, "hot", 3, 0), 0);
    /* ... then 100,000 other keys in a 64-slot table: no growth, no crash, and
     * each newcomer starts with a full bucket */
    char key[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        ck_assert_int_eq(oh_ratelimit_take(rl, key, (size_t)n, 1 + i / 1000), 0);
    }
    /* a key that keeps coming back stays limited while it is recent */
    oh_ratelimit *r2 = oh_ratelimit_new(1, 64);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(oh_ratelimit_take(r2, "hot", 3, 5), 0);
    int limited = 0;
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof key, "x%d", i);
        oh_ratelimit_take(r2, key, (size_t)n, 5);
        limited += oh_ratelimit_take(r2, "hot", 3, 5) != 0;
    }
    ck_assert_int_eq(limited, 1000);
    oh_ratelimit_free(r2);
    oh_ratelimit_free(rl);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("ratelimit");
    tcase_add_test(tc, off_when_rate_is_zero);
    tcase_add_test(tc, burst_then_refill);
    tcase_add_test(tc, slow_rate_retry_after);
    tcase_add_test(tc, flood_of_keys_stays_bounded);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
