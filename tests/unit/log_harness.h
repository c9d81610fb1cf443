/* log_harness.h - what the log's unit tests share (test_log.c,
 * test_log_file.c). Failures fail the running test. */
#ifndef OH_TEST_LOG_HARNESS_H
#define OH_TEST_LOG_HARNESS_H
#include "core/config.h"
#include "hub_fixture.h"
#include "log/log.h"

/* The log KV configures (see oh_test_cfg); its configuration in *CFGP
 * (caller frees both). */
oh_log *oh_test_log_open(const char *const *kv, oh_config **cfgp);
/* An append's callback counting the successful ones in OPAQUE (an
 * atomic_int). */
void oh_test_log_done_count(void *opaque, int err, int32_t partition, int64_t offset);
/* Appends N records {"TAG":i} to TOPIC under key "k" and waits (10 s at
 * most) until all are durable. */
void oh_test_log_append_wait(oh_log *log, const char *topic, int n, const char *tag);

#endif
