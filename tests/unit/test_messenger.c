/* test_messenger.c - the Meta social connectors (messenger, instagram):
 * every fixture normalized and checked, signatures, challenges, echoes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/connector.h"
#include "core/crypto.h"
#include "tap.h"
#include "fixture.h"

/* A fixture's bytes (caller frees). */
static char *fixture(const char *rel)
{
    char *path = oh_test_src(rel);
    char *body = oh_test_read(path, NULL);
    ck_assert_msg(body, "cannot read %s", path);
    free(path);
    return body;
}

static const struct oh_norm_ctx nc0 = {.account = NULL, .now_ms = 1700000000000};

static int normalize(const char *channel, const char *body, struct oh_event_list *out, char *err,
                     size_t errlen)
{
    const struct oh_connector *c = oh_connector_find(channel);
    ck_assert_ptr_nonnull(c);
    return c->normalize(&nc0, (const uint8_t *)body, strlen(body), out, err, errlen);
}

/* one conversation per (channel, account, contact) */
static void conversation_per_contact(const char *channel, const char *name,
                                     const struct oh_event_list *out)
{
    (void)name;
    for (size_t i = 0; i < out->n; i++) {
        const json_t *data = oh_event_data(out->ev[i]);
        char conv[OH_ID_MAX];
        oh_conversation_id(
            conv, channel, json_string_value(json_object_get(data, "account")),
            json_string_value(json_object_get(json_object_get(data, "contact"), "id")));
        ck_assert_str_eq(oh_event_subject(out->ev[i]), conv);
    }
}

START_TEST(messenger_fixtures)
{
    ck_assert_int_ge(oh_fixture_check_dir("messenger", ".json", NULL, conversation_per_contact),
                     12);
}
END_TEST

START_TEST(instagram_fixtures)
{
    ck_assert_int_ge(oh_fixture_check_dir("instagram", ".json", NULL, conversation_per_contact),
                     10);
}
END_TEST

START_TEST(bad_input)
{
    static const char *const bad[] = {
        "not json",
        "[]",
        "{\"object\":\"instagram\",\"entry\":[]}", /* the other platform's object */
        "{\"object\":\"page\"}",
        "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":[{\"sender\":{\"id\":\"2\"},"
        "\"recipient\":{\"id\":\"1\"},\"message\":{\"text\":\"no mid\"}}]}]}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(bad); i++) {
        struct oh_event_list out = {0};
        char err[256] = "";
        ck_assert_int_eq(normalize("messenger", bad[i], &out, err, sizeof err), OH_EINVAL);
        ck_assert_msg(*err, "no reason for %s", bad[i]);
        ck_assert_uint_eq(out.n, 0);
    }
    /* a good item before a bad one: nothing of the delivery is kept */
    struct oh_event_list out = {0};
    char err[256];
    ck_assert_int_eq(
        normalize("messenger",
                  "{\"object\":\"page\",\"entry\":[{\"id\":\"1\",\"messaging\":["
                  "{\"sender\":{\"id\":\"2\"},\"recipient\":{\"id\":\"1\"},\"timestamp\":1,"
                  "\"message\":{\"mid\":\"m1\",\"text\":\"ok\"}},"
                  "{\"sender\":{\"id\":\"2\"},\"recipient\":{\"id\":\"1\"},\"message\":{}}]}]}",
                  &out, err, sizeof err),
        OH_EINVAL);
    ck_assert_uint_eq(out.n, 0);
}
END_TEST

START_TEST(account_override)
{
    struct oh_norm_ctx nc = {.account = "override", .now_ms = 1};
    const struct oh_connector *c = oh_connector_find("messenger");
    char *body = fixture("tests/data/messenger/text.json");
    struct oh_event_list out = {0};
    char err[256];
    ck_assert_int_eq(c->normalize(&nc, (uint8_t *)body, strlen(body), &out, err, sizeof err), 0);
    ck_assert_str_eq(oh_event_data_str(out.ev[0], "account"), "override");
    oh_event_list_clear(&out);
    free(body);
}
END_TEST

/* ---- the webhook: challenge, signature, echo filtering ----------------- */

static void *start(const char *channel, const char *app_id)
{
    char *env[8] = {NULL};
    size_t n = 0;
    const char *up = strcmp(channel, "messenger") == 0 ? "MESSENGER" : "INSTAGRAM";
    if (asprintf(&env[n++], "OMNIHUB_%s_APP_SECRET=s3cret", up) < 0 ||
        asprintf(&env[n++], "OMNIHUB_%s_VERIFY_TOKEN=vt-123", up) < 0 ||
        asprintf(&env[n++], "OMNIHUB_%s_ACCESS_TOKEN=EAAtoken", up) < 0)
        abort();
    if (app_id && asprintf(&env[n++], "OMNIHUB_%s_APP_ID=%s", up, app_id) < 0) abort();
    void *ctx = oh_fixture_instance(oh_connector_find(channel), env);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    return ctx;
}

static int post(const char *channel, void *ctx, const char *body, const char *sig,
                struct oh_event_list *out)
{
    return oh_fixture_post(oh_connector_find(channel), ctx, "/webhooks/x", body,
                           "x-hub-signature-256", sig, out);
}

START_TEST(init_requires_secrets)
{
    static char *env[] = {"OMNIHUB_MESSENGER_APP_SECRET=s", NULL};
    oh_fixture_init_fails(oh_connector_find("messenger"), env, "messenger.verify_token");
}
END_TEST

START_TEST(challenge)
{
    const struct oh_connector *c = oh_connector_find("instagram");
    void *ctx = start("instagram", NULL);
    struct {
        const char *query;
        int rc;
    } cases[] = {
        {"hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=1158201444", 0},
        {"hub.mode=subscribe&hub.verify_token=vt-124&hub.challenge=1158201444", OH_EFORBIDDEN},
        {"hub.mode=unsubscribe&hub.verify_token=vt-123&hub.challenge=1158201444", OH_EFORBIDDEN},
        {"hub.mode=subscribe&hub.challenge=1158201444", OH_EFORBIDDEN},
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++) {
        struct oh_http_reply reply;
        struct oh_event_list out = {0};
        ck_assert_int_eq(oh_fixture_webhook(c, ctx, "GET", "/webhooks/instagram", cases[i].query,
                                            "", "x-hub-signature-256", NULL, &out, &reply),
                         cases[i].rc);
        if (cases[i].rc == 0) {
            ck_assert_int_eq(reply.status, 200);
            ck_assert_str_eq(reply.content_type, "text/plain");
            ck_assert_str_eq(reply.body, "1158201444");
        }
        free(reply.body);
        ck_assert_uint_eq(out.n, 0);
    }
    c->destroy(ctx);
}
END_TEST

START_TEST(signature)
{
    void *ctx = start("messenger", NULL);
    char *body = fixture("tests/data/messenger/text.json");
    char good[72], other[72];
    oh_sig_make_hex("s3cret", body, strlen(body), good);
    oh_sig_make_hex("wrong", body, strlen(body), other);
    struct oh_event_list out = {0};
    ck_assert_int_eq(post("messenger", ctx, body, NULL, &out), OH_EAUTH);
    ck_assert_int_eq(post("messenger", ctx, body, other, &out), OH_EAUTH);
    ck_assert_int_eq(post("messenger", ctx, body, "sha256=", &out), OH_EAUTH);
    ck_assert_int_eq(post("messenger", ctx, body, good + 7, &out), OH_EAUTH); /* no prefix */
    ck_assert_uint_eq(out.n, 0);
    /* one changed byte of the body */
    body[strlen(body) / 2] ^= 1;
    ck_assert_int_eq(post("messenger", ctx, body, good, &out), OH_EAUTH);
    body[strlen(body) / 2] ^= 1;
    ck_assert_int_eq(post("messenger", ctx, body, good, &out), 0);
    ck_assert_uint_eq(out.n, 1);
    ck_assert_str_eq(oh_event_data_str(out.ev[0], "text"), "hello, world!");
    oh_event_list_clear(&out);
    free(body);
    oh_connector_find("messenger")->destroy(ctx);
}
END_TEST

START_TEST(echo_of_our_app)
{
    char *body = fixture("tests/data/messenger/echo.json");
    char sig[72];
    oh_sig_make_hex("s3cret", body, strlen(body), sig);
    struct oh_event_list out = {0};
    /* the echo's app_id (the Page inbox) is not ours: recorded as the page's */
    void *ctx = start("messenger", "1517776481860111");
    ck_assert_int_eq(post("messenger", ctx, body, sig, &out), 0);
    ck_assert_uint_eq(out.n, 1);
    ck_assert_str_eq(oh_event_get_type(out.ev[0]), OH_EV_OUTBOUND);
    oh_event_list_clear(&out);
    oh_connector_find("messenger")->destroy(ctx);
    /* configured as our app: the echo is one of our sends and dropped */
    ctx = start("messenger", "263902037430900");
    ck_assert_int_eq(post("messenger", ctx, body, sig, &out), 0);
    ck_assert_uint_eq(out.n, 0);
    oh_connector_find("messenger")->destroy(ctx);
    free(body);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("messenger");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, messenger_fixtures);
    tcase_add_test(tc, instagram_fixtures);
    tcase_add_test(tc, bad_input);
    tcase_add_test(tc, account_override);
    tcase_add_test(tc, init_requires_secrets);
    tcase_add_test(tc, challenge);
    tcase_add_test(tc, signature);
    tcase_add_test(tc, echo_of_our_app);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
