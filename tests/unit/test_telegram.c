/* test_telegram.c - the Telegram connector without sockets: every fixture
 * normalized and checked, the secret token check, ids and message refs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "connectors/telegram/telegram.h"

extern const struct oh_connector oh_connector_telegram;

static int norm(const char *account, const char *body, size_t len, struct oh_event_list *out,
                char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = account, .now_ms = 1700000000000};
    return oh_connector_telegram.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

/* without --account the bot is "bot" */
static void account_is_bot(const char *channel, const char *name, const struct oh_event_list *out)
{
    (void)channel;
    (void)name;
    for (size_t i = 0; i < out->n; i++)
        ck_assert_str_eq(oh_event_data_str(out->ev[i], "account"), "bot");
}

START_TEST(fixtures_match_expectations)
{
    ck_assert_int_ge(oh_fixture_check_dir("telegram", ".json", NULL, account_is_bot), 15);
}
END_TEST

static json_t *first_event(const char *account, const char *fixture)
{
    return oh_fixture_first("telegram", fixture, account);
}

START_TEST(ids_and_conversations)
{
    json_t *text = first_event("123456", "message_text");
    json_t *edit = first_event("123456", "edited_message");
    json_t *cb = first_event("123456", "callback_query_inline");
    json_t *group = first_event("123456", "group_message");
    json_t *other_bot = first_event("654321", "message_text");
    /* one chat, one conversation: message, edit and button press */
    ck_assert_str_eq(oh_event_subject(text), oh_event_subject(edit));
    ck_assert_str_eq(oh_event_subject(text), oh_event_subject(cb));
    ck_assert_str_ne(oh_event_subject(text), oh_event_subject(group));
    ck_assert_str_ne(oh_event_subject(text), oh_event_subject(other_bot));
    ck_assert_ptr_null(strstr(oh_event_subject(text), "1111111"));
    /* the edit is its own event and points at the original */
    ck_assert_str_ne(oh_event_get_id(text), oh_event_get_id(edit));
    ck_assert_str_eq(oh_event_data_str(edit, "edit_of"), oh_event_data_str(text, "message_id"));
    ck_assert_str_eq(oh_event_get_type(edit), OH_EV_INBOUND);
    ck_assert_str_eq(json_string_value(json_object_get(text, "source")),
                     "/omnihub/telegram/123456");
    /* the update id is kept for tracing */
    ck_assert_int_eq(json_integer_value(json_object_get(oh_event_data(text), "update_id")), 10000);
    json_decref(text);
    json_decref(edit);
    json_decref(cb);
    json_decref(group);
    json_decref(other_bot);
}
END_TEST

START_TEST(message_refs)
{
    long long m = 0;
    ck_assert(tg_parse_message_ref("1111111:1365", &m));
    ck_assert_int_eq(m, 1365);
    ck_assert(tg_parse_message_ref("-1001234567890:17", &m));
    ck_assert_int_eq(m, 17);
    ck_assert(tg_parse_message_ref("1111111:1365:1441646600", &m));
    ck_assert_int_eq(m, 1365);
    ck_assert(tg_parse_message_ref("42", &m));
    ck_assert_int_eq(m, 42);
    ck_assert(!tg_parse_message_ref("callback:4382bfdwdsb323b2d9", &m));
    ck_assert(!tg_parse_message_ref("", &m));
    ck_assert(!tg_parse_message_ref(NULL, &m));
    ck_assert(!tg_parse_message_ref("1:x", &m));
}
END_TEST

START_TEST(bad_payloads)
{
    char err[256];
    struct oh_event_list out = {0};
    const char *cases[] = {
        "{\"update_id\":1,\"message\":{\"message_id\":1,\"chat\":{\"id\":1}",
        "[1,2]",
        "{\"message\":{\"message_id\":1,\"chat\":{\"id\":1},\"text\":\"x\"}}",
        "{\"update_id\":1,\"message\":{\"chat\":{\"id\":1},\"text\":\"x\"}}",
        "{\"update_id\":1,\"message\":{\"message_id\":1,\"text\":\"x\"}}",
        "{\"update_id\":1,\"callback_query\":{\"data\":\"x\"}}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        ck_assert_int_eq(norm(NULL, cases[i], strlen(cases[i]), &out, err, sizeof err), OH_EINVAL);
        ck_assert_msg(err[0], "case %zu has no reason", i);
        ck_assert_uint_eq(out.n, 0);
    }
}
END_TEST

/* ---- the webhook through the vtable ---- */

static void *tg_instance(void)
{
    char *env[] = {"OMNIHUB_TELEGRAM_SECRET_TOKEN=s3cr3t-T0ken",
                   "OMNIHUB_TELEGRAM_BOT_TOKEN=123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11", NULL};
    return oh_fixture_instance(&oh_connector_telegram, env);
}

static int post(void *ctx, const char *body, const char *token, struct oh_event_list *out)
{
    return oh_fixture_post(&oh_connector_telegram, ctx, "/webhooks/telegram", body,
                           "x-telegram-bot-api-secret-token", token, out);
}

START_TEST(secret_token)
{
    void *ctx = tg_instance();
    char *path = oh_test_src("tests/data/telegram/message_text.json");
    char *body = oh_test_read(path, NULL);
    struct oh_event_list out = {0};
    ck_assert_int_eq(post(ctx, body, "s3cr3t-T0ken", &out), 0);
    ck_assert_uint_eq(out.n, 1);
    /* the daemon names the account after the bot id in the token */
    ck_assert_str_eq(oh_event_data_str(out.ev[0], "account"), "123456");
    oh_event_list_clear(&out);
    ck_assert_int_eq(post(ctx, body, NULL, &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "", &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "s3cr3t-T0keN", &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "s3cr3t-T0ken ", &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "s3cr3t", &out), OH_EAUTH);
    ck_assert_uint_eq(out.n, 0);
    /* a bad body with the right token is a 400, not a 401 */
    ck_assert_int_eq(post(ctx, "{\"nope\":1}", "s3cr3t-T0ken", &out), OH_EINVAL);
    free(body);
    free(path);
    oh_connector_telegram.destroy(ctx);
}
END_TEST

START_TEST(init_requires_secrets)
{
    char *only_secret[] = {"OMNIHUB_TELEGRAM_SECRET_TOKEN=s", NULL};
    char *only_bot[] = {"OMNIHUB_TELEGRAM_BOT_TOKEN=1:x", NULL};
    oh_fixture_init_fails(&oh_connector_telegram, only_secret, "telegram.bot_token");
    oh_fixture_init_fails(&oh_connector_telegram, only_bot, "telegram.secret_token");
    oh_connector_telegram.destroy(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("telegram");
    TCase *tc = tcase_create("telegram");
    tcase_add_test(tc, fixtures_match_expectations);
    tcase_add_test(tc, ids_and_conversations);
    tcase_add_test(tc, message_refs);
    tcase_add_test(tc, bad_payloads);
    tcase_add_test(tc, secret_token);
    tcase_add_test(tc, init_requires_secrets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
