/* test_sync.c - the materializer on the embedded backends: dense seq per
 * conversation, repeats dropped, positions survive a restart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "tap.h"
#include "hub_fixture.h"

static char *dir;

static void hub_open(oh_hub *hub)
{
    char err[512];
    memset(hub, 0, sizeof *hub);
    hub->cfg = oh_test_cfg(dir, NULL);
    hub->log = oh_log_open(hub->cfg, err, sizeof err);
    ck_assert_msg(hub->log != NULL, "%s", err);
    hub->store = oh_test_store_open(hub->cfg);
    hub->sync = oh_sync_start(hub, err, sizeof err);
    ck_assert_msg(hub->sync != NULL, "%s", err);
}

static void hub_close(oh_hub *hub)
{
    atomic_store(&hub->stopping, true);
    oh_sync_stop(hub->sync);
    oh_store_close(hub->store);
    oh_log_close(hub->log);
    oh_config_free(hub->cfg);
}

static json_t *message(const char *contact, const char *msgid)
{
    char id[OH_ID_MAX], conv[OH_ID_MAX];
    oh_event_id(id, "api:t", "acc", msgid, (const char *)NULL);
    oh_conversation_id(conv, "api:t", "acc", contact);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:s}", "conversation_id", conv,
                  "channel", "api:t", "account", "acc", "direction", "inbound", "contact", "id",
                  contact, "message_id", msgid, "kind", "text", "text", msgid);
    return oh_event_new(OH_EV_INBOUND, id, 0, data);
}

static int count_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    int64_t *n = opaque;
    ck_assert_int_eq(seq, *n + 1); /* dense and ascending */
    *n = seq;
    return 0;
}

static int64_t history_len(oh_store *st, const char *contact, int want)
{
    char conv[OH_ID_MAX];
    oh_conversation_id(conv, "api:t", "acc", contact);
    int64_t n = 0;
    for (int tries = 0; tries < 200; tries++) {
        n = 0;
        int rc = oh_store_history(st, conv, 0, 100000, count_row, &n);
        if ((rc == OH_OK || rc == OH_ENOTFOUND) && n >= want) break;
        usleep(20000);
    }
    return n;
}

START_TEST(sequencing_and_dedup)
{
    dir = oh_test_tmpdir();
    oh_hub hub;
    hub_open(&hub);
    char epoch[64];
    snprintf(epoch, sizeof epoch, "%s", oh_store_epoch(hub.store));
    struct oh_event_list l = {0};
    char mid[32];
    for (int i = 0; i < 300; i++) {
        snprintf(mid, sizeof mid, "m%d", i % 100); /* every message three times */
        oh_event_list_push(&l, message(i % 2 ? "bob" : "ann", mid));
    }
    ck_assert_int_eq(oh_hub_ingest_wait(&hub, &l), OH_OK);
    /* ann gets the even ids 0..98 (50), bob the odd ones (50) */
    ck_assert_int_eq(history_len(hub.store, "ann", 50), 50);
    ck_assert_int_eq(history_len(hub.store, "bob", 50), 50);
    hub_close(&hub);

    hub_open(&hub);
    ck_assert_str_eq(oh_store_epoch(hub.store), epoch);
    oh_event_list_push(&l, message("ann", "m0"));  /* a repeat after restart */
    oh_event_list_push(&l, message("ann", "new")); /* and a new one */
    ck_assert_int_eq(oh_hub_ingest_wait(&hub, &l), OH_OK);
    ck_assert_int_eq(history_len(hub.store, "ann", 51), 51);
    usleep(200000);
    ck_assert_int_eq(history_len(hub.store, "ann", 51), 51);
    hub_close(&hub);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc = tcase_create("sync");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sequencing_and_dedup);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
