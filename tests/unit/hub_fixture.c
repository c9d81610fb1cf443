/* hub_fixture.c - a hub's configuration and store for the unit tests
 * (hub_fixture.h); a failure fails the running test. */
#include <check.h>
#include "core/daemon.h"
#include "hub_fixture.h"

oh_config *oh_test_cfg(const char *dir, const char *const *kv)
{
    static char *const no_env[] = {NULL};
    char err[512];
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), no_env, err, sizeof err);
    ck_assert_msg(cfg, "config: %s", err);
    if (dir) ck_assert_msg(!oh_config_set(cfg, "data_dir", dir, err, sizeof err), "%s", err);
    for (; kv && kv[0]; kv += 2)
        ck_assert_msg(!oh_config_set(cfg, kv[0], kv[1], err, sizeof err), "%s: %s", kv[0], err);
    return cfg;
}

oh_store *oh_test_store_open(const oh_config *cfg)
{
    char err[512] = "";
    oh_store *st = oh_store_open(cfg, err, sizeof err);
    ck_assert_msg(st, "%s", err);
    return st;
}
