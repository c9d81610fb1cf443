/* store_fixture.c - what the store's test files share: the throwaway
 * PostgreSQL server (pg_harness.c) when the suite runs there, a
 * fresh store for each case, and events to put in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store_fixture.h"


bool use_pg;

char *tmp;
oh_config *cfg;
oh_store *st;
char cur_dsn[600];

/* ---------- fixture ---------- */

oh_config *make_cfg(const char *dsn, const char *shards)
{
    oh_config *c = oh_test_cfg(tmp, NULL);
    char err[256];
    if (use_pg) {
        ck_assert_int_eq(oh_config_set(c, "store.backend", "postgres", err, sizeof err), 0);
        if (dsn) ck_assert_int_eq(oh_config_set(c, "store.postgres.dsn", dsn, err, sizeof err), 0);
        if (shards)
            ck_assert_int_eq(oh_config_set(c, "store.postgres.shards", shards, err, sizeof err), 0);
    }
    return c;
}

void setup(void)
{
    tmp = oh_test_tmpdir();
    cur_dsn[0] = '\0';
#ifdef OH_HAVE_POSTGRES
    if (use_pg) oh_test_pg_newdb(cur_dsn, sizeof cur_dsn);
#endif
    cfg = make_cfg(cur_dsn, NULL);
    st = oh_test_store_open(cfg);
}

void teardown(void)
{
    oh_store_close(st);
    st = NULL;
    oh_config_free(cfg);
    cfg = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmp);
    free(tmp);
}

/* ---------- events ---------- */

json_t *mk_event(const char *id, const char *conv, const char *type, int64_t ms,
                 const char *message_id)
{
    char when[32];
    oh_time_rfc3339(when, ms);
    bool in = strcmp(type, OH_EV_INBOUND) == 0;
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:s,s:s,s:s,s:{s:s,s:s},s:s,s:s,s:s}}",
                     "specversion", "1.0", "id", id, "source", "/omnihub/test/acct", "type", type,
                     "time", when, "subject", conv, "datacontenttype", "application/json", "data",
                     "conversation_id", conv, "channel", "test", "account", "acct", "direction",
                     in ? "inbound" : "outbound", "contact", "id", "u1", "name", "User One",
                     "message_id", message_id, "kind", "text", "text", "hello");
}

json_t *mk_status(const char *id, const char *conv, const char *mid, const char *state,
                  const char *provider_id)
{
    json_t *ev = mk_event(id, conv, OH_EV_STATUS, 1700000000000, "");
    json_t *status = json_pack("{s:s,s:s}", "message_id", mid, "state", state);
    if (provider_id) json_object_set_new(status, "provider_message_id", json_string(provider_id));
    json_object_set_new(json_object_get(ev, "data"), "status", status);
    return ev;
}

/* Materializes the events (takes the references) in one batch. */
int put(struct oh_store_item *items, json_t **evs, size_t n, int64_t first_offset, int64_t *seqs)
{
    for (size_t i = 0; i < n; i++)
        items[i] = (struct oh_store_item){.event = evs[i],
                                          .src_partition = 0,
                                          .src_offset = first_offset + (int64_t)i,
                                          .seq = -1};
    struct oh_store_pos pos = {"omnihub.events", 0, first_offset + (int64_t)n};
    int rc = oh_store_materialize(st, "omnihub-sync", items, n, &pos, 1);
    for (size_t i = 0; i < n; i++) {
        if (seqs) seqs[i] = items[i].seq;
        json_decref(evs[i]);
    }
    return rc;
}

int put1(json_t *ev, int64_t offset)
{
    struct oh_store_item it;
    int64_t seq;
    ck_assert_int_eq(put(&it, &ev, 1, offset, &seq), 0);
    return (int)seq;
}

int collect(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct rows *r = opaque;
    json_error_t e;
    json_t *ev = json_loadb(json, len, 0, &e);
    r->ok = r->ok && ev && json_integer_value(json_object_get(ev, "seq")) == seq &&
            strcmp(json_string_value(json_object_get(ev, "epoch")), oh_store_epoch(st)) == 0 &&
            strcmp(json_string_value(json_object_get(ev, "subject")), conv) == 0;
    json_decref(ev);
    if (r->n < 600) {
        r->seq[r->n] = seq;
        snprintf(r->conv[r->n], OH_ID_MAX, "%s", conv);
    }
    r->n++;
    return r->stop_after && r->n >= r->stop_after;
}

int collect_conv(void *opaque, const struct oh_conversation *c)
{
    struct convs *l = opaque;
    if (l->n < 16) snprintf(l->id[l->n], OH_ID_MAX, "%s", c->id);
    l->n++;
    return 0;
}
