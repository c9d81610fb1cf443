/* store_pg_int.h - private to the PostgreSQL store: connection pools with
 * reconnect and backoff, prepared statements, schema migrations. */
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
    P_OPEN_ASSIGNED,
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

#endif
