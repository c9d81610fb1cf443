/* store_pg_history.c - the PostgreSQL store's history: a batch
 * materialized on its shards (the statement is in store_pg_route.c, with
 * the others), positions, reads and replay of the history across the
 * shards, its verification, and erasure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/json_dump.h"
#include "store/store_pg_int.h"

/* ---- materialization ---- */

/* IT's event as stored before SQL appends seq and epoch: the record's
 * text when the item carries it (store.h: exactly that dump), else a dump. */
static char *unsequenced_text(struct oh_store_item *it)
{
    bool had = json_object_get(it->event, "seq") || json_object_get(it->event, "epoch");
    if (had || !it->raw || it->raw_len < 2 || it->raw[it->raw_len - 1] != '}' ||
        memchr(it->raw, '\0', it->raw_len))
        return oh_store_dump_unsequenced(it->event);
    return strndup(it->raw, it->raw_len);
}

static json_t *item_row(size_t ord, const struct oh_store_item *it, const struct oh_store_fields *f,
                        const char *text)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "ord", json_integer((json_int_t)ord));
    json_object_set_new(o, "eid", json_string(f->id));
    json_object_set_new(o, "conv", json_string(f->conv));
    json_object_set_new(o, "typ", json_string(f->type));
    json_object_set_new(o, "part", json_integer(it->src_partition));
    json_object_set_new(o, "off", json_integer(it->src_offset));
    json_object_set_new(o, "ts", json_integer(f->ts_ms));
    json_object_set_new(o, "ch", json_string(f->channel));
    json_object_set_new(o, "acct", json_string(f->account));
    json_object_set_new(o, "cid", json_string(f->contact_id));
    json_object_set_new(o, "cname", json_string(f->contact_name));
    json_object_set_new(o, "mid", json_string(f->message_id));
    json_object_set_new(o, "pmid", json_string(f->provider_id));
    json_object_set_new(o, "smid", json_string(f->status_mid));
    json_object_set_new(o, "state", json_string(f->state));
    json_object_set_new(o, "rank", json_integer(f->rank));
    json_object_set_new(o, "inb", json_boolean(f->inbound));
    json_object_set_new(o, "j", json_string(text));
    /* the inbox: the last message's preview, the full-text index's text */
    char preview[4 * OH_STORE_PREVIEW_CHARS + 4];
    oh_store_preview(f->text, preview);
    char *body = oh_store_search_text(f);
    json_object_set_new(o, "dir", json_string(f->preview ? f->direction : ""));
    json_object_set_new(o, "kind", json_string(f->kind));
    json_object_set_new(o, "ltxt", json_string(preview));
    json_object_set_new(o, "ftxt", json_string(body ? body : ""));
    free(body);
    /* the checksum of the text before SQL appends seq and epoch to it */
    json_object_set_new(o, "crc", json_integer(oh_crc32c(0, text, strlen(text))));
    struct oh_store_state st;
    oh_store_state_get(it->event, &st);
    json_object_set_new(o, "hs", json_boolean(st.set));
    if (st.set) {
        json_object_set_new(o, "sst", json_string(*st.status ? st.status : "open"));
        json_object_set_new(o, "sas", json_string(st.assignee));
        json_object_set_new(o, "stm", json_string(st.team));
        json_object_set_new(o, "spr", json_string(*st.priority ? st.priority : "normal"));
        json_object_set_new(o, "slb", json_string(st.labels));
        json_object_set_new(o, "ssn", json_integer(st.snoozed_until_ms));
        json_object_set_new(o, "sep", json_integer(st.episode));
    }
    return o;
}

/* Runs the materialize statement on shard SH with ROWS (and POS when
 * non-NULL); fills the items' seqs from the answer. */
static int materialize_shard(struct pg_store *s, int sh, const char *group, json_t *rows,
                             json_t *outs, const char *pos, struct oh_store_item *items, size_t n)
{
    char *j = oh_json_dump(rows, NULL), *o = oh_json_dump(outs, NULL);
    if (!j || !o) {
        free(j);
        free(o);
        return OH_ENOMEM;
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)oh_now_ms());
    const char *vals[] = {j, group ? group : "", pos ? pos : "[]", s->epoch, now, o};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[sh].pool, P_MATERIALIZE, 6, vals, &r, false);
    free(j);
    free(o);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        size_t ord = (size_t)strtoull(PQgetvalue(r, i, 0), NULL, 10);
        int64_t seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (ord < n && seq > 0) {
            struct oh_store_item *it = &items[ord];
            it->seq = seq;
            /* the stored text is the record's with seq and epoch appended
             * (the statement's left(j, -1) || ...): handed back without a
             * dump when the caller wants it */
            if (it->want_text && !it->json)
                it->json = oh_store_sequenced_text(it, seq, s->epoch, &it->len);
            else
                oh_store_set_seq(it->event, seq, s->epoch);
        }
    }
    PQclear(r);
    return 0;
}

/* The shard of each item's conversation (EV, placed when new) and of its
 * outcome's (OUT, never placed: a command's conversation exists, or its
 * outcome reads back from the same fallback shard). */
static int batch_shards(struct pg_store *s, struct oh_store_item *items, size_t n, int *ev,
                        int *out)
{
    const char **convs = calloc(n ? n : 1, sizeof *convs);
    if (!convs) return OH_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct oh_store_fields f;
        convs[i] = "";
        if (items[i].event && oh_store_fields_get(items[i].event, &f) != 0) rc = OH_EINVAL;
        if (items[i].event && rc == 0) convs[i] = f.conv; /* borrowed from the event */
    }
    if (rc == 0) rc = oh_pg_shards_resolve(&s->dir, convs, n, true, ev);
    for (size_t i = 0; i < n && rc == 0; i++)
        convs[i] = items[i].outcome_conv ? items[i].outcome_conv : "";
    if (rc == 0) rc = oh_pg_shards_resolve(&s->dir, convs, n, false, out);
    free(convs);
    return rc;
}

/* Shards other than 0 commit first, shard 0 last together with the
 * positions: a crash in between replays the batch, and the replay finds
 * the events already stored on the other shards (dedup by event id; a
 * conversation's placement never changes, so the replay goes to the same
 * shard). */
int pg_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                   const struct oh_store_pos *pos, size_t npos)
{
    struct pg_store *s = (struct pg_store *)st;
    int *ev = calloc(n ? n : 1, sizeof *ev), *oc = calloc(n ? n : 1, sizeof *oc);
    int rc = ev && oc ? batch_shards(s, items, n, ev, oc) : OH_ENOMEM;
    int nsh = pg_known(s); /* after the placement: every index handed out is below it */
    json_t **rows = calloc((size_t)nsh, sizeof *rows);
    json_t **outs = calloc((size_t)nsh, sizeof *outs);
    json_t *jpos = json_array();
    char *pos_text = NULL;
    if (rc != 0) goto out;
    if (!rows || !outs || !jpos) {
        rc = OH_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nsh; i++)
        if (!(rows[i] = json_array()) || !(outs[i] = json_array())) {
            rc = OH_ENOMEM;
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        struct oh_store_fields f;
        const struct oh_store_item *it = &items[i];
        const char *oconv = it->outcome_conv ? it->outcome_conv : "";
        if (it->outcome_id &&
            json_array_append_new(outs[oc[i]],
                                  json_pack("{s:s, s:s, s:i, s:s}", "id", it->outcome_id, "conv",
                                            oconv, "code", it->outcome_code, "body",
                                            it->outcome_body ? it->outcome_body : "{}")) != 0) {
            rc = OH_ENOMEM;
            goto out;
        }
        if (!it->event) continue;
        if (oh_store_fields_get(items[i].event, &f) != 0) {
            rc = OH_EINVAL;
            goto out;
        }
        char *text = unsequenced_text(&items[i]);
        if (!text || strlen(text) < 2 || text[strlen(text) - 1] != '}') {
            free(text);
            rc = text ? OH_EINVAL : OH_ENOMEM;
            goto out;
        }
        json_t *row = item_row(i, &items[i], &f, text);
        free(text);
        if (!row || json_array_append_new(rows[ev[i]], row) != 0) {
            rc = OH_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < npos; i++)
        json_array_append_new(jpos,
                              json_pack("{s:s,s:i,s:I}", "topic", pos[i].topic, "part",
                                        (int)pos[i].partition, "next", (json_int_t)pos[i].next));
    if (!(pos_text = json_dumps(jpos, JSON_COMPACT))) {
        rc = OH_ENOMEM;
        goto out;
    }
    for (int sh = nsh - 1; sh >= 0 && rc == 0; sh--) {
        if (sh > 0 && json_array_size(rows[sh]) == 0 && json_array_size(outs[sh]) == 0) continue;
        rc = materialize_shard(s, sh, group, rows[sh], outs[sh], sh == 0 ? pos_text : NULL, items,
                               n);
    }
out:
    for (int i = 0; i < nsh; i++) {
        if (rows) json_decref(rows[i]);
        if (outs) json_decref(outs[i]);
    }
    free(rows);
    free(outs);
    free(ev);
    free(oc);
    json_decref(jpos);
    free(pos_text);
    if (rc != 0) OH_WARN("store", "materialize of %zu events failed: %s", n, oh_strerror(rc));
    return rc;
}

/* ---- positions and replay ---- */

int pg_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                    int64_t *next, int64_t *published)
{
    struct pg_store *s = (struct pg_store *)st;
    char part[24];
    pg_i64s(part, sizeof part, partition);
    const char *vals[] = {group, topic, part};
    PGresult *r;
    *next = *published = 0;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_POS_GET, 3, vals, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1) {
        *next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *published = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return 0;
}

int pg_position_published(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t published)
{
    struct pg_store *s = (struct pg_store *)st;
    char part[24], pub[24];
    pg_i64s(part, sizeof part, partition);
    pg_i64s(pub, sizeof pub, published);
    const char *vals[] = {group, topic, part, pub};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_POS_PUBLISHED, 4, vals, &r, true);
    PQclear(r);
    return rc;
}

static int cmp_source(PGresult *a, int ra, PGresult *b, int rb)
{
    long long oa = strtoll(PQgetvalue(a, ra, 0), NULL, 10);
    long long ob = strtoll(PQgetvalue(b, rb, 0), NULL, 10);
    if (oa != ob) return oa < ob ? -1 : 1;
    int c = strcmp(PQgetvalue(a, ra, 1), PQgetvalue(b, rb, 1));
    if (c) return c;
    return strtoll(PQgetvalue(a, ra, 2), NULL, 10) < strtoll(PQgetvalue(b, rb, 2), NULL, 10) ? -1
                                                                                             : 1;
}

/* oh_store_row_check of row I of R: conversation id in column CONV (-1:
 * the conversation CONVID), the text in column JSON, the crc after it. */
static int row_check_of(const struct pg_store *s, PGresult *r, int i, const char *conv, int64_t seq,
                        int json)
{
    int64_t crc = PQgetisnull(r, i, json + 1) ? -1 : strtoll(PQgetvalue(r, i, json + 1), NULL, 10);
    return oh_store_row_check(conv, seq, PQgetvalue(r, i, json), (size_t)PQgetlength(r, i, json),
                              crc, s->epoch);
}

static int row_check(const struct pg_store *s, PGresult *r, int i, int conv, int64_t seq, int json)
{
    return row_check_of(s, r, i, PQgetvalue(r, i, conv), seq, json);
}

int pg_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    char part[24], off[24];
    pg_i64s(part, sizeof part, partition);
    pg_i64s(off, sizeof off, from);
    const char *vals[] = {part, off};
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : pg_all_shards(s, nsh, P_SINCE, 2, vals, res);
    if (rc != 0) goto out;
    for (;;) { /* k-way merge in source order */
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || cmp_source(res[i], at[i], res[best], at[best]) < 0))
                best = i;
        if (best < 0) break;
        PGresult *r = res[best];
        int row = at[best]++;
        int64_t seq = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        /* republishing: a damaged row is reported and not forwarded */
        if (row_check(s, r, row, 1, seq, 3)) continue;
        int stop = fn(opaque, PQgetvalue(r, row, 1), seq, PQgetvalue(r, row, 3),
                      (size_t)PQgetlength(r, row, 3));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    for (int i = 0; i < nsh; i++)
        PQclear(res[i]);
out:
    free(res);
    free(at);
    return rc;
}

/* ---- reads ---- */

int pg_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
               void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    struct oh_pg_pool *p;
    int rc = pg_conv_pool(s, conv, &p);
    if (rc != 0) return rc;
    char a[24], l[24];
    pg_i64s(a, sizeof a, after);
    pg_i64s(l, sizeof l, limit);
    const char *vals[] = {conv, a, limit > 0 ? l : NULL};
    PGresult *r;
    rc = pg_read_exec(s, p, P_HISTORY, 3, vals, &r);
    if (rc != 0) return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        int stop = row_check_of(s, r, i, conv, seq, 1);
        if (!stop) stop = fn(opaque, conv, seq, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    if (rc == 0 && rows == 0) { /* empty page or no such conversation? */
        rc = pg_read_exec(s, p, P_CONV_EXISTS, 1, vals, &r);
        if (rc == 0) {
            rc = PQntuples(r) ? 0 : OH_ENOTFOUND;
            PQclear(r);
        }
    }
    return rc;
}

int pg_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                 void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {event_id, conv};
    PGresult *r;
    /* the primary: a replica may not have it yet */
    int rc = pg_conv_exec(s, conv, P_EVENT_GET, 2, vals, &r);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1) {
        int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        int stop = row_check_of(s, r, 0, conv, seq, 1); /* damaged: never handed out */
        if (!stop) stop = fn(opaque, conv, seq, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
        rc = stop < 0 ? stop : 0;
    } else {
        rc = OH_ENOTFOUND;
    }
    PQclear(r);
    return rc;
}

/* Every shard, a page of 1000 rows at a time (keyset), on the primary. */
int pg_verify(oh_store *st, struct oh_store_verify *v)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    for (int sh = 0; sh < nsh; sh++) {
        char conv[OH_ID_MAX] = "", seq[24] = "0";
        for (;;) {
            const char *vals[] = {conv, seq};
            PGresult *r;
            int rc = oh_pg_exec(s->dir.at[sh].pool, P_VERIFY, 2, vals, &r, true);
            if (rc) return rc;
            int rows = PQntuples(r);
            for (int i = 0; i < rows; i++) {
                v->checked++;
                v->unverified += PQgetisnull(r, i, 3);
                v->damaged += row_check(s, r, i, 0, strtoll(PQgetvalue(r, i, 1), NULL, 10), 2) != 0;
            }
            if (rows) {
                snprintf(conv, sizeof conv, "%s", PQgetvalue(r, rows - 1, 0));
                snprintf(seq, sizeof seq, "%s", PQgetvalue(r, rows - 1, 1));
            }
            PQclear(r);
            if (rows < 1000) break;
        }
    }
    return 0;
}

/* One transaction on the conversation's shard: the conversation's row
 * locked first (FOR UPDATE), then its messages read, their tombstones made
 * here, and one statement replaces them, drops their search rows and
 * clears the conversation's contact and preview. A sync member storing
 * the conversation's events at the same time (another partition's owner:
 * the erasure is a contact's command) advances its head with an upsert of
 * that row, so the two serialize as on SQLite: a batch committed before is
 * read and erased, one after waits and then keeps its messages, as a
 * person writing again after the erasure. */
static int pg_erase_one(struct pg_store *s, const char *conv, oh_store_erase_fn fn, void *opaque,
                        int64_t *count)
{
    struct oh_pg_pool *p;
    struct oh_pg_conn *c = NULL;
    int rc = pg_conv_pool(s, conv, &p);
    if (rc == 0) rc = oh_pg_hold(p, &c);
    if (rc != 0) return rc;
    const char *vals[3] = {conv};
    PGresult *r = NULL;
    json_t *rows = json_array();
    rc = rows ? oh_pg_held_exec(p, c, "BEGIN", 0, NULL, &r) : OH_ENOMEM;
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = oh_pg_held_exec(p, c, "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", 1, vals,
                             &r);
    PQclear(r);
    r = NULL;
    if (rc == 0)
        rc = oh_pg_held_exec(p, c,
                             "SELECT seq, json FROM history WHERE conversation_id = $1 AND type IN "
                             "('" OH_EV_INBOUND "', '" OH_EV_OUTBOUND "', '" OH_EV_STATUS
                             "') ORDER BY seq",
                             1, vals, &r);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        json_t *ev = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        size_t len;
        uint32_t crc;
        if (!ev) continue;
        if (fn) fn(opaque, ev);
        char *text = oh_store_tombstone(ev, seq, s->epoch, &len, &crc);
        json_decref(ev);
        if (!text) {
            rc = OH_ENOMEM;
            break;
        }
        json_array_append_new(rows, json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)seq, "json",
                                              text, "crc", (json_int_t)crc));
        free(text);
    }
    PQclear(r);
    r = NULL;
    char *j = rows && rc == 0 ? json_dumps(rows, JSON_COMPACT) : NULL;
    if (rc == 0 && !j) rc = OH_ENOMEM;
    if (rc == 0) {
        vals[1] = j;
        vals[2] = OH_EV_ERASED;
        rc = oh_pg_held_exec(
            p, c,
            "WITH u AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS u(seq bigint, json text, "
            "crc bigint)), h AS (UPDATE history h SET type = $3, json = u.json, crc = u.crc "
            "FROM u WHERE h.conversation_id = $1 AND h.seq = u.seq RETURNING h.seq), "
            "d AS (DELETE FROM search WHERE conversation_id = $1 AND seq IN (SELECT seq FROM u) "
            "RETURNING 1) UPDATE conversations SET contact_id = '', contact_name = '', "
            "last_text = '' WHERE id = $1",
            3, vals, &r);
        PQclear(r);
        r = NULL;
    }
    if (rc == 0) rc = oh_pg_held_exec(p, c, "COMMIT", 0, NULL, &r);
    PQclear(r);
    r = NULL;
    /* then the row takes the shard's next change number, so an inbox
     * resuming from before is told; a statement of its own, as materialize
     * takes them (the counter, then the row), so the counter is not held
     * through the erasure (a crash in between leaves the old number: the
     * erasure stands, only that resume misses it) */
    if (rc == 0) rc = oh_pg_held_exec(p, c, PG_CONV_TOUCH_SQL, 1, vals, &r);
    PQclear(r);
    oh_pg_unhold(p, c); /* rolls back what failed */
    if (rc == 0) *count += (int64_t)json_array_size(rows);
    free(j);
    json_decref(rows);
    return rc;
}

int pg_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn, void *opaque,
             int64_t *count)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pg_erase_one((struct pg_store *)st, convs[i], fn, opaque, count);
    return rc;
}
