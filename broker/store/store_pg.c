/* store_pg.c - the PostgreSQL store: conversations live on one of several
 * shards (store_pg_shards.c says which), each batch is materialized by one
 * statement per shard. This file opens and closes the store (the epoch) and
 * holds the ops table; the statements and their routing to a shard or the
 * read replica are in store_pg_route.c, the rest in store_pg_history.c (the history), store_pg_desk.c (the directory and
 * what the desk keeps) and store_pg_kpi.c (KPIs and the knowledge base). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "store/store_pg_int.h"

static void pg_close(oh_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    if (!s) return;
    oh_pg_shards_close(&s->dir);
    oh_pg_pool_free(s->replica);
    free(s);
}

static int load_epoch(struct pg_store *s)
{
    uint8_t rnd[16];
    char fresh[32];
    if (oh_random(rnd, sizeof rnd) != 0) return OH_EIO;
    oh_base64url(rnd, sizeof rnd, fresh);
    const char *vals[] = {fresh};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_EPOCH_PUT, 1, vals, &r, true);
    if (rc != 0) return rc;
    PQclear(r);
    rc = oh_pg_exec(s->dir.at[0].pool, P_EPOCH_GET, 0, NULL, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1)
        snprintf(s->epoch, sizeof s->epoch, "%s", PQgetvalue(r, 0, 0));
    else
        rc = OH_EIO;
    PQclear(r);
    return rc;
}

static int dsn_check(const char *key, const char *dsn, char *err, size_t errlen)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &why);
    PQfreemem(why); /* may quote the DSN */
    if (opts) {
        PQconninfoFree(opts);
        return OH_OK;
    }
    oh_errf(err, errlen,
            "%s: not a libpq connection string (\"host=... dbname=...\" or a "
            "postgresql:// URI)",
            key);
    return OH_EINVAL;
}

int oh_store_pg_check(const oh_config *cfg, char *err, size_t errlen)
{
    const char *dsn = oh_config_str(cfg, "store.postgres.dsn");
    const char *read_dsn = oh_config_str(cfg, "store.postgres.read_dsn");
    const char *const *list = NULL;
    size_t nlist = oh_config_list(cfg, "store.postgres.shards", &list);
    if (nlist == 0 && (!dsn || !*dsn)) {
        oh_errf(err, errlen, "store.postgres.dsn is required with store.backend=postgres");
        return OH_EINVAL;
    }
    if (dsn && *dsn && dsn_check("store.postgres.dsn", dsn, err, errlen)) return OH_EINVAL;
    if (read_dsn && *read_dsn && dsn_check("store.postgres.read_dsn", read_dsn, err, errlen))
        return OH_EINVAL;
    for (size_t i = 0; i < nlist; i++)
        if (dsn_check("store.postgres.shards", list[i], err, errlen)) return OH_EINVAL;
    return OH_OK;
}

static oh_store *pg_open(const oh_config *cfg, char *err, size_t errlen)
{
    const char *dsn = oh_config_str(cfg, "store.postgres.dsn");
    const char *read_dsn = oh_config_str(cfg, "store.postgres.read_dsn");
    const char *const *list = NULL;
    size_t nlist = oh_config_list(cfg, "store.postgres.shards", &list);
    int pool_size = (int)oh_config_int(cfg, "store.postgres.pool_size");
    if (pool_size < 1 || pool_size > 64) pool_size = pool_size < 1 ? 1 : 64;
    int64_t cache = oh_config_int(cfg, "store.postgres.placement_cache");
    struct pg_store *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &oh_store_pg_ops;
    if (nlist && dsn && *dsn)
        OH_WARN("store", "store.postgres.shards is set: store.postgres.dsn is not used");
    const char *one[] = {dsn};
    if (oh_pg_shards_open(&s->dir, nlist ? list : one, nlist ? (int)nlist : 1, pool_size,
                          cache > 0 ? (size_t)cache : 64, err, errlen) != 0)
        goto fail;
    if (read_dsn && *read_dsn) {
        if (nlist)
            OH_WARN("store", "store.postgres.read_dsn is ignored when shards are configured");
        else if (!(s->replica = oh_pg_pool_new(read_dsn, "replica", pool_size))) {
            oh_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    int rc = load_epoch(s);
    if (rc != 0) {
        oh_errf(err, errlen, "store: cannot read the epoch: %s", oh_strerror(rc));
        goto fail;
    }
    if ((rc = oh_pg_kpi_days_fill(s->dir.at[0].pool)) != 0) {
        oh_errf(err, errlen, "store: filling kpi_days failed: %s", oh_strerror(rc));
        goto fail;
    }
    OH_INFO("store", "postgres store, %d shard(s) (a ring of %d)%s, epoch %s", pg_known(s),
            s->dir.ring, s->replica ? " and a read replica" : "", s->epoch);
    return (oh_store *)s;
fail:
    pg_close((oh_store *)s);
    return NULL;
}

static const char *pg_epoch(const oh_store *st)
{
    return ((const struct pg_store *)st)->epoch;
}

static int pg_ping(oh_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    for (int i = 0, n = pg_nshards(s); i < n; i++) {
        PGresult *r;
        int rc = oh_pg_exec(s->dir.at[i].pool, P_PING, 0, NULL, &r, true);
        if (rc != 0) return rc;
        PQclear(r);
    }
    return 0;
}

/* ---- shards ---- */

static int pg_shard_add(oh_store *st, const char *name, const char *dsn, char *err, size_t errlen)
{
    return oh_pg_shards_add(&((struct pg_store *)st)->dir, name, dsn, err, errlen);
}

static int pg_shard_list(oh_store *st, oh_store_shard_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int rc = oh_pg_shards_refresh(&s->dir, true);
    uint64_t placing = atomic_load(&s->dir.placing);
    for (int i = 0, n = pg_known(s); i < n && rc == 0; i++) {
        struct oh_store_shard sh = {.name = s->dir.at[i].name,
                                    .index = i,
                                    .ring = i < s->dir.ring ? i : -1,
                                    .placing = (placing >> i) & 1};
        rc = fn(opaque, &sh);
    }
    return rc < 0 ? rc : 0;
}

static const struct oh_store_shard_ops pg_shard_ops = {.add = pg_shard_add, .list = pg_shard_list};

const struct oh_store_ops oh_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .epoch = pg_epoch,
    .ping = pg_ping,
    .materialize = pg_materialize,
    .snoozed_due = pg_snoozed_due,
    .command_result = pg_command_result,
    .position_get = pg_position_get,
    .position_published = pg_position_published,
    .since_source = pg_since_source,
    .history = pg_history,
    .event_get = pg_event_get,
    .verify = pg_verify,
    .conversation_get = pg_conversation_get,
    .conversations = pg_conversations,
    .list = pg_list,
    .changes = pg_changes,
    .ref_get = pg_ref_get,
    .ref_put = pg_ref_put,
    .message_state = pg_message_state,
    .cursor_set = pg_cursor_set,
    .cursors = pg_cursors,
    .kv_put = pg_kv_put,
    .kv_get = pg_kv_get,
    .kv_get_many = pg_kv_get_many,
    .kv_del = pg_kv_del,
    .kv_swap = pg_kv_swap,
    .kv_write = pg_kv_write,
    .kv_scan = pg_kv_scan,
    .open_assignees = pg_open_assignees,
    .contact_refs = pg_contact_refs,
    .contact_write = pg_contact_write,
    .conversations_touch = pg_conversations_touch,
    .erase = pg_erase,
    .article_put = pg_article_put,
    .article_get = pg_article_get,
    .article_del = pg_article_del,
    .articles = pg_articles,
    .kpi_put = pg_kpi_put,
    .kpi_report = pg_kpi_report,
    .shards = &pg_shard_ops,
};
