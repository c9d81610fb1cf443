/* test_enrich_text.c - the enriched event's record as services/enrich.c
 * writes it equals, byte for byte, oh_json_dump() of the event tree it hands
 * to sync (what the hub appended before it wrote records itself): messages
 * of every language, escapes in every string, empty texts and accounts,
 * every sentiment the scorer can give. */
#include <stdio.h>
#include <string.h>
#include "core/event.h"
#include "core/json_dump.h"
#include "services/enrich_text.h"
#include "tap.h"

/* Writes X's record after what W holds and checks it against the dump of
 * X's tree, which must be a valid event. */
static void same(struct oh_enriched_writer *w, const struct oh_enriched *x)
{
    json_t *ev = oh_enriched_event(x);
    ck_assert_ptr_nonnull(ev);
    char err[256] = "";
    ck_assert_msg(oh_event_validate(ev, err, sizeof err) == OH_OK, "%s", err);
    size_t want_len = 0;
    char *want = oh_json_dump(ev, &want_len);
    ck_assert_ptr_nonnull(want);
    size_t at = w->buf.len;
    ck_assert_int_eq(oh_enriched_text(w, x), OH_OK);
    ck_assert_uint_eq(w->buf.len - at, want_len);
    ck_assert_msg(memcmp(w->buf.p + at, want, want_len) == 0, "record %.*s\nwanted %s",
                  (int)(w->buf.len - at), w->buf.p + at, want);
    /* and jansson reads it back as the same event */
    json_t *back = json_loadb(w->buf.p + at, w->buf.len - at, 0, NULL);
    ck_assert_ptr_nonnull(back);
    ck_assert(json_equal(back, ev));
    json_decref(back);
    free(want);
    json_decref(ev);
}

static const char *const texts[] = {
    "",
    "Hello, this is message 17 of the benchmark run x",
    "I was CHARGED TWICE for order 88213!!! Fix it now or I call my bank",
    "¿Dónde está mi pedido? Llevo dos semanas esperando, quiero hablar con una persona",
    "Ich möchte mein Geld zurück, das Paket ist nie angekommen. Schlechter Service!",
    "Olá, não recebi a minha encomenda, podem verificar? Obrigado",
    "Bonjour, je voudrais parler à un conseiller, ma commande est en retard.",
    "注文した商品がまだ届きません。至急確認してください！",
    "Здравствуйте, где мой заказ? Жду уже неделю, это ужасно.",
    "thanks, all arrived 😊",
    "stop the bot, I want a human agent 😡😡",
    "line one\n> quoted earlier mail\nOn Mon, Bob wrote:\n> more",
    "tab\there \"quoted\" back\\slash \x01 control",
};

START_TEST(messages)
{
    struct oh_enriched_writer *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    /* strings that need escaping wherever the record may hold one (a
     * conversation id is URL-safe: the hub refuses any other) */
    static const struct {
        const char *conv, *channel, *account, *message;
    } ids[] = {
        {"c_AbC-123_xyz", "whatsapp", "15550783881", "e_0123456789abcdefABCDEF-_"},
        {"c_1", "api:bench", "", "e_2"},
        {"c_~.-_", "email:\"support\" \\ x", "acc\tount\n", "msg/\x1f \"q\""},
        {"c_n", "telegram:ñandú", "кириллица", "e_日本"},
        {"c_emoji", "line", "acct 😀", "e_\xe2\x80\xa8"},
    };
    int64_t times[] = {1, 1764950400123, 253402300799999};
    size_t n = 0;
    for (size_t i = 0; i < OH_ARRAY_SIZE(texts); i++)
        for (size_t k = 0; k < OH_ARRAY_SIZE(ids); k++) {
            struct oh_triage t;
            ck_assert_int_eq(oh_triage_classify(texts[i], strlen(texts[i]), NULL, &t), 0);
            char eid[OH_ID_MAX];
            oh_event_id(eid, "enriched", ids[k].message, NULL);
            struct oh_enriched x = {.id = eid,
                                    .message = ids[k].message,
                                    .conv = ids[k].conv,
                                    .channel = ids[k].channel,
                                    .account = ids[k].account,
                                    .t = &t,
                                    .milli = oh_enriched_milli(t.sentiment),
                                    .time_ms = times[(i + k) % OH_ARRAY_SIZE(times)]};
            same(w, &x);
            n++;
        }
    /* several records one after the other in one writer, as in a batch */
    ck_assert_uint_gt(w->buf.len, n * 300);
    oh_enriched_writer_free(w);
    free(w);
}
END_TEST

/* Every flag and priority, every sentiment in thousandths (kept texts and
 * first-made ones), and the range's ends. */
START_TEST(values)
{
    struct oh_enriched_writer *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    static const char *const langs[] = {"en", "es", "de", "pt", "fr", "ja", "ru"};
    for (int round = 0; round < 2; round++)
        for (long milli = -OH_ENRICHED_MILLI_MAX - 2; milli <= OH_ENRICHED_MILLI_MAX + 2; milli++) {
            struct oh_triage t = {.frustrated = milli % 2 != 0,
                                  .wants_human = milli % 3 == 0,
                                  .priority = (enum oh_triage_priority)((milli + 1002) % 4),
                                  .sentiment = (double)milli / 1000};
            memcpy(t.language, langs[(milli + 1002) % 7], 3);
            ck_assert_int_eq(oh_enriched_milli(t.sentiment), milli);
            struct oh_enriched x = {.id = "e_id",
                                    .message = "e_msg",
                                    .conv = "c_conv",
                                    .channel = "api",
                                    .account = "a",
                                    .t = &t,
                                    .milli = milli,
                                    .time_ms = 1764950400000 + milli};
            same(w, &x);
            w->buf.len = 0;
        }
    oh_enriched_writer_free(w);
    free(w);
}
END_TEST

/* A string that is not UTF-8 (never from a parsed record) is refused, and
 * the writer keeps what it held. */
START_TEST(refused)
{
    struct oh_enriched_writer *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    struct oh_triage t = {.priority = OH_TRIAGE_LOW, .language = "en"};
    struct oh_enriched x = {.id = "e_id",
                            .message = "e_msg",
                            .conv = "c_conv",
                            .channel = "api",
                            .account = "a",
                            .t = &t,
                            .milli = 0,
                            .time_ms = 1};
    ck_assert_int_eq(oh_enriched_text(w, &x), OH_OK);
    size_t held = w->buf.len;
    x.account = "bad \xff byte";
    ck_assert_int_ne(oh_enriched_text(w, &x), OH_OK);
    ck_assert_uint_eq(w->buf.len, held);
    oh_enriched_writer_free(w);
    free(w);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("enrich_text");
    TCase *t = tcase_create("core");
    tcase_add_test(t, messages);
    tcase_add_test(t, values);
    tcase_add_test(t, refused);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
