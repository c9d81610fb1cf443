/* store_sqlite_int.h - private to the SQLite store (store_sqlite*.c): its
 * statements, connections and the helpers its files share. */
#ifndef OH_STORE_SQLITE_INT_H
#define OH_STORE_SQLITE_INT_H

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include "store/store_fields.h"

#define SQ_HEADS 4096 /* conversations whose head the writer remembers */

/* The statements of each connection (their SQL: sq_sql, store_sqlite_conn.c). */
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
    S_KV_SWAP,
    S_VERIFY,
    S_PING,
    S_REV_GET,
    S_REV_PUT,
    S_REV_NEXT,
    S_CONV_TOUCH,
    S_FTS_ADD,
    S_CHANGES,
    S_OPEN_ASSIGNEES,
    S_CONV_STATE,
    S_OUTCOME_PUT,
    S_OUTCOME_GET,
    S_SNOOZED_DUE,
    S_CONTACT_REF,
    S_ART_PUT,
    S_ART_GET,
    S_ART_DEL,
    S_ART_ALL,
    S_ERASE_ROWS,
    S_ERASE_PUT,
    S_ERASE_FTS,
    S_ERASE_CONV,
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
    pthread_mutex_t wmu; /* guards w, heads and touch */
    struct sq_conn *w;
    struct sq_head *heads; /* SQ_HEADS of them, by hash of the id; NULL until used */
    /* the batch's table of touched conversations (store_sqlite_history.c),
     * kept between batches with every slot free: no allocation and no
     * clearing of the whole table per batch */
    struct sq_touch *touch;
    size_t touch_cap;
    pthread_mutex_t pmu; /* guards readers, nreaders */
    struct sq_conn *readers;
    int nreaders;
};

/* Binds the parameters of a write statement (sq_write). */
typedef void (*sq_bind_fn)(sqlite3_stmt *q, const void *args);

/* Parameters: NT texts first, then integers for the remaining slots. */
struct sq_args {
    int nt;
    const char *t[5];
    int64_t n[2];
};

/* Takes one row of a read query (sq_read): non-zero stops. */
typedef int (*sq_row_fn)(sqlite3_stmt *q, void *ctx);

/* ---- store_sqlite_conn.c: errors, connections, statements ---- */

int sq_err(int rc);
/* A connection to the database at PATH (WRITER: created if missing, WAL,
 * synchronous=FULL, a larger cache); NULL with ERR filled on failure. */
struct sq_conn *sq_conn_open(const char *path, bool writer, char *err, size_t errlen);
void sq_conn_close(struct sq_conn *c);
/* The statement I of C, reset and ready for binding; NULL on failure. */
sqlite3_stmt *sq_stmt(struct sq_conn *c, enum sq_stmt i);
void sq_bind_text(sqlite3_stmt *s, int i, const char *v);
/* Runs S to completion (no rows expected); resets it. */
int sq_run(struct sq_conn *c, sqlite3_stmt *s);
int sq_exec(struct sq_conn *c, enum sq_stmt i);
/* Ends C's open transaction: commits it when RC is 0; rolls it back when
 * RC is not or the commit fails. The commit's result, else RC. */
int sq_finish(struct sq_conn *c, int rc);
struct sq_conn *sq_reader(struct sq_store *s);
void sq_reader_put(struct sq_store *s, struct sq_conn *c);
/* Runs a write statement prepared by BIND on the writer connection. */
int sq_write(struct sq_store *s, enum sq_stmt i, sq_bind_fn bind, const void *args);
/* The same, and the rows it changed in *CHANGES. */
int sq_write_counted(struct sq_store *s, enum sq_stmt i, sq_bind_fn bind, const void *args,
                     int *changes);
void sq_bind_args(sqlite3_stmt *q, const void *p);
/* Steps a read query; calls ROW for each row until it returns non-zero. */
int sq_read(struct sq_store *s, enum sq_stmt i, const struct sq_args *a, sq_row_fn row, void *ctx,
            int *nrows);

/* ---- store_sqlite_history.c: the history ---- */

/* GROUP's positions POS, in the writer's open transaction. */
int sq_pos_write(struct sq_conn *c, const char *group, const struct oh_store_pos *pos, size_t npos);
int sq_materialize_then(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                        const struct oh_store_pos *pos, size_t npos,
                        const struct oh_store_then *then);
int sq_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                   const struct oh_store_pos *pos, size_t npos);
int sq_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                    int64_t *next, int64_t *published);
int sq_position_published(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t published);
int sq_verify(oh_store *st, struct oh_store_verify *v);
int sq_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                    void *opaque);
int sq_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
               void *opaque);
int sq_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                 void *opaque);
int sq_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn, void *opaque,
             int64_t *count);

/* ---- store_sqlite_desk.c: the directory and the desk's rows ---- */

int sq_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out);
int sq_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                     void *opaque);
int sq_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque);
int sq_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                      size_t len);
int sq_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque);
int sq_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
               char *next);
int sq_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
               struct oh_store_ref *out);
int sq_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
               const char *conv, const char *message_id);
int sq_message_state(oh_store *st, const char *conv, const char *message_id, char out[16]);
int sq_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                  const char *device, int64_t seq);
int sq_cursors(oh_store *st, const char *conv, const char *role, const char *user,
               oh_store_cursor_fn fn, void *opaque);
int sq_kv_put(oh_store *st, const char *ns, const char *key, const char *value);
int sq_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen);
int sq_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                   void (*fn)(void *ctx, size_t i, const char *value), void *ctx);
int sq_kv_del(oh_store *st, const char *ns, const char *key);
int sq_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
               const char *value);
int sq_kv_write(oh_store *st, const char *ns, const char *const *keys, const char *const *values,
                size_t n);
int sq_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);
int sq_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque);
/* The directory's writes and the contact_refs on the writer, in its open
 * transaction (WCTX: the store, its wmu held); SEEN is not checked. */
int sq_contact_rows(void *wctx, const char *const *keys, const char *const *values, size_t nkv,
                    const struct oh_contact_seen *seen, const char *const *convs,
                    const char *const *contacts, size_t n);
int sq_contact_write(oh_store *st, const char *const *keys, const char *const *values, size_t nkv,
                     const struct oh_contact_seen *seen, const char *const *convs,
                     const char *const *contacts, size_t n);
int sq_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts, size_t n);
int sq_conversations_touch(oh_store *st, const char *const *convs, size_t n);

/* ---- store_sqlite_kpi.c: knowledge-base articles and KPIs ---- */

int sq_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version);
int sq_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
int sq_article_del(oh_store *st, const char *id);
int sq_articles(oh_store *st, oh_store_article_fn fn, void *opaque);
int sq_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
               const struct oh_store_pos *pos, size_t npos);
/* kpi_days from kpi_episodes when the first is empty and the second not
 * (a store older than migration 9), in one transaction. */
int sq_kpi_days_fill(struct sq_store *s);
int sq_kpi_report(oh_store *st, const struct oh_store_kpi_query *kq, oh_store_kpi_fn fn,
                  void *opaque);

#endif
