/* test_messenger.c - the Meta social connectors (messenger, instagram):
 * every fixture normalized and checked, signatures, challenges, echoes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "connector.h"
#include "crypto.h"
#include "daemon.h"
#include "tap.h"

/* ---- subset match: every key of EXPECT equals ACTUAL ------------------- */

static bool subset(const json_t *expect, const json_t *actual, char *path, size_t plen)
{
    if (json_is_object(expect)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)expect, k, v)
        {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, ".%s", k);
            if (!subset(v, json_object_get(actual, k), path, plen)) return false;
            path[n] = '\0';
        }
        return json_is_object(actual);
    }
    if (json_is_array(expect)) {
        if (!json_is_array(actual) || json_array_size(actual) != json_array_size(expect))
            return false;
        size_t i;
        const json_t *v;
        json_array_foreach(expect, i, v)
        {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, "[%zu]", i);
            if (!subset(v, json_array_get(actual, i), path, plen)) return false;
            path[n] = '\0';
        }
        return true;
    }
    return json_equal((json_t *)expect, (json_t *)actual);
}

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

/* Every tests/data/<channel>/<case>.json against <case>.expect.json. */
static int check_fixtures(const char *channel)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/%s", channel);
    char *dir = oh_test_src(rel);
    DIR *d = opendir(dir);
    ck_assert_msg(d, "no fixtures in %s", dir);
    struct dirent *de;
    int cases = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") || strstr(de->d_name, ".expect."))
            continue;
        char path[1024], epath[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        snprintf(epath, sizeof epath, "%s/%.*s.expect.json", dir, (int)(n - 5), de->d_name);
        char *body = oh_test_read(path, NULL);
        ck_assert_ptr_nonnull(body);
        json_error_t jerr;
        json_t *expect = json_load_file(epath, 0, &jerr);
        ck_assert_msg(expect, "%s: %s", epath, jerr.text);
        if (!json_is_array(expect)) expect = json_pack("[o]", expect);

        struct oh_event_list out = {0}, again = {0};
        char err[256] = "";
        ck_assert_msg(normalize(channel, body, &out, err, sizeof err) == 0, "%s: %s", path, err);
        ck_assert_msg(out.n == json_array_size(expect), "%s: %zu events, expected %zu", path, out.n,
                      json_array_size(expect));
        ck_assert_int_eq(normalize(channel, body, &again, err, sizeof err), 0);
        for (size_t i = 0; i < out.n; i++) {
            char where[512] = "";
            ck_assert_msg(subset(json_array_get(expect, i), out.ev[i], where, sizeof where),
                          "%s event %zu differs at %s: %s", path, i, where,
                          json_dumps(out.ev[i], JSON_COMPACT));
            ck_assert_msg(oh_event_validate(out.ev[i], err, sizeof err) == 0, "%s: %s", path, err);
            /* provider retries give the same id */
            ck_assert_str_eq(oh_event_get_id(out.ev[i]), oh_event_get_id(again.ev[i]));
            /* one conversation per (channel, account, contact) */
            const json_t *data = oh_event_data(out.ev[i]);
            char conv[OH_ID_MAX];
            oh_conversation_id(
                conv, channel, json_string_value(json_object_get(data, "account")),
                json_string_value(json_object_get(json_object_get(data, "contact"), "id")));
            ck_assert_str_eq(oh_event_subject(out.ev[i]), conv);
        }
        /* distinct events of one payload have distinct ids */
        for (size_t i = 0; i < out.n; i++)
            for (size_t j = i + 1; j < out.n; j++)
                ck_assert_str_ne(oh_event_get_id(out.ev[i]), oh_event_get_id(out.ev[j]));
        oh_event_list_clear(&out);
        oh_event_list_clear(&again);
        json_decref(expect);
        free(body);
        cases++;
    }
    closedir(d);
    free(dir);
    return cases;
}

START_TEST(messenger_fixtures)
{
    ck_assert_int_ge(check_fixtures("messenger"), 12);
}
END_TEST

START_TEST(instagram_fixtures)
{
    ck_assert_int_ge(check_fixtures("instagram"), 10);
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

struct fake_req {
    struct oh_http_req req;
    const char *sig;
};

static const char *fake_header(const struct oh_http_req *req, const char *lname)
{
    const struct fake_req *f = (const struct fake_req *)req;
    return strcmp(lname, "x-hub-signature-256") == 0 ? f->sig : NULL;
}

static void *start(const char *channel, const char *app_id)
{
    char err[256];
    char *env[8] = {NULL};
    size_t n = 0;
    const char *up = strcmp(channel, "messenger") == 0 ? "MESSENGER" : "INSTAGRAM";
    if (asprintf(&env[n++], "OMNIHUB_%s_APP_SECRET=s3cret", up) < 0 ||
        asprintf(&env[n++], "OMNIHUB_%s_VERIFY_TOKEN=vt-123", up) < 0 ||
        asprintf(&env[n++], "OMNIHUB_%s_ACCESS_TOKEN=EAAtoken", up) < 0)
        abort();
    if (app_id && asprintf(&env[n++], "OMNIHUB_%s_APP_ID=%s", up, app_id) < 0) abort();
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), env, err, sizeof err);
    ck_assert_msg(cfg, "config: %s", err);
    void *ctx = NULL;
    const struct oh_connector *c = oh_connector_find(channel);
    ck_assert_msg(c->init(NULL, cfg, &ctx, err, sizeof err) == 0, "init: %s", err);
    oh_config_free(cfg);
    for (size_t i = 0; i < n; i++)
        free(env[i]);
    return ctx;
}

static int post(const char *channel, void *ctx, const char *body, const char *sig,
                struct oh_event_list *out)
{
    struct fake_req f = {{.method = "POST",
                          .path = "/webhooks/x",
                          .query = "",
                          .body = (const uint8_t *)body,
                          .body_len = strlen(body),
                          .header = fake_header},
                         sig};
    struct oh_http_reply reply = {0};
    char err[256] = "";
    int rc = oh_connector_find(channel)->webhook(ctx, &f.req, out, &reply, err, sizeof err);
    ck_assert_int_eq(reply.status, 0);
    return rc;
}

START_TEST(init_requires_secrets)
{
    char err[256] = "";
    static char *env[] = {"OMNIHUB_MESSENGER_APP_SECRET=s", NULL};
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), env, err, sizeof err);
    ck_assert_ptr_nonnull(cfg);
    void *ctx = NULL;
    ck_assert_int_ne(oh_connector_find("messenger")->init(NULL, cfg, &ctx, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "messenger.verify_token"), "%s", err);
    ck_assert_ptr_null(ctx);
    oh_config_free(cfg);
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
        struct fake_req f = {{.method = "GET",
                              .path = "/webhooks/instagram",
                              .query = cases[i].query,
                              .body = (const uint8_t *)"",
                              .header = fake_header},
                             NULL};
        struct oh_http_reply reply = {0};
        struct oh_event_list out = {0};
        char err[256] = "";
        ck_assert_int_eq(c->webhook(ctx, &f.req, &out, &reply, err, sizeof err), cases[i].rc);
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
