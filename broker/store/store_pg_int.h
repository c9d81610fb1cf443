/* store_pg_int.h - private to the PostgreSQL store: connection pools with
 * reconnect and backoff, prepared statements, schema migrations. */
#ifndef OH_STORE_PG_INT_H
#define OH_STORE_PG_INT_H

#include <pthread.h>
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
    P_KV_GET_MANY,
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

#endif
