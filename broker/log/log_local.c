/* log_local.c - the embedded durable log: SQLite in WAL mode, one partition
 * per topic, and a writer thread that group-commits every queued append;
 * the file's schema, open and close. Its readers are log_local_read.c. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "core/crypto.h"
#include "core/walbuf.h"
#include "log/log_local_int.h"

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

/* Versions 1 and 2 of the single table records(topic, off, ...) added
 * columns to it (the routing metadata; the event's time and private-note
 * flag); a log.db from before gets them, NULL, before it is converted. */
static const char meta_sql[] = "ALTER TABLE records ADD COLUMN type TEXT;"
                               "ALTER TABLE records ADD COLUMN subject TEXT;"
                               "ALTER TABLE records ADD COLUMN seq INTEGER;"
                               "ALTER TABLE records ADD COLUMN author TEXT;";
static const char meta2_sql[] = "ALTER TABLE records ADD COLUMN time TEXT;"
                                "ALTER TABLE records ADD COLUMN internal INTEGER;";

/* The timeline's appends in a commit that carries others, at most. */
#define BULK_SHARE 64

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

sqlite3 *ll_db_open(const char *path, const char *sync, char *err, size_t errlen)
{
    static pthread_once_t configured = PTHREAD_ONCE_INIT;
    pthread_once(&configured, no_memstatus);
    sqlite3 *db = NULL;
    /* the writer's WAL frames go out in one write per commit (core/walbuf.h) */
    int rc =
        sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        strcmp(sync, "FULL") == 0 ? oh_walbuf_vfs() : NULL);
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

int ll_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        oh_errf(err, errlen, "prepare: %s", sqlite3_errmsg(db));
        return OH_EIO;
    }
    return 0;
}

int ll_exec(sqlite3 *db, const char *sql)
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
int64_t ll_end_of(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    int64_t end = -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        end = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, 0) + 1;
    sqlite3_reset(st);
    return end;
}

/* Prepares SQL_FMT, whose one %lld is the topic's table id ID. */
int ll_prep_on(sqlite3 *db, const char *sql_fmt, int64_t id, sqlite3_stmt **st)
{
    char sql[256];
    snprintf(sql, sizeof sql, sql_fmt, (long long)id);
    return ll_prep(db, sql, st, NULL, 0);
}

static int create_table(sqlite3 *db, int64_t id)
{
    char sql[sizeof table_sql + 24];
    snprintf(sql, sizeof sql, table_sql, (long long)id);
    return ll_exec(db, sql);
}

/* The id of TOPIC by FIND ("SELECT id FROM topics WHERE name=?"); 0 when it
 * has none yet. With DB (the writer, inside its write transaction), a new
 * topic gets the next id and its table. Returns the id or OH_ETOOBIG (all
 * MAX_TOPICS ids taken), OH_EIO. */
int64_t ll_topic_id(sqlite3_stmt *find, sqlite3 *db, const char *topic)
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

bool ll_topic_ok(const char *topic)
{
    size_t n = strlen(topic);
    return n > 0 && n <= MAX_TOPIC_LEN;
}

void ll_deadline_in(struct timespec *ts, int64_t ms)
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
    int64_t id = ll_topic_id(log->tid, log->wdb, topic);
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
        ll_prep_on(log->wdb,
                   "INSERT INTO records_%lld(" RECORD_COLS ") VALUES(?,?,?,?,?,?,?,?,?,?)", id,
                   &w->ins) ||
        ll_prep_on(log->wdb, "SELECT MAX(off) FROM records_%lld", id, &w->last)) {
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
    if (ll_exec(log->wdb, "BEGIN IMMEDIATE")) return OH_EIO;
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
            if ((w->next = ll_end_of(w->last)) < 0) goto fail;
            w->batch = b;
        }
        it->off = w->next++;
        if (insert(w, it)) goto fail;
    }
    if (ll_exec(log->wdb, "COMMIT") == 0) return 0;
fail:
    OH_ERROR(COMP, "append batch failed: %s", sqlite3_errmsg(log->wdb));
    if (!sqlite3_get_autocommit(log->wdb)) ll_exec(log->wdb, "ROLLBACK");
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

struct tail *ll_tail_of(oh_log *log, const char *topic)
{
    for (int i = 0; i < TAIL_TOPICS && log->tails[i]; i++)
        if (strcmp(log->tails[i]->topic, topic) == 0) return log->tails[i];
    return NULL;
}

/* Keeps committed record IT (true: the tail owns it now). Under mu. */
static bool tail_keep(oh_log *log, struct lq_item *it)
{
    struct tail *t = ll_tail_of(log, it->topic);
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
    if (!(log->wdb = ll_db_open(log->path, "FULL", err, errlen))) goto fail;
    char *msg = NULL;
    if (sqlite3_exec(log->wdb, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        oh_errf(err, errlen, "%s: schema: %s", log->path, msg ? msg : "failed");
        sqlite3_free(msg);
        goto fail;
    }
    if (load_id(log, err, errlen)) goto fail;
    if (migrate(log->wdb, err, errlen)) goto fail;
    if (ll_prep(log->wdb, "SELECT id FROM topics WHERE name=?", &log->tid, err, errlen) ||
        ll_prep(log->wdb,
                "INSERT INTO group_offsets(grp, topic, part, next, ts_ms) VALUES(?,?,?,?,?)"
                " ON CONFLICT(grp, topic, part) DO UPDATE"
                " SET next=excluded.next, ts_ms=excluded.ts_ms",
                &log->put, err, errlen))
        goto fail;
    if (!(log->rdb = ll_db_open(log->path, "NORMAL", err, errlen))) goto fail;
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
int ll_enqueue(oh_log *log, struct lq_item *it)
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
    if (!ll_topic_ok(topic)) return OH_EINVAL;
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

    return ll_enqueue(log, it);
}

const struct oh_log_ops oh_log_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .bootstrap = local_bootstrap,
    .identity = local_identity,
    .ping = local_ping,
    .append = local_append,
    .consumer_new = ll_consumer_new,
    .consumer_close = ll_consumer_close,
    .poll = ll_poll,
    .seek = ll_seek,
    .seek_end = ll_seek_end,
    .caught_up = ll_caught_up,
    .commit = ll_commit,
    .lag = ll_lag,
    .partitions = ll_partitions,
};
