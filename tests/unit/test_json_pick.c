/* test_json_pick.c - the one-pass member reader of core/json_pick.c: the
 * strings of an event as jansson gives them, jansson's verdict on texts at
 * the edges of its rules (numbers, depth, UTF-8, escapes, duplicates), and
 * on thousands of mutations of a real event. */
#include <stdio.h>
#include <string.h>
#include "../fuzz/json_pick_check.h"
#include "core/event.h"
#include "core/json_dump.h"
#include "tap.h"

static const char event_text[] =
    "{\"specversion\":\"1.0\",\"id\":\"e_x1\",\"type\":\"omnihub.message.inbound\","
    "\"subject\":\"c_abc\",\"data\":{\"conversation_id\":\"c_abc\",\"channel\":\"api\","
    "\"account\":\"acme\",\"contact\":{\"id\":\"u1\",\"name\":\"Ana\"},\"kind\":\"text\","
    "\"text\":\"I was charged TWICE!!\\n> quoted \\\"x\\\" \\u00e9\\ud83d\\ude00 caf\xc3\xa9\","
    "\"author\":{\"kind\":\"customer\",\"id\":\"u1\"},\"n\":[1,-0,2.5e-3,1E308,true,null,{}]},"
    "\"seq\":12}";

static void agrees(const char *text, size_t len)
{
    const char *why = json_pick_check(text, len);
    if (why) ck_abort_msg("%s: %.*s", why, (int)(len > 400 ? 400 : len), text);
}

static void agrees_s(const char *text)
{
    agrees(text, strlen(text));
}

START_TEST(event_fields)
{
    struct oh_json_pick p[] = {
        {.path = "type"},         {.path = "id"},           {.path = "data.author.kind"},
        {.path = "data.text"},    {.path = "data.subject"}, {.path = "data.contact"},
        {.path = "data.channel"}, {.path = "missing.deep"}};
    char buf[sizeof event_text];
    ck_assert_int_eq(oh_json_pick(event_text, strlen(event_text), p, 8, buf), OH_OK);
    ck_assert_str_eq(p[0].s, "omnihub.message.inbound");
    ck_assert_str_eq(p[1].s, "e_x1");
    ck_assert_str_eq(p[2].s, "customer");
    ck_assert_str_eq(p[3].s, "I was charged TWICE!!\n> quoted \"x\" \xc3\xa9\xf0\x9f\x98\x80 "
                             "caf\xc3\xa9");
    ck_assert_ptr_null(p[4].s); /* absent */
    ck_assert_ptr_null(p[5].s); /* an object, not a string */
    ck_assert_str_eq(p[6].s, "api");
    ck_assert_ptr_null(p[7].s);
    agrees_s(event_text);
}
END_TEST

START_TEST(last_member_wins_whole)
{
    /* a later "data" replaces the earlier one entirely, as in jansson */
    const char *t =
        "{\"data\":{\"text\":\"a\",\"channel\":\"x\"},\"d\\u0061ta\":{\"channel\":\"y\"}}";
    struct oh_json_pick p[] = {{.path = "data.text"}, {.path = "data.channel"}};
    char buf[128];
    ck_assert_int_eq(oh_json_pick(t, strlen(t), p, 2, buf), OH_OK);
    ck_assert_ptr_null(p[0].s);
    ck_assert_str_eq(p[1].s, "y");
    agrees_s(t);
    agrees_s("{\"a\":\"x\",\"a\":{\"b\":\"y\"}}");
    agrees_s("{\"a\":{\"b\":\"y\"},\"a\":\"x\"}");
    agrees_s("{\"a\":{\"b\":\"y\"},\"a\":[{\"b\":\"z\"}]}");
    agrees_s("{\"a\":{\"b\":{\"c\":\"1\"},\"b\":{\"d\":\"2\"}}}");
    agrees_s("[{\"id\":\"x\"}]"); /* no members at the top of an array */
}
END_TEST

START_TEST(bad_paths_and_arguments)
{
    struct oh_json_pick p[] = {{.path = "data..text"}};
    char buf[16];
    ck_assert_int_eq(oh_json_pick("{}", 2, p, 1, buf), OH_EINVAL);
    p[0].path = "a.b.c.d.e.f.g.h.i"; /* nine names */
    ck_assert_int_eq(oh_json_pick("{}", 2, p, 1, buf), OH_EINVAL);
    p[0].path = "id";
    ck_assert_int_eq(oh_json_pick("{}", 2, p, OH_JSON_PICK_MAX + 1, buf), OH_EINVAL);
    ck_assert_int_eq(oh_json_pick(NULL, 0, p, 1, buf), OH_EINVAL);
    ck_assert_int_eq(oh_json_pick("{}", 2, NULL, 0, buf), OH_OK);
    /* the same path twice shares one decoded string */
    struct oh_json_pick q[] = {{.path = "id"}, {.path = "id"}};
    ck_assert_int_eq(oh_json_pick("{\"id\":\"\\u00e9\"}", 15, q, 2, buf), OH_OK);
    ck_assert_str_eq(q[0].s, "\xc3\xa9");
    ck_assert_ptr_eq(q[0].s, q[1].s);
}
END_TEST

START_TEST(jansson_edges)
{
    static const char *const cases[] = {
        "{}",
        "[]",
        " \t\r\n{ } \n",
        "{} x",
        "{}{}",
        "",
        " ",
        "\"s\"",
        "1",
        "null",
        "{,}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{1:2}",
        "[true,false,null]",
        "[tru]",
        "[truex]",
        "[True]",
        "[nul]",
        "[1true]",
        "\xef\xbb\xbf{}",
        /* numbers */
        "[0]",
        "[-0]",
        "[01]",
        "[-]",
        "[-a]",
        "[1.]",
        "[.5]",
        "[1.5.3]",
        "[1e]",
        "[1e+]",
        "[1E-2]",
        "[0e5]",
        "[-0.0e-0]",
        "[9223372036854775807]",
        "[9223372036854775808]",
        "[-9223372036854775808]",
        "[-9223372036854775809]",
        "[10000000000000000000]",
        "[1e308]",
        "[1.7976931348623157e308]",
        "[1.7976931348623158e308]",
        "[1.7976931348623159e308]",
        "[-1.7976931348623159e308]",
        "[1e309]",
        "[0.1e309]",
        "[0.001e311]",
        "[0.0001e311]",
        "[000.5]",
        "[0.000e999999999999999999]",
        "[1e-99999999999999999999]",
        "[1e99999999999999999999]",
        "[17976931348623157e292]",
        "[179769313486231580793728971405303415079934132710037826936173778980444968292764750946649"
        "017977587207096330286416692887910946555547851940402630657488671505820681908902000708383"
        "676273854845817711531764475730270069855571366959622842914819860834936475292719074168444"
        "365510704342711559699508093042880177904174497791.9]",
        "[179769313486231580793728971405303415079934132710037826936173778980444968292764750946649"
        "017977587207096330286416692887910946555547851940402630657488671505820681908902000708383"
        "676273854845817711531764475730270069855571366959622842914819860834936475292719074168444"
        "365510704342711559699508093042880177904174497791.9999e-1]",
        /* strings and escapes */
        "{\"id\":\"a\\u0000b\"}",
        "{\"a\\u0000\":\"x\"}",
        "{\"id\":\"\\ud800\"}",
        "{\"id\":\"\\udc00\"}",
        "{\"id\":\"\\ud800\\u0041\"}",
        "{\"id\":\"\\ud800\\n\"}",
        "{\"id\":\"\\uD83D\\uDE00\"}",
        "{\"id\":\"\\u00G0\"}",
        "{\"id\":\"\\u00e\"}",
        "{\"id\":\"\\x\"}",
        "{\"id\":\"\\/\\b\\f\\n\\r\\t\\\\\\\"\"}",
        "{\"id\":\"a\tb\"}",
        "{\"id\":\"a\x7f b\"}",
        "{\"id\":\"abc",
        "{\"id\":\"abc\\",
        "{\"id\":\"\\u12",
        "{\"id\":\"\\ud800\\u12\"}",
        "{\"\\u00e9\":\"accent key\"}",
        "{\"\xc3\xa9\":\"raw accent key\"}",
        /* UTF-8 */
        "{\"id\":\"\xc3\"}",
        "{\"id\":\"\xc0\x80\"}",
        "{\"id\":\"\xc1\xbf\"}",
        "{\"id\":\"\xe0\x80\x80\"}",
        "{\"id\":\"\xe0\xa0\x80\"}",
        "{\"id\":\"\xed\xa0\x80\"}",
        "{\"id\":\"\xef\xbf\xbf\"}",
        "{\"id\":\"\xf0\x8f\xbf\xbf\"}",
        "{\"id\":\"\xf0\x90\x80\x80\"}",
        "{\"id\":\"\xf4\x8f\xbf\xbf\"}",
        "{\"id\":\"\xf4\x90\x80\x80\"}",
        "{\"id\":\"\xf5\x80\x80\x80\"}",
        "{\"id\":\"\x80\"}",
        "{\"id\":\"\xe2\x82\"}",
        "{\"id\":\"x\"}\xc3\xa9",
        "{\"id\":\"x\"}\xff",
        /* paths through non-objects */
        "{\"data\":\"s\"}",
        "{\"data\":[\"text\",\"x\"]}",
        "{\"data\":{\"author\":\"customer\"}}",
        "{\"data\":{\"author\":{\"kind\":7}}}",
        "{\"a\":{\"b\":{\"c\":\"deep\"}}}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++)
        agrees_s(cases[i]);
    /* raw NUL bytes, inside and outside strings */
    agrees("{\"id\":\"a\0b\"}", 11);
    agrees("{\"id\":\"ab\"}\0", 12);
    agrees("{\"id\"\0:\"ab\"}", 12);
    /* jansson loses one NUL read just past a number or a word */
    agrees("[1\0]", 4);
    agrees("[true\0,2.5\0]", 13);
    agrees("[1\0\0]", 5);
    agrees("{\"a\":null\0}", 11);
}
END_TEST

/* Values are counted against jansson's depth of 2048, scalars included. */
START_TEST(depth)
{
    char *t = malloc(12 * (JSON_PARSER_MAX_DEPTH + 8));
    for (int deep = JSON_PARSER_MAX_DEPTH - 2; deep <= JSON_PARSER_MAX_DEPTH + 1; deep++)
        for (int scalar = 0; scalar < 2; scalar++)
            for (int obj = 0; obj < 2; obj++) {
                /* DEEP containers, the innermost holding one scalar or nothing */
                size_t o = 0;
                for (int i = 0; i < deep; i++)
                    o += (size_t)sprintf(t + o, "%s",
                                         !obj                     ? "["
                                         : i < deep - 1 || scalar ? "{\"a\":"
                                                                  : "{");
                if (scalar) t[o++] = '1';
                for (int i = 0; i < deep; i++)
                    t[o++] = obj ? '}' : ']';
                agrees(t, o);
            }
    free(t);
}
END_TEST

/* Every small change of a real event, one by one and in pairs, from a fixed
 * seed: a byte replaced, removed, doubled, or one of JSON's own put in. */
START_TEST(mutations)
{
    static const char specials[] = "{}[]:,\"\\u0123456789.eE+-tfn \t\n\x80\xc3\xa9\xed\xf4\x00";
    size_t base = strlen(event_text);
    char *t = malloc(base + 8);
    uint32_t seed = 1;
    for (int round = 0; round < 20000; round++) {
        memcpy(t, event_text, base);
        size_t len = base;
        for (int k = 0; k < 1 + round % 2; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            char c = specials[(seed >> 20) % (sizeof specials - 1)];
            switch ((seed >> 28) % 4) {
            case 0: t[at] = c; break;
            case 1:
                memmove(t + at, t + at + 1, len - at - 1);
                len--;
                break;
            case 2:
                memmove(t + at + 1, t + at, len - at);
                len++;
                break;
            default:
                memmove(t + at + 1, t + at, len - at);
                t[at] = c;
                len++;
            }
        }
        agrees(t, len);
    }
    free(t);
}
END_TEST

/* The labeled triage texts (tests/data/triage, seven languages, emoji,
 * quotes), each in an inbound event as the daemon writes it: the scorer's
 * service reads back the very text jansson would give it. */
START_TEST(labeled_texts_read_back)
{
    static const char *const sets[] = {"tests/data/triage/dev.tsv",
                                       "tests/data/triage/holdout.tsv"};
    int n = 0;
    for (size_t k = 0; k < OH_ARRAY_SIZE(sets); k++) {
        char *path = oh_test_src(sets[k]);
        char *tsv = oh_test_read(path, NULL);
        ck_assert_ptr_nonnull(tsv);
        char *line = strchr(tsv, '\n'); /* after the header */
        while (line && *++line) {
            /* the first column, its escaped newlines, tabs and backslashes undone */
            char text[8192];
            size_t o = 0;
            const char *c = line;
            for (; *c && *c != '\t' && *c != '\n' && o < sizeof text - 1; c++)
                text[o++] = *c == '\\' && c[1] ? (*++c == 'n' ? '\n' : *c == 't' ? '\t' : *c) : *c;
            text[o] = '\0';
            json_t *data =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "conversation_id", "c_1",
                          "channel", "api", "account", "acme", "direction", "inbound", "kind",
                          "text", "text", text, "author", "kind", "customer");
            json_t *ev = oh_event_new(OH_EV_INBOUND, "e_1", 0, data);
            size_t len;
            char *dumped = oh_json_dump(ev, &len);
            ck_assert_ptr_nonnull(dumped);
            agrees(dumped, len);
            struct oh_json_pick p = {.path = "data.text"};
            char *buf = malloc(len + 1);
            ck_assert_int_eq(oh_json_pick(dumped, len, &p, 1, buf), OH_OK);
            ck_assert_str_eq(p.s, text);
            free(buf);
            free(dumped);
            json_decref(ev);
            n++;
            line = strchr(line, '\n');
        }
        free(tsv);
        free(path);
    }
    ck_assert_int_gt(n, 500);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("json_pick");
    TCase *t = tcase_create("json_pick");
    tcase_add_test(t, event_fields);
    tcase_add_test(t, last_member_wins_whole);
    tcase_add_test(t, bad_paths_and_arguments);
    tcase_add_test(t, jansson_edges);
    tcase_add_test(t, depth);
    tcase_add_test(t, mutations);
    tcase_add_test(t, labeled_texts_read_back);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
