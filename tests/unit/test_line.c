/* test_line.c - the LINE connector without sockets: every fixture normalized
 * and checked, X-Line-Signature, the connectivity check and redeliveries. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "connector.h"
#include "crypto.h"
#include "connectors/line/line.h"

extern const struct oh_connector oh_connector_line;

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

static int norm(const char *body, size_t len, struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = NULL, .now_ms = 1700000000000};
    return oh_connector_line.normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

START_TEST(fixtures_match_expectations)
{
    char *dir = oh_test_src("tests/data/line");
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
        ck_assert_msg(norm(body, len, &out, err, sizeof err) == 0, "%s: %s", de->d_name, err);
        json_t *got = json_array();
        for (size_t i = 0; i < out.n; i++) {
            ck_assert_msg(oh_event_validate(out.ev[i], err, sizeof err) == 0, "%s: %s", de->d_name,
                          err);
            json_array_append(got, out.ev[i]);
        }
        if (json_is_object(want)) want = json_pack("[o]", want);
        char where[512] = "";
        char *dump = json_dumps(got, JSON_INDENT(1));
        ck_assert_msg(subset(want, got, where, sizeof where), "%s: mismatch at %s\n%s", de->d_name,
                      where, dump);
        free(dump);
        oh_event_list_clear(&out);
        json_decref(got);
        json_decref(want);
        free(body);
        cases++;
    }
    closedir(d);
    free(dir);
    ck_assert_int_ge(cases, 12);
}
END_TEST

static void load(const char *fixture, struct oh_event_list *out)
{
    char rel[256], err[256];
    snprintf(rel, sizeof rel, "tests/data/line/%s.json", fixture);
    char *path = oh_test_src(rel);
    size_t len;
    char *body = oh_test_read(path, &len);
    ck_assert_ptr_nonnull(body);
    ck_assert_int_eq(norm(body, len, out, err, sizeof err), 0);
    free(body);
    free(path);
}

START_TEST(ids_and_conversations)
{
    struct oh_event_list first = {0}, redelivered = {0}, group = {0}, follow = {0}, unfollow = {0};
    load("message_text", &first);
    load("message_text_redelivery", &redelivered);
    load("message_text_group", &group);
    load("follow", &follow);
    load("unfollow", &unfollow);
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

struct fake_req {
    struct oh_http_req req;
    const char *sig;
};

static const char *fake_header(const struct oh_http_req *req, const char *name)
{
    const struct fake_req *f = (const struct fake_req *)req;
    return strcmp(name, "x-line-signature") == 0 ? f->sig : NULL;
}

static void *line_instance(void)
{
    const struct oh_config_key *tables[] = {oh_connector_line.config_keys, NULL};
    char *env[] = {"OMNIHUB_LINE_CHANNEL_SECRET=channel-secret",
                   "OMNIHUB_LINE_ACCESS_TOKEN=line-token", NULL};
    char err[256];
    oh_config *cfg = oh_config_load(NULL, tables, env, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    void *ctx = NULL;
    ck_assert_msg(oh_connector_line.init(NULL, cfg, &ctx, err, sizeof err) == 0, "%s", err);
    oh_config_free(cfg);
    return ctx;
}

static int post(void *ctx, const char *body, const char *sig, struct oh_event_list *out)
{
    struct fake_req f = {
        {"POST", "/webhooks/line", "", (const uint8_t *)body, strlen(body), fake_header, NULL},
        sig};
    struct oh_http_reply reply = {0};
    char err[256];
    int rc = oh_connector_line.webhook(ctx, &f.req, out, &reply, err, sizeof err);
    ck_assert_int_eq(reply.status, 0);
    return rc;
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
    const struct oh_config_key *tables[] = {oh_connector_line.config_keys, NULL};
    char *only_secret[] = {"OMNIHUB_LINE_CHANNEL_SECRET=s", NULL};
    char *only_token[] = {"OMNIHUB_LINE_ACCESS_TOKEN=t", NULL};
    char *const *envs[] = {only_secret, only_token};
    const char *missing[] = {"line.access_token", "line.channel_secret"};
    for (size_t i = 0; i < 2; i++) {
        char err[256] = "";
        oh_config *cfg = oh_config_load(NULL, tables, envs[i], err, sizeof err);
        ck_assert_ptr_nonnull(cfg);
        void *ctx = NULL;
        ck_assert_int_ne(oh_connector_line.init(NULL, cfg, &ctx, err, sizeof err), 0);
        ck_assert_ptr_nonnull(strstr(err, missing[i]));
        ck_assert_ptr_null(ctx);
        oh_config_free(cfg);
    }
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
