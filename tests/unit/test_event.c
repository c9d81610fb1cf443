/* test_event.c - envelope building, stable ids, time and UTF-8 checks, event
 * lists and the growing array under them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/event.h"
#include "tap.h"

static json_t *sample(const char *conv)
{
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "conversation_id", conv, "channel", "api:shop",
                  "account", "acc", "direction", "inbound", "kind", "text", "text", "hello");
    return oh_event_new(OH_EV_INBOUND, "e_1", 1700000000123, data);
}

START_TEST(envelope)
{
    json_t *ev = sample("c_abc");
    char err[128];
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(json_string_value(json_object_get(ev, "specversion")), "1.0");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "source")), "/omnihub/api:shop/acc");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "time")), "2023-11-14T22:13:20.123Z");
    ck_assert_str_eq(oh_event_subject(ev), "c_abc");
    ck_assert_str_eq(json_string_value(json_object_get(ev, "datacontenttype")), "application/json");
    ck_assert_int_eq(oh_event_validate(ev, err, sizeof err), OH_OK);
    json_object_set_new(ev, "subject", json_string("c_other"));
    ck_assert_int_eq(oh_event_validate(ev, err, sizeof err), OH_EINVAL);
    json_decref(ev);
    ev = sample("has space");
    ck_assert_int_eq(oh_event_validate(ev, err, sizeof err), OH_EINVAL);
    json_decref(ev);
}
END_TEST

START_TEST(enriched_envelope)
{
    /* triage's annotation: no direction or kind, but the message it scores */
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:b, s:f, s:s, s:b, s:s}", "conversation_id",
                             "c_abc", "channel", "api:shop", "account", "acc", "message_event_id",
                             "e_1", "frustrated", 1, "sentiment", -0.5, "priority", "urgent",
                             "wants_human", 0, "language", "en");
    json_t *ev = oh_event_new(OH_EV_ENRICHED, "e_2", 0, data);
    char err[128];
    ck_assert_int_eq(oh_event_validate(ev, err, sizeof err), OH_OK);
    ck_assert(oh_event_internal(ev));
    json_object_del(oh_event_data(ev), "message_event_id");
    ck_assert_int_eq(oh_event_validate(ev, err, sizeof err), OH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "message_event_id"));
    json_decref(ev);
}
END_TEST

START_TEST(stable_ids)
{
    char a[OH_ID_MAX], b[OH_ID_MAX], c[OH_ID_MAX];
    oh_event_id(a, "whatsapp", "123", "wamid.X", (const char *)NULL);
    oh_event_id(b, "whatsapp", "123", "wamid.X", (const char *)NULL);
    oh_event_id(c, "whatsapp", "12", "3wamid.X", (const char *)NULL);
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert_uint_eq(strlen(a), 34);
    oh_conversation_id(a, "whatsapp", "123", "15551234567");
    ck_assert_ptr_null(strstr(a, "1555"));
    ck_assert_uint_le(strlen(a), 128);
    oh_conversation_id(b, "whatsapp", "123", "15551234567");
    ck_assert_str_eq(a, b);
    oh_conversation_id(c, "whatsapp", "124", "15551234567");
    ck_assert_str_ne(a, c);
}
END_TEST

START_TEST(times)
{
    int64_t ms;
    ck_assert_int_eq(oh_time_parse("2024-01-02T03:04:05Z", &ms), OH_OK);
    ck_assert_int_eq(ms, 1704164645000);
    ck_assert_int_eq(oh_time_parse("2024-01-02T04:04:05.5+01:00", &ms), OH_OK);
    ck_assert_int_eq(ms, 1704164645500);
    ck_assert_int_eq(oh_time_parse("2024-01-02", &ms), OH_EINVAL);
    ck_assert_int_eq(oh_time_parse("2024-13-02T03:04:05Z", &ms), OH_EINVAL);
    ck_assert_int_eq(oh_time_parse("2024-01-02T03:04:05Zjunk", &ms), OH_EINVAL);
    char out[32];
    oh_time_rfc3339(out, 1704164645500);
    ck_assert_str_eq(out, "2024-01-02T03:04:05.500Z");
}
END_TEST

START_TEST(utf8)
{
    ck_assert(oh_utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    ck_assert(!oh_utf8_valid("\xc3", 1));
    ck_assert(!oh_utf8_valid("\xc0\xaf", 2));         /* overlong */
    ck_assert(!oh_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    ck_assert(!oh_utf8_valid("a\0b", 3));             /* NUL */
    ck_assert(!oh_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}
END_TEST

START_TEST(lists)
{
    struct oh_event_list l = {0};
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(oh_event_list_push(&l, sample("c_x")), OH_OK);
    ck_assert_uint_eq(l.n, 10);
    oh_event_list_clear(&l);
    ck_assert_uint_eq(l.n, 0);
    ck_assert_int_eq(oh_event_list_push(&l, NULL), OH_ENOMEM);
}
END_TEST

/* core's growing array (oh_grow), which the list above and most buffers use */
START_TEST(grow)
{
    int64_t *a = NULL;
    size_t cap = 0;
    ck_assert_int_eq(oh_grow(&a, &cap, 0, sizeof *a, 4), OH_OK); /* nothing needed */
    ck_assert_ptr_null(a);
    ck_assert_int_eq(oh_grow(&a, &cap, 1, sizeof *a, 4), OH_OK);
    ck_assert_uint_eq(cap, 4);
    for (int i = 0; i < 4; i++)
        a[i] = i;
    ck_assert_int_eq(oh_grow(&a, &cap, 4, sizeof *a, 4), OH_OK); /* fits: unchanged */
    ck_assert_uint_eq(cap, 4);
    ck_assert_int_eq(oh_grow(&a, &cap, 9, sizeof *a, 4), OH_OK); /* doubles past it */
    ck_assert_uint_eq(cap, 16);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(a[i], i); /* kept */
    /* too large for size_t: refused, the array as it was */
    int64_t *before = a;
    ck_assert_int_eq(oh_grow(&a, &cap, SIZE_MAX / 4, sizeof *a, 4), OH_ENOMEM);
    ck_assert_int_eq(oh_grow(&a, &cap, SIZE_MAX, 1, 4), OH_ENOMEM);
    ck_assert_ptr_eq(a, before);
    ck_assert_uint_eq(cap, 16);
    free(a);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("event");
    tcase_add_test(tc, envelope);
    tcase_add_test(tc, enriched_envelope);
    tcase_add_test(tc, stable_ids);
    tcase_add_test(tc, times);
    tcase_add_test(tc, utf8);
    tcase_add_test(tc, lists);
    tcase_add_test(tc, grow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
