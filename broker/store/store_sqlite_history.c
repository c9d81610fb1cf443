/* store_sqlite_history.c - the SQLite store's history: materializing a
 * batch of events (their directory rows, positions and contacts in the
 * same transaction), positions, reads and replay of the history, its
 * verification, and erasure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_sqlite_int.h"

/* Materializes one item; runs on the writer inside the transaction. The
 * directory's created/updated times are the broker's clock (NOW_MS), so
 * "updated after" polling never misses a change; last_inbound_ms is the
 * event's own time (the customer's message, for reply windows). */
/* Records a command's outcome (the first one for its id stays). */
static int sq_outcome(struct sq_store *s, const struct oh_store_item *it, int64_t now_ms)
{
    sqlite3_stmt *q = sq_stmt(s->w, S_OUTCOME_PUT);
    if (!q) return OH_EIO;
    sq_bind_text(q, 1, it->outcome_id);
    sq_bind_text(q, 2, it->outcome_conv ? it->outcome_conv : "");
    sqlite3_bind_int(q, 3, it->outcome_code);
    sq_bind_text(q, 4, it->outcome_body ? it->outcome_body : "{}");
    sqlite3_bind_int64(q, 5, now_ms);
    return sq_run(s->w, q);
}

/* Projects a stored conversation.updated into the state columns. */
static int sq_state(struct sq_store *s, const char *conv, const struct oh_store_state *st,
                    int64_t seq)
{
    sqlite3_stmt *q = sq_stmt(s->w, S_CONV_STATE);
    if (!q) return OH_EIO;
    sq_bind_text(q, 1, conv);
    sq_bind_text(q, 2, *st->status ? st->status : "open");
    sq_bind_text(q, 3, st->assignee);
    sq_bind_text(q, 4, st->team);
    sq_bind_text(q, 5, *st->priority ? st->priority : "normal");
    sq_bind_text(q, 6, st->labels);
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

/* CONV's slot: found, or the free one it takes. */
static struct sq_touch *sq_touch_slot(struct sq_batch *b, const char *conv)
{
    for (size_t i = (size_t)oh_fnv1a(conv) & (b->cap - 1);; i = (i + 1) & (b->cap - 1))
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
        sq_bind_text(q, 1, t->conv);
        sqlite3_bind_int64(q, 2, t->head);
        sqlite3_bind_int64(q, 3, now_ms);
        sqlite3_bind_int(q, 4, t->inbound);
        sq_bind_text(q, 5, t->name ? t->name : "");
        sqlite3_bind_int64(q, 6, t->inbound_ms);
        sqlite3_bind_int64(q, 7, ++*rev);
        sqlite3_bind_int(q, 8, t->preview);
        sq_bind_text(q, 9, t->preview ? t->direction : "");
        sq_bind_text(q, 10, t->preview ? t->kind : "");
        sqlite3_bind_text(q, 11, preview, -1, SQLITE_STATIC);
        sq_bind_text(q, 12, t->contact_id ? t->contact_id : "");
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
    sq_bind_text(q, 1, id);
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
        struct sq_head *h = &s->heads[(size_t)oh_fnv1a(t->conv) & (SQ_HEADS - 1)];
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
    struct sq_head *known = s->heads ? &s->heads[(size_t)oh_fnv1a(f.conv) & (SQ_HEADS - 1)] : NULL;
    if (!t->conv && known && known->head > 0 && strcmp(known->conv, f.conv) == 0) {
        memset(t, 0, sizeof *t);
        t->conv = f.conv;
        t->head = known->head;
        t->exists = true;
    } else if (!t->conv) { /* the batch's first event of it: the row's head */
        q = sq_stmt(c, S_CONV_HEAD);
        if (!q) return OH_EIO;
        sq_bind_text(q, 1, f.conv);
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
    sq_bind_text(q, 1, f.conv);
    sqlite3_bind_int64(q, 2, seq);
    sq_bind_text(q, 3, f.id);
    sq_bind_text(q, 4, f.type);
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
        sq_bind_text(q, 1, f.conv);
        sq_bind_text(q, 2, f.channel);
        sq_bind_text(q, 3, f.account);
        sq_bind_text(q, 4, f.contact_id);
        sq_bind_text(q, 5, f.contact_name);
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
        sq_bind_text(q, 1, f.channel);
        sq_bind_text(q, 2, f.account);
        sq_bind_text(q, 3, refs[i][0]);
        sq_bind_text(q, 4, f.conv);
        sq_bind_text(q, 5, refs[i][1]);
        if ((rc = sq_run(c, q)) != 0) return rc;
    }
    if (strcmp(f.type, OH_EV_UPDATED) == 0) { /* only these carry a state */
        struct oh_store_state cs;
        oh_store_state_get(it->event, &cs);
        if (cs.set && (rc = sq_state(s, f.conv, &cs, seq)) != 0) return rc;
    }
    if (f.status && *f.state && *f.status_mid) {
        q = sq_stmt(c, S_STATE_UPSERT);
        if (!q) return OH_EIO;
        sq_bind_text(q, 1, f.conv);
        sq_bind_text(q, 2, f.status_mid);
        sq_bind_text(q, 3, f.state);
        sqlite3_bind_int(q, 4, f.rank);
        if ((rc = sq_run(c, q)) != 0) return rc;
    }
    it->seq = seq;
    return 0;
}

/* GROUP's positions POS, in the writer's open transaction. */
int sq_pos_write(struct sq_conn *c, const char *group, const struct oh_store_pos *pos, size_t npos)
{
    int rc = 0;
    for (size_t i = 0; i < npos && rc == 0; i++) {
        sqlite3_stmt *q = sq_stmt(c, S_POS_UPSERT);
        if (!q) return OH_EIO;
        sq_bind_text(q, 1, group);
        sq_bind_text(q, 2, pos[i].topic);
        sqlite3_bind_int(q, 3, pos[i].partition);
        sqlite3_bind_int64(q, 4, pos[i].next);
        rc = sq_run(c, q);
    }
    return rc;
}

int sq_materialize_then(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                        const struct oh_store_pos *pos, size_t npos,
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
    if (s->touch_cap < b.cap) { /* a larger batch than any before */
        free(s->touch);
        s->touch_cap = (s->touch = calloc(b.cap, sizeof *s->touch)) ? b.cap : 0;
        if (!s->touch) {
            rc = OH_ENOMEM;
            goto out;
        }
    }
    b.t = s->touch; /* its first CAP slots are free */
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
    for (size_t i = 0; b.t && i < b.cap; i++) /* free again for the next batch */
        if (b.t[i].conv) memset(&b.t[i], 0, sizeof b.t[i]);
    pthread_mutex_unlock(&s->wmu);
    if (rc != 0) OH_WARN("store", "materialize of %zu events failed: %s", n, oh_strerror(rc));
    return rc;
}

int sq_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                   const struct oh_store_pos *pos, size_t npos)
{
    return sq_materialize_then(st, group, items, n, pos, npos, NULL);
}

int sq_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                    int64_t *next, int64_t *published)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_conn *c = sq_reader(s);
    if (!c) return OH_EIO;
    sqlite3_stmt *q = sq_stmt(c, S_POS_GET);
    int rc = OH_EIO;
    *next = *published = 0;
    if (q) {
        sq_bind_text(q, 1, group);
        sq_bind_text(q, 2, topic);
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

int sq_position_published(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t published)
{
    struct sq_args a = {2, {group, topic}, {partition, published}};
    return sq_write((struct sq_store *)st, S_POS_PUBLISHED, sq_bind_args, &a);
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

int sq_verify(oh_store *st, struct oh_store_verify *v)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_rows r = {.with_conv = true, .epoch = s->epoch, .v = v};
    struct sq_args a = {0, {NULL}, {0, 0}};
    return sq_read(s, S_VERIFY, &a, row_event, &r, NULL);
}

int sq_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn, void *opaque)
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

int sq_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
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

int sq_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                 void *opaque)
{
    struct sq_store *s = (struct sq_store *)st;
    struct sq_rows r = {fn, opaque, false, conv, s->epoch, false, NULL};
    struct sq_args a = {2, {event_id, conv}, {0, 0}};
    int n = 0;
    int rc = sq_read(s, S_EVENT_GET, &a, row_event, &r, &n);
    return rc != 0 ? rc : n ? 0 : OH_ENOTFOUND;
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
    sqlite3_stmt *q = sq_stmt(s->w, S_ERASE_ROWS), *up = sq_stmt(s->w, S_ERASE_PUT),
                 *fts = sq_stmt(s->w, S_ERASE_FTS);
    struct sq_erased *rows = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!q || !up || !fts) return OH_EIO;
    sq_bind_text(q, 1, conv);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if ((rc = oh_grow(&rows, &cap, n + 1, sizeof *rows, 64)) != 0) goto out;
        rows[n].rowid = sqlite3_column_int64(q, 0);
        rows[n].seq = sqlite3_column_int64(q, 1);
        rows[n].json = strdup((const char *)sqlite3_column_text(q, 2));
        if (!rows[n++].json) {
            rc = OH_ENOMEM;
            goto out;
        }
    }
    sqlite3_reset(q);
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
        sq_bind_text(up, 2, OH_EV_ERASED);
        sqlite3_bind_text(up, 3, text, (int)len, free);
        sqlite3_bind_int64(up, 4, crc);
        if (rc == 0 && sqlite3_step(up) != SQLITE_DONE) rc = sq_err(sqlite3_errcode(db));
        if (rc == 0) (*count)++;
    }
    /* the directory row forgets them too, under the next change number, so
     * an inbox resuming from an earlier cursor is told (CONTRACT part 2) */
    if (rc == 0) rc = sq_run(s->w, sq_stmt(s->w, S_REV_NEXT));
    sqlite3_stmt *c = rc == 0 ? sq_stmt(s->w, S_ERASE_CONV) : NULL;
    if (c) sq_bind_text(c, 1, conv);
    if (rc == 0) rc = sq_run(s->w, c);
out:
    for (size_t i = 0; i < n; i++)
        free(rows[i].json);
    free(rows);
    sqlite3_reset(q);
    sqlite3_reset(up);
    sqlite3_reset(fts);
    return rc;
}

/* Every conversation's rows, then one merge of the full-text index: a
 * contentless index keeps a deleted row's terms in its older segments until
 * they are merged, and a merge rewrites the whole index, so it is done once
 * for the erasure, not once per conversation. */
static int sq_erase_all(struct sq_store *s, const char *const *convs, size_t n,
                        oh_store_erase_fn fn, void *opaque, int64_t *count)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sq_erase_rows(s, convs[i], fn, opaque, count);
    if (rc == 0 && *count > 0 &&
        sqlite3_exec(s->w->db, "INSERT INTO msg_fts (msg_fts) VALUES ('optimize')", NULL, NULL,
                     NULL) != SQLITE_OK)
        rc = sq_err(sqlite3_errcode(s->w->db));
    return rc;
}

int sq_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn, void *opaque,
             int64_t *count)
{
    struct sq_store *s = (struct sq_store *)st;
    pthread_mutex_lock(&s->wmu);
    int rc = sq_exec(s->w, S_BEGIN_IMM);
    if (rc == 0) rc = sq_finish(s->w, sq_erase_all(s, convs, n, fn, opaque, count));
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
