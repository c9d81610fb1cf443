/* store_fixture.h - what the store's test files (test_store*.c) share;
 * defined in store_fixture.c. */
#ifndef OH_TEST_STORE_FIXTURE_H
#define OH_TEST_STORE_FIXTURE_H

#include "oh_build_config.h"
#include "tap.h"
#include "hub_fixture.h"
#include "core/crypto.h"
#include "store/store_fields.h"
#include "core/json_dump.h"
#include "store/store_int.h"

extern bool use_pg;

extern char *tmp;
extern oh_config *cfg;
extern oh_store *st;
extern char cur_dsn[600];

#ifdef OH_HAVE_POSTGRES
#include "pg_harness.h"
#endif

/* ---------- fixture ---------- */

oh_config *make_cfg(const char *dsn, const char *shards);
void setup(void);
void teardown(void);

/* ---------- events ---------- */

json_t *mk_event(const char *id, const char *conv, const char *type, int64_t ms,
                 const char *message_id);
json_t *mk_status(const char *id, const char *conv, const char *mid, const char *state,
                  const char *provider_id);
/* Materializes the events (takes the references) in one batch. */
int put(struct oh_store_item *items, json_t **evs, size_t n, int64_t first_offset, int64_t *seqs);
int put1(json_t *ev, int64_t offset);

struct rows {
    int n;
    int64_t seq[600];
    char conv[600][OH_ID_MAX];
    int stop_after;
    bool ok;
};

int collect(void *opaque, const char *conv, int64_t seq, const char *json, size_t len);

struct convs {
    int n;
    char id[16][OH_ID_MAX];
};

int collect_conv(void *opaque, const struct oh_conversation *c);

/* The cases of each file, added to the suite's contract (test_store.c). */
void store_history_tests(TCase *tc);
void store_desk_tests(TCase *tc);
void store_kpi_tests(TCase *tc);

#endif
