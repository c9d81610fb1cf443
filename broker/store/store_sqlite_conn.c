/* store_sqlite_conn.c - the SQLite store's connections: the statements'
 * SQL, opening a connection (the writer's pragmas), preparing and running
 * statements, the pool of readers, and the write and read helpers the
 * other parts run their statements through (store_sqlite_int.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/walbuf.h"
#include "store/store_sqlite_int.h"

#define SQ_READERS_KEPT 8
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
    /* an erasure (store_sqlite_history.c), prepared once, not per conversation */
    [S_ERASE_ROWS] =
        "SELECT rowid, seq, json FROM history WHERE conversation_id = ?1 "
        "AND type IN ('" OH_EV_INBOUND "', '" OH_EV_OUTBOUND "', '" OH_EV_STATUS "') ORDER BY seq",
    [S_ERASE_PUT] = "UPDATE history SET type = ?2, json = ?3, crc = ?4 WHERE rowid = ?1",
    [S_ERASE_FTS] = "INSERT INTO msg_fts (msg_fts, rowid, body) VALUES ('delete', ?1, ?2)",
    [S_ERASE_CONV] = "UPDATE conversations SET contact_id = '', contact_name = '', "
                     "last_text = '', rev = (SELECT rev FROM revs WHERE id = 1) WHERE id = ?1",
    [S_KV_PUT] = "INSERT INTO kv (ns, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (ns, key) "
                 "DO UPDATE SET value = excluded.value",
    [S_KV_GET] = "SELECT value FROM kv WHERE ns = ?1 AND key = ?2",
    [S_KV_DEL] = "DELETE FROM kv WHERE ns = ?1 AND key = ?2",
    [S_KV_SCAN] = "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key",
    /* ?4 NULL: insert only where absent; else update only where it holds ?4 */
    [S_KV_SWAP] = "INSERT INTO kv (ns, key, value) SELECT ?1, ?2, ?3 WHERE ?4 IS NULL OR EXISTS "
                  "(SELECT 1 FROM kv WHERE ns = ?1 AND key = ?2) ON CONFLICT (ns, key) "
                  "DO UPDATE SET value = excluded.value WHERE ?4 IS NOT NULL AND kv.value = ?4",
    [S_VERIFY] = "SELECT conversation_id, seq, json, crc FROM history",
    [S_PING] = "SELECT 1",
    [S_REV_GET] = "SELECT rev FROM revs WHERE id = 1",
    [S_REV_PUT] = "UPDATE revs SET rev = ?1 WHERE id = 1",
    [S_REV_NEXT] = "UPDATE revs SET rev = rev + 1 WHERE id = 1",
    [S_CONV_TOUCH] =
        "UPDATE conversations SET rev = (SELECT rev FROM revs WHERE id = 1) WHERE id = ?1",
    /* the index row shares the history row's rowid */
    [S_FTS_ADD] = "INSERT INTO msg_fts (rowid, body) VALUES (?1, ?2)",
    [S_CHANGES] = "SELECT " CONV_COLS " FROM conversations WHERE rev > ?1 ORDER BY rev LIMIT ?2",
    [S_OPEN_ASSIGNEES] = "SELECT assignee, count(*) FROM conversations WHERE status = 'open' "
                         "AND assignee <> '' GROUP BY assignee",
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

int sq_err(int rc)
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

void sq_conn_close(struct sq_conn *c)
{
    if (!c) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

struct sq_conn *sq_conn_open(const char *path, bool writer, char *err, size_t errlen)
{
    struct sq_conn *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    /* the writer's WAL frames go out in one write per commit (core/walbuf.h) */
    int rc = sqlite3_open_v2(path, &c->db, flags, writer ? oh_walbuf_vfs() : NULL);
    if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(c->db, 10000);
    /* the writer touches random pages of the id and reference indexes
     * for every event: 64 MiB of cache instead of SQLite's 2 MiB keeps
     * them out of pread() (strace: 2.5 page reads per ingested event).
     * Processes opening a new store at once: switching it to WAL needs the
     * file to itself, and SQLite answers BUSY at once where its busy wait
     * could deadlock; tried again for about as long as that wait */
    for (int i = 0; rc == SQLITE_OK && writer; i++) {
        rc = sqlite3_exec(c->db,
                          "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                          "PRAGMA cache_size=-65536; PRAGMA secure_delete=ON",
                          NULL, NULL, NULL);
        if (rc != SQLITE_BUSY || i == 200) break;
        rc = SQLITE_OK;
        usleep(50 * 1000);
    }
    if (rc != SQLITE_OK) {
        oh_errf(err, errlen, "store %s: %s", path,
                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        sq_conn_close(c);
        return NULL;
    }
    return c;
}

/* The statement I of C, reset and ready for binding; NULL on failure. */
sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt i)
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

void sq_bind_text(sqlite3_stmt *s, int i, const char *v)
{
    sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

/* Runs S to completion (no rows expected); resets it. */
int sq_run(struct sq_conn *c, sqlite3_stmt *s)
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

int sq_exec(struct sq_conn *c, enum sq_stmt i)
{
    return sq_run(c, sq_stmt(c, i));
}

int sq_finish(struct sq_conn *c, int rc)
{
    if (rc == 0) rc = sq_exec(c, S_COMMIT);
    if (rc != 0) sq_exec(c, S_ROLLBACK); /* a COMMIT refused (busy) leaves it open */
    return rc;
}

struct sq_conn *sq_reader(struct sq_store *s)
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

void sq_reader_put(struct sq_store *s, struct sq_conn *c)
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

/* Runs a write statement prepared by BIND on the writer connection. */
int sq_write_counted(struct sq_store *s, enum sq_stmt i, sq_bind_fn bind, const void *args,
                     int *changes)
{
    pthread_mutex_lock(&s->wmu);
    sqlite3_stmt *q = sq_stmt(s->w, i);
    int rc = OH_EIO;
    if (q) {
        bind(q, args);
        rc = sq_run(s->w, q);
        if (changes) *changes = sqlite3_changes(s->w->db);
    }
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

int sq_write(struct sq_store *s, enum sq_stmt i, sq_bind_fn bind, const void *args)
{
    return sq_write_counted(s, i, bind, args, NULL);
}

void sq_bind_args(sqlite3_stmt *q, const void *p)
{
    const struct sq_args *a = p;
    int col = 1;
    for (int i = 0; i < a->nt; i++)
        sq_bind_text(q, col++, a->t[i]);
    int left = sqlite3_bind_parameter_count(q) - col + 1;
    for (int i = 0; i < left && i < 2; i++)
        sqlite3_bind_int64(q, col++, a->n[i]);
}

/* Steps a read query; calls ROW for each row until it returns non-zero. */
int sq_read(struct sq_store *s, enum sq_stmt i, const struct sq_args *a, sq_row_fn row, void *ctx,
            int *nrows)
{
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = sq_stmt(c, i);
    int rc = OH_EIO, n = 0;
    if (q) {
        sq_bind_args(q, a);
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
