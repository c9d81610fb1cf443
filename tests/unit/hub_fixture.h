/* hub_fixture.h - what the unit tests that run part of a hub share: its
 * configuration over a data directory, and the store on it. */
#ifndef OH_TEST_HUB_FIXTURE_H
#define OH_TEST_HUB_FIXTURE_H

#include "core/config.h"
#include "store/store.h"

/* Every component's keys (oh_config_tables()) at their defaults, with
 * data_dir DIR (NULL: the default) and KV ({key, value, ..., NULL}; NULL:
 * none) set over them; the process environment is not read. Asserts that
 * it loads. Caller frees with oh_config_free(). */
oh_config *oh_test_cfg(const char *dir, const char *const *kv);

/* The store CFG configures (caller closes); asserts that it opens. */
oh_store *oh_test_store_open(const oh_config *cfg);

#endif
