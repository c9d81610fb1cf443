/* log_harness.c - what the log's unit tests share: an open log, appends
 * waited for (log_harness.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <check.h>
#include "log/log.h"
#include "log_harness.h"

oh_log *oh_test_log_open(const char *const *kv, oh_config **cfgp)
{
    oh_config *cfg = oh_test_cfg(NULL, kv);
    char err[256];
    oh_log *log = oh_log_open(cfg, err, sizeof err);
    ck_assert_msg(log, "open: %s", err);
    *cfgp = cfg;
    return log;
}

void oh_test_log_done_count(void *opaque, int err, int32_t partition, int64_t offset)
{
    atomic_int *n = opaque;
    if (!err) atomic_fetch_add(n, 1);
}

void oh_test_log_append_wait(oh_log *log, const char *topic, int n, const char *tag)
{
    atomic_int done = 0;
    char val[128];
    for (int i = 0; i < n; i++) {
        int len = snprintf(val, sizeof val, "{\"%s\":%d}", tag, i);
        ck_assert_int_eq(
            oh_log_append(log, topic, "k", val, (size_t)len, oh_test_log_done_count, &done), 0);
    }
    for (int i = 0; i < 1000 && atomic_load(&done) < n; i++)
        usleep(10000);
    ck_assert_int_eq(atomic_load(&done), n);
}
