/* log_local_int.h - inside the embedded log (log_local.c: the writer, the
 * file's schema and open/close; log_local_read.c: consumers, positions and
 * lag). Not for use outside broker/log. */
#ifndef OH_LOG_LOCAL_INT_H
#define OH_LOG_LOCAL_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "log/log_int.h"

#define COMP "log.local"
/* Consumers of another process get no signal; they re-read this often. */
#define XPROC_POLL_MS 50

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
    int err;     /* this append alone failed (its topic could not be made) */
    char data[]; /* may begin inside the struct's trailing padding */
};

/* The newest records this process committed to one topic, contiguous
 * offsets [first, end): consumers in this process read them from here
 * instead of from SQLite. Guarded by the log's mu; only the writer thread
 * adds and evicts. */
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
    char *group;             /* NULL: no group */
    char *topic;
    struct oh_log_rebalance reb;
    bool started, assigned, positioned;
    bool at_end; /* a poll since the last seek found nothing */
    int64_t pos;
    /* caught up with this process's tail: when the file is read again for
     * another process's appends (monotonic ms; every XPROC_POLL_MS) */
    int64_t file_due;
    char *buf; /* record copies of the last poll */
    size_t cap;
    size_t *offs; /* OH_LOG_NSTR per record: where its strings are in buf */
    int noffs;
};

/* Bounds on what names a table: topic names are bound as text, never part
 * of SQL; at most MAX_TOPICS tables (ids 1..MAX_TOPICS). */
#define MAX_TOPICS    1024
#define MAX_TOPIC_LEN 255
#define RECORD_COLS   "off, ts_ms, key, value, type, subject, seq, author, time, internal"

/* Shared by both files (log_local.c). */
sqlite3 *ll_db_open(const char *path, const char *sync, char *err, size_t errlen);
int ll_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);
int ll_exec(sqlite3 *db, const char *sql);
int64_t ll_end_of(sqlite3_stmt *st);
int ll_prep_on(sqlite3 *db, const char *sql_fmt, int64_t id, sqlite3_stmt **st);
int64_t ll_topic_id(sqlite3_stmt *find, sqlite3 *db, const char *topic);
bool ll_topic_ok(const char *topic);
void ll_deadline_in(struct timespec *ts, int64_t ms);
struct tail *ll_tail_of(oh_log *log, const char *topic);
int ll_enqueue(oh_log *log, struct lq_item *it);

/* The consumers' side of struct oh_log_ops (log_local_read.c). */
int ll_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out, int max);
int ll_partitions(oh_log *log, const char *topic);
void ll_consumer_close(oh_log_consumer *c);
oh_log_consumer *ll_consumer_new(oh_log *log, const char *group, const char *topic,
                                 const struct oh_log_rebalance *reb, char *err, size_t errlen);
int ll_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms);
int ll_seek(oh_log_consumer *c, int32_t partition, int64_t offset);
int ll_seek_end(oh_log_consumer *c);
bool ll_caught_up(const oh_log_consumer *c);
int ll_commit(oh_log_consumer *c, int32_t partition, int64_t next);

#endif
