/* test_service.c - the one consumer loop (a batch is committed only when the
 * service says its effects are durable; with coalesced saving, only after
 * a save) and routing on record metadata: dispatch decides on type and
 * author kind alone, never on the body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "services/service.h"
#include "tap.h"
#include "hub_fixture.h"

static struct oh_log_record rec(const char *type, const char *author, const char *value)
{
    return (struct oh_log_record){
        .topic = OH_TOPIC_TIMELINE,
        .value = value,
        .len = strlen(value),
        .meta = {.type = type, .subject = "conv_x", .seq = 7, .author = author}};
}

START_TEST(dispatch_routes_on_metadata)
{
    /* not JSON: a parse would fail, so these decisions read no body */
    const char *junk = "\x01 not json \"omnihub.message.outbound\"";
    struct oh_log_record r = rec(OH_EV_OUTBOUND, "agent", junk);
    ck_assert(oh_dispatch_wants(&r));
    r = rec(OH_EV_OUTBOUND, "customer", junk); /* an echo of what a platform sent */
    ck_assert(!oh_dispatch_wants(&r));
    r = rec(OH_EV_OUTBOUND, NULL, junk);
    ck_assert(!oh_dispatch_wants(&r));
    r = rec(OH_EV_INBOUND, "agent", junk);
    ck_assert(!oh_dispatch_wants(&r));
    r = rec(OH_EV_STATUS, "system", junk);
    ck_assert(!oh_dispatch_wants(&r));
    /* a record from before metadata: its body decides */
    r = rec(NULL, NULL, "{\"type\":\"omnihub.message.outbound\"}");
    ck_assert(oh_dispatch_wants(&r));
    r = rec(NULL, NULL, "{\"type\":\"omnihub.message.inbound\"}");
    ck_assert(!oh_dispatch_wants(&r));
}
END_TEST

/* ---- the loop ----------------------------------------------------------- */

struct probe {
    atomic_int batches, records;
    atomic_int fail_first; /* batches to refuse */
    char types[8][64];
    int64_t seqs[8];
};

static struct probe probe;

static int probe_process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs,
                         int n)
{
    for (int i = 0; i < n; i++) {
        int k = atomic_load(&probe.records);
        if (k < 8) {
            snprintf(probe.types[k], sizeof probe.types[k], "%s",
                     recs[i].meta.type ? recs[i].meta.type : "-");
            probe.seqs[k] = recs[i].meta.seq;
        }
        if (atomic_load(&probe.fail_first) == 0) atomic_fetch_add(&probe.records, 1);
    }
    atomic_fetch_add(&probe.batches, 1);
    if (atomic_load(&probe.fail_first) > 0) {
        atomic_fetch_sub(&probe.fail_first, 1);
        return OH_EIO; /* not durable: nothing committed */
    }
    return OH_OK;
}

static bool always(const oh_hub *hub)
{
    return true;
}

static const struct oh_service probe_service = {
    .name = "probe",
    .group = "test-probe",
    .topic = OH_TOPIC_TIMELINE,
    .batch = 16,
    .wanted = always,
    .process = probe_process,
};

static void appended(void *opaque, int err, int32_t partition, int64_t offset)
{
    atomic_fetch_add((atomic_int *)opaque, 1);
}

static int64_t committed(oh_log *log)
{
    struct oh_log_lag lag[2];
    ck_assert_int_eq(oh_log_lag(log, "test-probe", OH_TOPIC_TIMELINE, lag, 2), 1);
    return lag[0].committed;
}

/* A hub with a config in DIR and its local log, for the loop alone. */
static void hub_open(oh_hub *hub, const char *dir)
{
    char err[512];
    hub->cfg = oh_test_cfg(dir, NULL);
    hub->log = oh_log_open(hub->cfg, err, sizeof err);
    ck_assert_msg(hub->log != NULL, "%s", err);
}

static void hub_close(oh_hub *hub, char *dir)
{
    oh_log_close(hub->log);
    oh_config_free(hub->cfg);
    free(dir);
}

START_TEST(loop_commits_only_durable_batches)
{
    char *dir = oh_test_tmpdir(), err[512];
    oh_hub hub = {0};
    hub_open(&hub, dir);
    atomic_int done = 0;
    struct oh_log_meta m = {
        .type = OH_EV_OUTBOUND, .subject = "conv_a", .seq = 5, .author = "agent"};
    ck_assert_int_eq(
        oh_log_append_meta(hub.log, OH_TOPIC_TIMELINE, "conv_a", &m, "{}", 2, appended, &done), 0);
    ck_assert_int_eq(oh_log_append(hub.log, OH_TOPIC_TIMELINE, "conv_a", "{}", 2, appended, &done),
                     0);
    while (atomic_load(&done) < 2)
        usleep(1000);

    atomic_store(&probe.fail_first, 1);
    struct oh_service_set *set = NULL;
    static const struct oh_service *const table[] = {&probe_service, NULL};
    ck_assert_int_eq(oh_services_start(&hub, table, 100, &set, err, sizeof err), 0);
    /* the refused batch is not committed: a restart reads it again */
    for (int i = 0; i < 2000 && atomic_load(&probe.batches) < 1; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&probe.records), 0);
    atomic_store(&hub.stopping, true);
    oh_services_stop(set);
    ck_assert_int_eq(committed(hub.log), -1); /* nothing committed */

    atomic_store(&hub.stopping, false);
    ck_assert_int_eq(oh_services_start(&hub, table, 100, &set, err, sizeof err), 0);
    for (int i = 0; i < 10000 && atomic_load(&probe.records) < 2; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&probe.records), 2);
    for (int i = 0; i < 10000 && committed(hub.log) != 2; i++)
        usleep(1000);
    ck_assert_int_eq(committed(hub.log), 2);
    /* the metadata came with the records; none on the one appended without */
    ck_assert_str_eq(probe.types[0], OH_EV_OUTBOUND);
    ck_assert_int_eq(probe.seqs[0], 5);
    ck_assert_str_eq(probe.types[1], "-");
    ck_assert_int_eq(probe.seqs[1], 0);
    atomic_store(&hub.stopping, true);
    oh_services_stop(set);
    hub_close(&hub, dir);
}
END_TEST

/* ---- coalesced saving ---------------------------------------------------- */

/* A service that applies in memory and saves when the loop says so. */
struct saver {
    atomic_int applied;   /* records processed (a refused batch counts none) */
    atomic_int saves;     /* successful saves */
    atomic_int saved;     /* APPLIED as of the last successful save */
    atomic_int fail_save; /* saves to refuse */
    atomic_int fail_batch;
};

static struct saver saver;

static int saver_process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs,
                         int n)
{
    if (atomic_load(&saver.fail_batch) > 0) {
        atomic_fetch_sub(&saver.fail_batch, 1);
        return OH_EIO; /* read again, without a restart */
    }
    atomic_fetch_add(&saver.applied, n);
    return OH_OK;
}

static int saver_save(void *state)
{
    if (atomic_load(&saver.fail_save) > 0) {
        atomic_fetch_sub(&saver.fail_save, 1);
        return OH_EIO;
    }
    atomic_store(&saver.saved, atomic_load(&saver.applied));
    atomic_fetch_add(&saver.saves, 1);
    return OH_OK;
}

/* save_ms: longer than the test at first (it saves only when the loop
 * stops), then set short. */
static struct oh_service saver_service = {
    .name = "saver",
    .group = "test-probe",
    .topic = OH_TOPIC_TIMELINE,
    .batch = 16,
    .wanted = always,
    .process = saver_process,
    .save = saver_save,
    .save_ms = 1000000,
};

static void append_n(oh_log *log, int n)
{
    atomic_int done = 0;
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(oh_log_append(log, OH_TOPIC_TIMELINE, "conv_a", "{}", 2, appended, &done),
                         0);
    while (atomic_load(&done) < n)
        usleep(1000);
}

static void wait_applied(int n)
{
    for (int i = 0; i < 10000 && atomic_load(&saver.applied) < n; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&saver.applied), n);
}

START_TEST(coalesced_saving_commits_after_a_save)
{
    char *dir = oh_test_tmpdir(), err[512];
    oh_hub hub = {0};
    hub_open(&hub, dir);
    append_n(hub.log, 3);
    struct oh_service_set *set = NULL;
    const struct oh_service *table[] = {&saver_service, NULL};

    /* processed, not saved: no position (a kill now reads all again) */
    ck_assert_int_eq(oh_services_start(&hub, table, 100, &set, err, sizeof err), 0);
    wait_applied(3);
    usleep(300000); /* idle polls: not yet due */
    ck_assert_int_eq(atomic_load(&saver.saves), 0);
    ck_assert_int_eq(committed(hub.log), -1);
    /* a stop whose save fails commits nothing either */
    atomic_store(&saver.fail_save, 2); /* the loop's end, then the revoke at close */
    atomic_store(&hub.stopping, true);
    oh_services_stop(set);
    ck_assert_int_eq(atomic_load(&saver.saves), 0);
    ck_assert_int_eq(committed(hub.log), -1);
    atomic_store(&saver.fail_save, 0);

    /* read again from the start; a clean stop saves, then commits */
    atomic_store(&saver.applied, 0);
    atomic_store(&hub.stopping, false);
    ck_assert_int_eq(oh_services_start(&hub, table, 100, &set, err, sizeof err), 0);
    wait_applied(3);
    atomic_store(&hub.stopping, true);
    oh_services_stop(set);
    ck_assert_int_eq(atomic_load(&saver.saves), 1);
    ck_assert_int_eq(atomic_load(&saver.saved), 3);
    ck_assert_int_eq(committed(hub.log), 3);

    /* every save_ms while running; a refused batch is read again without a
     * restart, a refused save is tried again, and the position waits for it */
    atomic_store(&saver.applied, 0);
    atomic_store(&saver.saves, 0);
    atomic_store(&saver.fail_batch, 1);
    atomic_store(&saver.fail_save, 1);
    saver_service.save_ms = 20;
    atomic_store(&hub.stopping, false);
    ck_assert_int_eq(oh_services_start(&hub, table, 100, &set, err, sizeof err), 0);
    append_n(hub.log, 2);
    wait_applied(2);
    for (int i = 0; i < 10000 && committed(hub.log) != 5; i++)
        usleep(1000);
    ck_assert_int_eq(committed(hub.log), 5);
    ck_assert_int_eq(atomic_load(&saver.fail_save), 0);
    ck_assert_int_ge(atomic_load(&saver.saves), 1);
    ck_assert_int_eq(atomic_load(&saver.saved), 2);
    atomic_store(&hub.stopping, true);
    oh_services_stop(set);
    hub_close(&hub, dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("service");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, dispatch_routes_on_metadata);
    tcase_add_test(tc, loop_commits_only_durable_batches);
    tcase_add_test(tc, coalesced_saving_commits_after_a_save);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
