/* test_line.c - the LINE connector without sockets: every fixture normalized
 * and checked, X-Line-Signature, the connectivity check and redeliveries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "connectors/line/line.h"

extern const struct oh_connector oh_connector_line;

static int norm(const char *body, size_t len, struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = 1700000000000};
    return oh_connector_line.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

START_TEST(fixtures_match_expectations)
{
    ck_assert_int_ge(oh_fixture_check_dir("line", ".json", NULL, NULL), 12);
}
END_TEST

START_TEST(ids_and_conversations)
{
    struct oh_event_list first = {0}, redelivered = {0}, group = {0}, follow = {0}, unfollow = {0};
    oh_fixture_load("line", "message_text", NULL, &first);
    oh_fixture_load("line", "message_text_redelivery", NULL, &redelivered);
    oh_fixture_load("line", "message_text_group", NULL, &group);
    oh_fixture_load("line", "follow", NULL, &follow);
    oh_fixture_load("line", "unfollow", NULL, &unfollow);
    /* a redelivery is the same event: it is stored once */
    ck_assert_str_eq(oh_event_get_id(first.ev[0]), oh_event_get_id(redelivered.ev[0]));
    ck_assert_str_eq(oh_event_subject(first.ev[0]), oh_event_subject(redelivered.ev[0]));
    /* a group is its own conversation even with the same sender */
    ck_assert_str_ne(oh_event_subject(first.ev[0]), oh_event_subject(group.ev[0]));
    /* follow and unfollow of one user share the conversation, not the id */
    ck_assert_str_eq(oh_event_subject(follow.ev[0]), oh_event_subject(unfollow.ev[0]));
    ck_assert_str_ne(oh_event_get_id(follow.ev[0]), oh_event_get_id(unfollow.ev[0]));
    ck_assert_ptr_null(strstr(oh_event_subject(first.ev[0]), "U4af"));
    ck_assert_str_eq(json_string_value(json_object_get(first.ev[0], "source")),
                     "/omnihub/line/Uc0a1f2e3d4b5a69788796a5b4c3d2e1f");
    oh_event_list_clear(&first);
    oh_event_list_clear(&redelivered);
    oh_event_list_clear(&group);
    oh_event_list_clear(&follow);
    oh_event_list_clear(&unfollow);
}
END_TEST

START_TEST(bad_payloads)
{
    char err[256];
    struct oh_event_list out = {0};
    const char *cases[] = {
        "{\"destination\":\"U1\",\"events\":[",
        "[]",
        "{\"destination\":\"U1\"}",
        "{\"destination\":\"U1\",\"events\":{}}",
        "{\"events\":[{\"type\":\"message\",\"source\":{\"type\":\"user\",\"userId\":\"U2\"},"
        "\"message\":{\"id\":\"1\",\"type\":\"text\",\"text\":\"x\"}}]}",
        "{\"destination\":\"U1\",\"events\":[{\"type\":\"message\",\"source\":{\"type\":\"user\","
        "\"userId\":\"U2\"},\"message\":{\"type\":\"text\",\"text\":\"x\"}}]}",
        "{\"destination\":\"U1\",\"events\":[{\"type\":\"follow\",\"source\":{\"type\":\"user\","
        "\"userId\":\"U2\"}}]}",
        "{\"destination\":\"U1\",\"events\":[7]}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        ck_assert_int_eq(norm(cases[i], strlen(cases[i]), &out, err, sizeof err), OH_EINVAL);
        ck_assert_msg(err[0], "case %zu has no reason", i);
        oh_event_list_clear(&out);
    }
    /* channel events without a chat (botSuspended) are acknowledged, no event */
    const char *susp = "{\"destination\":\"U1\",\"events\":[{\"type\":\"botSuspended\","
                       "\"timestamp\":1,\"mode\":\"active\",\"webhookEventId\":\"01X\","
                       "\"deliveryContext\":{\"isRedelivery\":false}}]}";
    ck_assert_int_eq(norm(susp, strlen(susp), &out, err, sizeof err), 0);
    ck_assert_uint_eq(out.n, 0);
}
END_TEST

/* ---- the webhook through the vtable ---- */

static void *line_instance(void)
{
    char *env[] = {"OMNIHUB_LINE_CHANNEL_SECRET=channel-secret",
                   "OMNIHUB_LINE_ACCESS_TOKEN=line-token", NULL};
    return oh_fixture_instance(&oh_connector_line, env);
}

static int post(void *ctx, const char *body, const char *sig, struct oh_event_list *out)
{
    return oh_fixture_post(&oh_connector_line, ctx, "/webhooks/line", body, "x-line-signature", sig,
                           out);
}

static void sign(const char *secret, const char *body, char out[48])
{
    uint8_t mac[OH_SHA256_LEN];
    oh_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
    oh_base64(mac, sizeof mac, out);
}

START_TEST(signatures)
{
    void *ctx = line_instance();
    char *path = oh_test_src("tests/data/line/message_text.json");
    char *body = oh_test_read(path, NULL);
    char sig[48], other[48];
    sign("channel-secret", body, sig);
    struct oh_event_list out = {0};
    ck_assert_int_eq(post(ctx, body, sig, &out), 0);
    ck_assert_uint_eq(out.n, 1);
    oh_event_list_clear(&out);
    ck_assert_int_eq(post(ctx, body, NULL, &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "", &out), OH_EAUTH);
    sign("other-secret", body, other);
    ck_assert_int_eq(post(ctx, body, other, &out), OH_EAUTH);
    char prefixed[64];
    snprintf(prefixed, sizeof prefixed, "sha256=%s", sig);
    ck_assert_int_eq(post(ctx, body, prefixed, &out), OH_EAUTH);
    body[strlen(body) - 3] = ' ';
    ck_assert_int_eq(post(ctx, body, sig, &out), OH_EAUTH);
    ck_assert_uint_eq(out.n, 0);
    /* the connectivity check: signed, empty, answered with the default 200 */
    const char *check = "{\"destination\":\"Uc0a1f2e3d4b5a69788796a5b4c3d2e1f\",\"events\":[]}";
    sign("channel-secret", check, sig);
    ck_assert_int_eq(post(ctx, check, sig, &out), 0);
    ck_assert_uint_eq(out.n, 0);
    free(body);
    free(path);
    oh_connector_line.destroy(ctx);
}
END_TEST

START_TEST(init_requires_secrets)
{
    char *only_secret[] = {"OMNIHUB_LINE_CHANNEL_SECRET=s", NULL};
    char *only_token[] = {"OMNIHUB_LINE_ACCESS_TOKEN=t", NULL};
    oh_fixture_init_fails(&oh_connector_line, only_secret, "line.access_token");
    oh_fixture_init_fails(&oh_connector_line, only_token, "line.channel_secret");
    oh_connector_line.destroy(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("line");
    TCase *tc = tcase_create("line");
    tcase_add_test(tc, fixtures_match_expectations);
    tcase_add_test(tc, ids_and_conversations);
    tcase_add_test(tc, bad_payloads);
    tcase_add_test(tc, signatures);
    tcase_add_test(tc, init_requires_secrets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
