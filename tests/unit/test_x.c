/* test_x.c - the X connector without sockets: every fixture normalized and
 * checked, the CRC answer, x-twitter-webhooks-signature, echo handling. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "connectors/x/x.h"

extern const struct oh_connector oh_connector_x;

static int norm(const char *body, size_t len, struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = 1700000000000};
    return oh_connector_x.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

START_TEST(fixtures_match_expectations)
{
    ck_assert_int_ge(oh_fixture_check_dir("x", ".json", NULL, NULL), 6);
}
END_TEST

START_TEST(directions_share_the_conversation)
{
    struct oh_event_list in = {0}, out = {0};
    oh_fixture_load("x", "dm_inbound", NULL, &in);
    oh_fixture_load("x", "dm_outbound", NULL, &out);
    /* the customer's DM and the account's answer are one conversation */
    ck_assert_str_eq(oh_event_subject(in.ev[0]), oh_event_subject(out.ev[0]));
    ck_assert_str_eq(oh_event_get_type(in.ev[0]), OH_EV_INBOUND);
    ck_assert_str_eq(oh_event_get_type(out.ev[0]), OH_EV_OUTBOUND);
    ck_assert_str_eq(json_string_value(json_object_get(in.ev[0], "source")),
                     "/omnihub/x/4337869213");
    ck_assert_ptr_null(strstr(oh_event_subject(in.ev[0]), "3001969357"));
    oh_event_list_clear(&in);
    oh_event_list_clear(&out);
}
END_TEST

START_TEST(bad_payloads)
{
    char err[256];
    struct oh_event_list out = {0};
    const char *cases[] = {
        "{\"for_user_id\":\"1\",\"direct_message_events\":[",
        "[]",
        "{\"direct_message_events\":[]}",
        "{\"for_user_id\":\"1\",\"direct_message_events\":[{\"type\":\"message_create\","
        "\"id\":\"5\",\"message_create\":{\"sender_id\":\"2\"}}]}",
        "{\"for_user_id\":\"1\",\"direct_message_events\":[{\"type\":\"message_create\","
        "\"message_create\":{\"sender_id\":\"2\",\"target\":{\"recipient_id\":\"1\"}}}]}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        ck_assert_int_eq(norm(cases[i], strlen(cases[i]), &out, err, sizeof err), OH_EINVAL);
        ck_assert_msg(err[0], "case %zu has no reason", i);
        oh_event_list_clear(&out);
    }
    const char *tweets = "{\"for_user_id\":\"1\",\"tweet_create_events\":[{\"id_str\":\"9\"}]}";
    ck_assert_int_eq(norm(tweets, strlen(tweets), &out, err, sizeof err), 0);
    ck_assert_uint_eq(out.n, 0);
}
END_TEST

/* ---- the webhook through the vtable ---- */

static void *x_instance(const char *app_id)
{
    char app[64];
    snprintf(app, sizeof app, "OMNIHUB_X_APP_ID=%s", app_id ? app_id : "");
    char *env[] = {"OMNIHUB_X_CONSUMER_SECRET=consumer-secret", "OMNIHUB_X_ACCESS_TOKEN=x-token",
                   app_id ? app : NULL, NULL};
    return oh_fixture_instance(&oh_connector_x, env);
}

static int call(void *ctx, const char *method, const char *query, const char *body, const char *sig,
                struct oh_event_list *out, struct oh_http_reply *reply)
{
    return oh_fixture_webhook(&oh_connector_x, ctx, method, "/webhooks/x", query, body,
                              "x-twitter-webhooks-signature", sig, out, reply);
}

START_TEST(crc_challenge)
{
    void *ctx = x_instance(NULL);
    struct oh_event_list out = {0};
    struct oh_http_reply r;
    ck_assert_int_eq(call(ctx, "GET", "crc_token=abc%2B123", NULL, NULL, &out, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "application/json");
    char want[64];
    x_sign("consumer-secret", "abc+123", 7, want);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "response_token")), want);
    ck_assert_int_eq(strncmp(want, "sha256=", 7), 0);
    ck_assert_uint_eq(strlen(want), 7 + 44);
    json_decref(j);
    free(r.body);
    ck_assert_int_eq(call(ctx, "GET", "", NULL, NULL, &out, &r), OH_EINVAL);
    ck_assert_int_eq(call(ctx, "GET", "crc_token=", NULL, NULL, &out, &r), OH_EINVAL);
    oh_connector_x.destroy(ctx);
}
END_TEST

START_TEST(signatures)
{
    void *ctx = x_instance(NULL);
    char *path = oh_test_src("tests/data/x/dm_inbound.json");
    char *body = oh_test_read(path, NULL);
    char sig[64], other[64];
    x_sign("consumer-secret", body, strlen(body), sig);
    struct oh_event_list out = {0};
    struct oh_http_reply r;
    ck_assert_int_eq(call(ctx, "POST", "", body, sig, &out, &r), 0);
    ck_assert_int_eq(r.status, 0);
    ck_assert_uint_eq(out.n, 1);
    oh_event_list_clear(&out);
    ck_assert_int_eq(call(ctx, "POST", "", body, NULL, &out, &r), OH_EAUTH);
    ck_assert_int_eq(call(ctx, "POST", "", body, "", &out, &r), OH_EAUTH);
    ck_assert_int_eq(call(ctx, "POST", "", body, sig + 7, &out, &r), OH_EAUTH);
    x_sign("other-secret", body, strlen(body), other);
    ck_assert_int_eq(call(ctx, "POST", "", body, other, &out, &r), OH_EAUTH);
    body[strlen(body) - 3] = ' ';
    ck_assert_int_eq(call(ctx, "POST", "", body, sig, &out, &r), OH_EAUTH);
    ck_assert_uint_eq(out.n, 0);
    free(body);
    free(path);
    oh_connector_x.destroy(ctx);
}
END_TEST

START_TEST(echoes_of_our_app_are_skipped)
{
    char *path = oh_test_src("tests/data/x/dm_outbound.json");
    char *body = oh_test_read(path, NULL);
    char sig[64];
    x_sign("consumer-secret", body, strlen(body), sig);
    struct oh_event_list out = {0};
    struct oh_http_reply r;
    /* written in the X app (another app id): kept as an outbound event */
    void *ctx = x_instance("999");
    ck_assert_int_eq(call(ctx, "POST", "", body, sig, &out, &r), 0);
    ck_assert_uint_eq(out.n, 1);
    oh_event_list_clear(&out);
    oh_connector_x.destroy(ctx);
    /* sent by our own app through the API: already in the history */
    ctx = x_instance("13090192");
    ck_assert_int_eq(call(ctx, "POST", "", body, sig, &out, &r), 0);
    ck_assert_uint_eq(out.n, 0);
    oh_connector_x.destroy(ctx);
    free(body);
    free(path);
}
END_TEST

START_TEST(init_requires_secrets)
{
    char *only_secret[] = {"OMNIHUB_X_CONSUMER_SECRET=s", NULL};
    char *only_token[] = {"OMNIHUB_X_ACCESS_TOKEN=t", NULL};
    oh_fixture_init_fails(&oh_connector_x, only_secret, "x.access_token");
    oh_fixture_init_fails(&oh_connector_x, only_token, "x.consumer_secret");
    oh_connector_x.destroy(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("x");
    TCase *tc = tcase_create("x");
    tcase_add_test(tc, fixtures_match_expectations);
    tcase_add_test(tc, directions_share_the_conversation);
    tcase_add_test(tc, bad_payloads);
    tcase_add_test(tc, crc_challenge);
    tcase_add_test(tc, signatures);
    tcase_add_test(tc, echoes_of_our_app_are_skipped);
    tcase_add_test(tc, init_requires_secrets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
