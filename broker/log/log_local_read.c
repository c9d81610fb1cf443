/* log_local_read.c - the embedded log's readers: consumers (from the
 * writer's in-memory tail, else from the file), their groups' positions,
 * and lag. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log/log_local_int.h"

/* ---- lag ---------------------------------------------------------------- */

int ll_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out, int max)
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
        ll_exec(log->rdb, "BEGIN"))
        goto out;
    int64_t id = ll_topic_id(find, NULL, topic);
    char q[sizeof sql + 48];
    snprintf(q, sizeof q, sql, (long long)id, (long long)id);
    if (id < 0 || sqlite3_prepare_v2(log->rdb, id ? q : no_records_sql, -1, &st, NULL) != SQLITE_OK)
        goto end;
    if (id && ll_prep_on(log->rdb, "SELECT ts_ms FROM records_%lld WHERE off=?", id, &ts)) goto end;
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
    ll_exec(log->rdb, "COMMIT");
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

int ll_partitions(oh_log *log, const char *topic)
{
    return 1;
}

/* ---- consumers ---------------------------------------------------------- */

void ll_consumer_close(oh_log_consumer *c)
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

oh_log_consumer *ll_consumer_new(oh_log *log, const char *group, const char *topic,
                                 const struct oh_log_rebalance *reb, char *err, size_t errlen)
{
    oh_log_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->base.ops = &oh_log_local_ops;
    c->log = log;
    if (reb) c->reb = *reb;
    if (!ll_topic_ok(topic)) {
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
    if (!(c->db = ll_db_open(log->path, "NORMAL", err, errlen))) goto fail;
    if (ll_prep(c->db, "SELECT id FROM topics WHERE name=?", &c->tid, err, errlen) ||
        ll_prep(c->db, "SELECT next FROM group_offsets WHERE grp=? AND topic=? AND part=?", &c->get,
                err, errlen))
        goto fail;
    return c;
fail:
    ll_consumer_close(c);
    return NULL;
}

/* 1 once the consumer's topic has a table (its statements prepared), 0
 * while it has none, OH_EIO. */
static int table_of(oh_log_consumer *c)
{
    if (c->sel) return 1;
    int64_t id = ll_topic_id(c->tid, NULL, c->topic);
    if (id <= 0) return (int)id;
    if (ll_prep_on(c->db,
                   "SELECT " RECORD_COLS " FROM records_%lld WHERE off>=? ORDER BY off LIMIT ?", id,
                   &c->sel) ||
        ll_prep_on(c->db, "SELECT MAX(off) FROM records_%lld", id, &c->end)) {
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

/* fetch_tail(): C is at the end of this process's tail */
#define TAIL_END (-100) /* not an OH_E* code */

/* Records at c->pos from this process's tail; -1 when it does not hold them,
 * TAIL_END when c->pos is right after its last record (what follows, if
 * anything, another process appended). */
static int fetch_tail(oh_log_consumer *c, struct oh_log_record *recs, int max)
{
    oh_log *log = c->log;
    int n = -1;
    size_t used = 0;
    pthread_mutex_lock(&log->mu);
    struct tail *t = ll_tail_of(log, c->topic);
    if (t && t->end > t->first && c->pos == t->end) n = TAIL_END;
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
    /* Every record this process appended is read: the file is looked at
     * only for another process's, as often as a waiting poll would (a
     * commit of another topic wakes every consumer of this process). */
    int64_t now = oh_mono_ms();
    if (n == TAIL_END && now < c->file_due) return 0;
    c->file_due = now + XPROC_POLL_MS;
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
int ll_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms)
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
        ll_deadline_in(&ts, left < XPROC_POLL_MS ? left : XPROC_POLL_MS);
        pthread_mutex_lock(&log->mu);
        while (log->gen == gen && !log->closing)
            if (pthread_cond_timedwait(&log->committed, &log->mu, &ts) == ETIMEDOUT) break;
        pthread_mutex_unlock(&log->mu);
    }
}

int ll_seek(oh_log_consumer *c, int32_t partition, int64_t offset)
{
    if (partition != 0) return OH_EINVAL;
    c->pos = offset;
    c->positioned = true;
    c->at_end = false;
    return 0;
}

int ll_seek_end(oh_log_consumer *c)
{
    int rc = table_of(c);
    int64_t end = rc > 0 ? ll_end_of(c->end) : rc;
    if (end < 0) return OH_EIO;
    c->pos = end;
    c->positioned = true;
    c->at_end = false;
    return 0;
}

bool ll_caught_up(const oh_log_consumer *c)
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
int ll_commit(oh_log_consumer *c, int32_t partition, int64_t next)
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
    int rc = ll_enqueue(log, it);
    if (rc) return rc;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.err) OH_ERROR(COMP, "commit %s/%s: %s", c->group, c->topic, oh_strerror(w.err));
    return w.err ? OH_EIO : 0;
}
