/* test_handoff.c - the parsed-once handoff between ingest and sync: exact
 * text matches only, oldest of equal texts first, shared events copied,
 * bounded by count and bytes. */
#include <string.h>
#include "core/handoff.h"
#include "tap.h"

static json_t *ev_of(const char *text)
{
    json_error_t e;
    return json_loads(text, 0, &e);
}

START_TEST(exact_text_only)
{
    oh_handoff *h = oh_handoff_new(8, 1 << 20);
    const char *t = "{\"id\":\"e_1\",\"data\":{\"text\":\"hi\"}}";
    json_t *ev = ev_of(t);
    json_t *same = ev;
    ck_assert(oh_handoff_put(h, t, strlen(t), ev));
    ck_assert_ptr_null(oh_handoff_take(h, t, strlen(t) - 1));
    ck_assert_ptr_null(oh_handoff_take(h, "{\"id\":\"e_2\",\"data\":{\"text\":\"hi\"}}", strlen(t)));
    json_t *got = oh_handoff_take(h, t, strlen(t));
    ck_assert_ptr_eq(got, same);
    ck_assert_ptr_null(oh_handoff_take(h, t, strlen(t))); /* taken once */
    json_decref(got);
    oh_handoff_free(h);
}
END_TEST

START_TEST(equal_texts_oldest_first)
{
    oh_handoff *h = oh_handoff_new(8, 1 << 20);
    const char *t = "{\"id\":\"e_1\"}";
    json_t *a = ev_of(t), *b = ev_of(t);
    ck_assert(oh_handoff_put(h, t, strlen(t), a));
    ck_assert(oh_handoff_put(h, t, strlen(t), b));
    json_t *x = oh_handoff_take(h, t, strlen(t)), *y = oh_handoff_take(h, t, strlen(t));
    ck_assert_ptr_eq(x, a);
    ck_assert_ptr_eq(y, b);
    json_decref(x);
    json_decref(y);
    oh_handoff_free(h);
}
END_TEST

START_TEST(refused)
{
    oh_handoff *h = oh_handoff_new(8, 1 << 20);
    /* shared with the caller: a private copy is left, the caller's own
     * event is never handed to the taker (who modifies it) */
    const char *t = "{\"id\":\"e_1\",\"data\":{\"status\":{\"message_id\":\"m\"}}}";
    json_t *ev = ev_of(t);
    ck_assert(oh_handoff_put(h, t, strlen(t), json_incref(ev)));
    json_t *got = oh_handoff_take(h, t, strlen(t));
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_ne(got, ev);
    ck_assert(json_equal(got, ev));
    json_object_set_new(json_object_get(json_object_get(got, "data"), "status"), "x",
                        json_true());
    ck_assert_ptr_null(json_object_get(json_object_get(json_object_get(ev, "data"), "status"),
                                       "x"));
    json_decref(got);
    json_t *status = json_incref(json_object_get(json_object_get(ev, "data"), "status"));
    ck_assert(oh_handoff_put(h, t, strlen(t), ev));
    got = oh_handoff_take(h, t, strlen(t));
    ck_assert_ptr_ne(json_object_get(json_object_get(got, "data"), "status"), status);
    json_decref(got);
    json_decref(status);
    ck_assert_ptr_null(oh_handoff_take(h, t, strlen(t)));
    /* a text json_loadb would refuse */
    const char *nul = "{\"id\":\"a\\u0000b\"}";
    json_error_t e;
    ck_assert(!oh_handoff_put(h, nul, strlen(nul), json_loads(nul, JSON_ALLOW_NUL, &e)));
    ck_assert(!oh_handoff_put(NULL, t, strlen(t), ev_of(t)));
    oh_handoff_free(h);
}
END_TEST

START_TEST(bounded)
{
    char t[64];
    oh_handoff *h = oh_handoff_new(4, 1 << 20);
    for (int i = 0; i < 10; i++) {
        int n = snprintf(t, sizeof t, "{\"id\":\"e_%d\"}", i);
        ck_assert(oh_handoff_put(h, t, (size_t)n, ev_of(t)));
    }
    for (int i = 0; i < 10; i++) {
        int n = snprintf(t, sizeof t, "{\"id\":\"e_%d\"}", i);
        json_t *got = oh_handoff_take(h, t, (size_t)n);
        ck_assert_msg((got != NULL) == (i >= 6), "entry %d", i);
        json_decref(got);
    }
    oh_handoff_free(h);
    /* by bytes: 3 texts of 12 bytes fit in 40 */
    h = oh_handoff_new(100, 40);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(t, sizeof t, "{\"id\":\"e_%d\"}", i);
        ck_assert(oh_handoff_put(h, t, (size_t)n, ev_of(t)));
    }
    for (int i = 0; i < 5; i++) {
        int n = snprintf(t, sizeof t, "{\"id\":\"e_%d\"}", i);
        json_t *got = oh_handoff_take(h, t, (size_t)n);
        ck_assert_msg((got != NULL) == (i >= 2), "entry %d", i);
        json_decref(got);
    }
    /* left unconsumed: freed with the handoff */
    ck_assert(oh_handoff_put(h, t, strlen(t), ev_of(t)));
    oh_handoff_free(h);
    oh_handoff_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("handoff");
    TCase *t = tcase_create("handoff");
    tcase_add_test(t, exact_text_only);
    tcase_add_test(t, equal_texts_oldest_first);
    tcase_add_test(t, refused);
    tcase_add_test(t, bounded);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
