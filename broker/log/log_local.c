/* log_local.c - the embedded durable log: SQLite in WAL mode, one partition
 * per topic, and a writer thread that group-commits every queued append. */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "core/crypto.h"
#include "log/log_int.h"

#define COMP "log.local"
/* Consumers of another process get no signal; they re-read this often. */
#define XPROC_POLL_MS 50

/* Version 3: one table per topic, records_<id> with the id from topics,
 * whose rowid is the record's offset, so an append writes one b-tree (a
 * table keyed by (topic, off) also wrote its primary-key index). Topic
 * names are only ever bound; table names are built from the integer id. */
static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS group_offsets("
    " grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " next INTEGER NOT NULL, ts_ms INTEGER NOT NULL, PRIMARY KEY(grp, topic, part));"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);";
#define LOG_VERSION 3
/* A topic's table, records_<id>; the metadata are struct oh_log_meta. */
static const char table_sql[] =
    "CREATE TABLE records_%lld(off INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, key TEXT,"
    " value BLOB NOT NULL, type TEXT, subject TEXT, seq INTEGER, author TEXT, time TEXT,"
    " internal INTEGER)";
#define RECORD_COLS "off, ts_ms, key, value, type, subject, seq, author, time, internal"
/* Bounds on what names a table: topic names are bound as text, never part
 * of SQL; at most MAX_TOPICS tables (ids 1..MAX_TOPICS). */
#define MAX_TOPICS    1024
#define MAX_TOPIC_LEN 255

/* Versions 1 and 2 of the single table records(topic, off, ...) added
 * columns to it (the routing metadata; the event's time and private-note
 * flag); a log.db from before gets them, NULL, before it is converted. */
static const char meta_sql[] = "ALTER TABLE records ADD COLUMN type TEXT;"
                               "ALTER TABLE records ADD COLUMN subject TEXT;"
                               "ALTER TABLE records ADD COLUMN seq INTEGER;"
                               "ALTER TABLE records ADD COLUMN author TEXT;";
static const char meta2_sql[] = "ALTER TABLE records ADD COLUMN time TEXT;"
                                "ALTER TABLE records ADD COLUMN internal INTEGER;";

/* One queued append, or (GROUP set) a group's committed position; the
 * strings and the value are copied behind the header. */
struct lq_item {
    struct lq_item *next;
    oh_log_done_fn done;
    void *opaque;
    const char *group; /* a position to store: group, topic, next = off */
    const char *topic;
    const char *key; /* NULL: no key */
    const char *value;
    const char *type, *subject, *author, *time; /* struct oh_log_meta; NULL: absent */
    int64_t seq;
    bool internal;
    size_t len;
    int64_t ts_ms;
    int64_t off;
    int err; /* this append alone failed (its topic could not be made) */
    char data[]; /* may begin inside the struct's trailing padding */
};

/* The newest records this process committed to one topic, contiguous
 * offsets [first, end): consumers in this process read them from here
 * instead of from SQLite. Guarded by the log's mu; only the writer thread
 * adds and evicts. */
/* The timeline's appends in a commit that carries others, at most. */
#define BULK_SHARE 64

#define TAIL_RECORDS 4096
#define TAIL_BYTES   (16u << 20)
#define TAIL_TOPICS  8

struct tail {
    char topic[64];
    struct lq_item *ring[TAIL_RECORDS]; /* record OFF at ring[OFF % TAIL_RECORDS] */
    int64_t first, end;
    size_t bytes;
};

struct oh_log {
    struct oh_log_base base;
    char *path;
    char id[48];  /* random, created with the file: which log this is */
    sqlite3 *wdb; /* the writer thread's */
    sqlite3_stmt *put, *tid;
    /* the writer's statements per topic it appended to, as known to the
     * file at its last commit */
    struct wtopic {
        char *name;
        sqlite3_stmt *ins, *last; /* into its table; MAX(off) there */
        int64_t next;             /* the next offset, read in batch BATCH */
        uint64_t batch;
    } * wt;
    int nwt;
    uint64_t batches;
    sqlite3 *rdb; /* lag and ping, under rmu */
    pthread_mutex_t rmu;

    pthread_mutex_t mu;       /* guards everything below */
    pthread_cond_t wake;      /* writer: work queued or closing */
    pthread_cond_t committed; /* consumers: a commit happened */
    /* two lanes, each in order: the timeline's appends (sync's copies of
     * what the store already holds) ride behind every other append, at
     * most BULK_SHARE of them in a commit that has others, so an
     * acknowledgement never waits behind a burst of them */
    struct lq_item *head, **tail;
    struct lq_item *bulk, **bulk_tail;
    struct tail *tails[TAIL_TOPICS];
    uint64_t gen; /* commits so far */
    bool closing;
    int max_batch;
    pthread_t writer;
    bool running; /* the writer thread was started */
    struct answer {
        oh_log_done_fn done;
        void *opaque;
        int err;
        int64_t off;
    } * answers; /* the writer's, max_batch of them */
};

struct oh_log_consumer {
    struct oh_log_base base;
    oh_log *log;
    sqlite3 *db;
    sqlite3_stmt *tid, *get;
    sqlite3_stmt *sel, *end; /* on the topic's table; NULL until it has one */
    char *group; /* NULL: no group */
    char *topic;
    struct oh_log_rebalance reb;
    bool started, assigned, positioned;
    bool at_end; /* a poll since the last seek found nothing */
    int64_t pos;
    char *buf; /* record copies of the last poll */
    size_t cap;
    size_t *offs; /* OH_LOG_NSTR per record: where its strings are in buf */
    int noffs;
};

/* ---- helpers ------------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

static int dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return 0;
    size_t n = (size_t)(slash - path);
    if (n == 0 || n >= outlen) return n == 0 ? 0 : -1;
    memcpy(out, path, n);
    out[n] = '\0';
    return mkdir_p(out);
}

/* As the store's (store_sqlite.c): no allocation statistics, set before
 * SQLite's first use in the process, whichever opens first. */
static void no_memstatus(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static sqlite3 *db_open(const char *path, const char *sync, char *err, size_t errlen)
{
    static pthread_once_t configured = PTHREAD_ONCE_INIT;
    pthread_once(&configured, no_memstatus);
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        oh_errf(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 10000);
    char sql[128];
    snprintf(sql, sizeof sql, "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;", sync);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        oh_errf(err, errlen, "%s: %s", path, msg ? msg : "pragma failed");
        sqlite3_free(msg);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        oh_errf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return OH_EIO;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        OH_ERROR(COMP, "%s: %s", sql, msg ? msg : "failed");
        sqlite3_free(msg);
        return OH_EIO;
    }
    return 0;
}

/* Next offset to write on a topic, by the statement ST ("MAX(off)" of its
 * table); -1 on error. */
static int64_t end_of(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    int64_t end = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        end = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0) + 1;
    sqlite3_reset(st);
    return end;
}

/* Prepares SQL_FMT, whose one %lld is the topic's table id ID. */
static int prep_on(sqlite3 *db, const char *sql_fmt, int64_t id, sqlite3_stmt **st)
{
    char sql[256];
    snprintf(sql, sizeof sql, sql_fmt, (long long)id);
    return prep(db, sql, st, NULL, 0);
}

static int create_table(sqlite3 *db, int64_t id)
{
    char sql[sizeof table_sql + 24];
    snprintf(sql, sizeof sql, table_sql, (long long)id);
    return exec(db, sql);
}

/* The id of TOPIC by FIND ("SELECT id FROM topics WHERE name=?"); 0 when it
 * has none yet. With DB (the writer, inside its write transaction), a new
 * topic gets the next id and its table. Returns the id or OH_ETOOBIG (all
 * MAX_TOPICS ids taken), OH_EIO. */
static int64_t topic_id(sqlite3_stmt *find, sqlite3 *db, const char *topic)
{
    sqlite3_reset(find);
    sqlite3_bind_text(find, 1, topic, -1, SQLITE_STATIC);
    int rc = sqlite3_step(find);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(find, 0) : rc == SQLITE_DONE ? 0 : OH_EIO;
    sqlite3_reset(find);
    if (id != 0 || !db) return id;
    sqlite3_stmt *st = NULL;
    id = OH_EIO;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(id), 0) + 1 FROM topics", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (id > MAX_TOPICS) return OH_ETOOBIG;
    if (id < 0) return id;
    if (sqlite3_prepare_v2(db, "INSERT INTO topics(id, name) VALUES(?, ?)", -1, &st, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(st);
        return OH_EIO;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || create_table(db, id)) return OH_EIO;
    return id;
}

static bool topic_ok(const char *topic)
{
    size_t n = strlen(topic);
    return n > 0 && n <= MAX_TOPIC_LEN;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* ---- the writer --------------------------------------------------------- */

static void wtopics_forget(oh_log *log)
{
    for (int i = 0; i < log->nwt; i++) {
        free(log->wt[i].name);
        sqlite3_finalize(log->wt[i].ins);
        sqlite3_finalize(log->wt[i].last);
    }
    free(log->wt);
    log->wt = NULL;
    log->nwt = 0;
}

/* The writer's statements for TOPIC, its table made if new (inside the
 * batch's transaction); NULL with *RC set when that failed. Runs on the
 * writer thread. */
static struct wtopic *wtopic_of(oh_log *log, const char *topic, int *rc)
{
    for (int i = 0; i < log->nwt; i++)
        if (!strcmp(log->wt[i].name, topic)) return &log->wt[i];
    int64_t id = topic_id(log->tid, log->wdb, topic);
    if (id <= 0) {
        *rc = id < 0 ? (int)id : OH_EIO;
        return NULL;
    }
    struct wtopic *wt = realloc(log->wt, sizeof *wt * (size_t)(log->nwt + 1));
    if (!wt) {
        *rc = OH_ENOMEM;
        return NULL;
    }
    log->wt = wt;
    struct wtopic *w = &wt[log->nwt];
    *w = (struct wtopic){.name = strdup(topic)};
    if (!w->name ||
        prep_on(log->wdb, "INSERT INTO records_%lld(" RECORD_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)",
                id, &w->ins) ||
        prep_on(log->wdb, "SELECT MAX(off) FROM records_%lld", id, &w->last)) {
        free(w->name);
        sqlite3_finalize(w->ins);
        *rc = OH_EIO;
        return NULL;
    }
    log->nwt++;
    return w;
}

static int insert(struct wtopic *w, const struct lq_item *it)
{
    sqlite3_stmt *st = w->ins;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, it->off);
    sqlite3_bind_int64(st, 2, it->ts_ms);
    if (it->key)
        sqlite3_bind_text(st, 3, it->key, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_blob64(st, 4, it->value, it->len, SQLITE_STATIC);
    const char *meta[] = {it->type, it->subject, NULL, it->author, it->time};
    for (int i = 0; i < 5; i++)
        if (meta[i])
            sqlite3_bind_text(st, 5 + i, meta[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5 + i);
    if (it->seq) sqlite3_bind_int64(st, 7, it->seq);
    if (it->internal)
        sqlite3_bind_int(st, 10, 1);
    else
        sqlite3_bind_null(st, 10);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : OH_EIO;
}

/* Writes BATCH in one transaction; fills each item's offset (or its err
 * when its topic alone cannot be made). Runs on the writer thread.
 * Returns 0 once COMMIT (with synchronous=FULL) returned. */
static int write_batch(oh_log *log, struct lq_item *batch)
{
    uint64_t b = ++log->batches;
    if (exec(log->wdb, "BEGIN IMMEDIATE")) return OH_EIO;
    for (struct lq_item *it = batch; it; it = it->next) {
        if (it->group) { /* positions ride along in the same transaction */
            sqlite3_stmt *st = log->put;
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, it->group, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, it->topic, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 3, 0);
            sqlite3_bind_int64(st, 4, it->off);
            sqlite3_bind_int64(st, 5, it->ts_ms);
            int rc = sqlite3_step(st);
            sqlite3_reset(st);
            if (rc != SQLITE_DONE) goto fail;
            continue;
        }
        int rc = 0;
        struct wtopic *w = wtopic_of(log, it->topic, &rc);
        if (!w && rc == OH_ETOOBIG) {
            OH_ERROR(COMP, "append to %s: already %d topics, no more", it->topic, MAX_TOPICS);
            it->err = rc;
            continue;
        }
        if (!w) goto fail;
        if (w->batch != b) { /* another process may have appended since */
            if ((w->next = end_of(w->last)) < 0) goto fail;
            w->batch = b;
        }
        it->off = w->next++;
        if (insert(w, it)) goto fail;
    }
    if (exec(log->wdb, "COMMIT") == 0) return 0;
fail:
    OH_ERROR(COMP, "append batch failed: %s", sqlite3_errmsg(log->wdb));
    if (!sqlite3_get_autocommit(log->wdb)) exec(log->wdb, "ROLLBACK");
    wtopics_forget(log); /* a table made in this transaction is gone again */
    return OH_EIO;
}

static void tail_clear(struct tail *t, int64_t at)
{
    for (int64_t o = t->first; o < t->end; o++)
        free(t->ring[o % TAIL_RECORDS]);
    t->first = t->end = at;
    t->bytes = 0;
}

static struct tail *tail_of(oh_log *log, const char *topic)
{
    for (int i = 0; i < TAIL_TOPICS && log->tails[i]; i++)
        if (strcmp(log->tails[i]->topic, topic) == 0) return log->tails[i];
    return NULL;
}

/* Keeps committed record IT (true: the tail owns it now). Under mu. */
static bool tail_keep(oh_log *log, struct lq_item *it)
{
    struct tail *t = tail_of(log, it->topic);
    if (!t) {
        int i = 0;
        while (i < TAIL_TOPICS && log->tails[i])
            i++;
        if (i == TAIL_TOPICS || strlen(it->topic) >= sizeof t->topic ||
            !(t = log->tails[i] = calloc(1, sizeof *t)))
            return false;
        snprintf(t->topic, sizeof t->topic, "%s", it->topic);
        t->first = t->end = it->off;
    }
    if (it->len > TAIL_BYTES / 4) return false;
    if (it->off != t->end) tail_clear(t, it->off); /* another process wrote between */
    while (t->end > t->first &&
           (t->end - t->first == TAIL_RECORDS || t->bytes + it->len > TAIL_BYTES)) {
        struct lq_item *old = t->ring[t->first++ % TAIL_RECORDS];
        t->bytes -= old->len;
        free(old);
    }
    t->ring[it->off % TAIL_RECORDS] = it;
    t->end = it->off + 1;
    t->bytes += it->len;
    return true;
}

/* Moves up to MAX items from the front of queue *Q (its tail pointer *QT)
 * to the batch's end *END, which it advances; how many. Under mu. */
static int take(struct lq_item **q, struct lq_item ***qt, struct lq_item ***end, int max)
{
    int n = 0;
    for (; *q && n < max; n++) {
        **end = *q;
        *end = &(*q)->next;
        *q = (*q)->next;
    }
    if (!*q) *qt = q;
    return n;
}

static void *writer_main(void *arg)
{
    oh_log *log = arg;
    for (;;) {
        pthread_mutex_lock(&log->mu);
        while (!log->head && !log->bulk && !log->closing)
            pthread_cond_wait(&log->wake, &log->mu);
        if (!log->head && !log->bulk) {
            pthread_mutex_unlock(&log->mu);
            break;
        }
        struct lq_item *batch = NULL, **end = &batch;
        int taken = take(&log->head, &log->tail, &end, log->max_batch);
        int room = log->max_batch - taken;
        take(&log->bulk, &log->bulk_tail, &end, taken && room > BULK_SHARE ? BULK_SHARE : room);
        *end = NULL;
        pthread_mutex_unlock(&log->mu);

        int rc = write_batch(log, batch);
        /* Only now, after COMMIT returned (fsynced), is anyone told. The
         * committed records move to the tail, which may free them: the
         * answers are taken first. */
        size_t n = 0;
        for (struct lq_item *it = batch; it; it = it->next)
            if (it->done)
                log->answers[n++] =
                    (struct answer){it->done, it->opaque, rc ? rc : it->err, it->off};
        if (rc == 0) {
            pthread_mutex_lock(&log->mu);
            while (batch) {
                struct lq_item *next = batch->next;
                if (batch->group || batch->err || !tail_keep(log, batch)) free(batch);
                batch = next;
            }
            log->gen++;
            pthread_cond_broadcast(&log->committed);
            pthread_mutex_unlock(&log->mu);
        }
        while (batch) {
            struct lq_item *next = batch->next;
            free(batch);
            batch = next;
        }
        for (size_t i = 0; i < n; i++) {
            const struct answer *a = &log->answers[i];
            a->done(a->opaque, a->err, 0, a->err ? -1 : a->off);
        }
    }
    return NULL;
}

/* Moves the records of the single table records(topic, off, ...) of
 * versions 0-2 into one table per topic, offsets and metadata as they were.
 * Inside migrate()'s transaction. */
static int convert(sqlite3 *db, char **msg)
{
    static const char add_sql[] =
        "INSERT INTO topics(name) SELECT DISTINCT topic FROM records ORDER BY topic";
    if (sqlite3_exec(db, add_sql, NULL, NULL, msg) != SQLITE_OK) return OH_EIO;
    sqlite3_stmt *st = NULL, *copy = NULL;
    int rc = OH_EIO;
    if (sqlite3_prepare_v2(db, "SELECT id, name FROM topics ORDER BY id", -1, &st, NULL) !=
        SQLITE_OK)
        goto out;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (id < 1 || id > MAX_TOPICS) {
            *msg = sqlite3_mprintf("more than %d topics", MAX_TOPICS);
            goto out;
        }
        char sql[256];
        snprintf(sql, sizeof sql,
                 "INSERT INTO records_%lld(" RECORD_COLS ") SELECT " RECORD_COLS
                 " FROM records WHERE topic=? ORDER BY off",
                 (long long)id);
        sqlite3_finalize(copy);
        copy = NULL;
        if (create_table(db, id) || sqlite3_prepare_v2(db, sql, -1, &copy, NULL) != SQLITE_OK)
            goto out;
        sqlite3_bind_value(copy, 1, sqlite3_column_value(st, 1));
        if (sqlite3_step(copy) != SQLITE_DONE) goto out;
    }
    if (step == SQLITE_DONE && sqlite3_exec(db, "DROP TABLE records", NULL, NULL, msg) == SQLITE_OK)
        rc = 0;
out:
    sqlite3_finalize(copy);
    sqlite3_finalize(st);
    return rc;
}

/* Brings an older log.db to the current version (PRAGMA user_version); a
 * second process doing the same waits for the first on the write lock. */
static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) goto fail;
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version < 0) goto fail;
    if (version > LOG_VERSION) {
        msg = sqlite3_mprintf("log.db is version %d, newer than this omnihubd's %d", version,
                              LOG_VERSION);
        goto fail;
    }
    /* a version 0-2 file has the table records (a new one has none); it
     * may lack the columns later versions added */
    bool single =
        sqlite3_prepare_v2(db, "SELECT off FROM records LIMIT 0", -1, &st, NULL) == SQLITE_OK;
    sqlite3_finalize(st);
    if (single) {
        bool has_meta =
            sqlite3_prepare_v2(db, "SELECT type FROM records LIMIT 0", -1, &st, NULL) == SQLITE_OK;
        sqlite3_finalize(st);
        if (!has_meta && sqlite3_exec(db, meta_sql, NULL, NULL, &msg) != SQLITE_OK) goto fail;
        bool has_time =
            sqlite3_prepare_v2(db, "SELECT time FROM records LIMIT 0", -1, &st, NULL) == SQLITE_OK;
        sqlite3_finalize(st);
        if (!has_time && sqlite3_exec(db, meta2_sql, NULL, NULL, &msg) != SQLITE_OK) goto fail;
        if (convert(db, &msg)) goto fail;
    }
    char sql[40];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", LOG_VERSION);
    if (version < LOG_VERSION && sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) goto fail;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) goto fail;
    return 0;
fail:
    oh_errf(err, errlen, "migrate: %s", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return OH_EIO;
}

/* ---- the log ------------------------------------------------------------ */

static void local_close(oh_log *log)
{
    if (!log) return;
    if (log->running) {
        pthread_mutex_lock(&log->mu);
        log->closing = true;
        pthread_cond_signal(&log->wake);
        pthread_cond_broadcast(&log->committed);
        pthread_mutex_unlock(&log->mu);
        pthread_join(log->writer, NULL);
    }
    for (int i = 0; i < TAIL_TOPICS && log->tails[i]; i++) {
        tail_clear(log->tails[i], 0);
        free(log->tails[i]);
    }
    free(log->answers);
    wtopics_forget(log);
    sqlite3_finalize(log->tid);
    sqlite3_finalize(log->put);
    sqlite3_close(log->wdb);
    sqlite3_close(log->rdb);
    pthread_mutex_destroy(&log->mu);
    pthread_mutex_destroy(&log->rmu);
    pthread_cond_destroy(&log->wake);
    pthread_cond_destroy(&log->committed);
    free(log->path);
    free(log);
}

/* The log's id, created with the file (an old file gets one now): a store
 * that consumed this log recognizes it, and a new or another file is told
 * apart from it even where offsets overlap. */
static int load_id(oh_log *log, char *err, size_t errlen)
{
    uint8_t rnd[16];
    char fresh[32];
    sqlite3_stmt *st = NULL;
    if (oh_random(rnd, sizeof rnd)) {
        oh_errf(err, errlen, "%s: no randomness for the log id", log->path);
        return OH_EIO;
    }
    oh_base64url(rnd, sizeof rnd, fresh);
    int rc = sqlite3_prepare_v2(log->wdb, "INSERT OR IGNORE INTO meta(key, value) VALUES('id', ?)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, fresh, -1, SQLITE_STATIC);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(log->wdb, "SELECT value FROM meta WHERE key='id'", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        snprintf(log->id, sizeof log->id, "%s", (const char *)sqlite3_column_text(st, 0));
    else
        rc = SQLITE_ERROR;
    if (rc != SQLITE_OK)
        oh_errf(err, errlen, "%s: log id: %s", log->path, sqlite3_errmsg(log->wdb));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : OH_EIO;
}

static oh_log *local_open(const oh_config *cfg, char *err, size_t errlen)
{
    oh_log *log = calloc(1, sizeof *log);
    if (!log) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    log->base.ops = &oh_log_local_ops;
    log->tail = &log->head;
    log->bulk_tail = &log->bulk;
    log->max_batch = (int)oh_config_int(cfg, "log.local.max_batch");
    if (log->max_batch <= 0) log->max_batch = 1024;
    if (!(log->answers = calloc((size_t)log->max_batch, sizeof *log->answers))) {
        free(log);
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&log->mu, NULL);
    pthread_mutex_init(&log->rmu, NULL);
    pthread_cond_init(&log->wake, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->committed, &ca);
    pthread_condattr_destroy(&ca);

    const char *path = oh_config_str(cfg, "log.local.path");
    const char *dir = oh_config_str(cfg, "data_dir");
    char buf[4096];
    if (!oh_config_bool(cfg, "log.local.create")) {
        /* a reader (omnihubctl) pointed at the wrong place must not report
         * an empty log it made itself */
        struct stat sb;
        snprintf(buf, sizeof buf, "%s/log.db", dir && *dir ? dir : ".");
        const char *want = path && *path ? path : buf;
        if (stat(want, &sb) != 0) {
            oh_errf(err, errlen,
                    "no log at %s (run where the daemon runs, or pass -c with its "
                    "configuration)",
                    want);
            goto fail;
        }
    }
    if (path && *path) {
        log->path = strdup(path);
        if (dir_of(path, buf, sizeof buf)) {
            oh_errf(err, errlen, "log.local.path: cannot create the directory of %s", path);
            goto fail;
        }
    } else {
        if (!dir || !*dir) dir = ".";
        if (mkdir_p(dir)) {
            oh_errf(err, errlen, "data_dir: cannot create %s: %s", dir, strerror(errno));
            goto fail;
        }
        snprintf(buf, sizeof buf, "%s/log.db", dir);
        log->path = strdup(buf);
    }
    if (!log->path) {
        oh_errf(err, errlen, "out of memory");
        goto fail;
    }
    if (!(log->wdb = db_open(log->path, "FULL", err, errlen))) goto fail;
    char *msg = NULL;
    if (sqlite3_exec(log->wdb, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        oh_errf(err, errlen, "%s: schema: %s", log->path, msg ? msg : "failed");
        sqlite3_free(msg);
        goto fail;
    }
    if (load_id(log, err, errlen)) goto fail;
    if (migrate(log->wdb, err, errlen)) goto fail;
    if (prep(log->wdb, "SELECT id FROM topics WHERE name=?", &log->tid, err, errlen) ||
        prep(log->wdb,
             "INSERT INTO group_offsets(grp, topic, part, next, ts_ms) VALUES(?,?,?,?,?)"
             " ON CONFLICT(grp, topic, part) DO UPDATE"
             " SET next=excluded.next, ts_ms=excluded.ts_ms",
             &log->put, err, errlen))
        goto fail;
    if (!(log->rdb = db_open(log->path, "NORMAL", err, errlen))) goto fail;
    if (pthread_create(&log->writer, NULL, writer_main, log)) {
        oh_errf(err, errlen, "cannot start the log writer thread");
        goto fail;
    }
    pthread_setname_np(log->writer, "oh-log-writer");
    OH_INFO(COMP, "local log at %s (group commit, at most %d appends per commit)", log->path,
            log->max_batch);
    log->running = true;
    return log;
fail:
    local_close(log);
    return NULL;
}

static const char *local_bootstrap(const oh_log *log)
{
    return log->path;
}

static int local_identity(oh_log *log, char *out, size_t outlen)
{
    snprintf(out, outlen, "local:%s", log->id);
    return 0;
}

static int local_ping(oh_log *log)
{
    pthread_mutex_lock(&log->rmu);
    int rc = sqlite3_exec(log->rdb, "SELECT 1 FROM topics LIMIT 1", NULL, NULL, NULL);
    pthread_mutex_unlock(&log->rmu);
    return rc == SQLITE_OK ? 0 : OH_EUNAVAIL;
}

/* Hands IT (owned) to the writer thread; OH_ECLOSED (IT freed) when closing. */
static int enqueue(oh_log *log, struct lq_item *it)
{
    pthread_mutex_lock(&log->mu);
    if (log->closing) {
        pthread_mutex_unlock(&log->mu);
        free(it);
        return OH_ECLOSED;
    }
    bool bulk = !it->group && strcmp(it->topic, OH_TOPIC_TIMELINE) == 0;
    *(bulk ? log->bulk_tail : log->tail) = it;
    *(bulk ? &log->bulk_tail : &log->tail) = &it->next;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->mu);
    return 0;
}

/* Copies S (NULL stays NULL) to *P and advances it. */
static const char *put_str(char **p, const char *s, size_t n)
{
    if (!s) return NULL;
    const char *at = *p;
    memcpy(*p, s, n);
    *p += n;
    return at;
}

static int local_append(oh_log *log, const char *topic, const char *key,
                        const struct oh_log_meta *meta, const void *value, size_t len,
                        oh_log_done_fn done, void *opaque)
{
    if (!topic_ok(topic)) return OH_EINVAL;
    size_t tl = strlen(topic) + 1, kl = key ? strlen(key) + 1 : 0;
    size_t yl = meta->type ? strlen(meta->type) + 1 : 0;
    size_t sl = meta->subject ? strlen(meta->subject) + 1 : 0;
    size_t al = meta->author ? strlen(meta->author) + 1 : 0;
    size_t ml = meta->time ? strlen(meta->time) + 1 : 0;
    struct lq_item *it = malloc(sizeof *it + tl + kl + yl + sl + al + ml + len);
    if (!it) return OH_ENOMEM;
    char *p = it->data;
    it->type = put_str(&p, meta->type, yl);
    it->subject = put_str(&p, meta->subject, sl);
    it->author = put_str(&p, meta->author, al);
    it->time = put_str(&p, meta->time, ml);
    it->seq = meta->seq;
    it->internal = meta->internal;
    memcpy(p, topic, tl);
    it->topic = p;
    p += tl;
    it->key = NULL;
    if (key) {
        memcpy(p, key, kl);
        it->key = p;
        p += kl;
    }
    memcpy(p, value, len);
    it->value = p;
    it->len = len;
    it->done = done;
    it->opaque = opaque;
    it->ts_ms = oh_now_ms();
    it->off = -1;
    it->err = 0;
    it->group = NULL;
    it->next = NULL;

    return enqueue(log, it);
}

static int local_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out,
                     int max)
{
    static const char sql[] =
        "SELECT (SELECT next FROM group_offsets WHERE grp=?1 AND topic=?2 AND part=0),"
        " (SELECT MAX(off) FROM records_%lld), (SELECT MIN(off) FROM records_%lld)";
    static const char no_records_sql[] =
        "SELECT (SELECT next FROM group_offsets WHERE grp=?1 AND topic=?2 AND part=0), NULL, NULL";
    struct oh_log_lag l = {0, -1, 0, -1, -1};
    int rc = OH_EIO;
    sqlite3_stmt *find = NULL, *st = NULL, *ts = NULL;
    pthread_mutex_lock(&log->rmu);
    /* One read transaction, so committed and end are from the same moment. */
    if (sqlite3_prepare_v2(log->rdb, "SELECT id FROM topics WHERE name=?", -1, &find, NULL) !=
            SQLITE_OK ||
        exec(log->rdb, "BEGIN"))
        goto out;
    int64_t id = topic_id(find, NULL, topic);
    char q[sizeof sql + 48];
    snprintf(q, sizeof q, sql, (long long)id, (long long)id);
    if (id < 0 || sqlite3_prepare_v2(log->rdb, id ? q : no_records_sql, -1, &st, NULL) != SQLITE_OK)
        goto end;
    if (id && prep_on(log->rdb, "SELECT ts_ms FROM records_%lld WHERE off=?", id, &ts)) goto end;
    sqlite3_bind_text(st, 1, group, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, topic, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) goto end;
    if (sqlite3_column_type(st, 0) != SQLITE_NULL) l.committed = sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) != SQLITE_NULL) l.end = sqlite3_column_int64(st, 1) + 1;
    /* never committed: everything from the first record waits */
    int64_t first = sqlite3_column_type(st, 2) != SQLITE_NULL ? sqlite3_column_int64(st, 2) : -1;
    int64_t at[2] = {l.committed >= 0 ? l.committed : first, l.end - 1};
    int64_t *dst[2] = {&l.oldest_ts, &l.end_ts};
    for (int i = 0; i < 2 && ts; i++) {
        if (at[i] < 0 || at[i] >= l.end) continue;
        sqlite3_reset(ts);
        sqlite3_bind_int64(ts, 1, at[i]);
        if (sqlite3_step(ts) == SQLITE_ROW) *dst[i] = sqlite3_column_int64(ts, 0);
    }
    rc = 0;
end:
    sqlite3_reset(st);
    sqlite3_reset(ts);
    exec(log->rdb, "COMMIT");
out:
    if (rc) OH_ERROR(COMP, "lag: %s", sqlite3_errmsg(log->rdb));
    sqlite3_finalize(find);
    sqlite3_finalize(st);
    sqlite3_finalize(ts);
    pthread_mutex_unlock(&log->rmu);
    if (rc) return rc;
    out[0] = l;
    return 1;
}

static int local_partitions(oh_log *log, const char *topic)
{
    return 1;
}

/* ---- consumers ---------------------------------------------------------- */

static void local_consumer_close(oh_log_consumer *c)
{
    if (!c) return;
    if (c->assigned && c->reb.revoked) {
        static const int32_t part0 = 0;
        c->reb.revoked(c->reb.opaque, c, &part0, 1);
    }
    sqlite3_finalize(c->tid);
    sqlite3_finalize(c->sel);
    sqlite3_finalize(c->end);
    sqlite3_finalize(c->get);
    sqlite3_close(c->db);
    free(c->group);
    free(c->topic);
    free(c->buf);
    free(c->offs);
    free(c);
}

static oh_log_consumer *local_consumer_new(oh_log *log, const char *group, const char *topic,
                                           const struct oh_log_rebalance *reb, char *err,
                                           size_t errlen)
{
    oh_log_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->base.ops = &oh_log_local_ops;
    c->log = log;
    if (reb) c->reb = *reb;
    if (!topic_ok(topic)) {
        oh_errf(err, errlen, "topic: empty or over %d bytes", MAX_TOPIC_LEN);
        goto fail;
    }
    c->topic = strdup(topic);
    c->group = group ? strdup(group) : NULL;
    if (!c->topic || (group && !c->group)) {
        oh_errf(err, errlen, "out of memory");
        goto fail;
    }
    /* Commits are cheap: a lost group offset only means redelivery. */
    if (!(c->db = db_open(log->path, "NORMAL", err, errlen))) goto fail;
    if (prep(c->db, "SELECT id FROM topics WHERE name=?", &c->tid, err, errlen) ||
        prep(c->db, "SELECT next FROM group_offsets WHERE grp=? AND topic=? AND part=?", &c->get,
             err, errlen))
        goto fail;
    return c;
fail:
    local_consumer_close(c);
    return NULL;
}

/* 1 once the consumer's topic has a table (its statements prepared), 0
 * while it has none, OH_EIO. */
static int table_of(oh_log_consumer *c)
{
    if (c->sel) return 1;
    int64_t id = topic_id(c->tid, NULL, c->topic);
    if (id <= 0) return (int)id;
    if (prep_on(c->db,
                "SELECT " RECORD_COLS " FROM records_%lld WHERE off>=? ORDER BY off LIMIT ?", id,
                &c->sel) ||
        prep_on(c->db, "SELECT MAX(off) FROM records_%lld", id, &c->end)) {
        OH_ERROR(COMP, "consumer of %s: %s", c->topic, sqlite3_errmsg(c->db));
        sqlite3_finalize(c->sel);
        c->sel = NULL;
        return OH_EIO;
    }
    return 1;
}

static int64_t committed_of(oh_log_consumer *c)
{
    int64_t next = -1;
    sqlite3_reset(c->get);
    sqlite3_bind_text(c->get, 1, c->group, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->get, 2, c->topic, -1, SQLITE_STATIC);
    sqlite3_bind_int(c->get, 3, 0);
    if (sqlite3_step(c->get) == SQLITE_ROW) next = sqlite3_column_int64(c->get, 0);
    sqlite3_reset(c->get);
    return next;
}

/* Copies record N behind the first USED bytes of c->buf. */
static int keep(oh_log_consumer *c, size_t *used, struct oh_log_record *r, int n,
                const struct oh_log_strs *in, int64_t seq, bool internal)
{
    r->topic = c->topic;
    r->partition = 0;
    r->meta.seq = seq;
    r->meta.internal = internal;
    return oh_log_keep(&c->buf, &c->cap, used, c->offs + (size_t)n * OH_LOG_NSTR, in, r);
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

/* Records at c->pos from this process's tail; -1 when it does not hold them. */
static int fetch_tail(oh_log_consumer *c, struct oh_log_record *recs, int max)
{
    oh_log *log = c->log;
    int n = -1;
    size_t used = 0;
    pthread_mutex_lock(&log->mu);
    struct tail *t = tail_of(log, c->topic);
    if (t && c->pos >= t->first && c->pos < t->end) {
        for (n = 0; n < max && c->pos + n < t->end; n++) {
            const struct lq_item *it = t->ring[(c->pos + n) % TAIL_RECORDS];
            struct oh_log_strs in = {
                {it->key, it->value, it->type, it->subject, it->author, it->time},
                {len_of(it->key), it->len, len_of(it->type), len_of(it->subject),
                 len_of(it->author), len_of(it->time)}};
            if (keep(c, &used, &recs[n], n, &in, it->seq, it->internal)) {
                n = OH_ENOMEM;
                break;
            }
            recs[n].offset = it->off;
            recs[n].timestamp_ms = it->ts_ms;
        }
    }
    pthread_mutex_unlock(&log->mu);
    return n;
}

/* Copies up to MAX records at c->pos into c->buf. Returns the count. */
static int fetch(oh_log_consumer *c, struct oh_log_record *recs, int max)
{
    if (c->noffs < max) {
        size_t *o = realloc(c->offs, sizeof *o * OH_LOG_NSTR * (size_t)max);
        if (!o) return OH_ENOMEM;
        c->offs = o;
        c->noffs = max;
    }
    int n = fetch_tail(c, recs, max);
    if (n == OH_ENOMEM) return n;
    if (n >= 0) goto done;
    if ((n = table_of(c)) <= 0) return n;
    sqlite3_stmt *st = c->sel;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, c->pos);
    sqlite3_bind_int(st, 2, max);
    size_t used = 0;
    int rc;
    n = 0;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct oh_log_strs in;
        static const int col[OH_LOG_NSTR] = {2, 3, 4, 5, 7, 8};
        for (int i = 0; i < OH_LOG_NSTR; i++) {
            /* text before bytes: sqlite3_column_bytes after it is the length */
            in.s[i] = i == OH_LOG_VALUE ? sqlite3_column_blob(st, col[i])
                                        : (const char *)sqlite3_column_text(st, col[i]);
            in.len[i] = (size_t)sqlite3_column_bytes(st, col[i]);
        }
        if (!in.s[OH_LOG_VALUE]) in.s[OH_LOG_VALUE] = ""; /* an empty blob */
        if (keep(c, &used, &recs[n], n, &in, sqlite3_column_int64(st, 6),
                 sqlite3_column_int(st, 9) != 0)) {
            sqlite3_reset(st);
            return OH_ENOMEM;
        }
        recs[n].offset = sqlite3_column_int64(st, 0);
        recs[n].timestamp_ms = sqlite3_column_int64(st, 1);
        n++;
    }
    if (n < max && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        OH_ERROR(COMP, "poll: %s", sqlite3_errmsg(c->db));
        sqlite3_reset(st);
        return OH_EIO;
    }
    sqlite3_reset(st); /* ends the read transaction */
done:
    for (int i = 0; i < n; i++)
        oh_log_resolve(c->buf, c->offs + (size_t)i * OH_LOG_NSTR, &recs[i]);
    if (n) c->pos = recs[n - 1].offset + 1;
    return n;
}

/* Runs on the consumer's thread. */
static int local_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms)
{
    oh_log *log = c->log;
    if (!c->started) {
        c->started = true;
        if (c->group) {
            if (!c->positioned) {
                int64_t next = committed_of(c);
                c->pos = next < 0 ? 0 : next;
                c->positioned = true;
            }
            c->assigned = true;
            if (c->reb.assigned) {
                static const int32_t part0 = 0;
                c->reb.assigned(c->reb.opaque, c, &part0, 1);
            }
        }
    }
    int64_t deadline = oh_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        pthread_mutex_lock(&log->mu);
        uint64_t gen = log->gen;
        bool closing = log->closing;
        pthread_mutex_unlock(&log->mu);
        int n = fetch(c, recs, max);
        if (n != 0 || closing) return n;
        c->at_end = true;
        int64_t left = deadline - oh_mono_ms();
        if (left <= 0) return 0;
        /* Woken at once by a commit of this process; another process's
         * commits are seen at the next timed re-read. */
        struct timespec ts;
        deadline_in(&ts, left < XPROC_POLL_MS ? left : XPROC_POLL_MS);
        pthread_mutex_lock(&log->mu);
        while (log->gen == gen && !log->closing)
            if (pthread_cond_timedwait(&log->committed, &log->mu, &ts) == ETIMEDOUT) break;
        pthread_mutex_unlock(&log->mu);
    }
}

static int local_seek(oh_log_consumer *c, int32_t partition, int64_t offset)
{
    if (partition != 0) return OH_EINVAL;
    c->pos = offset;
    c->positioned = true;
    c->at_end = false;
    return 0;
}

static int local_seek_end(oh_log_consumer *c)
{
    int rc = table_of(c);
    int64_t end = rc > 0 ? end_of(c->end) : rc;
    if (end < 0) return OH_EIO;
    c->pos = end;
    c->positioned = true;
    c->at_end = false;
    return 0;
}

static bool local_caught_up(const oh_log_consumer *c)
{
    return c->at_end;
}

struct commit_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int err;
};

static void commit_done(void *opaque, int err, int32_t partition, int64_t offset)
{
    struct commit_wait *w = opaque;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Hands the position to the writer thread, which stores it in its next
 * transaction, and waits for that commit: a second writing connection
 * would fight the writer for SQLite's lock and sleep in its busy handler. */
static int local_commit(oh_log_consumer *c, int32_t partition, int64_t next)
{
    if (!c->group || partition != 0) return OH_EINVAL;
    oh_log *log = c->log;
    size_t gl = strlen(c->group) + 1, tl = strlen(c->topic) + 1;
    struct lq_item *it = malloc(sizeof *it + gl + tl);
    if (!it) return OH_ENOMEM;
    struct commit_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
    /* the header first: assigning it writes its padding, where data begins */
    *it = (struct lq_item){.group = it->data,
                           .topic = it->data + gl,
                           .off = next,
                           .ts_ms = oh_now_ms(),
                           .done = commit_done,
                           .opaque = &w};
    memcpy(it->data, c->group, gl);
    memcpy(it->data + gl, c->topic, tl);
    int rc = enqueue(log, it);
    if (rc) return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.err) OH_ERROR(COMP, "commit %s/%s: %s", c->group, c->topic, oh_strerror(w.err));
    return w.err ? OH_EIO : 0;
}

const struct oh_log_ops oh_log_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .bootstrap = local_bootstrap,
    .identity = local_identity,
    .ping = local_ping,
    .append = local_append,
    .consumer_new = local_consumer_new,
    .consumer_close = local_consumer_close,
    .poll = local_poll,
    .seek = local_seek,
    .seek_end = local_seek_end,
    .caught_up = local_caught_up,
    .commit = local_commit,
    .lag = local_lag,
    .partitions = local_partitions,
};
