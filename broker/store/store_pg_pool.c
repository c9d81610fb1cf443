/* store_pg_pool.c - PostgreSQL plumbing of the store: per-server connection
 * pools that reconnect with backoff, prepared statements, migrations. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "store/store_pg_int.h"

#include "store/store_pg_schema.inc"

/* The table schema_version lists the migrations applied. */

#define PG_LOCK_KEY      "7236424961" /* pg_advisory_lock key of the migrations */
#define PG_BACKOFF_FIRST 100
#define PG_BACKOFF_MAX   2000
#define PG_WAIT_MS       30000 /* longest wait for a free pooled connection */

static void on_notice(void *arg, const char *message)
{
    OH_DEBUG("store", "postgres: %.*s", (int)strcspn(message, "\n"), message);
}

static PGconn *pg_connect(const char *dsn)
{
    /* Defaults first: what the DSN says wins. Keepalives and the TCP user
     * timeout turn a vanished server into an error within about 30 s. */
    const char *const keys[] = {
        "connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *const vals[] = {"5", "omnihub", "10", "5", "3", "30000", dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c) PQsetNoticeProcessor(c, on_notice, NULL);
    return c;
}

/* False when an idle connection has been closed by the server (a restart
 * leaves a FATAL message and then EOF): reading them now avoids sending a
 * statement into a dead socket. Never blocks. */
static bool idle_alive(PGconn *c)
{
    if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE) return false;
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
    for (int i = 0; i < 4 && poll(&pfd, 1, 0) > 0; i++)
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) return false;
    return PQstatus(c) == CONNECTION_OK;
}

struct oh_pg_pool *oh_pg_pool_new(const char *dsn, const char *name, int size)
{
    struct oh_pg_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->size = size > 0 ? size : 1;
    p->dsn = strdup(dsn);
    p->conns = calloc((size_t)p->size, sizeof *p->conns);
    if (!p->dsn || !p->conns) {
        free(p->dsn);
        free(p->conns);
        free(p);
        return NULL;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->backoff_ms = PG_BACKOFF_FIRST;
    return p;
}

void oh_pg_pool_free(struct oh_pg_pool *p)
{
    if (!p) return;
    for (int i = 0; i < p->size; i++)
        if (p->conns[i].c) PQfinish(p->conns[i].c);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->conns);
    free(p->dsn);
    free(p);
}

static void drop(struct oh_pg_conn *c)
{
    if (c->c) PQfinish(c->c);
    c->c = NULL;
    c->prepared = 0;
}

/* A pooled connection, connected and healthy as far as a non-blocking
 * look can tell; OH_EUNAVAIL while the server is down. */
static int acquire(struct oh_pg_pool *p, struct oh_pg_conn **out)
{
    pthread_mutex_lock(&p->mu);
    struct oh_pg_conn *c = NULL;
    for (;;) {
        if (oh_mono_ms() < p->down_until_ms) {
            pthread_mutex_unlock(&p->mu);
            return OH_EUNAVAIL;
        }
        for (int i = 0; i < p->size && !c; i++)
            if (!p->conns[i].busy) c = &p->conns[i];
        if (c) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += PG_WAIT_MS / 1000;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            return OH_ETIMEOUT;
        }
    }
    c->busy = true;
    pthread_mutex_unlock(&p->mu);

    if (c->c && !idle_alive(c->c)) drop(c);
    if (!c->c) {
        c->c = pg_connect(p->dsn);
        if (PQstatus(c->c) != CONNECTION_OK) {
            OH_WARN("store", "postgres %s: %s", p->name, PQerrorMessage(c->c));
            drop(c);
            pthread_mutex_lock(&p->mu);
            p->down_until_ms = oh_mono_ms() + p->backoff_ms;
            p->backoff_ms = p->backoff_ms * 2 > PG_BACKOFF_MAX ? PG_BACKOFF_MAX : p->backoff_ms * 2;
            c->busy = false;
            pthread_cond_signal(&p->cv);
            pthread_mutex_unlock(&p->mu);
            return OH_EUNAVAIL;
        }
        pthread_mutex_lock(&p->mu);
        p->backoff_ms = PG_BACKOFF_FIRST;
        pthread_mutex_unlock(&p->mu);
    }
    *out = c;
    return 0;
}

static void release(struct oh_pg_pool *p, struct oh_pg_conn *c)
{
    pthread_mutex_lock(&p->mu);
    c->busy = false;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int map_error(const PGresult *r)
{
    const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!code) return OH_EUNAVAIL; /* no SQLSTATE: the connection failed */
    if (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0) return OH_EUNAVAIL;
    if (strcmp(code, "23505") == 0) return OH_EDUP;
    if (strcmp(code, "40001") == 0 || strcmp(code, "40P01") == 0) return OH_ERETRY;
    return OH_EIO;
}

static int exec_once(struct oh_pg_pool *p, enum pg_stmt id, const char *sql, int n,
                     const char *const *vals, PGresult **res, bool *broken)
{
    struct oh_pg_conn *c;
    int rc = acquire(p, &c);
    if (rc != 0) return rc;
    char name[16];
    snprintf(name, sizeof name, "oh%d", (int)id);
    PGresult *r = NULL;
    if (sql) {
        r = PQexecParams(c->c, sql, n, NULL, vals, NULL, NULL, 0);
    } else if (!(c->prepared & (UINT64_C(1) << id))) {
        r = PQprepare(c->c, name, oh_pg_sql[id], 0, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) goto fail;
        PQclear(r);
        c->prepared |= UINT64_C(1) << id;
    }
    if (!sql) r = PQexecPrepared(c->c, name, n, vals, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) goto fail;
    release(p, c);
    *res = r;
    return 0;
fail:
    rc = map_error(r);
    *broken = PQstatus(c->c) != CONNECTION_OK;
    if (*broken) rc = OH_EUNAVAIL;
    OH_WARN("store", "postgres %s: statement %d: %s", p->name, (int)id,
            r ? PQresultErrorMessage(r) : PQerrorMessage(c->c));
    PQclear(r);
    if (*broken) drop(c);
    release(p, c);
    return rc;
}

int oh_pg_exec(struct oh_pg_pool *p, enum pg_stmt id, int n, const char *const *vals,
               PGresult **res, bool retry)
{
    bool broken = false;
    *res = NULL;
    int rc = exec_once(p, id, NULL, n, vals, res, &broken);
    if (rc != 0 && broken && retry) rc = exec_once(p, id, NULL, n, vals, res, &broken);
    return rc;
}

int oh_pg_exec_sql(struct oh_pg_pool *p, const char *sql, int n, const char *const *vals,
                   PGresult **res, bool retry)
{
    bool broken = false;
    *res = NULL;
    int rc = exec_once(p, P_COUNT, sql, n, vals, res, &broken);
    if (rc != 0 && broken && retry) rc = exec_once(p, P_COUNT, sql, n, vals, res, &broken);
    return rc;
}

int oh_pg_hold(struct oh_pg_pool *p, struct oh_pg_conn **out)
{
    return acquire(p, out);
}

int oh_pg_held_exec(struct oh_pg_pool *p, struct oh_pg_conn *c, const char *sql, int n,
                    const char *const *vals, PGresult **res)
{
    PGresult *r = PQexecParams(c->c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        *res = r;
        return 0;
    }
    int rc = PQstatus(c->c) != CONNECTION_OK ? OH_EUNAVAIL : map_error(r);
    OH_WARN("store", "postgres %s: %.40s...: %s", p->name, sql,
            r ? PQresultErrorMessage(r) : PQerrorMessage(c->c));
    PQclear(r);
    *res = NULL;
    return rc;
}

void oh_pg_unhold(struct oh_pg_pool *p, struct oh_pg_conn *c)
{
    /* a transaction left open (a failed statement) is rolled back here, so
     * the next user of the connection starts clean */
    if (PQstatus(c->c) == CONNECTION_OK && PQtransactionStatus(c->c) != PQTRANS_IDLE)
        PQclear(PQexec(c->c, "ROLLBACK"));
    if (PQstatus(c->c) != CONNECTION_OK || PQtransactionStatus(c->c) != PQTRANS_IDLE) drop(c);
    release(p, c);
}

static int simple(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : OH_EIO;
    if (rc != 0) oh_errf(err, errlen, "postgres: %.60s...: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return rc;
}

int oh_pg_migrate(const char *dsn, char *err, size_t errlen)
{
    PGconn *c = pg_connect(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        oh_errf(err, errlen, "postgres: %s", PQerrorMessage(c));
        PQfinish(c);
        return OH_EUNAVAIL;
    }
    int rc = simple(c, "SET client_min_messages = warning", err, errlen);
    if (rc == 0) rc = simple(c, "SELECT pg_advisory_lock(" PG_LOCK_KEY ")", err, errlen);
    if (rc != 0) goto out;
    rc = simple(c,
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                err, errlen);
    long version = 0;
    if (rc == 0) {
        PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM schema_version");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
            version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
        else
            rc = OH_EIO;
        PQclear(r);
    }
    long latest = (long)OH_ARRAY_SIZE(pg_migrations);
    if (rc == 0 && version > latest) {
        oh_errf(err, errlen, "postgres: schema version %ld is newer than this build (%ld)", version,
                latest);
        rc = OH_EINVAL;
    }
    for (long v = version; rc == 0 && v < latest; v++) {
        char ins[96];
        snprintf(ins, sizeof ins, "INSERT INTO schema_version (version) VALUES (%ld)", v + 1);
        rc = simple(c, "BEGIN", err, errlen);
        if (rc == 0) rc = simple(c, pg_migrations[v], err, errlen);
        if (rc == 0) rc = simple(c, ins, err, errlen);
        if (rc == 0) rc = simple(c, "COMMIT", err, errlen);
        if (rc != 0)
            simple(c, "ROLLBACK", NULL, 0);
        else
            OH_INFO("store", "postgres: applied migration %ld", v + 1);
    }
    char dummy[8];
    simple(c, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")", dummy, sizeof dummy);
out:
    PQfinish(c);
    return rc;
}
