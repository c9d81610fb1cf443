/* fixture.c - the checks every connector's unit test runs on its recorded
 * payloads, and a fake webhook request with one header. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "core/conn_env.h"

#define FX_NOW_MS 1700000000000

static const struct oh_connector *fx_connector(const char *channel)
{
    const struct oh_connector *c = oh_connector_find(channel);
    ck_assert_msg(c != NULL, "no connector %s", channel);
    return c;
}

static int fx_norm(const struct oh_connector *c, const char *account, const char *body, size_t len,
                   struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = account, .now_ms = FX_NOW_MS};
    return c->normalize(&nc, (const uint8_t *)body, len, out, err, errlen);
}

/* Every key of WANT is in GOT with an equal value; lists element-wise. PATH
 * is left naming the first difference. */
static bool fx_subset(const json_t *want, const json_t *got, char *path, size_t plen)
{
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(got)) return false;
        json_object_foreach((json_t *)want, k, v)
        {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, ".%s", k);
            if (!fx_subset(v, json_object_get(got, k), path, plen)) return false;
            path[n] = '\0';
        }
        return true;
    }
    if (json_is_array(want)) {
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want)) return false;
        for (size_t i = 0; i < json_array_size(want); i++) {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, "[%zu]", i);
            if (!fx_subset(json_array_get(want, i), json_array_get(got, i), path, plen))
                return false;
            path[n] = '\0';
        }
        return true;
    }
    return got && json_equal((json_t *)want, (json_t *)got);
}

void oh_fixture_expect_subset(const json_t *expect, const json_t *actual, const char *where)
{
    char path[512] = "";
    if (fx_subset(expect, actual, path, sizeof path)) return;
    char *dump = json_dumps(actual, JSON_INDENT(1));
    ck_assert_msg(0, "%s: mismatch at %s\n%s", where, path, dump ? dump : "(null)");
    free(dump);
}

/* One recorded payload against its expectation. */
static void fx_check_case(const struct oh_connector *c, const char *channel, const char *dir,
                          const char *name, size_t stem, const char *account,
                          oh_fixture_each_fn each)
{
    char path[1024], epath[1024], err[256] = "";
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(epath, sizeof epath, "%s/%.*s.expect.json", dir, (int)stem, name);
    size_t len;
    char *body = oh_test_read(path, &len);
    ck_assert_msg(body != NULL, "%s: fixture missing", name);
    json_error_t jerr;
    json_t *expect = json_load_file(epath, 0, &jerr);
    ck_assert_msg(expect != NULL, "%s: %s", epath, jerr.text);
    if (json_is_object(expect)) expect = json_pack("[o]", expect);

    struct oh_event_list out = {0}, again = {0};
    ck_assert_msg(fx_norm(c, account, body, len, &out, err, sizeof err) == 0, "%s: %s", name, err);
    ck_assert_msg(out.n == json_array_size(expect), "%s: %zu events, expected %zu", name, out.n,
                  json_array_size(expect));
    json_t *got = json_array();
    for (size_t i = 0; i < out.n; i++) {
        ck_assert_msg(oh_event_validate(out.ev[i], err, sizeof err) == 0, "%s: %s", name, err);
        json_array_append(got, out.ev[i]);
    }
    oh_fixture_expect_subset(expect, got, name);
    /* the provider's retries of the same payload give the same ids */
    ck_assert_int_eq(fx_norm(c, account, body, len, &again, err, sizeof err), 0);
    ck_assert_uint_eq(again.n, out.n);
    for (size_t i = 0; i < out.n; i++)
        ck_assert_str_eq(oh_event_get_id(out.ev[i]), oh_event_get_id(again.ev[i]));
    /* distinct events of one payload have distinct ids */
    for (size_t i = 0; i < out.n; i++)
        for (size_t j = i + 1; j < out.n; j++)
            ck_assert_str_ne(oh_event_get_id(out.ev[i]), oh_event_get_id(out.ev[j]));
    if (each) each(channel, name, &out);
    oh_event_list_clear(&again);
    oh_event_list_clear(&out);
    json_decref(got);
    json_decref(expect);
    free(body);
}

int oh_fixture_check_dir(const char *channel, const char *ext, const char *account,
                         oh_fixture_each_fn each)
{
    const struct oh_connector *c = fx_connector(channel);
    char rel[128];
    snprintf(rel, sizeof rel, "tests/data/%s", channel);
    char *dir = oh_test_src(rel);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "no fixtures in %s", dir);
    size_t elen = strlen(ext);
    struct dirent *de;
    int cases = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= elen || strcmp(de->d_name + n - elen, ext) || strstr(de->d_name, ".expect."))
            continue;
        fx_check_case(c, channel, dir, de->d_name, n - elen, account, each);
        cases++;
    }
    closedir(d);
    free(dir);
    return cases;
}

void oh_fixture_load(const char *channel, const char *name, const char *account,
                     struct oh_event_list *out)
{
    char rel[256], err[256] = "";
    snprintf(rel, sizeof rel, "tests/data/%s/%s.json", channel, name);
    char *path = oh_test_src(rel);
    size_t len;
    char *body = oh_test_read(path, &len);
    ck_assert_msg(body != NULL, "cannot read %s", path);
    ck_assert_msg(fx_norm(fx_connector(channel), account, body, len, out, err, sizeof err) == 0,
                  "%s: %s", name, err);
    free(body);
    free(path);
}

json_t *oh_fixture_first(const char *channel, const char *name, const char *account)
{
    struct oh_event_list out = {0};
    oh_fixture_load(channel, name, account, &out);
    ck_assert_uint_ge(out.n, 1);
    json_t *ev = json_incref(out.ev[0]);
    oh_event_list_clear(&out);
    return ev;
}

/* The keys the core reads for an instance's webhook_auth, by instance (the
 * daemon keeps them in the connector's env). */
static struct fx_auth {
    const void *ctx;
    char verify_token[256], app_secret[256];
} fx_auth[16];

void oh_fixture_keep_auth(const struct oh_connector *c, const oh_config *cfg, const void *ctx)
{
    if (c->webhook_auth == OH_WEBHOOK_SELF) return;
    struct fx_auth *a = &fx_auth[0];
    for (size_t i = 0; i < OH_ARRAY_SIZE(fx_auth); i++)
        if (!fx_auth[i].ctx || fx_auth[i].ctx == ctx) {
            a = &fx_auth[i];
            break;
        }
    char key[128];
    const char *v;
    a->ctx = ctx;
    snprintf(key, sizeof key, "%s.verify_token", c->name);
    snprintf(a->verify_token, sizeof a->verify_token, "%s", (v = oh_config_str(cfg, key)) ? v : "");
    snprintf(key, sizeof key, "%s.app_secret", c->name);
    snprintf(a->app_secret, sizeof a->app_secret, "%s", (v = oh_config_str(cfg, key)) ? v : "");
}

void *oh_fixture_instance(const struct oh_connector *c, char *const *env)
{
    const struct oh_config_key *tables[] = {c->config_keys, NULL};
    char err[256];
    oh_config *cfg = oh_config_load(NULL, tables, env, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    void *ctx = NULL;
    ck_assert_msg(c->init(NULL, cfg, &ctx, err, sizeof err) == 0, "%s", err);
    oh_fixture_keep_auth(c, cfg, ctx);
    oh_config_free(cfg);
    return ctx;
}

void oh_fixture_init_fails(const struct oh_connector *c, char *const *env, const char *missing)
{
    const struct oh_config_key *tables[] = {c->config_keys, NULL};
    char err[256] = "";
    oh_config *cfg = oh_config_load(NULL, tables, env, err, sizeof err);
    ck_assert_ptr_nonnull(cfg);
    void *ctx = NULL;
    ck_assert_int_ne(c->init(NULL, cfg, &ctx, err, sizeof err), 0);
    ck_assert_msg(strstr(err, missing) != NULL, "%s does not name %s", err, missing);
    ck_assert_ptr_null(ctx);
    oh_config_free(cfg);
}

/* A request with one header; HNAME NULL means none. */
struct fx_req {
    struct oh_http_req req;
    const char *hname;
    const char *value;
};

static const char *fx_header(const struct oh_http_req *req, const char *lname)
{
    const struct fx_req *f = (const struct fx_req *)req;
    return f->hname && strcmp(lname, f->hname) == 0 ? f->value : NULL;
}

int oh_fixture_webhook(const struct oh_connector *c, void *ctx, const char *method,
                       const char *path, const char *query, const char *body, const char *hname,
                       const char *value, struct oh_event_list *out, struct oh_http_reply *reply)
{
    struct fx_req f = {
        {method, path, query, (const uint8_t *)body, body ? strlen(body) : 0, fx_header, NULL},
        hname,
        value};
    memset(reply, 0, sizeof *reply);
    char err[256] = "";
    const struct fx_auth *a = NULL;
    for (size_t i = 0; i < OH_ARRAY_SIZE(fx_auth); i++)
        if (fx_auth[i].ctx == ctx) a = &fx_auth[i];
    /* the daemon's order: the core's check the connector declares, then it */
    bool answered;
    int rc = oh_webhook_auth(c, a && *a->verify_token ? a->verify_token : NULL,
                             a && *a->app_secret ? a->app_secret : NULL, &f.req, reply, &answered,
                             err, sizeof err);
    return rc || answered ? rc : c->webhook(ctx, &f.req, out, reply, err, sizeof err);
}

int oh_fixture_post(const struct oh_connector *c, void *ctx, const char *path, const char *body,
                    const char *hname, const char *value, struct oh_event_list *out)
{
    struct oh_http_reply reply;
    int rc = oh_fixture_webhook(c, ctx, "POST", path, "", body, hname, value, out, &reply);
    ck_assert_int_eq(reply.status, 0);
    return rc;
}
