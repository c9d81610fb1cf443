/* test_config.c - YAML loading, types, env overrides and error positions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "core/daemon.h"
#include "tap.h"

static const struct oh_config_key keys[] = {
    {"http.listen", OH_CFG_STR, "127.0.0.1:8080", ""},
    {"http.max_body", OH_CFG_SIZE, "1m", ""},
    {"auth.jwt_secret", OH_CFG_SECRET, NULL, ""},
    {"kafka.mock_brokers", OH_CFG_INT, "0", ""},
    {"x.enabled", OH_CFG_BOOL, NULL, ""},
    {"store.postgres.shards", OH_CFG_LIST, NULL, ""},
    {NULL, 0, NULL, NULL},
};
static const struct oh_config_key *const tables[] = {keys, NULL};

static char *write_tmp(const char *text)
{
    char *dir = oh_test_tmpdir(), *path;
    if (asprintf(&path, "%s/c.yaml", dir) < 0) abort();
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(dir);
    return path;
}

START_TEST(defaults)
{
    char err[256];
    char *env[] = {NULL};
    oh_config *c = oh_config_load(NULL, tables, env, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(oh_config_str(c, "http.listen"), "127.0.0.1:8080");
    ck_assert_int_eq(oh_config_int(c, "http.max_body"), 1 << 20);
    ck_assert_ptr_null(oh_config_str(c, "auth.jwt_secret"));
    ck_assert(!oh_config_is_set(c, "http.listen"));
    ck_assert_int_eq(oh_config_require(c, "auth.jwt_secret", "here", err, sizeof err), OH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "OMNIHUB_AUTH_JWT_SECRET"));
    oh_config_free(c);
}
END_TEST

START_TEST(file_and_env)
{
    char *path = write_tmp("http:\n  listen: 0.0.0.0:9000\n  max_body: 512k\n"
                           "store:\n  postgres:\n    shards:\n      - a\n      - b\n"
                           "x:\n  enabled: yes\n");
    char *env[] = {"OMNIHUB_KAFKA_MOCK_BROKERS=3", "OMNIHUB_HTTP_LISTEN=127.0.0.1:1", NULL};
    char err[256];
    oh_config *c = oh_config_load(path, tables, env, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(oh_config_str(c, "http.listen"), "127.0.0.1:1");
    ck_assert_int_eq(oh_config_int(c, "http.max_body"), 512 * 1024);
    ck_assert_int_eq(oh_config_int(c, "kafka.mock_brokers"), 3);
    ck_assert(oh_config_bool(c, "x.enabled"));
    const char *const *items;
    ck_assert_uint_eq(oh_config_list(c, "store.postgres.shards", &items), 2);
    ck_assert_str_eq(items[1], "b");
    ck_assert(oh_config_any_set(c, "store."));
    oh_config_free(c);
    free(path);
}
END_TEST

START_TEST(errors_have_positions)
{
    char err[256];
    char *env[] = {NULL};
    char *path = write_tmp("http:\n  listen: a\n  nope: 1\n");
    ck_assert_ptr_null(oh_config_load(path, tables, env, err, sizeof err));
    ck_assert_msg(strstr(err, "c.yaml:3:") && strstr(err, "http.nope"), "%s", err);
    free(path);
    path = write_tmp("kafka:\n  mock_brokers: many\n");
    ck_assert_ptr_null(oh_config_load(path, tables, env, err, sizeof err));
    ck_assert_msg(strstr(err, "c.yaml:2:") && strstr(err, "integer"), "%s", err);
    free(path);
    path = write_tmp("http: [unclosed\n");
    ck_assert_ptr_null(oh_config_load(path, tables, env, err, sizeof err));
    ck_assert_msg(strstr(err, "c.yaml:"), "%s", err);
    free(path);
    char *bad_env[] = {"OMNIHUB_HTTP_MAX_BODY=lots", NULL};
    ck_assert_ptr_null(oh_config_load(NULL, tables, bad_env, err, sizeof err));
    ck_assert_msg(strstr(err, "OMNIHUB_HTTP_MAX_BODY"), "%s", err);
}
END_TEST

START_TEST(every_table_loads)
{
    char err[256];
    char *env[] = {NULL};
    oh_config *c = oh_config_load(NULL, oh_config_tables(), env, err, sizeof err);
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_str_eq(oh_config_str(c, "kafka.topic_prefix"), "omnihub.");
    ck_assert_str_eq(oh_config_str(c, "log.backend"), "local");
    ck_assert_str_eq(oh_config_str(c, "store.backend"), "sqlite");
    oh_config_free(c);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, file_and_env);
    tcase_add_test(tc, errors_have_positions);
    tcase_add_test(tc, every_table_loads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
