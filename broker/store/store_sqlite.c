/* store_sqlite.c - the embedded store: one SQLite database in WAL mode, a
 * single writer connection behind a mutex and a pool of reader connections. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include "core/json_dump.h"
#include "core/crypto.h"
#include "store/store_fields.h"

#include "store/store_sqlite_schema.inc"

/* meta.schema_version is the last migration applied. */

#define SQ_READERS_KEPT 8
#define SQ_HEADS        4096 /* conversations whose head the writer remembers */

enum sq_stmt {
    S_BEGIN_IMM,
    S_COMMIT,
    S_ROLLBACK,
    S_EVENT_EXISTS,
    S_CONV_HEAD,
    S_CONV_INSERT,
    S_CONV_UPDATE,
    S_HIST_INSERT,
    S_REF_ADD,
    S_STATE_UPSERT,
    S_POS_UPSERT,
    S_POS_GET,
    S_POS_PUBLISHED,
    S_SINCE,
    S_CONV_EXISTS,
    S_HISTORY,
    S_EVENT_GET,
    S_CONV_GET,
    S_CONV_LIST,
    S_REF_GET,
    S_REF_PUT,
    S_STATE_GET,
    S_CURSOR_SET,
    S_CURSORS,
    S_KV_PUT,
    S_KV_GET,
    S_KV_DEL,
    S_KV_SCAN,
    S_VERIFY,
    S_PING,
    S_REV_GET,
    S_REV_PUT,
    S_FTS_ADD,
    S_CHANGES,
    S_OPEN_ASSIGNED,
    S_CONV_STATE,
    S_OUTCOME_PUT,
    S_OUTCOME_GET,
    S_SNOOZED_DUE,
    S_CONTACT_REF,
    S_ART_PUT,
    S_ART_GET,
    S_ART_DEL,
    S_ART_ALL,
    S_COUNT
};

/* The columns a new conversation is created with; CONV_COLS are all that
 * are read back. */
#define CONV_NEW_COLS                                                                              \
    "id, channel, account, contact_id, contact_name, head, created_ms, updated_ms, "               \
    "last_inbound_ms"
#define CONV_COLS                                                                                  \
    CONV_NEW_COLS ", status, assignee, team, priority, labels, snoozed_until_ms, episode, "        \
                  "state_seq, last_seq, last_direction, last_kind, last_text, last_ms, rev, contact_ref"

static const char *const sq_sql[S_COUNT] = {
    [S_BEGIN_IMM] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_EVENT_EXISTS] = "SELECT seq, src_partition, src_offset FROM history WHERE event_id = ?1",
    [S_CONV_HEAD] = "SELECT head FROM conversations WHERE id = ?1",
    [S_CONV_INSERT] = "INSERT INTO conversations (" CONV_NEW_COLS ") "
                      "VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6, 0)",
    [S_CONV_UPDATE] = "UPDATE conversations SET head = ?2, updated_ms = max(updated_ms, ?3), "
                      "last_inbound_ms = CASE WHEN ?4 THEN max(last_inbound_ms, ?6) "
                      "ELSE last_inbound_ms END, "
                      "contact_name = CASE WHEN ?5 <> '' THEN ?5 ELSE contact_name END, "
                      "contact_id = CASE WHEN contact_id = '' THEN ?12 ELSE contact_id END, "
                      "rev = ?7, last_seq = CASE WHEN ?8 THEN ?13 ELSE last_seq END, "
                      "last_direction = CASE WHEN ?8 THEN ?9 ELSE last_direction END, "
                      "last_kind = CASE WHEN ?8 THEN ?10 ELSE last_kind END, "
                      "last_text = CASE WHEN ?8 THEN ?11 ELSE last_text END, "
                      "last_ms = CASE WHEN ?8 THEN ?14 ELSE last_ms END "
                      "WHERE id = ?1",
    /* a repeated id inserts nothing (sqlite3_changes() 0): the unique
     * index's own probe is the duplicate check */
    [S_HIST_INSERT] = "INSERT INTO history (conversation_id, seq, event_id, type, src_partition, "
                      "src_offset, ts_ms, json, crc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                      "ON CONFLICT (event_id) DO NOTHING",
    [S_REF_ADD] = "INSERT INTO refs (channel, account, ref, conversation_id, message_id) "
                  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    [S_STATE_UPSERT] = "INSERT INTO msg_state (conversation_id, message_id, state, rank) "
                       "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (conversation_id, message_id) "
                       "DO UPDATE SET state = excluded.state, rank = excluded.rank "
                       "WHERE excluded.rank > msg_state.rank",
    [S_POS_UPSERT] = "INSERT INTO positions (grp, topic, part, next) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT (grp, topic, part) DO UPDATE SET next = excluded.next",
    [S_POS_GET] = "SELECT next, published FROM positions WHERE grp = ?1 AND topic = ?2 "
                  "AND part = ?3",
    [S_POS_PUBLISHED] = "INSERT INTO positions (grp, topic, part, published) "
                        "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (grp, topic, part) "
                        "DO UPDATE SET published = excluded.published",
    [S_SINCE] = "SELECT conversation_id, seq, json, crc FROM history WHERE src_partition = ?1 "
                "AND src_offset >= ?2 ORDER BY src_offset, conversation_id, seq",
    [S_CONV_EXISTS] = "SELECT 1 FROM conversations WHERE id = ?1",
    [S_HISTORY] = "SELECT seq, json, crc FROM history WHERE conversation_id = ?1 AND seq > ?2 "
                  "ORDER BY seq LIMIT ?3",
    [S_EVENT_GET] =
        "SELECT seq, json, crc FROM history WHERE event_id = ?1 AND conversation_id = ?2",
    [S_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE id = ?1",
    [S_CONV_LIST] = "SELECT " CONV_COLS " FROM conversations WHERE updated_ms > ?1 "
                    "ORDER BY updated_ms DESC, id DESC LIMIT ?2",
    [S_REF_GET] = "SELECT conversation_id, message_id FROM refs WHERE channel = ?1 "
                  "AND account = ?2 AND ref = ?3",
    [S_REF_PUT] = "INSERT INTO refs (channel, account, ref, conversation_id, message_id) "
                  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (channel, account, ref) DO UPDATE "
                  "SET conversation_id = excluded.conversation_id, "
                  "message_id = excluded.message_id",
    [S_STATE_GET] = "SELECT state FROM msg_state WHERE conversation_id = ?1 AND message_id = ?2",
    [S_CURSOR_SET] = "INSERT INTO cursors (conversation_id, user_id, role, device, seq) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) "
                     "ON CONFLICT (conversation_id, user_id, role, device) "
                     "DO UPDATE SET seq = excluded.seq WHERE excluded.seq > cursors.seq",
    [S_CURSORS] = "SELECT device, max(seq) FROM cursors WHERE conversation_id = ?1 "
                  "AND user_id = ?2 AND role IN (?3, '') GROUP BY device ORDER BY device",
    [S_ART_PUT] = "INSERT INTO kb_articles (id, title, body, locale, tags, updated_ms, version) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1) ON CONFLICT (id) DO UPDATE SET "
                  "title = excluded.title, body = excluded.body, locale = excluded.locale, "
                  "tags = excluded.tags, updated_ms = excluded.updated_ms, "
                  "version = kb_articles.version + 1 RETURNING version",
    [S_ART_GET] = "SELECT id, title, body, locale, tags, version, updated_ms FROM kb_articles "
                  "WHERE id = ?1",
    [S_ART_DEL] = "DELETE FROM kb_articles WHERE id = ?1 RETURNING id",
    [S_ART_ALL] = "SELECT id, title, body, locale, tags, version, updated_ms FROM kb_articles "
                  "ORDER BY id",
    [S_KV_PUT] = "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (ns, key) "
                 "DO UPDATE SET value = excluded.value",
    [S_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [S_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [S_KV_SCAN] = "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key",
    [S_VERIFY] = "SELECT conversation_id, seq, json, crc FROM history",
    [S_PING] = "SELECT 1",
    [S_REV_GET] = "SELECT rev FROM revs WHERE id = 1",
    [S_REV_PUT] = "UPDATE revs SET rev = ?1 WHERE id = 1",
    /* the index row shares the history row's rowid */
    [S_FTS_ADD] = "INSERT INTO msg_fts (rowid, body) VALUES (?1, ?2)",
    [S_CHANGES] = "SELECT " CONV_COLS " FROM conversations WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    [S_OPEN_ASSIGNED] = "SELECT count(*) FROM conversations WHERE status = 'open' "
                        "AND assignee = ?1",
    [S_CONV_STATE] = "UPDATE conversations SET status = ?2, assignee = ?3, team = ?4, "
                     "priority = ?5, labels = ?6, snoozed_until_ms = ?7, episode = ?8, "
                     "state_seq = ?9 WHERE id = ?1",
    [S_OUTCOME_PUT] = "INSERT INTO command_results (id, conversation_id, code, body, created_ms) "
                      "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
    [S_OUTCOME_GET] = "SELECT code, body FROM command_results WHERE id = ?1 "
                      "AND conversation_id = ?2",
    [S_CONTACT_REF] = "UPDATE conversations SET contact_ref = ?2 WHERE id = ?1",
    [S_SNOOZED_DUE] = "SELECT " CONV_COLS " FROM conversations WHERE status = 'snoozed' "
                      "AND snoozed_until_ms <= ?1 ORDER BY snoozed_until_ms LIMIT ?2",
};

/* A connection and its lazily prepared statements; used by one thread at a
 * time (the writer under wmu, a reader while checked out of the pool). */
struct sq_conn {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    struct sq_conn *next;
};

/* A conversation's head as the last committed batch that touched it left
 * it: the writer is the history's only writer (one process per SQLite
 * store, operations.md), so the batch's first event of a conversation
 * seen lately needs no SELECT of its directory row. A head that another
 * writer moved on would be too low, the (conversation, seq) key of the
 * insert then fails the batch, and a failed batch forgets them all. */
struct sq_head {
    int64_t head; /* 0: a free slot */
    char conv[OH_ID_MAX];
};

struct sq_store {
    struct oh_store_base base;
    char path[PATH_MAX];
    char epoch[48];
    pthread_mutex_t wmu; /* guards w and heads */
    struct sq_conn *w;
    struct sq_head *heads; /* SQ_HEADS of them, by hash of the id; NULL until used */
    pthread_mutex_t pmu; /* guards readers, nreaders */
    struct sq_conn *readers;
    int nreaders;
};

static int sq_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return OH_ERETRY;
    case SQLITE_NOMEM: return OH_ENOMEM;
    case SQLITE_TOOBIG: return OH_ETOOBIG;
    case SQLITE_CONSTRAINT: return OH_EDUP;
    default: return OH_EIO;
    }
}

static void sq_conn_close(struct sq_conn *c)
{
    if (!c) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static struct sq_conn *sq_conn_open(const char *path, bool writer, char *err, size_t errlen)
{
    struct sq_conn *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(c->db, 10000);
    if (rc == SQLITE_OK && writer)
        /* the writer touches random pages of the id and reference indexes
         * for every event: 64 MiB of cache instead of SQLite's 2 MiB keeps
         * them out of pread() (strace: 2.5 page reads per ingested event) */
        rc = sqlite3_exec(c->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                          "PRAGMA cache_size=-65536; PRAGMA secure_delete=ON",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        oh_errf(err, errlen, "store %s: %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sq_conn_close(c);
        return NULL;
    }
    return c;
}

/* The statement I of C, reset and ready for binding; NULL on failure. */
static sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt i)
{
    if (!c->st[i]) {
        if (sqlite3_prepare_v3(c->db, sq_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->st[i], NULL) !=
            SQLITE_OK) {
            OH_ERROR("store", "prepare: %s", sqlite3_errmsg(c->db));
            return NULL;
        }
    } else {
        sqlite3_reset(c->st[i]);
        sqlite3_clear_bindings(c->st[i]);
    }
    return c->st[i];
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Runs S to completion (no rows expected); resets it. */
static int sq_run(struct sq_conn *c, sqlite3_stmt *s)
{
    if (!s) return OH_EIO;
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        OH_WARN("store", "sqlite: %s", sqlite3_errmsg(c->db));
        return sq_err(rc);
    }
    return 0;
}

static int sq_exec(struct sq_conn *c, enum sq_stmt i)
{
    return sq_run(c, sq_stmt(c, i));
}

static struct sq_conn *sq_reader(struct sq_store *s)
{
    pthread_mutex_lock(&s->pmu);
    struct sq_conn *c = s->readers;
    if (c) {
        s->readers = c->next;
        s->nreaders--;
    }
    pthread_mutex_unlock(&s->pmu);
    if (!c) {
        char err[256];
        c = sq_conn_open(s->path, false, err, sizeof err);
        if (!c) OH_ERROR("store", "%s", err);
    }
    return c;
}

static void sq_reader_put(struct sq_store *s, struct sq_conn *c)
{
    pthread_mutex_lock(&s->pmu);
    if (s->nreaders < SQ_READERS_KEPT) {
        c->next = s->readers;
        s->readers = c;
        s->nreaders++;
        c = NULL;
    }
    pthread_mutex_unlock(&s->pmu);
    sq_conn_close(c);
}

static int mkdirs(const char *dir)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static int sq_meta_get(struct sq_conn *c, const char *key, char *out, size_t outlen)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return OH_EIO;
    bind_text(s, 1, key);
    int rc = sqlite3_step(s) == SQLITE_ROW ? 0 : OH_ENOTFOUND;
    if (rc == 0) snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return rc;
}

static int sq_meta_put(struct sq_conn *c, const char *key, const char *value)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", -1,
                           &s, NULL) != SQLITE_OK)
        return OH_EIO;
    bind_text(s, 1, key);
    bind_text(s, 2, value);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : OH_EIO;
    sqlite3_finalize(s);
    return rc;
}

/* Applies missing migrations and creates the epoch, in one transaction. */
static int sq_migrate(struct sq_store *s, char *err, size_t errlen)
{
    struct sq_conn *c = s->w;
    if (sq_exec(c, S_BEGIN_IMM) != 0) {
        oh_errf(err, errlen, "store %s: %s", s->path, sqlite3_errmsg(c->db));
        return OH_EIO;
    }
    char buf[64] = "0";
    sqlite3_stmt *q = NULL;
    bool have_meta = false;
    if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM sqlite_master WHERE name = 'meta'", -1, &q,
                           NULL) == SQLITE_OK)
        have_meta = sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    if (have_meta) sq_meta_get(c, "schema_version", buf, sizeof buf);
    long version = strtol(buf, NULL, 10);
    long latest = (long)OH_ARRAY_SIZE(sq_migrations);
    if (version > latest) {
        oh_errf(err, errlen, "store %s: schema version %ld is newer than this build (%ld)", s->path,
                version, latest);
        goto fail;
    }
    for (long v = version; v < latest; v++) {
        char *msg = NULL;
        if (sqlite3_exec(c->db, sq_migrations[v], NULL, NULL, &msg) != SQLITE_OK) {
            oh_errf(err, errlen, "store %s: migration %ld: %s", s->path, v + 1, msg);
            sqlite3_free(msg);
            goto fail;
        }
        snprintf(buf, sizeof buf, "%ld", v + 1);
        if (sq_meta_put(c, "schema_version", buf) != 0) goto fail_db;
    }
    if (sq_meta_get(c, "epoch", s->epoch, sizeof s->epoch) != 0) {
        uint8_t rnd[16];
        if (oh_random(rnd, sizeof rnd) != 0) {
            oh_errf(err, errlen, "store: no randomness for the epoch");
            goto fail;
        }
        oh_base64url(rnd, sizeof rnd, s->epoch);
        if (sq_meta_put(c, "epoch", s->epoch) != 0) goto fail_db;
    }
    if (sq_exec(c, S_COMMIT) != 0) goto fail_db;
    return 0;
fail_db:
    oh_errf(err, errlen, "store %s: %s", s->path, sqlite3_errmsg(c->db));
fail:
    sq_exec(c, S_ROLLBACK);
    return OH_EIO;
}

static void sq_close(oh_store *st)
{
    struct sq_store *s = (struct sq_store *)st;
    if (!s) return;
    while (s->readers) {
        struct sq_conn *c = s->readers;
        s->readers = c->next;
        sq_conn_close(c);
    }
    sq_conn_close(s->w);
    free(s->heads);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->pmu);
    free(s);
}

static int sq_kpi_days_fill(struct sq_store *s);

/* Before SQLite's first use in the process: no allocation statistics
 * (nothing reads them; each of SQLite's allocations took a global mutex
 * to count itself). Too late when SQLite was initialized already: then
 * they stay, which only costs time. */
static void sq_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static oh_store *sq_open(const oh_config *cfg, char *err, size_t errlen)
{
    struct sq_store *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    static pthread_once_t configured = PTHREAD_ONCE_INIT;
    pthread_once(&configured, sq_configure);
    s->base.ops = &oh_store_sqlite_ops;
    pthread_mutex_init(&s->wmu, NULL);
    pthread_mutex_init(&s->pmu, NULL);
    const char *path = oh_config_str(cfg, "store.sqlite.path");
    const char *dir = oh_config_str(cfg, "data_dir");
    if (!dir || !*dir) dir = ".";
    if (path && *path)
        snprintf(s->path, sizeof s->path, "%s", path);
    else if (snprintf(s->path, sizeof s->path, "%s/store.db", dir) >= (int)sizeof s->path) {
        oh_errf(err, errlen, "data_dir: path too long");
        goto fail;
    }
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", s->path);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        if (mkdirs(parent) != 0) {
            oh_errf(err, errlen, "store: cannot create %s: %s", parent, strerror(errno));
            goto fail;
        }
    }
    s->w = sq_conn_open(s->path, true, err, errlen);
    if (!s->w || sq_migrate(s, err, errlen) != 0) goto fail;
    if (sq_kpi_days_fill(s) != 0) {
        oh_errf(err, errlen, "store %s: filling kpi_days failed", s->path);
        goto fail;
    }
    OH_INFO("store", "sqlite store %s, epoch %s", s->path, s->epoch);
    return (oh_store *)s;
fail:
    sq_close((oh_store *)s);
    return NULL;
}

static const char *sq_epoch(const oh_store *st)
{
    return ((const struct sq_store *)st)->epoch;
}

static int sq_ping(oh_store *st)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    int rc = sq_exec(c, S_PING);
    sq_reader_put(s, c);
    return rc;
}

/* Materializes one item; runs on the writer inside the transaction. The
 * directory's created/updated times are the broker's clock (NOW_MS), so
 * "updated after" polling never misses a change; last_inbound_ms is the
 * event's own time (the customer's message, for reply windows). */
/* Records a command's outcome (the first one for its id stays). */
static int sq_outcome(struct sq_store *s, const struct oh_store_item *it, int64_t now_ms)
{
    sqlite3_stmt *q = sq_stmt(s->w, S_OUTCOME_PUT);
    if (!q) return OH_EIO;
    bind_text(q, 1, it->outcome_id);
    bind_text(q, 2, it->outcome_conv ? it->outcome_conv : "");
    sqlite3_bind_int(q, 3, it->outcome_code);
    bind_text(q, 4, it->outcome_body ? it->outcome_body : "{}");
    sqlite3_bind_int64(q, 5, now_ms);
    return sq_run(s->w, q);
}

/* Projects a stored conversation.updated into the state columns. */
static int sq_state(struct sq_store *s, const char *conv, const struct oh_store_state *st,
                    int64_t seq)
{
    sqlite3_stmt *q = sq_stmt(s->w, S_CONV_STATE);
    if (!q) return OH_EIO;
    bind_text(q, 1, conv);
    bind_text(q, 2, *st->status ? st->status : "open");
    bind_text(q, 3, st->assignee);
    bind_text(q, 4, st->team);
    bind_text(q, 5, *st->priority ? st->priority : "normal");
    bind_text(q, 6, st->labels);
    sqlite3_bind_int64(q, 7, st->snoozed_until_ms);
    sqlite3_bind_int64(q, 8, st->episode);
    sqlite3_bind_int64(q, 9, seq);
    return sq_run(s->w, q);
}

/* A conversation the batch touched: its head so far, and what its
 * directory row gets from the batch's events, written once at the end of
 * the batch (one UPDATE of the row and of its updated_ms and rev index
 * entries per conversation, not per event). Strings are borrowed from the
 * batch's events. */
struct sq_touch {
    const char *conv; /* NULL: a free slot */
    int64_t head;
    bool exists; /* the directory has its row (inserted with its first event) */
    bool dirty;  /* history rows added: the row's update is due */
    bool inbound;
    int64_t inbound_ms;      /* the latest inbound message's time */
    const char *name;        /* the last non-empty contact name */
    const char *contact_id;  /* the first non-empty contact id */
    bool preview;            /* a message that sets last_*: the last one's */
    int64_t last_seq, last_ms;
    const char *direction, *kind, *text;
};

struct sq_batch {
    struct sq_touch *t;
    size_t cap; /* a power of two, at least twice the batch's items */
};

static size_t sq_hash(const char *k)
{
    size_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

/* CONV's slot: found, or the free one it takes. */
static struct sq_touch *sq_touch_slot(struct sq_batch *b, const char *conv)
{
    for (size_t i = sq_hash(conv) & (b->cap - 1);; i = (i + 1) & (b->cap - 1))
        if (!b->t[i].conv || strcmp(b->t[i].conv, conv) == 0) return &b->t[i];
}

/* The directory updates the batch owes, in its transaction. */
static int sq_touch_flush(struct sq_store *s, struct sq_batch *b, int64_t now_ms, int64_t *rev)
{
    int rc = 0;
    for (size_t i = 0; i < b->cap && rc == 0; i++) {
        struct sq_touch *t = &b->t[i];
        if (!t->conv || !t->dirty) continue;
        if (*rev < 0) { /* the transaction's first change: read the counter */
            sqlite3_stmt *q = sq_stmt(s->w, S_REV_GET);
            if (!q) return OH_EIO;
            rc = sqlite3_step(q);
            *rev = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
            sqlite3_reset(q);
            if (rc != SQLITE_ROW) return rc == SQLITE_DONE ? OH_EIO : sq_err(rc);
            rc = 0;
        }
        sqlite3_stmt *q = sq_stmt(s->w, S_CONV_UPDATE);
        if (!q) return OH_EIO;
        char preview[4 * OH_STORE_PREVIEW_CHARS + 4] = "";
        if (t->preview) oh_store_preview(t->text, preview);
        bind_text(q, 1, t->conv);
        sqlite3_bind_int64(q, 2, t->head);
        sqlite3_bind_int64(q, 3, now_ms);
        sqlite3_bind_int(q, 4, t->inbound);
        bind_text(q, 5, t->name ? t->name : "");
        sqlite3_bind_int64(q, 6, t->inbound_ms);
        sqlite3_bind_int64(q, 7, ++*rev);
        sqlite3_bind_int(q, 8, t->preview);
        bind_text(q, 9, t->preview ? t->direction : "");
        bind_text(q, 10, t->preview ? t->kind : "");
        sqlite3_bind_text(q, 11, preview, -1, SQLITE_STATIC);
        bind_text(q, 12, t->contact_id ? t->contact_id : "");
        sqlite3_bind_int64(q, 13, t->last_seq);
        sqlite3_bind_int64(q, 14, t->last_ms);
        rc = sq_run(s->w, q);
    }
    return rc;
}

/* A repeat of a stored event id: seq stays 0, unless it is the same
 * source record (a replay), which is given its stored seq back. */
static int sq_repeat(struct sq_store *s, struct oh_store_item *it, const char *id)
{
    sqlite3_stmt *q = sq_stmt(s->w, S_EVENT_EXISTS);
    if (!q) return OH_EIO;
    bind_text(q, 1, id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_int(q, 1) == it->src_partition &&
        sqlite3_column_int64(q, 2) == it->src_offset) {
        it->seq = sqlite3_column_int64(q, 0);
        json_object_del(it->event, "seq");
        json_object_del(it->event, "epoch");
        oh_store_set_seq(it->event, it->seq, s->epoch);
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(rc);
}

/* The heads the committed batch B leaves (sq_head). */
static void sq_heads_note(struct sq_store *s, const struct sq_batch *b)
{
    if (!s->heads && !(s->heads = calloc(SQ_HEADS, sizeof *s->heads))) return;
    for (size_t i = 0; i < b->cap; i++) {
        const struct sq_touch *t = &b->t[i];
        size_t len = t->conv ? strlen(t->conv) : 0;
        if (!t->dirty || len >= OH_ID_MAX) continue;
        struct sq_head *h = &s->heads[sq_hash(t->conv) & (SQ_HEADS - 1)];
        h->head = t->head;
        memcpy(h->conv, t->conv, len + 1);
    }
}

static int sq_item(struct sq_store *s, struct sq_batch *b, struct oh_store_item *it,
                   int64_t now_ms)
{
    struct sq_conn *c = s->w;
    struct oh_store_fields f;
    int orc = it->outcome_id ? sq_outcome(s, it, now_ms) : 0;
    if (orc != 0 || !it->event) return orc;
    if (oh_store_fields_get(it->event, &f) != 0) return OH_EINVAL;
    int rc;
    sqlite3_stmt *q;
    struct sq_touch *t = sq_touch_slot(b, f.conv);
    struct sq_head *known = s->heads ? &s->heads[sq_hash(f.conv) & (SQ_HEADS - 1)] : NULL;
    if (!t->conv && known && known->head > 0 && strcmp(known->conv, f.conv) == 0) {
        memset(t, 0, sizeof *t);
        t->conv = f.conv;
        t->head = known->head;
        t->exists = true;
    } else if (!t->conv) { /* the batch's first event of it: the row's head */
        q = sq_stmt(c, S_CONV_HEAD);
        if (!q) return OH_EIO;
        bind_text(q, 1, f.conv);
        rc = sqlite3_step(q);
        memset(t, 0, sizeof *t);
        if (rc == SQLITE_ROW) t->head = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_err(rc);
        t->conv = f.conv;
        t->exists = rc == SQLITE_ROW;
    }
    int64_t seq = t->head + 1;

    /* The stored text is the event exactly as handed back to the caller. */
    size_t len;
    uint32_t crc;
    char *text = oh_store_sequenced_text(it, seq, s->epoch, &len);
    if (!text) return OH_ENOMEM;
    if (oh_store_text_crc(text, len, seq, s->epoch, &crc) != 0) {
        free(text); /* not the shape every reader checks: never store it */
        return OH_EINVAL;
    }
    q = sq_stmt(c, S_HIST_INSERT);
    if (!q) {
        free(text);
        return OH_EIO;
    }
    bind_text(q, 1, f.conv);
    sqlite3_bind_int64(q, 2, seq);
    bind_text(q, 3, f.id);
    bind_text(q, 4, f.type);
    sqlite3_bind_int(q, 5, it->src_partition);
    sqlite3_bind_int64(q, 6, it->src_offset);
    sqlite3_bind_int64(q, 7, f.ts_ms);
    sqlite3_bind_text(q, 8, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 9, crc);
    rc = sq_run(c, q);
    if (rc == 0 && sqlite3_changes(c->db) == 0) { /* its id is stored already */
        free(text);
        json_object_del(it->event, "seq");
        json_object_del(it->event, "epoch");
        return sq_repeat(s, it, f.id);
    }
    if (rc != 0 || !it->want_text) {
        free(text);
    } else { /* handed back: the caller forwards this very text */
        it->json = text;
        it->len = len;
    }
    if (rc != 0) return rc;
    sqlite3_int64 rowid = sqlite3_last_insert_rowid(c->db);
    if (!t->exists) { /* its first event: the directory's row */
        q = sq_stmt(c, S_CONV_INSERT);
        if (!q) return OH_EIO;
        bind_text(q, 1, f.conv);
        bind_text(q, 2, f.channel);
        bind_text(q, 3, f.account);
        bind_text(q, 4, f.contact_id);
        bind_text(q, 5, f.contact_name);
        sqlite3_bind_int64(q, 6, now_ms);
        if ((rc = sq_run(c, q)) != 0) return rc;
        t->exists = true;
    }
    char *body = oh_store_search_text(&f);
    if (body) {
        q = sq_stmt(c, S_FTS_ADD);
        if (!q) {
            free(body);
            return OH_EIO;
        }
        sqlite3_bind_int64(q, 1, rowid);
        sqlite3_bind_text(q, 2, body, -1, free);
        if ((rc = sq_run(c, q)) != 0) return rc;
    }
    /* the directory row: once for the batch (sq_touch_flush) */
    t->head = seq;
    t->dirty = true;
    if (f.inbound && (!t->inbound || f.ts_ms > t->inbound_ms)) t->inbound_ms = f.ts_ms;
    t->inbound |= f.inbound;
    if (f.contact_name && *f.contact_name) t->name = f.contact_name;
    if (!t->contact_id && f.contact_id && *f.contact_id) t->contact_id = f.contact_id;
    if (f.preview) {
        t->preview = true;
        t->last_seq = seq;
        t->last_ms = f.ts_ms;
        t->direction = f.direction;
        t->kind = f.kind;
        t->text = f.text;
    }

    const char *refs[2][2] = {{f.message_id, f.message_id}, {f.provider_id, f.status_mid}};
    for (int i = 0; i < 2; i++) {
        if (!*refs[i][0] || !*refs[i][1] || (i == 1 && !f.status)) continue;
        q = sq_stmt(c, S_REF_ADD);
        if (!q) return OH_EIO;
        bind_text(q, 1, f.channel);
        bind_text(q, 2, f.account);
        bind_text(q, 3, refs[i][0]);
        bind_text(q, 4, f.conv);
        bind_text(q, 5, refs[i][1]);
        if ((rc = sq_run(c, q)) != 0) return rc;
    }
    struct oh_store_state cs;
    oh_store_state_get(it->event, &cs);
    if (cs.set && (rc = sq_state(s, f.conv, &cs, seq)) != 0) return rc;
    if (f.status && *f.state && *f.status_mid) {
        q = sq_stmt(c, S_STATE_UPSERT);
        if (!q) return OH_EIO;
        bind_text(q, 1, f.conv);
        bind_text(q, 2, f.status_mid);
        bind_text(q, 3, f.state);
        sqlite3_bind_int(q, 4, f.rank);
        if ((rc = sq_run(c, q)) != 0) return rc;
    }
    it->seq = seq;
    return 0;
}

static int sq_contact_rows(void *wctx, const char *const *keys, const char *const *values,
                           size_t nkv, const char *const *convs, const char *const *contacts,
                           size_t n);

/* GROUP's positions POS, in the writer's open transaction. */
static int sq_pos_write(struct sq_conn *c, const char *group, const struct oh_store_pos *pos,
                        size_t npos)
{
    int rc = 0;
    for (size_t i = 0; i < npos && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(c, S_POS_UPSERT);
        if (!q) return OH_EIO;
        bind_text(q, 1, group);
        bind_text(q, 2, pos[i].topic);
        sqlite3_bind_int(q, 3, pos[i].partition);
        sqlite3_bind_int64(q, 4, pos[i].next);
        rc = sq_run(c, q);
    }
    return rc;
}

static int sq_materialize_then(oh_store *st, const char *group, struct oh_store_item *items,
                               size_t n, const struct oh_store_pos *pos, size_t npos,
                               const struct oh_store_then *then)
{
    struct sq_store *s = (struct sq_store *)st;
    int rc = 0;
    pthread_mutex_lock(&s->wmu);
    struct sq_conn *c = s->w;
    int64_t now_ms = oh_now_ms();
    int64_t rev = -1; /* the change counter, read at the first change */
    struct sq_batch b = {NULL, 16};
    while (b.cap < 2 * n)
        b.cap *= 2;
    if (!(b.t = calloc(b.cap, sizeof *b.t))) {
        rc = OH_ENOMEM;
        goto out;
    }
    if ((rc = sq_exec(c, S_BEGIN_IMM)) != 0) goto out;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sq_item(s, &b, &items[i], now_ms);
    if (rc == 0) rc = sq_touch_flush(s, &b, now_ms, &rev);
    if (rc == 0 && rev >= 0) { /* every touched row took the next number */
        sqlite3_stmt *q = sq_stmt(c, S_REV_PUT);
        if (q) sqlite3_bind_int64(q, 1, rev);
        rc = sq_run(c, q);
    }
    if (rc == 0) rc = sq_pos_write(c, group, pos, npos);
    /* the batch's contacts: their rows in this transaction, one commit */
    if (rc == 0 && then && then->fn) rc = then->fn(then->opaque, items, n, sq_contact_rows, s);
    if (rc == 0) rc = sq_exec(c, S_COMMIT);
    if (rc == 0)
        sq_heads_note(s, &b);
    else if (s->heads)
        memset(s->heads, 0, SQ_HEADS * sizeof *s->heads);
    if (rc != 0) {
        sq_exec(c, S_ROLLBACK);
        for (size_t i = 0; i < n; i++) {
            if (items[i].seq > 0 && items[i].event) {
                json_object_del(items[i].event, "seq");
                json_object_del(items[i].event, "epoch");
            }
            items[i].seq = 0;
        }
    }
out:
    pthread_mutex_unlock(&s->wmu);
    free(b.t);
    if (rc != 0) OH_WARN("store", "materialize of %zu events failed: %s", n, oh_strerror(rc));
    return rc;
}

static int sq_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                          const struct oh_store_pos *pos, size_t npos)
{
    return sq_materialize_then(st, group, items, n, pos, npos, NULL);
}

/* Runs a write statement prepared by BIND on the writer connection. */
typedef void (*sq_bind_fn)(sqlite3_stmt *q, const void *args);

static int sq_write(struct sq_store *s, enum sq_stmt i, sq_bind_fn bind, const void *args)
{
    pthread_mutex_lock(&s->wmu);
    sqlite3_stmt *q = sq_stmt(s->w, i);
    int rc = OH_EIO;
    if (q) {
        bind(q, args);
        rc = sq_run(s->w, q);
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* Parameters: NT texts first, then integers for the remaining slots. */
struct sq_args {
    int nt;
    const char *t[5];
    int64_t n[2];
};

static void bind_args(sqlite3_stmt *q, const void *p)
{
    const struct sq_args *a = p;
    int col = 1;
    for (int i = 0; i < a->nt; i++)
        bind_text(q, col++, a->t[i]);
    int left = sqlite3_bind_parameter_count(q) - col + 1;
    for (int i = 0; i < left && i < 2; i++)
        sqlite3_bind_int64(q, col++, a->n[i]);
}

static int sq_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                           int64_t *next, int64_t *published)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = sq_stmt(c, S_POS_GET);
    int rc = OH_EIO;
    *next = *published = 0;
    if (q) {
        bind_text(q, 1, group);
        bind_text(q, 2, topic);
        sqlite3_bind_int(q, 3, partition);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            *next = sqlite3_column_int64(q, 0);
            *published = sqlite3_column_int64(q, 1);
        }
        rc = r == SQLITE_ROW || r == SQLITE_DONE ? 0 : sq_err(r);
        sqlite3_reset(q);
    }
    sq_reader_put(s, c);
    return rc;
}

static int sq_position_published(oh_store *st, const char *group, const char *topic,
                                 int32_t partition, int64_t published)
{
    struct sq_args a = {2, {group, topic}, {partition, published}};
    return sq_write((struct sq_store *)st, S_POS_PUBLISHED, bind_args, &a);
}

/* Steps a read query; calls ROW for each row until it returns non-zero. */
typedef int (*sq_row_fn)(sqlite3_stmt *q, void *ctx);

static int sq_read(struct sq_store *s, enum sq_stmt i, const struct sq_args *a, sq_row_fn row,
                   void *ctx, int *nrows)
{
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = sq_stmt(c, i);
    int rc = OH_EIO, n = 0;
    if (q) {
        bind_args(q, a);
        int r;
        rc = 0;
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            n++;
            int stop = row(q, ctx);
            if (stop) {
                rc = stop < 0 ? stop : 0;
                break;
            }
        }
        if (r != SQLITE_ROW && r != SQLITE_DONE) {
            OH_WARN("store", "sqlite: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
        sqlite3_reset(q);
    }
    sq_reader_put(s, c);
    if (nrows) *nrows = n;
    return rc;
}

struct sq_rows {
    oh_store_row_fn fn;
    void *opaque;
    bool with_conv;
    const char *conv;
    const char *epoch;
    bool skip_damaged;         /* pass over a damaged row instead of failing */
    struct oh_store_verify *v; /* counts instead of calling FN */
};

/* Columns (conversation_id when WITH_CONV), seq, json, crc. */
static int row_event(sqlite3_stmt *q, void *ctx)
{
    struct sq_rows *r = ctx;
    int col = r->with_conv ? 1 : 0;
    const char *conv = r->with_conv ? (const char *)sqlite3_column_text(q, 0) : r->conv;
    int64_t seq = sqlite3_column_int64(q, col);
    const char *json = (const char *)sqlite3_column_text(q, col + 1);
    size_t len = (size_t)sqlite3_column_bytes(q, col + 1);
    int64_t crc = sqlite3_column_type(q, col + 2) == SQLITE_NULL
                      ? -1
                      : sqlite3_column_int64(q, col + 2) & 0xffffffff;
    if (!json) json = "";
    int rc = oh_store_row_check(conv ? conv : "", seq, json, len, crc, r->epoch);
    if (r->v) {
        r->v->checked++;
        r->v->unverified += crc < 0;
        r->v->damaged += rc != 0;
        return 0;
    }
    if (rc) return r->skip_damaged ? 0 : rc;
    return r->fn(r->opaque, conv, seq, json, len);
}

static int sq_verify(oh_store *st, struct oh_store_verify *v)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_rows r = {.with_conv = true, .epoch = s->epoch, .v = v};
    struct sq_args a = {0, {NULL}, {0, 0}};
    return sq_read(s, S_VERIFY, &a, row_event, &r, NULL);
}

static int sq_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                           void *opaque)
{
    struct sq_store *s = (struct sq_store *)st;
    /* republishing: a damaged row is reported and not forwarded; the rest is */
    struct sq_rows r = {fn, opaque, true, NULL, s->epoch, true, NULL};
    struct sq_args a = {0, {NULL}, {partition, from}};
    return sq_read(s, S_SINCE, &a, row_event, &r, NULL);
}

static int row_nothing(sqlite3_stmt *q, void *ctx)
{
    return 0;
}

static int sq_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
                      void *opaque)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_rows r = {fn, opaque, false, conv, s->epoch, false, NULL};
    struct sq_args a = {1, {conv}, {after, limit > 0 ? limit : -1}};
    int n = 0;
    int rc = sq_read(s, S_HISTORY, &a, row_event, &r, &n);
    if (rc != 0 || n > 0) return rc;
    /* an empty page: does the conversation exist at all? */
    rc = sq_read(s, S_CONV_EXISTS, &a, row_nothing, NULL, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

static int sq_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                        void *opaque)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_rows r = {fn, opaque, false, conv, s->epoch, false, NULL};
    struct sq_args a = {2, {event_id, conv}, {0, 0}};
    int n = 0;
    int rc = sq_read(s, S_EVENT_GET, &a, row_event, &r, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

static void col_copy(char *dst, size_t len, sqlite3_stmt *q, int col)
{
    const char *v = (const char *)sqlite3_column_text(q, col);
    snprintf(dst, len, "%s", v ? v : "");
}

static int row_conv(sqlite3_stmt *q, struct oh_conversation *c)
{
    memset(c, 0, sizeof *c);
    col_copy(c->id, sizeof c->id, q, 0);
    col_copy(c->channel, sizeof c->channel, q, 1);
    col_copy(c->account, sizeof c->account, q, 2);
    col_copy(c->contact_id, sizeof c->contact_id, q, 3);
    col_copy(c->contact_name, sizeof c->contact_name, q, 4);
    c->head = sqlite3_column_int64(q, 5);
    c->created_ms = sqlite3_column_int64(q, 6);
    c->updated_ms = sqlite3_column_int64(q, 7);
    c->last_inbound_ms = sqlite3_column_int64(q, 8);
    col_copy(c->status, sizeof c->status, q, 9);
    col_copy(c->assignee, sizeof c->assignee, q, 10);
    col_copy(c->team, sizeof c->team, q, 11);
    col_copy(c->priority, sizeof c->priority, q, 12);
    col_copy(c->labels, sizeof c->labels, q, 13);
    c->snoozed_until_ms = sqlite3_column_int64(q, 14);
    c->episode = sqlite3_column_int64(q, 15);
    c->state_seq = sqlite3_column_int64(q, 16);
    c->last_seq = sqlite3_column_int64(q, 17);
    col_copy(c->last_direction, sizeof c->last_direction, q, 18);
    col_copy(c->last_kind, sizeof c->last_kind, q, 19);
    col_copy(c->last_text, sizeof c->last_text, q, 20);
    c->last_ms = sqlite3_column_int64(q, 21);
    c->rev = sqlite3_column_int64(q, 22);
    col_copy(c->contact_ref, sizeof c->contact_ref, q, 23);
    return 0;
}

static int row_conv_one(sqlite3_stmt *q, void *ctx)
{
    row_conv(q, ctx);
    return 1;
}

static int sq_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out)
{
    struct sq_args a = {1, {conv}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_CONV_GET, &a, row_conv_one, out, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

struct sq_convs {
    oh_store_conv_fn fn;
    void *opaque;
};

static int row_conv_each(sqlite3_stmt *q, void *ctx)
{
    struct sq_convs *l = ctx;
    struct oh_conversation c;
    row_conv(q, &c);
    return l->fn(l->opaque, &c);
}

static int sq_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                            void *opaque)
{
    struct sq_convs l = {fn, opaque};
    struct sq_args a = {0, {NULL}, {updated_after_ms, limit > 0 ? limit : -1}};
    return sq_read((struct sq_store *)st, S_CONV_LIST, &a, row_conv_each, &l, NULL);
}

static int sq_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn,
                          void *opaque)
{
    struct sq_convs l = {fn, opaque};
    struct sq_args a = {0, {NULL}, {now_ms, limit > 0 ? limit : -1}};
    return sq_read((struct sq_store *)st, S_SNOOZED_DUE, &a, row_conv_each, &l, NULL);
}

struct sq_outcome_out {
    int *code;
    char *body;
    size_t len;
};

static int row_outcome(sqlite3_stmt *q, void *ctx)
{
    struct sq_outcome_out *o = ctx;
    *o->code = sqlite3_column_int(q, 0);
    col_copy(o->body, o->len, q, 1);
    return 1;
}

static int sq_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                             size_t len)
{
    struct sq_outcome_out o = {code, body, len};
    struct sq_args a = {2, {id, conv}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_OUTCOME_GET, &a, row_outcome, &o, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

/* ---- the inbox ---- */

/* A query built clause by clause: its text and parameters (?1, ?2, ...). */
struct sq_query {
    char sql[3072];
    size_t len;
    int n;
    const char *text[16]; /* NULL: the parameter is INT[i] */
    int64_t num[16];
};

/* Appends FMT, in which every "%d" is the number of the next parameter,
 * bound to the text TEXT (or to NUM when TEXT is NULL). */
static void qadd(struct sq_query *q, const char *fmt, const char *text, int64_t num)
{
    int k = ++q->n;
    q->text[k - 1] = text;
    q->num[k - 1] = num;
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, fmt, k, k, k);
    if (w > 0) q->len += (size_t)w;
}

static void qraw(struct sq_query *q, const char *sql)
{
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, "%s", sql);
    if (w > 0) q->len += (size_t)w;
}

/* The words of Q as an FTS5 query: each one quoted (so nothing the user
 * types is FTS syntax), all required. NULL when Q holds no word. */
static char *fts_query(const char *q)
{
    char *out = malloc(strlen(q) * 3 + 3), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)q; *p;) {
        while (*p && *p < 0x80 && !isalnum(*p))
            p++;
        if (!*p) break;
        if (o != out) *o++ = ' ';
        *o++ = '"';
        while (*p && (*p >= 0x80 || isalnum(*p)))
            *o++ = (char)*p++;
        *o++ = '"';
    }
    *o = '\0';
    if (o == out) {
        free(out);
        return NULL;
    }
    return out;
}

struct sq_list {
    oh_store_list_fn fn;
    void *opaque;
};

static int row_list(sqlite3_stmt *q, void *ctx)
{
    struct sq_list *l = ctx;
    struct oh_conversation c;
    row_conv(q, &c);
    return l->fn(l->opaque, &c, sqlite3_column_int64(q, 24));
}

static int sq_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_query q = {.len = 0};
    char *fts = NULL;
    /* the reader's cursors are looked up for the page only, outside the
     * inner query (inside, PostgreSQL evaluates them for every match before
     * the sort) */
    qraw(&q, "SELECT x.*, ");
    if (f->reader) {
        qadd(&q,
             "coalesce((SELECT max(seq) FROM cursors k WHERE k.conversation_id = x.id "
             "AND k.user_id = ?%d ",
             f->reader, 0);
        qadd(&q, "AND k.role IN (?%d, '')), 0)", f->reader_role ? f->reader_role : "", 0);
    } else {
        qraw(&q, "0");
    }
    qraw(&q, " FROM (SELECT " CONV_COLS " FROM conversations c WHERE 1");
    const struct {
        const char *v, *sql;
    } eq[] = {{f->status, " AND c.status = ?%d"},
              {f->assignee, " AND c.assignee = ?%d"},
              {f->team, " AND c.team = ?%d"},
              {f->priority, " AND c.priority = ?%d"},
              {f->channel, " AND c.channel = ?%d"},
              {f->contact_id, " AND c.contact_id = ?%d"},
              {f->contact_ref, " AND c.contact_ref = ?%d"},
              {f->label, " AND EXISTS (SELECT 1 FROM json_each(c.labels) WHERE value = ?%d)"}};
    for (size_t i = 0; i < OH_ARRAY_SIZE(eq); i++)
        if (eq[i].v) qadd(&q, eq[i].sql, eq[i].v, 0);
    if (f->q) {
        if (!(fts = fts_query(f->q))) return 0; /* no word: nothing matches */
        qadd(&q,
             " AND c.id IN (SELECT h.conversation_id FROM msg_fts JOIN history h "
             "ON h.rowid = msg_fts.rowid WHERE msg_fts MATCH ?%d)",
             fts, 0);
    }
    if (f->updated_after_ms) qadd(&q, " AND c.updated_ms > ?%d", NULL, f->updated_after_ms);
    if (f->before_id) {
        qadd(&q, " AND (c.created_ms < ?%d OR (c.created_ms = ?%d ", NULL, f->before_created_ms);
        qadd(&q, "AND c.id < ?%d))", f->before_id, 0);
    }
    qadd(&q, " ORDER BY c.created_ms DESC, c.id DESC LIMIT ?%d) x", NULL, f->limit);
    qraw(&q, " ORDER BY x.created_ms DESC, x.id DESC");
    struct sq_conn *c = sq_reader(s);
    if (!c) {
        free(fts);
        return OH_EIO;
    }
    sqlite3_stmt *stmt = NULL;
    int rc = OH_EIO;
    if (q.len >= sizeof q.sql - 1) {
        OH_ERROR("store", "list query too long");
    } else if (sqlite3_prepare_v2(c->db, q.sql, (int)q.len, &stmt, NULL) != SQLITE_OK) {
        OH_ERROR("store", "list: %s", sqlite3_errmsg(c->db));
    } else {
        for (int i = 0; i < q.n; i++)
            if (q.text[i])
                bind_text(stmt, i + 1, q.text[i]);
            else
                sqlite3_bind_int64(stmt, i + 1, q.num[i]);
        struct sq_list l = {fn, opaque};
        int r;
        rc = 0;
        while ((r = sqlite3_step(stmt)) == SQLITE_ROW) {
            int stop = row_list(stmt, &l);
            if (stop) {
                rc = stop < 0 ? stop : 0;
                break;
            }
        }
        if (r != SQLITE_ROW && r != SQLITE_DONE) {
            OH_WARN("store", "sqlite: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
    }
    sqlite3_finalize(stmt);
    sq_reader_put(s, c);
    free(fts);
    return rc;
}

struct sq_changes {
    oh_store_conv_fn fn;
    void *opaque;
    int64_t last;
};

static int row_change(sqlite3_stmt *q, void *ctx)
{
    struct sq_changes *l = ctx;
    struct oh_conversation c;
    row_conv(q, &c);
    l->last = c.rev;
    return l->fn(l->opaque, &c);
}

static int row_int(sqlite3_stmt *q, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(q, 0);
    return 1;
}

static int sq_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
                      char *next)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_args a = {0, {NULL}, {0, limit > 0 ? limit : 1}};
    if (!*after) { /* now: the counter as committed */
        int rc = sq_read(s, S_REV_GET, &a, row_int, &a.n[0], NULL);
        if (rc == 0) oh_store_pos_format(&a.n[0], 1, next);
        return rc;
    }
    if (oh_store_pos_parse(after, &a.n[0], 1) != 0) return OH_EINVAL;
    struct sq_changes l = {fn, opaque, a.n[0]};
    int rc = sq_read(s, S_CHANGES, &a, row_change, &l, NULL);
    if (rc == 0) oh_store_pos_format(&l.last, 1, next);
    return rc;
}

static int row_ref(sqlite3_stmt *q, void *ctx)
{
    struct oh_store_ref *r = ctx;
    col_copy(r->conversation_id, sizeof r->conversation_id, q, 0);
    col_copy(r->message_id, sizeof r->message_id, q, 1);
    return 1;
}

static int sq_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
                      struct oh_store_ref *out)
{
    struct sq_args a = {3, {channel, account, ref}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_REF_GET, &a, row_ref, out, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

static int sq_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
                      const char *conv, const char *message_id)
{
    struct sq_args a = {5, {channel, account, ref, conv, message_id}, {0, 0}};
    return sq_write((struct sq_store *)st, S_REF_PUT, bind_args, &a);
}

struct sq_buf {
    char *out;
    size_t len;
    int rc;
};

static int row_text(sqlite3_stmt *q, void *ctx)
{
    struct sq_buf *b = ctx;
    const char *v = (const char *)sqlite3_column_text(q, 0);
    size_t n = (size_t)sqlite3_column_bytes(q, 0);
    if (n + 1 > b->len) {
        b->rc = OH_ETOOBIG;
        return 1;
    }
    memcpy(b->out, v ? v : "", n);
    b->out[n] = '\0';
    return 1;
}

static int sq_message_state(oh_store *st, const char *conv, const char *message_id, char out[16])
{
    struct sq_args a = {2, {conv, message_id}, {0, 0}};
    struct sq_buf b = {out, 16, 0};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_STATE_GET, &a, row_text, &b, &n);
    return rc != 0 ? rc : !n ? OH_ENOTFOUND : b.rc;
}

static int sq_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                         const char *device, int64_t seq)
{
    struct sq_args a = {4, {conv, user, role, device}, {seq, 0}};
    return sq_write((struct sq_store *)st, S_CURSOR_SET, bind_args, &a);
}

struct sq_cursors {
    oh_store_cursor_fn fn;
    void *opaque;
};

static int row_cursor(sqlite3_stmt *q, void *ctx)
{
    struct sq_cursors *l = ctx;
    return l->fn(l->opaque, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1));
}

static int sq_cursors(oh_store *st, const char *conv, const char *role, const char *user,
                      oh_store_cursor_fn fn, void *opaque)
{
    struct sq_cursors l = {fn, opaque};
    struct sq_args a = {3, {conv, user, role}, {0, 0}};
    return sq_read((struct sq_store *)st, S_CURSORS, &a, row_cursor, &l, NULL);
}

static int sq_kv_put(oh_store *st, const char *ns, const char *key, const char *value)
{
    struct sq_args a = {3, {ns, key, value}, {0, 0}};
    return sq_write((struct sq_store *)st, S_KV_PUT, bind_args, &a);
}

static int sq_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen)
{
    struct sq_args a = {2, {ns, key}, {0, 0}};
    struct sq_buf b = {out, outlen, 0};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_KV_GET, &a, row_text, &b, &n);
    return rc != 0 ? rc : !n ? OH_ENOTFOUND : b.rc;
}

/* One reader, one read transaction (one snapshot) for all the keys. */
static int sq_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                          void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    int rc = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? 0 : OH_EIO;
    bool began = rc == 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(c, S_KV_GET);
        if (!q) {
            rc = OH_EIO;
            break;
        }
        struct sq_args a = {2, {ns, keys[i]}, {0, 0}};
        bind_args(q, &a);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(q, 0);
            fn(ctx, i, v ? v : "");
        } else if (r != SQLITE_DONE) {
            OH_WARN("store", "sqlite: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
        sqlite3_reset(q);
    }
    if (began) sq_exec(c, S_COMMIT);
    sq_reader_put(s, c);
    return rc;
}

static int sq_kv_del(oh_store *st, const char *ns, const char *key)
{
    struct sq_args a = {2, {ns, key}, {0, 0}};
    return sq_write((struct sq_store *)st, S_KV_DEL, bind_args, &a);
}

static int sq_kv_write(oh_store *st, const char *ns, const char *const *keys,
                       const char *const *values, size_t n)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct sq_args a = {values[i] ? 3 : 2, {ns, keys[i], values[i]}, {0, 0}};
        sqlite3_stmt *q = sq_stmt(s->w, values[i] ? S_KV_PUT : S_KV_DEL);
        if (!q) {
            rc = OH_EIO;
            break;
        }
        bind_args(q, &a);
        rc = sq_run(s->w, q);
    }
    if (rc == 0)
        rc = sq_exec(s->w, S_COMMIT);
    else
        sq_exec(s->w, S_ROLLBACK);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

struct sq_kvs {
    oh_store_kv_fn fn;
    void *opaque;
};

static int row_kv(sqlite3_stmt *q, void *ctx)
{
    struct sq_kvs *l = ctx;
    return l->fn(l->opaque, (const char *)sqlite3_column_text(q, 0),
                 (const char *)sqlite3_column_text(q, 1));
}

static int sq_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque)
{
    struct sq_kvs l = {fn, opaque};
    struct sq_args a = {1, {ns}, {0, 0}};
    return sq_read((struct sq_store *)st, S_KV_SCAN, &a, row_kv, &l, NULL);
}

static int row_count(sqlite3_stmt *q, void *ctx)
{
    *(int64_t *)ctx = sqlite3_column_int64(q, 0);
    return 1;
}

static int sq_open_assigned(oh_store *st, const char *agent, int64_t *count)
{
    struct sq_args a = {1, {agent}, {0, 0}};
    return sq_read((struct sq_store *)st, S_OPEN_ASSIGNED, &a, row_count, count, NULL);
}

/* ---- knowledge-base articles ---- */

/* Runs write statement I (bound from A) for its one returned row: column 0
 * into *OUT; OH_ENOTFOUND when it returned none. */
static int sq_write_returning(struct sq_store *s, enum sq_stmt i, const struct sq_args *a,
                              int64_t *out)
{
    pthread_mutex_lock(&s->wmu);
    sqlite3_stmt *q = sq_stmt(s->w, i);
    int rc = OH_EIO;
    if (q) {
        bind_args(q, a);
        int r = sqlite3_step(q);
        if (r == SQLITE_ROW) {
            if (out) *out = sqlite3_column_int64(q, 0);
            r = sqlite3_step(q); /* to the end: the change is made */
        } else if (r == SQLITE_DONE) {
            r = SQLITE_DONE + 1000; /* no row */
        }
        sqlite3_reset(q);
        if (r == SQLITE_DONE)
            rc = 0;
        else if (r == SQLITE_DONE + 1000)
            rc = OH_ENOTFOUND;
        else {
            OH_WARN("store", "sqlite: %s", sqlite3_errmsg(s->w->db));
            rc = sq_err(r);
        }
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    struct sq_args q = {5, {a->id, a->title, a->body, a->locale, a->tags}, {a->updated_ms, 0}};
    return sq_write_returning((struct sq_store *)st, S_ART_PUT, &q, version);
}

struct sq_arts {
    oh_store_article_fn fn;
    void *opaque;
};

static int row_article(sqlite3_stmt *q, void *ctx)
{
    struct sq_arts *l = ctx;
    struct oh_store_article a = {
        .id = (const char *)sqlite3_column_text(q, 0),
        .title = (const char *)sqlite3_column_text(q, 1),
        .body = (const char *)sqlite3_column_text(q, 2),
        .locale = (const char *)sqlite3_column_text(q, 3),
        .tags = (const char *)sqlite3_column_text(q, 4),
        .version = sqlite3_column_int64(q, 5),
        .updated_ms = sqlite3_column_int64(q, 6),
    };
    return l->fn(l->opaque, &a);
}

static int sq_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque)
{
    struct sq_arts l = {fn, opaque};
    struct sq_args a = {1, {id}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_ART_GET, &a, row_article, &l, &n);
    return rc ? rc : n ? 0 : OH_ENOTFOUND;
}

static int sq_article_del(oh_store *st, const char *id)
{
    struct sq_args a = {1, {id}, {0, 0}};
    return sq_write_returning((struct sq_store *)st, S_ART_DEL, &a, NULL);
}

static int sq_articles(oh_store *st, oh_store_article_fn fn, void *opaque)
{
    struct sq_arts l = {fn, opaque};
    struct sq_args a = {0, {NULL}, {0, 0}};
    return sq_read((struct sq_store *)st, S_ART_ALL, &a, row_article, &l, NULL);
}

/* ---- KPIs ---- */

static const char sq_kpi_put_sql[] =
    "INSERT OR REPLACE INTO kpi_episodes (conversation_id, episode, channel, agent, team, "
    "start_ms, resolved_ms, frt_ms, bot_frt_ms, nrt_sum_ms, nrt_count, aht_ms, reopened_ms, "
    "breached, bot_involved, agent_replied) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/* V, or NULL when it is "none" (-1, or "" for a text) */
static void bind_opt_int(sqlite3_stmt *q, int i, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_int64(q, i, v);
}

static void bind_opt_text(sqlite3_stmt *q, int i, const char *v)
{
    if (!v[0])
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
}

#define SQ_EP_COLS                                                                                 \
    "conversation_id, episode, channel, agent, team, start_ms, resolved_ms, frt_ms, bot_frt_ms, "  \
    "nrt_sum_ms, nrt_count, aht_ms, reopened_ms, breached, bot_involved, agent_replied"

static int64_t col_opt_int(sqlite3_stmt *q, int i)
{
    return sqlite3_column_type(q, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, i);
}

static void col_str(sqlite3_stmt *q, int i, char *out, size_t len)
{
    const unsigned char *v = sqlite3_column_text(q, i);
    snprintf(out, len, "%s", v ? (const char *)v : "");
}

/* The episode of a row of SQ_EP_COLS. */
static void sq_episode_row(sqlite3_stmt *q, struct oh_store_episode *e)
{
    memset(e, 0, sizeof *e);
    col_str(q, 0, e->conversation_id, sizeof e->conversation_id);
    e->episode = sqlite3_column_int64(q, 1);
    col_str(q, 2, e->channel, sizeof e->channel);
    col_str(q, 3, e->agent, sizeof e->agent);
    col_str(q, 4, e->team, sizeof e->team);
    e->start_ms = sqlite3_column_int64(q, 5);
    e->resolved_ms = sqlite3_column_int64(q, 6);
    e->frt_ms = col_opt_int(q, 7);
    e->bot_frt_ms = col_opt_int(q, 8);
    e->nrt_sum_ms = sqlite3_column_int64(q, 9);
    e->nrt_count = sqlite3_column_int64(q, 10);
    e->aht_ms = col_opt_int(q, 11);
    e->reopened_ms = col_opt_int(q, 12);
    e->breached = sqlite3_column_int(q, 13) != 0;
    e->bot_involved = sqlite3_column_int(q, 14) != 0;
    e->agent_replied = sqlite3_column_int(q, 15) != 0;
}

/* The statements of kpi_days' writes, prepared once per transaction. */
struct sq_kpi_days_w {
    struct sq_conn *c;
    sqlite3_stmt *sel, *put, *del;
};

static int sq_kpi_days_w_open(struct sq_kpi_days_w *w, struct sq_conn *c)
{
    *w = (struct sq_kpi_days_w){.c = c};
    if (sqlite3_prepare_v2(c->db,
                           "SELECT episodes, frt_n, frt_sum_ms, nrt_n, nrt_sum_ms, aht_n, "
                           "aht_sum_ms, resolution_sum_ms, sla_met, bot_involved, bot_open, "
                           "frt_hist FROM kpi_days WHERE dim = ?1 AND day = ?2 AND key = ?3",
                           -1, &w->sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO kpi_days VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                           "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                           -1, &w->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "DELETE FROM kpi_days WHERE dim = ?1 AND day = ?2 AND key = ?3",
                           -1, &w->del, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi_days: %s", sqlite3_errmsg(c->db));
        return OH_EIO;
    }
    return OH_OK;
}

static void sq_kpi_days_w_close(struct sq_kpi_days_w *w)
{
    sqlite3_finalize(w->sel);
    sqlite3_finalize(w->put);
    sqlite3_finalize(w->del);
}

/* One changed kpi_days row: read, added to, written (deleted at 0). */
static int sq_kpi_day_apply(void *opaque, const char *dim, int64_t day, const char *key,
                            const int64_t *v, const int64_t (*hist)[2], size_t n)
{
    struct sq_kpi_days_w *kw = opaque;
    sqlite3_stmt *q = kw->sel, *w;
    int64_t sums[OH_KPI_SUMS] = {0};
    uint8_t *blob = NULL;
    size_t len = 0;
    int rc, r;
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, dim, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, day);
    sqlite3_bind_text(q, 3, key, -1, SQLITE_STATIC);
    r = sqlite3_step(q);
    if (r == SQLITE_ROW) {
        for (int i = 0; i < OH_KPI_SUMS; i++)
            sums[i] = sqlite3_column_int64(q, i);
        rc = oh_kpi_hist_apply(sqlite3_column_blob(q, OH_KPI_SUMS),
                               (size_t)sqlite3_column_bytes(q, OH_KPI_SUMS), hist, n, &blob, &len);
    } else if (r == SQLITE_DONE) {
        rc = oh_kpi_hist_apply(NULL, 0, hist, n, &blob, &len);
    } else {
        rc = sq_err(r);
    }
    sqlite3_reset(q);
    if (rc) goto out;
    bool negative = false;
    for (int i = 0; i < OH_KPI_SUMS; i++) {
        sums[i] += v[i];
        negative |= i != OH_KPI_FRT_SUM && i != OH_KPI_RES_SUM && sums[i] < 0;
    }
    if (negative) {
        OH_WARN("store", "kpi_days %s %lld %s: a count below 0", dim, (long long)day, key);
        rc = OH_EDAMAGED;
        goto out;
    }
    w = sums[OH_KPI_EPISODES] == 0 ? kw->del : kw->put;
    sqlite3_reset(w);
    if (w == kw->put) {
        for (int i = 0; i < OH_KPI_SUMS; i++)
            sqlite3_bind_int64(w, 4 + i, sums[i]);
        sqlite3_bind_blob(w, 4 + OH_KPI_SUMS, blob ? (const void *)blob : "", (int)len,
                          SQLITE_STATIC);
    }
    sqlite3_bind_text(w, 1, dim, -1, SQLITE_STATIC);
    sqlite3_bind_int64(w, 2, day);
    sqlite3_bind_text(w, 3, key, -1, SQLITE_STATIC);
    r = sqlite3_step(w);
    sqlite3_reset(w);
    rc = r == SQLITE_DONE ? OH_OK : sq_err(r);
    if (rc) OH_WARN("store", "kpi_days: %s", sqlite3_errmsg(kw->c->db));
out:
    if (rc == OH_EDAMAGED && r == SQLITE_ROW)
        OH_WARN("store", "kpi_days %s %lld %s: histogram below 0", dim, (long long)day, key);
    free(blob);
    return rc;
}

/* Every changed kpi_days row of D, on the writer C (in its transaction). */
static int sq_kpi_days_write(struct sq_conn *c, struct oh_kpi_delta *d)
{
    struct sq_kpi_days_w w;
    int rc = sq_kpi_days_w_open(&w, c);
    if (rc == OH_OK) rc = oh_kpi_delta_each(d, sq_kpi_day_apply, &w);
    sq_kpi_days_w_close(&w);
    return rc;
}

static int sq_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                      const struct oh_store_pos *pos, size_t npos)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    struct sq_conn *c = s->w;
    sqlite3_stmt *ins = NULL, *old = NULL;
    struct oh_kpi_delta *d = n ? oh_kpi_delta_new() : NULL;
    int rc = n && !d ? OH_ENOMEM : sq_exec(c, S_BEGIN_IMM);
    if (rc == 0 && n &&
        (sqlite3_prepare_v2(c->db, sq_kpi_put_sql, -1, &ins, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(c->db,
                            "SELECT " SQ_EP_COLS " FROM kpi_episodes INDEXED BY kpi_episodes_id "
                            "WHERE conversation_id = ?1 AND episode = ?2",
                            -1, &old, NULL) != SQLITE_OK)) {
        OH_ERROR("store", "kpi: %s", sqlite3_errmsg(c->db));
        rc = OH_EIO;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct oh_store_episode *e = &eps[i];
        /* a rewritten episode: its old contribution to kpi_days goes first */
        sqlite3_reset(old);
        bind_text(old, 1, e->conversation_id);
        sqlite3_bind_int64(old, 2, e->episode);
        int r = sqlite3_step(old);
        if (r == SQLITE_ROW) {
            struct oh_store_episode was;
            sq_episode_row(old, &was);
            rc = oh_kpi_delta_add(d, &was, -1);
        } else if (r != SQLITE_DONE) {
            rc = sq_err(r);
        }
        if (rc == 0) rc = oh_kpi_delta_add(d, e, 1);
        if (rc) break;
        sqlite3_reset(ins);
        bind_text(ins, 1, e->conversation_id);
        sqlite3_bind_int64(ins, 2, e->episode);
        bind_text(ins, 3, e->channel);
        bind_opt_text(ins, 4, e->agent);
        bind_opt_text(ins, 5, e->team);
        sqlite3_bind_int64(ins, 6, e->start_ms);
        sqlite3_bind_int64(ins, 7, e->resolved_ms);
        bind_opt_int(ins, 8, e->frt_ms);
        bind_opt_int(ins, 9, e->bot_frt_ms);
        sqlite3_bind_int64(ins, 10, e->nrt_sum_ms);
        sqlite3_bind_int64(ins, 11, e->nrt_count);
        bind_opt_int(ins, 12, e->aht_ms);
        bind_opt_int(ins, 13, e->reopened_ms);
        sqlite3_bind_int(ins, 14, e->breached);
        sqlite3_bind_int(ins, 15, e->bot_involved);
        sqlite3_bind_int(ins, 16, e->agent_replied);
        r = sqlite3_step(ins);
        if (r != SQLITE_DONE) {
            OH_WARN("store", "kpi: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(old);
    if (rc == 0 && d) rc = sq_kpi_days_write(c, d);
    oh_kpi_delta_free(d);
    if (rc == 0) rc = sq_pos_write(c, group, pos, npos);
    if (rc == 0) rc = sq_exec(c, S_COMMIT);
    if (rc != 0) sq_exec(c, S_ROLLBACK);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* kpi_days from kpi_episodes when the first is empty and the second not
 * (a store older than migration 9), in one transaction. */
static int sq_kpi_days_fill(struct sq_store *s)
{
    struct sq_conn *c = s->w;
    sqlite3_stmt *q = NULL;
    bool fill = false;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT EXISTS (SELECT 1 FROM kpi_episodes) AND "
                           "NOT EXISTS (SELECT 1 FROM kpi_days)",
                           -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        fill = sqlite3_column_int(q, 0) != 0;
    sqlite3_finalize(q);
    q = NULL;
    if (!fill) return OH_OK;
    OH_INFO("store", "kpi: filling kpi_days from kpi_episodes");
    struct oh_kpi_delta *d = oh_kpi_delta_new();
    int rc = d ? sq_exec(c, S_BEGIN_IMM) : OH_ENOMEM;
    if (rc == 0 && sqlite3_prepare_v2(c->db, "SELECT " SQ_EP_COLS " FROM kpi_episodes", -1, &q,
                                      NULL) != SQLITE_OK)
        rc = OH_EIO;
    int r = SQLITE_DONE;
    while (rc == 0 && (r = sqlite3_step(q)) == SQLITE_ROW) {
        struct oh_store_episode e;
        sq_episode_row(q, &e);
        rc = oh_kpi_delta_add(d, &e, 1);
    }
    if (rc == 0 && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    if (rc == 0) rc = sq_kpi_days_write(c, d);
    oh_kpi_delta_free(d);
    if (rc == 0) rc = sq_exec(c, S_COMMIT);
    if (rc != 0) {
        OH_ERROR("store", "kpi: filling kpi_days: %s", sqlite3_errmsg(c->db));
        sq_exec(c, S_ROLLBACK);
    }
    return rc;
}

/* One pass over the episodes of the range, aggregated in C (store_kpi.c):
 * SQLite's GROUP BY and window sort take three times as long. */
/* One reader's pass over the episodes resolved in [FROM, TO) into ACC. */
struct sq_kpi_scan {
    struct sq_store *s;
    const char *sql;
    const struct oh_store_kpi_query *kq;
    int64_t from, to;
    struct oh_kpi_acc *acc;
    int rc;
    pthread_t thread;
    bool running;
};

/* The rows of [FROM, TO) into ACC, on connection C. */
static int sq_kpi_rows(struct sq_conn *c, const char *sql, const struct oh_store_kpi_query *kq,
                       int64_t from, int64_t to, struct oh_kpi_acc *acc)
{
    sqlite3_stmt *q = NULL;
    int rc = OH_OK, r = SQLITE_DONE;
    if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(c->db));
        rc = OH_EIO;
    } else {
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int64(q, 2, to);
        if (kq->agent) sqlite3_bind_text(q, 3, kq->agent, -1, SQLITE_STATIC);
        while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
            bool null = sqlite3_column_type(q, 0) == SQLITE_NULL;
            bool reopened = sqlite3_column_type(q, 9) != SQLITE_NULL;
            struct oh_kpi_acc_ep e = {
                .frt_ms =
                    sqlite3_column_type(q, 1) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 1),
                .nrt_sum_ms = sqlite3_column_int64(q, 2),
                .nrt_count = sqlite3_column_int64(q, 3),
                .aht_ms =
                    sqlite3_column_type(q, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 4),
                .resolution_ms = sqlite3_column_int64(q, 5),
                .breached = sqlite3_column_int(q, 6) != 0,
                .bot_involved = sqlite3_column_int(q, 7) != 0,
            };
            /* resolved by the bot: no agent message, not reopened within the window */
            e.bot_resolved = e.bot_involved && !sqlite3_column_int(q, 8) &&
                             (!reopened || sqlite3_column_int64(q, 9) >= kq->reopen_window_ms);
            rc = oh_kpi_acc_add(acc, null ? NULL : (const char *)sqlite3_column_text(q, 0), &e);
        }
        if (rc == OH_OK && r != SQLITE_DONE) {
            OH_WARN("store", "kpi report: %s", sqlite3_errmsg(c->db));
            rc = sq_err(r);
        }
    }
    sqlite3_finalize(q);
    return rc;
}

static void *sq_kpi_scan(void *arg)
{
    struct sq_kpi_scan *sc = arg;
    struct sq_conn *c = sq_reader(sc->s);
    if (!c) {
        sc->rc = OH_EIO;
        return NULL;
    }
    /* the range is read whole: mapped, not copied page by page through pread */
    sqlite3_exec(c->db, "PRAGMA mmap_size=4294967296", NULL, NULL, NULL);
    sc->rc = sq_kpi_rows(c, sc->sql, sc->kq, sc->from, sc->to, sc->acc);
    sq_reader_put(sc->s, c);
    return NULL;
}

/* Where the episodes of [FROM, TO) begin and end (*LO > *HI: none). */
static int sq_kpi_bounds(struct sq_store *s, int64_t from, int64_t to, int64_t *lo, int64_t *hi)
{
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = NULL;
    int rc = OH_EIO;
    *lo = 1;
    *hi = 0;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT min(resolved_ms), max(resolved_ms) FROM kpi_episodes "
                           "WHERE resolved_ms >= ?1 AND resolved_ms < ?2",
                           -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, from);
        sqlite3_bind_int64(q, 2, to);
        if (sqlite3_step(q) == SQLITE_ROW) {
            rc = OH_OK;
            if (sqlite3_column_type(q, 0) != SQLITE_NULL) {
                *lo = sqlite3_column_int64(q, 0);
                *hi = sqlite3_column_int64(q, 1);
            }
        }
    }
    sqlite3_finalize(q);
    sq_reader_put(s, c);
    return rc;
}

#define SQ_KPI_SCANS 4

/* Streams the episodes of the range and aggregates them in C
 * (store_kpi.c): SQLite's GROUP BY and window sort take three times as
 * long. A report over everyone's episodes reads the range in up to one
 * slice per CPU (at most 4), each on its own reader connection, and merges
 * them: a row is in exactly one slice (its resolved_ms never changes). */
static int sq_kpi_report_rows(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                              void *opaque)
{
    static const char *const keys[][2] = {
        {"agent", "agent"}, {"team", "team"}, {"channel", "channel"}, {"none", "'all'"}};
    const char *key = NULL;
    for (size_t i = 0; i < OH_ARRAY_SIZE(keys) && !key; i++)
        if (strcmp(kq->group_by, keys[i][0]) == 0) key = keys[i][1];
    if (!key) return OH_EINVAL;
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, frt_ms, nrt_sum_ms, nrt_count, aht_ms, resolved_ms - start_ms, breached, "
             "bot_involved, agent_replied, reopened_ms - resolved_ms FROM kpi_episodes "
             "WHERE resolved_ms >= ?1 AND resolved_ms < ?2%s",
             key, kq->agent ? " AND agent = ?3" : "");
    struct sq_store *s = (struct sq_store *)st;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = kq->agent ? 1 : cpus < 1 ? 1 : cpus > SQ_KPI_SCANS ? SQ_KPI_SCANS : (int)cpus;
    int64_t lo = kq->from_ms, hi = kq->to_ms - 1;
    int rc = n > 1 ? sq_kpi_bounds(s, kq->from_ms, kq->to_ms, &lo, &hi) : OH_OK;
    if (rc) return rc;
    if (lo > hi) n = 1; /* nothing to read */
    if (n > 1 && (hi - lo) / n < 1) n = 1;
    struct sq_kpi_scan sc[SQ_KPI_SCANS];
    memset(sc, 0, sizeof sc);
    int64_t step = (hi - lo) / n + 1;
    for (int i = 0; i < n; i++) {
        /* contiguous slices of [from, to), never past it */
        int64_t a = i ? lo + step * i : kq->from_ms;
        int64_t b = i + 1 < n ? lo + step * (i + 1) : kq->to_ms;
        sc[i] = (struct sq_kpi_scan){s,
                                     sql,
                                     kq,
                                     a < kq->to_ms ? a : kq->to_ms,
                                     b < kq->to_ms ? b : kq->to_ms,
                                     oh_kpi_acc_new(),
                                     0,
                                     0,
                                     false};
        if (!sc[i].acc) rc = OH_ENOMEM;
    }
    for (int i = 1; i < n && rc == OH_OK; i++)
        sc[i].running = pthread_create(&sc[i].thread, NULL, sq_kpi_scan, &sc[i]) == 0;
    if (rc == OH_OK) sq_kpi_scan(&sc[0]);
    for (int i = 1; i < n; i++) {
        if (sc[i].running)
            pthread_join(sc[i].thread, NULL);
        else if (rc == OH_OK)
            sq_kpi_scan(&sc[i]); /* no thread: here */
    }
    for (int i = 0; i < n && rc == OH_OK; i++)
        rc = sc[i].rc;
    for (int i = 1; i < n && rc == OH_OK; i++)
        rc = oh_kpi_acc_merge(sc[0].acc, sc[i].acc);
    if (rc == OH_OK) rc = oh_kpi_acc_emit(sc[0].acc, fn, opaque);
    for (int i = 0; i < n; i++)
        oh_kpi_acc_free(sc[i].acc);
    return rc;
}

/* The directory's writes and the contact_refs in one transaction (one
 * commit, one WAL sync). */
/* The directory's writes and the contact_refs on the writer, in its open
 * transaction (WCTX: the store, its wmu held). */
static int sq_contact_rows(void *wctx, const char *const *keys, const char *const *values,
                           size_t nkv, const char *const *convs, const char *const *contacts,
                           size_t n)
{
    struct sq_store *s = wctx;
    int rc = 0;
    for (size_t i = 0; i < nkv && rc == 0; i++) {
        struct sq_args a = {values[i] ? 3 : 2,
                            {OH_STORE_CONTACTS_NS, keys[i], values[i]},
                            {0, 0}};
        sqlite3_stmt *q = sq_stmt(s->w, values[i] ? S_KV_PUT : S_KV_DEL);
        if (!q) {
            rc = OH_EIO;
            break;
        }
        bind_args(q, &a);
        rc = sq_run(s->w, q);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(s->w, S_CONTACT_REF);
        if (!q) {
            rc = OH_EIO;
            break;
        }
        bind_text(q, 1, convs[i]);
        bind_text(q, 2, contacts[i]);
        rc = sq_run(s->w, q);
    }
    return rc;
}

static int sq_contact_write(oh_store *st, const char *const *keys, const char *const *values,
                            size_t nkv, const char *const *convs, const char *const *contacts,
                            size_t n)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    if (rc == 0) rc = sq_contact_rows(s, keys, values, nkv, convs, contacts, n);
    if (rc == 0)
        rc = sq_exec(s->w, S_COMMIT);
    else
        sq_exec(s->w, S_ROLLBACK);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

static int sq_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts,
                           size_t n)
{
    return sq_contact_write(st, NULL, NULL, 0, convs, contacts, n);
}

/* One erased row: its rowid, seq, old text. */
struct sq_erased {
    int64_t rowid, seq;
    char *json;
};

/* The erasure's statements, in the writer's open transaction. */
static int sq_erase_rows(struct sq_store *s, const char *conv, oh_store_erase_fn fn, void *opaque,
                         int64_t *count)
{
    sqlite3 *db = s->w->db;
    sqlite3_stmt *q = NULL, *up = NULL, *fts = NULL;
    struct sq_erased *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT rowid, seq, json FROM history WHERE conversation_id = ?1 "
                           "AND type IN ('" OH_EV_INBOUND "', '" OH_EV_OUTBOUND "') ORDER BY seq",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "UPDATE history SET type = ?2, json = ?3, crc = ?4 WHERE rowid = ?1",
                           -1, &up, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO msg_fts (msg_fts, rowid, body) VALUES ('delete', ?1, ?2)",
                           -1, &fts, NULL) != SQLITE_OK) {
        rc = OH_EIO;
        goto out;
    }
    bind_text(q, 1, conv);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            struct sq_erased *r = realloc(rows, (cap = cap ? cap * 2 : 64) * sizeof *rows);
            if (!r) {
                rc = OH_ENOMEM;
                goto out;
            }
            rows = r;
        }
        rows[n].rowid = sqlite3_column_int64(q, 0);
        rows[n].seq = sqlite3_column_int64(q, 1);
        rows[n].json = strdup((const char *)sqlite3_column_text(q, 2));
        if (!rows[n++].json) {
            rc = OH_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *ev = json_loads(rows[i].json, 0, NULL);
        struct oh_store_fields f;
        size_t len;
        uint32_t crc;
        if (!ev || oh_store_fields_get(ev, &f)) {
            json_decref(ev);
            continue; /* not an event we can read: it was never indexed either */
        }
        if (fn) fn(opaque, ev);
        char *body = oh_store_search_text(&f);
        if (body) {
            sqlite3_reset(fts);
            sqlite3_bind_int64(fts, 1, rows[i].rowid);
            sqlite3_bind_text(fts, 2, body, -1, free);
            if (sqlite3_step(fts) != SQLITE_DONE) rc = sq_err(sqlite3_errcode(db));
        }
        char *text = oh_store_tombstone(ev, rows[i].seq, s->epoch, &len, &crc);
        json_decref(ev);
        if (!text) {
            rc = rc ? rc : OH_ENOMEM;
            break;
        }
        sqlite3_reset(up);
        sqlite3_bind_int64(up, 1, rows[i].rowid);
        bind_text(up, 2, OH_EV_ERASED);
        sqlite3_bind_text(up, 3, text, (int)len, free);
        sqlite3_bind_int64(up, 4, crc);
        if (rc == 0 && sqlite3_step(up) != SQLITE_DONE) rc = sq_err(sqlite3_errcode(db));
        if (rc == 0) (*count)++;
    }
    /* a contentless index keeps a deleted row's terms in its older segments
     * until they are merged: merge them all (costs a rewrite of the index;
     * erasures are rare) */
    if (rc == 0 && *count > 0 &&
        sqlite3_exec(db, "INSERT INTO msg_fts (msg_fts) VALUES ('optimize')", NULL, NULL, NULL) !=
            SQLITE_OK)
        rc = sq_err(sqlite3_errcode(db));
    if (rc == 0) {
        sqlite3_stmt *c = NULL;
        if (sqlite3_prepare_v2(db,
                               "UPDATE conversations SET contact_id = '', contact_name = '', "
                               "last_text = '' WHERE id = ?1",
                               -1, &c, NULL) != SQLITE_OK)
            rc = OH_EIO;
        else {
            bind_text(c, 1, conv);
            if (sqlite3_step(c) != SQLITE_DONE) rc = sq_err(sqlite3_errcode(db));
        }
        sqlite3_finalize(c);
    }
out:
    for (size_t i = 0; i < n; i++)
        free(rows[i].json);
    free(rows);
    sqlite3_finalize(q);
    sqlite3_finalize(up);
    sqlite3_finalize(fts);
    return rc;
}

static int sq_erase(oh_store *st, const char *conv, oh_store_erase_fn fn, void *opaque,
                    int64_t *count)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    if (rc == 0) {
        rc = sq_erase_rows(s, conv, fn, opaque, count);
        if (rc == 0)
            rc = sq_exec(s->w, S_COMMIT);
        else
            sq_exec(s->w, S_ROLLBACK);
    }
    /* the old pages' images also live in the WAL until a checkpoint: copy
     * them back and truncate it, so the erased text is in neither file
     * (secure_delete, set at open, zeroes what the updates freed) */
    if (rc == 0 && sqlite3_wal_checkpoint_v2(s->w->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                             NULL) != SQLITE_OK)
        OH_WARN("store", "erasure: WAL checkpoint incomplete (%s); the next one completes it",
                sqlite3_errmsg(s->w->db));
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

/* A report over kpi_days: the whole days of the range from there, the
 * rest from the rows, all in one read transaction. */
struct sq_kpi_days {
    struct sq_conn *c;
    const char *col;  /* NULL: group_by none */
    int64_t from, to; /* the whole days, in ms */
};

static int sq_kpi_frt(void *opaque, const char *key, int64_t lo, int64_t hi, int64_t *out, size_t n)
{
    struct sq_kpi_days *kd = opaque;
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT frt_ms FROM kpi_episodes INDEXED BY kpi_episodes_frt WHERE frt_ms IS NOT NULL "
             "AND frt_ms >= ?1 AND frt_ms < ?2 AND resolved_ms >= ?3 AND resolved_ms < ?4%s%s%s "
             "ORDER BY frt_ms",
             kd->col ? " AND " : "", kd->col ? kd->col : "", kd->col ? " IS ?5" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(kd->c->db, sql, -1, &q, NULL) != SQLITE_OK) {
        OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(kd->c->db));
        return OH_EIO;
    }
    sqlite3_bind_int64(q, 1, lo);
    sqlite3_bind_int64(q, 2, hi);
    sqlite3_bind_int64(q, 3, kd->from);
    sqlite3_bind_int64(q, 4, kd->to);
    if (kd->col && key) sqlite3_bind_text(q, 5, key, -1, SQLITE_STATIC);
    size_t got = 0;
    int r;
    while ((r = sqlite3_step(q)) == SQLITE_ROW) {
        if (got < n) out[got] = sqlite3_column_int64(q, 0);
        got++;
    }
    sqlite3_finalize(q);
    if (r != SQLITE_DONE) return sq_err(r);
    if (got != n) {
        OH_WARN("store", "kpi_days: %zu first response times in [%lld, %lld) for %s, rows have %zu",
                n, (long long)lo, (long long)hi, key ? key : "(none)", got);
        return OH_EDAMAGED;
    }
    return OH_OK;
}

static int sq_kpi_report_days(struct sq_conn *c, const struct oh_store_kpi_query *kq, int dim,
                              const char *key, int64_t first, int64_t last, struct oh_kpi_acc *acc)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT %s, frt_ms, nrt_sum_ms, nrt_count, aht_ms, resolved_ms - start_ms, breached, "
             "bot_involved, agent_replied, reopened_ms - resolved_ms FROM kpi_episodes "
             "WHERE resolved_ms >= ?1 AND resolved_ms < ?2",
             key);
    /* the partial days at the ends */
    int rc = sq_kpi_rows(c, sql, kq, kq->from_ms, first * OH_KPI_DAY_MS, acc);
    if (rc == OH_OK) rc = sq_kpi_rows(c, sql, kq, last * OH_KPI_DAY_MS, kq->to_ms, acc);
    if (rc) return rc;
    sqlite3_stmt *q = NULL;
    int r = SQLITE_DONE;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT key, episodes, frt_n, frt_sum_ms, nrt_n, nrt_sum_ms, aht_n, "
                           "aht_sum_ms, resolution_sum_ms, sla_met, bot_involved, bot_open, "
                           "frt_hist FROM kpi_days WHERE dim = ?1 AND day >= ?2 AND day < ?3",
                           -1, &q, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_bind_text(q, 1, oh_kpi_dims[dim], -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, first);
    sqlite3_bind_int64(q, 3, last);
    while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        int64_t v[OH_KPI_SUMS];
        for (int i = 0; i < OH_KPI_SUMS; i++)
            v[i] = sqlite3_column_int64(q, 1 + i);
        /* "" is the null agent or team */
        rc = oh_kpi_acc_add_day(acc, dim >= 2 && !k[0] ? NULL : k, v,
                                sqlite3_column_blob(q, 1 + OH_KPI_SUMS),
                                (size_t)sqlite3_column_bytes(q, 1 + OH_KPI_SUMS));
    }
    if (rc == OH_OK && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    q = NULL;
    if (rc) return rc;
    /* bot only and reopened: resolved by the bot when not within the window */
    snprintf(sql, sizeof sql,
             "SELECT %s, count(*) FROM kpi_episodes INDEXED BY kpi_episodes_bot "
             "WHERE bot_involved = 1 AND agent_replied = 0 AND reopened_ms IS NOT NULL "
             "AND resolved_ms >= ?1 AND resolved_ms < ?2 AND reopened_ms - resolved_ms >= ?3 "
             "GROUP BY 1",
             key);
    if (sqlite3_prepare_v2(c->db, sql, -1, &q, NULL) != SQLITE_OK) goto fail;
    sqlite3_bind_int64(q, 1, first * OH_KPI_DAY_MS);
    sqlite3_bind_int64(q, 2, last * OH_KPI_DAY_MS);
    sqlite3_bind_int64(q, 3, kq->reopen_window_ms);
    while (rc == OH_OK && (r = sqlite3_step(q)) == SQLITE_ROW)
        rc = oh_kpi_acc_add_bot(acc,
                                sqlite3_column_type(q, 0) == SQLITE_NULL
                                    ? NULL
                                    : (const char *)sqlite3_column_text(q, 0),
                                sqlite3_column_int64(q, 1));
    if (rc == OH_OK && r != SQLITE_DONE) rc = sq_err(r);
    sqlite3_finalize(q);
    return rc;
fail:
    OH_ERROR("store", "kpi report: %s", sqlite3_errmsg(c->db));
    sqlite3_finalize(q);
    return OH_EIO;
}

/* Reports over everyone's episodes that span a whole UTC day read kpi_days
 * for the whole days (migration 8); the others read the rows. */
static int sq_kpi_report(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                         void *opaque)
{
    static const char *const keys[4] = {"'all'", "channel", "team", "agent"};
    int dim = -1;
    for (int i = 0; i < 4 && dim < 0; i++)
        if (strcmp(kq->group_by, oh_kpi_dims[i]) == 0) dim = i;
    if (dim < 0) return OH_EINVAL;
    int64_t first = oh_kpi_day_of(kq->from_ms - 1) + 1, last = oh_kpi_day_of(kq->to_ms);
    if (kq->agent || first >= last) return sq_kpi_report_rows(st, kq, fn, opaque);
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    struct oh_kpi_acc *acc = oh_kpi_acc_new();
    int rc = !acc                                                          ? OH_ENOMEM
             : sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? OH_OK
                                                                           : OH_EIO;
    if (rc == OH_OK) {
        struct sq_kpi_days kd = {c, dim ? keys[dim] : NULL, first * OH_KPI_DAY_MS,
                                 last * OH_KPI_DAY_MS};
        rc = sq_kpi_report_days(c, kq, dim, keys[dim], first, last, acc);
        if (rc == OH_OK) rc = oh_kpi_acc_emit_days(acc, fn, opaque, sq_kpi_frt, &kd);
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
    }
    oh_kpi_acc_free(acc);
    sq_reader_put(s, c);
    return rc;
}

const struct oh_store_ops oh_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .epoch = sq_epoch,
    .ping = sq_ping,
    .materialize = sq_materialize,
    .snoozed_due = sq_snoozed_due,
    .command_result = sq_command_result,
    .position_get = sq_position_get,
    .position_published = sq_position_published,
    .since_source = sq_since_source,
    .history = sq_history,
    .event_get = sq_event_get,
    .verify = sq_verify,
    .conversation_get = sq_conversation_get,
    .conversations = sq_conversations,
    .list = sq_list,
    .changes = sq_changes,
    .ref_get = sq_ref_get,
    .ref_put = sq_ref_put,
    .message_state = sq_message_state,
    .cursor_set = sq_cursor_set,
    .cursors = sq_cursors,
    .kv_put = sq_kv_put,
    .kv_get = sq_kv_get,
    .kv_get_many = sq_kv_get_many,
    .kv_del = sq_kv_del,
    .kv_write = sq_kv_write,
    .kv_scan = sq_kv_scan,
    .open_assigned = sq_open_assigned,
    .contact_refs = sq_contact_refs,
    .contact_write = sq_contact_write,
    .materialize_then = sq_materialize_then,
    .erase = sq_erase,
    .article_put = sq_article_put,
    .article_get = sq_article_get,
    .article_del = sq_article_del,
    .articles = sq_articles,
    .kpi_put = sq_kpi_put,
    .kpi_report = sq_kpi_report,
};
