/* test_whatsapp.c - the WhatsApp connector without sockets: every fixture
 * normalized and checked, signatures, verification, outbound bodies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "hub_fixture.h"
#include "core/connector.h"
#include "core/crypto.h"
#include "store/store.h"
#include "store/store_int.h"
#include "connectors/whatsapp/whatsapp.h"

extern const struct oh_connector oh_connector_whatsapp;

static int norm(const char *body, size_t len, struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = 1700000000000};
    return oh_connector_whatsapp.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

START_TEST(fixtures_match_expectations)
{
    ck_assert_int_ge(oh_fixture_check_dir("whatsapp", ".json", NULL, NULL), 20);
}
END_TEST

static json_t *first_event(const char *fixture)
{
    return oh_fixture_first("whatsapp", fixture, NULL);
}

START_TEST(conversation_ids)
{
    json_t *text = first_event("text"), *read = first_event("status_read");
    /* A status for our message to the customer lands on their conversation. */
    ck_assert_str_eq(oh_event_subject(text), oh_event_subject(read));
    ck_assert_ptr_null(strstr(oh_event_subject(text), "16505551234"));
    struct oh_event_list out = {0};
    oh_fixture_load("whatsapp", "batch", NULL, &out);
    ck_assert_uint_eq(out.n, 5);
    ck_assert_str_eq(oh_event_subject(out.ev[0]), oh_event_subject(text));
    ck_assert_str_ne(oh_event_subject(out.ev[1]), oh_event_subject(text)); /* other customer */
    ck_assert_str_ne(oh_event_subject(out.ev[4]), oh_event_subject(text)); /* other number */
    /* Different states of one message are different events. */
    json_t *sent = first_event("status_sent");
    ck_assert_str_ne(oh_event_get_id(sent), oh_event_get_id(read));
    oh_event_list_clear(&out);
    json_decref(text);
    json_decref(read);
    json_decref(sent);
}
END_TEST

START_TEST(bad_payloads)
{
    char err[256];
    struct oh_event_list out = {0};
    const char *cases[] = {
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\",\"chan",
        "{\"object\":\"page\",\"entry\":[]}",
        "{\"entry\":[]}",
        "[1,2]",
        "{\"object\":\"whatsapp_business_account\",\"entry\":{}}",
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"field\":"
        "\"messages\",\"value\":{\"messages\":[{\"id\":\"x\",\"from\":\"1\"}]}}]}]}",
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(cases); i++) {
        err[0] = '\0';
        ck_assert_int_eq(norm(cases[i], strlen(cases[i]), &out, err, sizeof err), OH_EINVAL);
        ck_assert_msg(err[0], "case %zu has no reason", i);
        ck_assert_uint_eq(out.n, 0);
    }
    /* A malformed item is skipped; the rest of the delivery comes through. */
    const char *mixed = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{"
                        "\"value\":{\"metadata\":{\"phone_number_id\":\"1\"},\"messages\":["
                        "{\"id\":\"wamid.A\"},{\"from\":\"2\",\"id\":\"wamid.B\",\"type\":"
                        "\"text\",\"text\":{\"body\":\"ok\"}}]}}]}]}";
    ck_assert_int_eq(norm(mixed, strlen(mixed), &out, err, sizeof err), 0);
    ck_assert_uint_eq(out.n, 1);
    ck_assert_str_eq(oh_event_data_str(out.ev[0], "message_id"), "wamid.B");
    oh_event_list_clear(&out);
    /* Other webhook fields are acknowledged and produce nothing. */
    const char *other =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"1\","
        "\"changes\":[{\"field\":\"account_update\",\"value\":{\"event\":\"X\"}}]}]}";
    ck_assert_int_eq(norm(other, strlen(other), &out, err, sizeof err), 0);
    ck_assert_uint_eq(out.n, 0);
}
END_TEST

/* Out-of-order statuses (read before delivered) and Meta's retries, through
 * the real SQLite store: all recorded, the shown state never goes back. */
START_TEST(statuses_in_the_store)
{
    char *tmp = oh_test_tmpdir();
    oh_config *cfg = oh_test_cfg(tmp, NULL);
    oh_store *st = oh_test_store_open(cfg);
    const char *order[] = {"status_sent", "status_read", "status_delivered", "status_read"};
    int64_t seqs[4];
    const char *conv = NULL;
    for (int i = 0; i < 4; i++) {
        json_t *ev = first_event(order[i]);
        struct oh_store_item item = {.event = ev, .src_partition = 0, .src_offset = i};
        struct oh_store_pos pos = {"events", 0, i + 1};
        ck_assert_int_eq(oh_store_materialize(st, "omnihub-sync", &item, 1, &pos, 1), 0);
        seqs[i] = item.seq;
        char state[16];
        conv = oh_event_subject(ev);
        ck_assert_int_eq(
            oh_store_message_state(
                st, conv, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI4QzUxNzE2MzYyQTdCMjIyNDAA", state),
            0);
        ck_assert_str_eq(state, i == 0 ? "sent" : "read");
        json_decref(ev);
    }
    ck_assert_int_eq(seqs[0], 1);
    ck_assert_int_eq(seqs[1], 2);
    ck_assert_int_eq(seqs[2], 3); /* delivered after read: recorded as it came */
    ck_assert_int_eq(seqs[3], 0); /* Meta's retry of "read": dropped */
    oh_store_close(st);
    oh_config_free(cfg);
    free(tmp);
}
END_TEST

/* ---- the webhook through the vtable ---- */

static void *wa_instance(void)
{
    char *env[] = {"OMNIHUB_WHATSAPP_APP_SECRET=app-secret",
                   "OMNIHUB_WHATSAPP_VERIFY_TOKEN=verify-me",
                   "OMNIHUB_WHATSAPP_ACCESS_TOKEN=EAAtoken", NULL};
    return oh_fixture_instance(&oh_connector_whatsapp, env);
}

static int post(void *ctx, const char *body, const char *sig, struct oh_event_list *out)
{
    return oh_fixture_post(&oh_connector_whatsapp, ctx, "/webhooks/whatsapp", body,
                           "x-hub-signature-256", sig, out);
}

START_TEST(signatures)
{
    void *ctx = wa_instance();
    char *path = oh_test_src("tests/data/whatsapp/text.json");
    char *body = oh_test_read(path, NULL);
    char sig[72], upper[72];
    oh_sig_make_hex("app-secret", body, strlen(body), sig);
    struct oh_event_list out = {0};
    ck_assert_int_eq(post(ctx, body, sig, &out), 0);
    ck_assert_uint_eq(out.n, 1);
    oh_event_list_clear(&out);
    ck_assert_int_eq(post(ctx, body, NULL, &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, "", &out), OH_EAUTH);
    oh_sig_make_hex("other-secret", body, strlen(body), upper);
    ck_assert_int_eq(post(ctx, body, upper, &out), OH_EAUTH);
    ck_assert_int_eq(post(ctx, body, sig + 7, &out), OH_EAUTH); /* no "sha256=" */
    /* One changed byte of the body (a re-serialization would do that). */
    body[strlen(body) - 3] = ' ';
    ck_assert_int_eq(post(ctx, body, sig, &out), OH_EAUTH);
    ck_assert_uint_eq(out.n, 0);
    free(body);
    free(path);
    oh_connector_whatsapp.destroy(ctx);
}
END_TEST

static int get(void *ctx, const char *query, struct oh_http_reply *reply)
{
    struct oh_event_list out = {0};
    return oh_fixture_webhook(&oh_connector_whatsapp, ctx, "GET", "/webhooks/whatsapp", query, NULL,
                              "x-hub-signature-256", NULL, &out, reply);
}

START_TEST(verification)
{
    void *ctx = wa_instance();
    struct oh_http_reply r;
    ck_assert_int_eq(
        get(ctx, "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me", &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.content_type, "text/plain");
    ck_assert_str_eq(r.body, "1158201444");
    free(r.body);
    ck_assert_int_eq(
        get(ctx, "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=wrong", &r),
        OH_EFORBIDDEN);
    ck_assert_int_eq(get(ctx, "hub.mode=subscribe&hub.challenge=1", &r), OH_EFORBIDDEN);
    ck_assert_int_eq(
        get(ctx, "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=verify-me", &r),
        OH_EFORBIDDEN);
    oh_connector_whatsapp.destroy(ctx);
}
END_TEST

START_TEST(init_requires_secrets)
{
    char *env[] = {"OMNIHUB_WHATSAPP_APP_SECRET=s", "OMNIHUB_WHATSAPP_VERIFY_TOKEN=v", NULL};
    oh_fixture_init_fails(&oh_connector_whatsapp, env, "whatsapp.access_token");
}
END_TEST

/* ---- outbound request bodies ---- */

static json_t *body_for(const char *data_json, char *code, char *err)
{
    json_t *data = json_loads(data_json, 0, NULL);
    ck_assert_ptr_nonnull(data);
    code[0] = err[0] = '\0';
    json_t *b = wa_send_body(data, code, 64, err, 512);
    json_decref(data);
    return b;
}

START_TEST(send_bodies)
{
    char code[64], err[512];
    json_t *b = body_for("{\"contact\":{\"id\":\"16505551234\"},\"text\":\"Hi there\","
                         "\"reply_to\":\"wamid.X\"}",
                         code, err);
    json_t *want = json_loads("{\"messaging_product\":\"whatsapp\",\"recipient_type\":"
                              "\"individual\",\"to\":\"16505551234\",\"type\":\"text\",\"text\":"
                              "{\"preview_url\":false,\"body\":\"Hi there\"},\"context\":"
                              "{\"message_id\":\"wamid.X\"}}",
                              0, NULL);
    ck_assert(json_equal(b, want));
    json_decref(b);
    json_decref(want);

    b = body_for("{\"contact\":{\"id\":\"1\"},\"template\":{\"name\":\"order_update\","
                 "\"language\":\"en_US\",\"parameters\":[\"Sheena\",42]}}",
                 code, err);
    want = json_loads("{\"name\":\"order_update\",\"language\":{\"code\":\"en_US\"},\"components\":"
                      "[{\"type\":\"body\",\"parameters\":[{\"type\":\"text\",\"text\":\"Sheena\"},"
                      "{\"type\":\"text\",\"text\":\"42\"}]}]}",
                      0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "template");
    ck_assert(json_equal(json_object_get(b, "template"), want));
    json_decref(b);
    json_decref(want);

    b = body_for("{\"contact\":{\"id\":\"1\"},\"text\":\"the invoice\",\"attachments\":[{\"kind\":"
                 "\"document\",\"url\":\"https://x.example/a.pdf\",\"filename\":\"a.pdf\"}]}",
                 code, err);
    want = json_loads("{\"link\":\"https://x.example/a.pdf\",\"caption\":\"the invoice\","
                      "\"filename\":\"a.pdf\"}",
                      0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(b, "type")), "document");
    ck_assert(json_equal(json_object_get(b, "document"), want));
    json_decref(b);
    json_decref(want);

    /* 4,096 characters (not bytes) pass, one more is refused. */
    size_t n = 4096;
    char *text = malloc(n * 2 + 64);
    strcpy(text, "{\"contact\":{\"id\":\"1\"},\"text\":\"");
    char *p = text + strlen(text);
    for (size_t i = 0; i < n; i++, p += 2)
        memcpy(p, "\xc3\xa9", 2);
    strcpy(p, "\"}");
    b = body_for(text, code, err);
    ck_assert_ptr_nonnull(b);
    json_decref(b);
    strcpy(p, "e\"}");
    ck_assert_ptr_null(body_for(text, code, err));
    ck_assert_str_eq(code, "text_too_long");
    ck_assert_ptr_nonnull(strstr(err, "4096"));
    free(text);

    ck_assert_ptr_null(body_for("{\"contact\":{\"id\":\"1\"},\"text\":\"\"}", code, err));
    ck_assert_str_eq(code, "empty_message");
    ck_assert_ptr_null(
        body_for("{\"contact\":{\"id\":\"1\"},\"template\":{\"name\":\"x\"}}", code, err));
    ck_assert_str_eq(code, "invalid_template");
    ck_assert_ptr_null(body_for("{\"text\":\"hi\"}", code, err));
    ck_assert_str_eq(code, "invalid_recipient");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("whatsapp");
    TCase *tc = tcase_create("whatsapp");
    tcase_add_test(tc, fixtures_match_expectations);
    tcase_add_test(tc, conversation_ids);
    tcase_add_test(tc, bad_payloads);
    tcase_add_test(tc, statuses_in_the_store);
    tcase_add_test(tc, signatures);
    tcase_add_test(tc, verification);
    tcase_add_test(tc, init_requires_secrets);
    tcase_add_test(tc, send_bodies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
