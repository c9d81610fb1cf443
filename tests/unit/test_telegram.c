/* test_telegram.c - the Telegram connector without sockets: every fixture
 * normalized and checked, the secret token check, ids and message refs. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "connector.h"
#include "crypto.h"
#include "connectors/telegram/telegram.h"

extern const struct oh_connector oh_connector_telegram;

/* Every key of WANT is in GOT with an equal value; lists element-wise. */
static bool subset(const json_t *want, const json_t *got, char *path, size_t plen)
{
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(got)) return false;
        json_object_foreach((json_t *)want, k, v)
        {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, ".%s", k);
            if (!subset(v, json_object_get(got, k), path, plen)) return false;
            path[n] = '\0';
        }
        return true;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want)) return false;
        for (size_t i = 0; i < json_array_size(want); i++) {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, "[%zu]", i);
            if (!subset(json_array_get(want, i), json_array_get(got, i), path, plen)) return false;
            path[n] = '\0';
        }
        return true;
    }
    return got && json_equal((json_t *)want, (json_t *)got);
}

static int norm(const char *account, const char *body, size_t len, struct oh_event_list *out,
                char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = account, .now_ms = 1700000000000};
    return oh_connector_telegram.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

START_TEST(fixtures_match_expectations)
{
    char *dir = oh_test_src("tests/data/telegram");
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int cases = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") || strstr(de->d_name, ".expect."))
            continue;
        char path[1024], epath[1024], err[256] = "";
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(epath, sizeof epath, "%s/%.*s.expect.json", dir, (int)(n - 5), de->d_name);
        size_t len;
        char *body = oh_test_read(path, &len);
        json_t *want = json_load_file(epath, 0, NULL);
        ck_assert_msg(body && want, "%s: fixture or expectation missing", de->d_name);
        struct oh_event_list out = {0};
        ck_assert_msg(norm(NULL, body, len, &out, err, sizeof err) == 0, "%s: %s", de->d_name, err);
        json_t *got = json_array();
        for (size_t i = 0; i < out.n; i++) {
            ck_assert_msg(oh_event_validate(out.ev[i], err, sizeof err) == 0, "%s: %s", de->d_name,
                          err);
            /* without --account the bot is "bot" */
            ck_assert_str_eq(oh_event_data_str(out.ev[i], "account"), "bot");
            json_array_append(got, out.ev[i]);
        }
        if (json_is_object(want)) want = json_pack("[o]", want);
        char where[512] = "";
        char *dump = json_dumps(got, JSON_INDENT(1));
        ck_assert_msg(subset(want, got, where, sizeof where), "%s: mismatch at %s\n%s", de->d_name,
                      where, dump);
        free(dump);
        /* Telegram's retries of the same update give the same ids. */
        struct oh_event_list again = {0};
        ck_assert_int_eq(norm(NULL, body, len, &again, err, sizeof err), 0);
        ck_assert_uint_eq(again.n, out.n);
        for (size_t i = 0; i < out.n; i++)
            ck_assert_str_eq(oh_event_get_id(out.ev[i]), oh_event_get_id(again.ev[i]));
        oh_event_list_clear(&again);
        oh_event_list_clear(&out);
        json_decref(got);
        json_decref(want);
        free(body);
        cases++;
    }
    closedir(d);
    free(dir);
    ck_assert_int_ge(cases, 15);
}
END_TEST

static json_t *first_event(const char *account, const char *fixture)
{
    char rel[256], err[256];
    snprintf(rel, sizeof rel, "tests/data/telegram/%s.json", fixture);
    char *path = oh_test_src(rel);
    size_t len;
    char *body = oh_test_read(path, &len);
    ck_assert_ptr_nonnull(body);
    struct oh_event_list out = {0};
    ck_assert_int_eq(norm(account, body, len, &out, err, sizeof err), 0);
    ck_assert_uint_ge(out.n, 1);
    json_t *ev = json_incref(out.ev[0]);
    oh_event_list_clear(&out);
    free(body);
    free(path);
    return ev;
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

struct fake_req {
    struct oh_http_req req;
    const char *token;
};

static const char *fake_header(const struct oh_http_req *req, const char *name)
{
    const struct fake_req *f = (const struct fake_req *)req;
    return strcmp(name, "x-telegram-bot-api-secret-token") == 0 ? f->token : NULL;
}

static void *tg_instance(void)
{
    const struct oh_config_key *tables[] = {oh_connector_telegram.config_keys, NULL};
    char *env[] = {"OMNIHUB_TELEGRAM_SECRET_TOKEN=s3cr3t-T0ken",
                   "OMNIHUB_TELEGRAM_BOT_TOKEN=123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11", NULL};
    char err[256];
    oh_config *cfg = oh_config_load(NULL, tables, env, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    void *ctx = NULL;
    ck_assert_msg(oh_connector_telegram.init(NULL, cfg, &ctx, err, sizeof err) == 0, "%s", err);
    oh_config_free(cfg);
    return ctx;
}

static int post(void *ctx, const char *body, const char *token, struct oh_event_list *out)
{
    struct fake_req f = {
        {"POST", "/webhooks/telegram", "", (const uint8_t *)body, strlen(body), fake_header, NULL},
        token};
    struct oh_http_reply reply = {0};
    char err[256];
    int rc = oh_connector_telegram.webhook(ctx, &f.req, out, &reply, err, sizeof err);
    ck_assert_int_eq(reply.status, 0);
    return rc;
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
    const struct oh_config_key *tables[] = {oh_connector_telegram.config_keys, NULL};
    char *only_secret[] = {"OMNIHUB_TELEGRAM_SECRET_TOKEN=s", NULL};
    char *only_bot[] = {"OMNIHUB_TELEGRAM_BOT_TOKEN=1:x", NULL};
    char *const *envs[] = {only_secret, only_bot};
    const char *missing[] = {"telegram.bot_token", "telegram.secret_token"};
    for (size_t i = 0; i < 2; i++) {
        char err[256] = "";
        oh_config *cfg = oh_config_load(NULL, tables, envs[i], err, sizeof err);
        ck_assert_ptr_nonnull(cfg);
        void *ctx = NULL;
        ck_assert_int_ne(oh_connector_telegram.init(NULL, cfg, &ctx, err, sizeof err), 0);
        ck_assert_ptr_nonnull(strstr(err, missing[i]));
        ck_assert_ptr_null(ctx);
        oh_config_free(cfg);
    }
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
