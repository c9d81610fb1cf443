/* store_pg_int.h - private to the PostgreSQL store: connection pools with
 * reconnect and backoff, prepared statements, schema migrations, shards,
 * and what the store's own files (store_pg*.c) share. */
#ifndef OH_STORE_PG_INT_H
#define OH_STORE_PG_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <libpq-fe.h>
#include "store/store_fields.h"

/* Prepared statements, named "oh<N>" on each connection. */
enum pg_stmt {
    P_MATERIALIZE,
    P_POS_GET,
    P_POS_PUBLISHED,
    P_SINCE,
    P_CONV_EXISTS,
    P_HISTORY,
    P_EVENT_GET,
    P_CONV_GET,
    P_CONV_LIST,
    P_REF_GET,
    P_REF_PUT,
    P_STATE_GET,
    P_CURSOR_SET,
    P_CURSORS,
    P_KV_PUT,
    P_KV_GET,
    P_KV_DEL,
    P_KV_SCAN,
    P_EPOCH_PUT,
    P_EPOCH_GET,
    P_VERIFY,
    P_PING,
    P_REV_GET,
    P_CHANGES,
    P_OPEN_ASSIGNEES,
    P_SNOOZED_DUE,
    P_OUTCOME_GET,
    P_ART_PUT,
    P_ART_GET,
    P_ART_DEL,
    P_ART_ALL,
    P_PLACE_GET,
    P_PLACE_PUT,
    P_CONV_MANY,
    P_COUNT
};

/* The SQL of each statement (store_pg.c). */
extern const char *const oh_pg_sql[P_COUNT];
_Static_assert(P_COUNT <= 64, "the prepared-statement mask (struct oh_pg_conn.prepared) has 64 bits");

struct oh_pg_conn {
    PGconn *c;
    uint64_t prepared; /* bit N: statement N is prepared on c */
    bool busy;
};

/* A fixed number of connections to one server; connections are opened on
 * demand and dropped when they break. After a failed connect the pool
 * answers OH_EUNAVAIL at once until its backoff (100 ms doubling to 2 s)
 * expires. */
struct oh_pg_pool {
    char *dsn;
    char name[32]; /* for logs: "shard 0", "replica" */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct oh_pg_conn *conns;
    int size;
    int64_t down_until_ms;
    int backoff_ms;
};

/* Returns NULL on allocation failure. Free with oh_pg_pool_free(). */
struct oh_pg_pool *oh_pg_pool_new(const char *dsn, const char *name, int size);
void oh_pg_pool_free(struct oh_pg_pool *p);

/* Runs statement ID with N text parameters (NULL = SQL NULL). On success
 * *RES holds the result (caller frees with PQclear). When the connection
 * turns out to be broken and RETRY is set, runs it once more on a fresh
 * connection (only for statements that are safe to repeat). Returns
 * OH_EUNAVAIL when the server cannot be reached, OH_EDUP on a unique
 * violation, OH_ERETRY on a serialization failure or deadlock, OH_EIO
 * otherwise. */
int oh_pg_exec(struct oh_pg_pool *p, enum pg_stmt id, int n, const char *const *vals,
               PGresult **res, bool retry);

/* Like oh_pg_exec, for SQL built at run time (the inbox's list, whose
 * clauses follow its filters): sent unnamed, so each run is planned for
 * its own parameters. */
int oh_pg_exec_sql(struct oh_pg_pool *p, const char *sql, int n, const char *const *vals,
                   PGresult **res, bool retry);

/* A pooled connection held for several statements (a transaction the
 * caller opens and ends with oh_pg_held_exec): OH_EUNAVAIL, OH_ETIMEOUT as
 * oh_pg_exec. oh_pg_held_exec runs SQL with N text parameters on it and
 * maps errors as oh_pg_exec (no retry: the transaction is the caller's).
 * oh_pg_unhold gives it back, rolling back a transaction left open. */
int oh_pg_hold(struct oh_pg_pool *p, struct oh_pg_conn **out);
int oh_pg_held_exec(struct oh_pg_pool *p, struct oh_pg_conn *c, const char *sql, int n,
                    const char *const *vals, PGresult **res);
void oh_pg_unhold(struct oh_pg_pool *p, struct oh_pg_conn *c);

/* Brings the schema of the database at DSN up to date: takes a session
 * advisory lock so concurrent starts apply each migration once. */
int oh_pg_migrate(const char *dsn, char *err, size_t errlen);

/* Like oh_pg_migrate, waiting up to ~6 s for the server to come up. */
int oh_pg_migrate_wait(const char *dsn, char *err, size_t errlen);

/* ---- shards and the placement directory (store_pg_shards.c) ---- */

#define OH_PG_SHARDS_MAX 64
/* An added shard takes new conversations this long after it was recorded
 * (seconds, as SQL text): by then every process has reread the shard list
 * (it does so once a second when it calls the store), so none lists
 * conversations without it. */
#define OH_PG_PLACING_AFTER_S "5"

struct oh_pg_shard {
    char name[32]; /* stable: "s<N>" for ring position N, the operator's for an added one */
    struct oh_pg_pool *pool;
};

struct oh_pg_dir_slot {
    uint64_t h;
    char *conv; /* owned; NULL: empty */
    int shard;
};

/* The shards, in a fixed order (the ring by position, then the added ones
 * as they were added; an index never changes, so positions such as the
 * changes feed's are kept per index), and a cache of conversation ->
 * shard. Entries up to N are immutable once N is published (release), so
 * readers take N (acquire) and index without a lock; shards are only ever
 * added. */
struct oh_pg_shards {
    struct oh_pg_shard at[OH_PG_SHARDS_MAX];
    _Atomic int n;
    int ring; /* the ring's size: a conversation without a placement row lives
                 on ring shard FNV-1a(id) % ring */
    _Atomic uint64_t placing; /* bit i: shard i takes new conversations */
    int pool_size;
    pthread_mutex_t refresh_mu;
    _Atomic int64_t refreshed_ms;
    pthread_mutex_t cache_mu;
    struct oh_pg_dir_slot *cache;
    size_t cache_cap; /* a power of two */
};

uint64_t oh_pg_fnv1a(const char *s);
bool oh_pg_shard_name_ok(const char *name);

/* Migrates and opens the ring (RING[0..NRING-1], the DSNs of
 * store.postgres.shards), records it on shard 0 the first time (and
 * refuses a list of another length later), marks each database with its
 * shard name (refusing a reordered list), then opens the added shards.
 * Close with oh_pg_shards_close(), also after a failure. */
int oh_pg_shards_open(struct oh_pg_shards *d, const char *const *ring, int nring, int pool_size,
                      size_t cache, char *err, size_t errlen);
void oh_pg_shards_close(struct oh_pg_shards *d);

/* Rereads the shard list from shard 0 when it is older than a second (or
 * FORCE), opening shards added since. */
int oh_pg_shards_refresh(struct oh_pg_shards *d, bool force);

/* The number of shards known (after a refresh when due). */
int oh_pg_shard_count(struct oh_pg_shards *d);

/* SH[i] = the shard index of CONVS[i]: the cache, else the placement row
 * on shard 0, else the ring shard when the conversation exists there. A
 * conversation found nowhere is placed when PLACE (a row written with
 * INSERT ... ON CONFLICT DO NOTHING and read back, so concurrent writers
 * agree), else answered with its ring shard (not cached). */
int oh_pg_shards_resolve(struct oh_pg_shards *d, const char *const *convs, size_t n, bool place,
                         int *sh);
int oh_pg_shard_of(struct oh_pg_shards *d, const char *conv, int *sh);

/* Migrates the database at DSN, marks it as shard NAME and records it on
 * shard 0 (again with the same DSN: nothing to do). */
int oh_pg_shards_add(struct oh_pg_shards *d, const char *name, const char *dsn, char *err,
                     size_t errlen);

/* ---- the store (store_pg.c, store_pg_history.c, store_pg_desk.c, store_pg_kpi.c) ---- */

/* The columns a new conversation is created with; CONV_COLS are all that
 * are read back. */
#define CONV_NEW_COLS                                                                              \
    "id, channel, account, contact_id, contact_name, head, created_ms, updated_ms, "               \
    "last_inbound_ms"
#define CONV_COLS                                                                                  \
    CONV_NEW_COLS ", status, assignee, team, priority, labels, snoozed_until_ms, episode, "        \
                  "state_seq, last_seq, last_direction, last_kind, last_text, last_ms, rev, contact_ref"

struct pg_store {
    struct oh_store_base base;
    char epoch[48];
    struct oh_pg_shards dir; /* shard 0 also holds positions, kv, the epoch and the directory */
    struct oh_pg_pool *replica; /* store.postgres.read_dsn (mirrors shard 0), or NULL */
};

#define SHARD0(st) (((struct pg_store *)(st))->dir.at[0].pool)

/* ---- store_pg_route.c: the statements' SQL, routing to shards and the replica ---- */

/* The shards known now, without a refresh: for indices handed out before. */
int pg_known(struct pg_store *s);
/* The shards a read across all of them asks (after a refresh when due). */
int pg_nshards(struct pg_store *s);
/* *P = the pool of CONV's shard (placement directory, see store_pg_shards.c). */
int pg_conv_pool(struct pg_store *s, const char *conv, struct oh_pg_pool **p);
/* Runs ID on CONV's shard (see oh_pg_exec; repeated on a broken connection). */
int pg_conv_exec(struct pg_store *s, const char *conv, enum pg_stmt id, int n, const char *const *vals,
              PGresult **r);
int pg_conv_void(struct pg_store *s, const char *conv, enum pg_stmt id, int n,
              const char *const *vals);
/* History and lists go to the replica when there is one; if it cannot be
 * reached the primary answers. */
int pg_read_exec(struct pg_store *s, struct oh_pg_pool *primary, enum pg_stmt id, int n,
              const char *const *vals, PGresult **r);
/* Runs ID with VALS on every shard; RES[i] holds shard i's rows. */
int pg_all_shards(struct pg_store *s, int nsh, enum pg_stmt id, int n, const char *const *vals,
               PGresult **res);
void pg_i64s(char *buf, size_t len, int64_t v);

/* ---- store_pg_history.c: the history ---- */

int pg_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                   const struct oh_store_pos *pos, size_t npos);
int pg_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                    int64_t *next, int64_t *published);
int pg_position_published(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t published);
int pg_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                    void *opaque);
int pg_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
               void *opaque);
int pg_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                 void *opaque);
int pg_verify(oh_store *st, struct oh_store_verify *v);
int pg_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn, void *opaque,
             int64_t *count);

/* ---- store_pg_desk.c: the directory and the desk's rows ---- */

int pg_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out);
int pg_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                     void *opaque);
int pg_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque);
int pg_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                      size_t len);
int pg_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque);
int pg_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
               char *next);
int pg_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
               struct oh_store_ref *out);
int pg_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
               const char *conv, const char *message_id);
int pg_message_state(oh_store *st, const char *conv, const char *message_id, char out[16]);
int pg_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                  const char *device, int64_t seq);
int pg_cursors(oh_store *st, const char *conv, const char *role, const char *user,
               oh_store_cursor_fn fn, void *opaque);
int pg_kv_put(oh_store *st, const char *ns, const char *key, const char *value);
int pg_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen);
int pg_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                   void (*fn)(void *ctx, size_t i, const char *value), void *ctx);
int pg_kv_del(oh_store *st, const char *ns, const char *key);
int pg_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
               const char *value);
int pg_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);
int pg_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque);
int pg_kv_write(oh_store *st, const char *ns, const char *const *keys, const char *const *values,
                size_t n);
int pg_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts, size_t n);
int pg_conversations_touch(oh_store *st, const char *const *convs, size_t n);
/* Conversation $1 takes the shard's next change number: the counter, then
 * the row, in one statement (the order materialize takes them in). */
#define PG_CONV_TOUCH_SQL                                                                          \
    "WITH ctr AS (UPDATE revs SET rev = rev + 1 WHERE id = 1 RETURNING rev) UPDATE conversations " \
    "SET rev = (SELECT rev FROM ctr) WHERE id = $1"
int pg_contact_write(oh_store *st, const char *const *keys, const char *const *values, size_t n,
                     const struct oh_contact_seen *seen, const char *const *convs,
                     const char *const *contacts, size_t k);

/* ---- store_pg_kpi.c: knowledge-base articles and KPIs ---- */

int pg_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version);
int pg_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
int pg_article_del(oh_store *st, const char *id);
int pg_articles(oh_store *st, oh_store_article_fn fn, void *opaque);
/* kpi_days filled from kpi_episodes on POOL (shard 0) when the store
 * opens (a store from before migration 12). */
int oh_pg_kpi_days_fill(struct oh_pg_pool *p);
int pg_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
               const struct oh_store_pos *pos, size_t npos);
int pg_kpi_report(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                  void *opaque);

#endif
