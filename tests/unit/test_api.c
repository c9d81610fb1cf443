/* test_api.c - the api connector's one-pass body scan (api_body.c): what it
 * takes, what it leaves to jansson, and that the normalizer says the same
 * with it and without it. */
#include <string.h>
#include "connectors/api/api_body.h"
#include "core/json_dump.h"
#include "tap.h"

START_TEST(scan_takes_the_usual_body)
{
    static const char body[] =
        " {\"channel\":\"api:shop\", \"account\":\"acme\",\"contact\":{\"id\":\"u1\",\"name\":"
        "\"Ann \\\"A\\\" \\/ \\\\ "
        "\\b\\f\\n\\r\\t\"},\"message_id\":\"m1\",\"text\":\"caf\xc3\xa9\","
        "\"sent_at\":\"2026-01-02T03:04:05Z\"}\r\n";
    struct api_body b;
    ck_assert(api_body_scan(body, strlen(body), &b));
    ck_assert(b.contact);
    ck_assert_str_eq(b.s[API_CHANNEL], "api:shop");
    ck_assert_str_eq(b.s[API_ACCOUNT], "acme");
    ck_assert_str_eq(b.s[API_CONTACT_ID], "u1");
    ck_assert_str_eq(b.s[API_CONTACT_NAME], "Ann \"A\" / \\ \b\f\n\r\t");
    ck_assert_uint_eq(b.len[API_CONTACT_NAME], strlen("Ann \"A\" / \\ \b\f\n\r\t"));
    ck_assert_str_eq(b.s[API_TEXT], "caf\xc3\xa9");
    ck_assert_str_eq(b.s[API_SENT_AT], "2026-01-02T03:04:05Z");
    api_body_free(&b);
    ck_assert(api_body_scan("{}", 2, &b));
    ck_assert(!b.contact && !b.s[API_CHANNEL]);
    api_body_free(&b);
}
END_TEST

/* Bodies the scan leaves to jansson (valid or not). */
static const char *const not_simple[] = {
    "",
    "[]",
    "{\"channel\":\"a\\u0041\"}",            /* \u escapes: jansson's */
    "{\"channel\":\"a\",\"channel\":\"b\"}", /* repeated */
    "{\"contact\":{\"id\":\"a\",\"id\":\"b\"}}",
    "{\"contact\":{},\"contact\":{}}",
    "{\"other\":\"x\"}", /* unknown member */
    "{\"contact\":{\"identifiers\":[]}}",
    "{\"attachments\":[]}",
    "{\"text\":5}",
    "{\"text\":null}",
    "{\"contact\":\"u1\"}",
    "{\"text\":\"a\"} x", /* after the value */
    "{\"text\":\"a\",}",
    "{\"text\":\"a\"",
    "{\"text\":\"a\tb\"}",         /* a raw control character */
    "{\"text\":\"\xc3\"}",         /* not UTF-8 */
    "{\"text\":\"\xed\xa0\x80\"}", /* a surrogate */
    "{\"text\":\"\\x\"}",
    "{\"te\\u0078t\":\"a\"}",
};

START_TEST(scan_leaves_the_rest_to_jansson)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(not_simple); i++) {
        struct api_body b;
        ck_assert_msg(!api_body_scan(not_simple[i], strlen(not_simple[i]), &b), "took %s",
                      not_simple[i]);
        ck_assert_ptr_null(b.buf);
    }
    /* a NUL byte inside */
    struct api_body b;
    ck_assert(!api_body_scan("{\"text\":\"a\0\"}", 13, &b));
    ck_assert(!api_body_scan("{}\0", 3, &b));
}
END_TEST

/* With the scan and without: the same events byte for byte, or the same
 * error, for bodies the scan takes and bodies it does not. */
START_TEST(normalize_same_either_way)
{
    static const char *const bodies[] = {
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\",\"name\":"
        "\"Ann\"},\"message_id\":\"m1\",\"text\":\"hi\\n\",\"sent_at\":\"2026-01-02T03:04:05Z\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\"},"
        "\"message_id\":\"m1\",\"text\":\"\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\"},"
        "\"message_id\":\"m1\",\"attachments\":[{\"kind\":\"image\"}]}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\"},"
        "\"message_id\":\"m1\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{},\"message_id\":\"m1\","
        "\"text\":\"t\"}",
        "{\"channel\":\"shop\",\"account\":\"\",\"message_id\":\"m1\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"message_id\":\"m1\",\"text\":\"t\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\"},"
        "\"message_id\":\"m1\",\"text\":\"t\",\"sent_at\":\"yesterday\"}",
        "{\"channel\":\"api:shop\",\"account\":\"acme\",\"contact\":{\"id\":\"u1\"},"
        "\"message_id\":\"m1\",\"text\":7}",
        "{}",
        "not json",
    };
    for (int with_account = 0; with_account < 2; with_account++)
        for (size_t i = 0; i < OH_ARRAY_SIZE(bodies); i++) {
            struct oh_norm_ctx nc = {with_account ? "acct-1" : NULL, 1767225600000};
            struct oh_event_list a = {0}, b = {0};
            char ea[512] = "", eb[512] = "";
            size_t len = strlen(bodies[i]);
            int ra =
                api_normalize_with(&nc, (const uint8_t *)bodies[i], len, true, &a, ea, sizeof ea);
            int rb =
                api_normalize_with(&nc, (const uint8_t *)bodies[i], len, false, &b, eb, sizeof eb);
            ck_assert_int_eq(ra, rb);
            ck_assert_str_eq(ea, eb);
            ck_assert_uint_eq(a.n, b.n);
            for (size_t k = 0; k < a.n; k++) {
                char *da = oh_json_dump(a.ev[k], NULL), *db = oh_json_dump(b.ev[k], NULL);
                ck_assert_str_eq(da, db);
                free(da);
                free(db);
            }
            oh_event_list_clear(&a);
            oh_event_list_clear(&b);
        }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_test(tc, scan_takes_the_usual_body);
    tcase_add_test(tc, scan_leaves_the_rest_to_jansson);
    tcase_add_test(tc, normalize_same_either_way);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
