/* test_json_dump.c - oh_json_dump writes what json_dumps(JSON_COMPACT)
 * writes, byte for byte: every fixture payload, every kind of value and
 * string, and the same failures. */
#include <ftw.h>
#include <string.h>
#include "core/json_dump.h"
#include "tap.h"

static int compared;

static void same(const json_t *v)
{
    char *want = json_dumps(v, JSON_COMPACT);
    size_t len = 0;
    char *got = oh_json_dump(v, &len);
    if (!want) {
        ck_assert_ptr_null(got);
        return;
    }
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(len, strlen(want));
    compared++;
    free(want);
    free(got);
}

static int one_fixture(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    size_t n = strlen(path);
    if (flag != FTW_F || n < 5 || strcmp(path + n - 5, ".json") != 0) return 0;
    json_error_t e;
    json_t *v = json_load_file(path, JSON_DECODE_ANY, &e);
    if (v) same(v);
    json_decref(v);
    return 0;
}

START_TEST(fixtures)
{
    char *dir = oh_test_src("tests/data");
    compared = 0;
    ck_assert_int_eq(nftw(dir, one_fixture, 16, FTW_PHYS), 0);
    ck_assert_int_gt(compared, 50);
    free(dir);
}
END_TEST

START_TEST(values)
{
    const char *texts[] = {
        "{}",
        "[]",
        "[[],{},[{}],{\"a\":[]}]",
        "{\"a\":1,\"b\":-9223372036854775808,\"c\":9223372036854775807,\"d\":0}",
        "[true,false,null,1.5,-0.0,1e300,0.1,3.0,123456789.125]",
        "{\"z\":1,\"a\":2,\"m\":{\"y\":[1,2,{\"x\":null}]}}",
        "[\"\",\"plain\",\"q\\\"b\\\\s/\",\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"]",
        "[\"caf\\u00e9 \\u20ac \\ud83d\\ude00 \\u2028\",\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
        "{\"key\":\"v\\u0000al\",\"\\n\":\"\\\"\"}",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        json_error_t e;
        json_t *v = json_loads(texts[i], JSON_ALLOW_NUL, &e);
        ck_assert_msg(v != NULL, "%s: %s", texts[i], e.text);
        same(v);
        json_decref(v);
    }
    /* a key holding a NUL byte (the parser refuses those; setn does not) */
    json_t *o = json_object();
    json_object_setn_new(o, "k\0ey", 4, json_true());
    same(o);
    json_decref(o);
    /* a long string with a control character at its very end */
    char big[5000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\x02';
    json_t *a = json_pack("[s#]", big, sizeof big);
    same(a);
    json_decref(a);
}
END_TEST

START_TEST(failures)
{
    /* scalars at the top level: json_dumps needs JSON_ENCODE_ANY */
    json_t *s = json_string("x");
    ck_assert_ptr_null(oh_json_dump(s, NULL));
    json_decref(s);
    ck_assert_ptr_null(oh_json_dump(NULL, NULL));
    /* strings that are not UTF-8 (only _nocheck can make them) */
    const char *bad[] = {"\xff",       "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "ok\xe2\x82", "\x80",     "\xe0\x80\xaf"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *a = json_pack("[o]", json_stringn_nocheck(bad[i], strlen(bad[i])));
        same(a);
        ck_assert_ptr_null(oh_json_dump(a, NULL));
        json_decref(a);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("json_dump");
    TCase *t = tcase_create("dump");
    tcase_add_test(t, fixtures);
    tcase_add_test(t, values);
    tcase_add_test(t, failures);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
