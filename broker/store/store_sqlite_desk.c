/* store_sqlite_desk.c - the SQLite store's directory and what the desk
 * keeps beside the history: conversations, the inbox's list and changes,
 * command results, provider-id references, message states, read cursors,
 * key/values and the contacts' rows. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_sqlite_int.h"

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

int sq_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out)
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

int sq_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                     void *opaque)
{
    struct sq_convs l = {fn, opaque};
    struct sq_args a = {0, {NULL}, {updated_after_ms, limit > 0 ? limit : -1}};
    return sq_read((struct sq_store *)st, S_CONV_LIST, &a, row_conv_each, &l, NULL);
}

int sq_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque)
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

int sq_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
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

int sq_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque)
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
                sq_bind_text(stmt, i + 1, q.text[i]);
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

int sq_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
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

int sq_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
               struct oh_store_ref *out)
{
    struct sq_args a = {3, {channel, account, ref}, {0, 0}};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_REF_GET, &a, row_ref, out, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
}

int sq_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
               const char *conv, const char *message_id)
{
    struct sq_args a = {5, {channel, account, ref, conv, message_id}, {0, 0}};
    return sq_write((struct sq_store *)st, S_REF_PUT, sq_bind_args, &a);
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

int sq_message_state(oh_store *st, const char *conv, const char *message_id, char out[16])
{
    struct sq_args a = {2, {conv, message_id}, {0, 0}};
    struct sq_buf b = {out, 16, 0};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_STATE_GET, &a, row_text, &b, &n);
    return rc != 0 ? rc : !n ? OH_ENOTFOUND : b.rc;
}

int sq_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                  const char *device, int64_t seq)
{
    struct sq_args a = {4, {conv, user, role, device}, {seq, 0}};
    return sq_write((struct sq_store *)st, S_CURSOR_SET, sq_bind_args, &a);
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

int sq_cursors(oh_store *st, const char *conv, const char *role, const char *user,
               oh_store_cursor_fn fn, void *opaque)
{
    struct sq_cursors l = {fn, opaque};
    struct sq_args a = {3, {conv, user, role}, {0, 0}};
    return sq_read((struct sq_store *)st, S_CURSORS, &a, row_cursor, &l, NULL);
}

int sq_kv_put(oh_store *st, const char *ns, const char *key, const char *value)
{
    struct sq_args a = {3, {ns, key, value}, {0, 0}};
    return sq_write((struct sq_store *)st, S_KV_PUT, sq_bind_args, &a);
}

int sq_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen)
{
    struct sq_args a = {2, {ns, key}, {0, 0}};
    struct sq_buf b = {out, outlen, 0};
    int n = 0;
    int rc = sq_read((struct sq_store *)st, S_KV_GET, &a, row_text, &b, &n);
    return rc != 0 ? rc : !n ? OH_ENOTFOUND : b.rc;
}

/* One reader, one read transaction (one snapshot) for all the keys. */
int sq_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
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
        sq_bind_args(q, &a);
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

int sq_kv_del(oh_store *st, const char *ns, const char *key)
{
    struct sq_args a = {2, {ns, key}, {0, 0}};
    return sq_write((struct sq_store *)st, S_KV_DEL, sq_bind_args, &a);
}

/* S_KV_SWAP's ns, key, value, expected (t[3]; NULL bound as NULL). */
static void bind_swap(sqlite3_stmt *q, const void *p)
{
    const struct sq_args *a = p;
    for (int i = 0; i < 3; i++)
        sq_bind_text(q, i + 1, a->t[i]);
    if (a->t[3])
        sq_bind_text(q, 4, a->t[3]);
    else
        sqlite3_bind_null(q, 4);
}

int sq_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
               const char *value)
{
    struct sq_args a = {4, {ns, key, value, expected}, {0, 0}};
    int changed = 0;
    int rc = sq_write_counted((struct sq_store *)st, S_KV_SWAP, bind_swap, &a, &changed);
    return rc ? rc : changed ? OH_OK : OH_ERETRY;
}

int sq_kv_write(oh_store *st, const char *ns, const char *const *keys, const char *const *values,
                size_t n)
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
        sq_bind_args(q, &a);
        rc = sq_run(s->w, q);
    }
    rc = sq_finish(s->w, rc);
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

int sq_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque)
{
    struct sq_kvs l = {fn, opaque};
    struct sq_args a = {1, {ns}, {0, 0}};
    return sq_read((struct sq_store *)st, S_KV_SCAN, &a, row_kv, &l, NULL);
}

struct sq_assignees {
    oh_store_assignee_fn fn;
    void *opaque;
};

static int row_assignee(sqlite3_stmt *q, void *ctx)
{
    struct sq_assignees *a = ctx;
    const char *agent = (const char *)sqlite3_column_text(q, 0);
    return agent ? a->fn(a->opaque, agent, sqlite3_column_int64(q, 1)) : 0;
}

int sq_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque)
{
    struct sq_args a = {0, {NULL}, {0, 0}};
    struct sq_assignees ctx = {fn, opaque};
    return sq_read((struct sq_store *)st, S_OPEN_ASSIGNEES, &a, row_assignee, &ctx, NULL);
}

/* The directory's writes and the contact_refs on the writer, in its open
 * transaction (WCTX: the store, its wmu held). SEEN is not checked: the
 * process's sync thread is the directory's only writer. */
int sq_contact_rows(void *wctx, const char *const *keys, const char *const *values, size_t nkv,
                    const struct oh_contact_seen *seen, const char *const *convs,
                    const char *const *contacts, size_t n)
{
    struct sq_store *s = wctx;
    (void)seen;
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
        sq_bind_args(q, &a);
        rc = sq_run(s->w, q);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(s->w, S_CONTACT_REF);
        if (!q) {
            rc = OH_EIO;
            break;
        }
        sq_bind_text(q, 1, convs[i]);
        sq_bind_text(q, 2, contacts[i]);
        rc = sq_run(s->w, q);
    }
    return rc;
}

/* The directory's writes and the contact_refs in one transaction (one
 * commit, one WAL sync). */
int sq_contact_write(oh_store *st, const char *const *keys, const char *const *values, size_t nkv,
                     const struct oh_contact_seen *seen, const char *const *convs,
                     const char *const *contacts, size_t n)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    if (rc == 0) rc = sq_contact_rows(s, keys, values, nkv, seen, convs, contacts, n);
    rc = sq_finish(s->w, rc);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}

int sq_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts, size_t n)
{
    return sq_contact_write(st, NULL, NULL, 0, NULL, convs, contacts, n);
}

int sq_conversations_touch(oh_store *st, const char *const *convs, size_t n)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    for (size_t i = 0; i < n && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(s->w, S_CONV_TOUCH);
        rc = q ? sq_run(s->w, sq_stmt(s->w, S_REV_NEXT)) : OH_EIO;
        if (rc == 0) {
            sq_bind_text(q, 1, convs[i]);
            rc = sq_run(s->w, q);
        }
    }
    rc = sq_finish(s->w, rc);
    pthread_mutex_unlock(&s->wmu);
    return rc;
}
