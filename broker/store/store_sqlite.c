/* store_sqlite.c - the embedded store: one SQLite database in WAL mode, a
 * single writer connection behind a mutex and a pool of reader connections.
 * This file opens and closes it (the schema's migrations and the epoch) and
 * holds the ops table; the connections and statements are in
 * store_sqlite_conn.c, the rest in store_sqlite_history.c (the history), store_sqlite_desk.c (the
 * directory and what the desk keeps) and store_sqlite_kpi.c (KPIs and the
 * knowledge base). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/crypto.h"
#include "store/store_sqlite_int.h"

#include "store/store_sqlite_schema.inc"

/* meta.schema_version is the last migration applied. */

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
    sq_bind_text(s, 1, key);
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
    sq_bind_text(s, 1, key);
    sq_bind_text(s, 2, value);
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
    free(s->touch);
    pthread_mutex_destroy(&s->wmu);
    pthread_mutex_destroy(&s->pmu);
    free(s);
}

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
    .kv_swap = sq_kv_swap,
    .kv_write = sq_kv_write,
    .kv_scan = sq_kv_scan,
    .open_assignees = sq_open_assignees,
    .contact_refs = sq_contact_refs,
    .contact_write = sq_contact_write,
    .materialize_then = sq_materialize_then,
    .conversations_touch = sq_conversations_touch,
    .erase = sq_erase,
    .article_put = sq_article_put,
    .article_get = sq_article_get,
    .article_del = sq_article_del,
    .articles = sq_articles,
    .kpi_put = sq_kpi_put,
    .kpi_report = sq_kpi_report,
};
