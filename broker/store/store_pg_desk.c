/* store_pg_desk.c - the PostgreSQL store's directory and what the desk
 * keeps beside the history: conversations (across the shards), the inbox's
 * list and changes, command results, provider-id references, message
 * states, read cursors, key/values (shard 0) and the contacts' rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_pg_int.h"

static void conv_row(PGresult *r, int i, struct oh_conversation *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", PQgetvalue(r, i, 0));
    snprintf(c->channel, sizeof c->channel, "%s", PQgetvalue(r, i, 1));
    snprintf(c->account, sizeof c->account, "%s", PQgetvalue(r, i, 2));
    snprintf(c->contact_id, sizeof c->contact_id, "%s", PQgetvalue(r, i, 3));
    snprintf(c->contact_name, sizeof c->contact_name, "%s", PQgetvalue(r, i, 4));
    c->head = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    c->created_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    c->updated_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    c->last_inbound_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10);
    snprintf(c->status, sizeof c->status, "%s", PQgetvalue(r, i, 9));
    snprintf(c->assignee, sizeof c->assignee, "%s", PQgetvalue(r, i, 10));
    snprintf(c->team, sizeof c->team, "%s", PQgetvalue(r, i, 11));
    snprintf(c->priority, sizeof c->priority, "%s", PQgetvalue(r, i, 12));
    snprintf(c->labels, sizeof c->labels, "%s", PQgetvalue(r, i, 13));
    c->snoozed_until_ms = strtoll(PQgetvalue(r, i, 14), NULL, 10);
    c->episode = strtoll(PQgetvalue(r, i, 15), NULL, 10);
    c->state_seq = strtoll(PQgetvalue(r, i, 16), NULL, 10);
    c->last_seq = strtoll(PQgetvalue(r, i, 17), NULL, 10);
    snprintf(c->last_direction, sizeof c->last_direction, "%s", PQgetvalue(r, i, 18));
    snprintf(c->last_kind, sizeof c->last_kind, "%s", PQgetvalue(r, i, 19));
    snprintf(c->last_text, sizeof c->last_text, "%s", PQgetvalue(r, i, 20));
    c->last_ms = strtoll(PQgetvalue(r, i, 21), NULL, 10);
    c->rev = strtoll(PQgetvalue(r, i, 22), NULL, 10);
    snprintf(c->contact_ref, sizeof c->contact_ref, "%s", PQgetvalue(r, i, 23));
}

int pg_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv};
    PGresult *r;
    int rc = pg_conv_exec(s, conv, P_CONV_GET, 1, vals, &r);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    if (rc == 0) conv_row(r, 0, out);
    PQclear(r);
    return rc;
}

/* Most recently updated first, ties by id descending (as each shard sorts). */
static bool conv_before(PGresult *a, int ra, PGresult *b, int rb)
{
    long long ua = strtoll(PQgetvalue(a, ra, 7), NULL, 10);
    long long ub = strtoll(PQgetvalue(b, rb, 7), NULL, 10);
    if (ua != ub) return ua > ub;
    return strcmp(PQgetvalue(a, ra, 0), PQgetvalue(b, rb, 0)) > 0;
}

int pg_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                     void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    char u[24], l[24];
    pg_i64s(u, sizeof u, updated_after_ms);
    pg_i64s(l, sizeof l, limit);
    const char *vals[] = {u, limit > 0 ? l : NULL};
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : 0;
    if (rc == 0 && nsh == 1)
        rc = pg_read_exec(s, s->dir.at[0].pool, P_CONV_LIST, 2, vals, &res[0]);
    else if (rc == 0)
        rc = pg_all_shards(s, nsh, P_CONV_LIST, 2, vals, res);
    if (rc != 0) goto out;
    for (int emitted = 0; limit <= 0 || emitted < limit; emitted++) {
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || conv_before(res[i], at[i], res[best], at[best])))
                best = i;
        if (best < 0) break;
        struct oh_conversation c;
        conv_row(res[best], at[best]++, &c);
        int stop = fn(opaque, &c);
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

/* Each shard's due rows on its primary (a replica's lag would
 * only delay the wake). */
int pg_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    char u[24], l[24];
    pg_i64s(u, sizeof u, now_ms);
    pg_i64s(l, sizeof l, limit);
    const char *vals[] = {u, limit > 0 ? l : NULL};
    int rc = 0;
    for (int sh = 0; sh < nsh && rc == 0; sh++) {
        PGresult *r;
        if ((rc = oh_pg_exec(s->dir.at[sh].pool, P_SNOOZED_DUE, 2, vals, &r, true)) != 0) break;
        for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
            struct oh_conversation c;
            conv_row(r, i, &c);
            int stop = fn(opaque, &c);
            if (stop) rc = stop < 0 ? stop : 0;
            if (stop) break;
        }
        PQclear(r);
    }
    return rc;
}

int pg_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                      size_t len)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {id, conv};
    PGresult *r;
    int rc = pg_conv_exec(s, conv, P_OUTCOME_GET, 2, vals, &r);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    if (rc == 0) {
        *code = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(body, len, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return rc;
}

/* ---- the inbox ---- */

/* A query built clause by clause: its text and parameters ($1, $2, ...). */
struct pg_query {
    char sql[6144];
    size_t len;
    int n;
    const char *vals[48]; /* q: the filters three times (list_sql) */
    char nums[48][24];
};

/* Appends FMT, in which every "%d" is the number of the next parameter,
 * bound to TEXT (or to NUM when TEXT is NULL). */
static void qadd(struct pg_query *q, const char *fmt, const char *text, int64_t num)
{
    if (q->n >= (int)OH_ARRAY_SIZE(q->vals) || q->len >= sizeof q->sql) {
        q->len = sizeof q->sql; /* too long: the caller refuses it */
        return;
    }
    int k = ++q->n;
    if (!text) {
        pg_i64s(q->nums[k - 1], sizeof q->nums[k - 1], num);
        text = q->nums[k - 1];
    }
    q->vals[k - 1] = text;
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, fmt, k, k, k);
    if (w > 0) q->len += (size_t)w;
}

static void qraw(struct pg_query *q, const char *sql)
{
    if (q->len >= sizeof q->sql) return;
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, "%s", sql);
    if (w > 0) q->len += (size_t)w;
}

/* Newest created first, ties by id descending (as each shard sorts). */
static bool list_before(PGresult *a, int ra, PGresult *b, int rb)
{
    long long ca = strtoll(PQgetvalue(a, ra, 6), NULL, 10);
    long long cb = strtoll(PQgetvalue(b, rb, 6), NULL, 10);
    if (ca != cb) return ca > cb;
    return strcmp(PQgetvalue(a, ra, 0), PQgetvalue(b, rb, 0)) > 0;
}

/* How q is matched, in one query whose parts run lazily (each CTE is
 * read, and each branch of the UNION ALL runs, only when its one-time
 * filter holds):
 * - w: the newest Q_WALK x limit conversations (after the other filters)
 *   are checked against their own messages (search's primary key); a full
 *   page there is the answer, a common word's usual case.
 * - m: otherwise up to Q_RARE of the word's messages from the GIN index.
 *   Fewer than that, a rare word: its conversations are looked up by id
 *   and sorted (about a hundred at a million conversations).
 * - Otherwise a word common in older conversations only: the walk, without
 *   the bound.
 * Either plan alone takes seconds at a million conversations on the other
 * kind of word, and the planner cannot choose by itself: it estimates any
 * word outside its most common ones at 0.5 % of the messages
 * (docs/performance.md, the desk). */
#define Q_RARE "2000"
#define Q_WALK 4

/* The filters other than q, and the page cursor, as " AND ..." into Q. */
static void list_filters(struct pg_query *q, const struct oh_store_filter *f)
{
    const struct {
        const char *v, *sql;
    } eq[] = {{f->status, " AND c.status = $%d"},
              {f->assignee, " AND c.assignee = $%d"},
              {f->team, " AND c.team = $%d"},
              {f->priority, " AND c.priority = $%d"},
              {f->channel, " AND c.channel = $%d"},
              {f->contact_id, " AND c.contact_id = $%d"},
              {f->contact_ref, " AND c.contact_ref = $%d"},
              {f->label, " AND c.labels @> jsonb_build_array($%d::text)"}};
    for (size_t i = 0; i < OH_ARRAY_SIZE(eq); i++)
        if (eq[i].v) qadd(q, eq[i].sql, eq[i].v, 0);
    if (f->updated_after_ms) qadd(q, " AND c.updated_ms > $%d", NULL, f->updated_after_ms);
    if (f->before_id) {
        qadd(q, " AND (c.created_ms, c.id) < ($%d::bigint, ", NULL, f->before_created_ms);
        qadd(q, "$%d::text COLLATE \"C\")", f->before_id, 0);
    }
}

/* One page of conversations, newest created first, into Q. Without q,
 * BRANCH is 0; with q (parameter QP, the page's limit parameter LP), 'r'
 * matches it as a rare word, 'c' as a common one (above). */
static void list_inner(struct pg_query *q, const struct oh_store_filter *f, int qp, int lp,
                       char branch)
{
    char sql[400];
    qraw(q, "(SELECT " CONV_COLS " FROM conversations c WHERE true");
    list_filters(q, f);
    if (branch) {
        snprintf(sql, sizeof sql, " AND (SELECT count(*) FROM w) < $%d", lp);
        qraw(q, sql);
    }
    if (branch == 'r') {
        qraw(q, " AND (SELECT count(*) FROM m) < " Q_RARE
                " AND c.id = ANY (ARRAY(SELECT conversation_id FROM m))");
    } else if (branch == 'c') {
        snprintf(sql, sizeof sql,
                 " AND (SELECT count(*) FROM m) >= " Q_RARE " AND c.id IN (SELECT "
                 "conversation_id FROM search WHERE tsv @@ plainto_tsquery('simple', $%d))",
                 qp);
        qraw(q, sql);
    }
    qadd(q, " ORDER BY c.created_ms DESC, c.id DESC LIMIT $%d)", NULL, f->limit);
}

/* The list's SQL into Q. */
static void list_sql(struct pg_query *q, const struct oh_store_filter *f)
{
    *q = (struct pg_query){.len = 0};
    int qp = 0, lp = 0;
    if (f->q) {
        char sql[400];
        qraw(q, "WITH w AS MATERIALIZED (SELECT b.* FROM (SELECT " CONV_COLS
                " FROM conversations c WHERE true");
        list_filters(q, f);
        qadd(q, " ORDER BY c.created_ms DESC, c.id DESC LIMIT $%d) b", NULL,
             (int64_t)f->limit * Q_WALK);
        qadd(q,
             " WHERE b.id IN (SELECT conversation_id FROM search WHERE tsv @@ "
             "plainto_tsquery('simple', $%d))",
             f->q, 0);
        qp = q->n;
        qadd(q, " ORDER BY b.created_ms DESC, b.id DESC LIMIT $%d), ", NULL, f->limit);
        lp = q->n;
        snprintf(sql, sizeof sql,
                 "m AS MATERIALIZED (SELECT conversation_id FROM search WHERE tsv @@ "
                 "plainto_tsquery('simple', $%d) LIMIT " Q_RARE ") ",
                 qp);
        qraw(q, sql);
    }
    /* the reader's cursors are looked up for the page only, outside the
     * inner query (inside, PostgreSQL evaluates them for every match before
     * the sort) */
    qraw(q, "SELECT x.*, ");
    if (f->reader) {
        qadd(q,
             "coalesce((SELECT max(seq) FROM cursors k WHERE k.conversation_id = x.id "
             "AND k.user_id = $%d ",
             f->reader, 0);
        qadd(q, "AND k.role IN ($%d, '')), 0)", f->reader_role ? f->reader_role : "", 0);
    } else {
        qraw(q, "0");
    }
    qraw(q, " FROM (");
    if (f->q) {
        char sql[200];
        snprintf(sql, sizeof sql, "(SELECT * FROM w WHERE (SELECT count(*) FROM w) >= $%d)", lp);
        qraw(q, sql);
        qraw(q, " UNION ALL ");
        list_inner(q, f, qp, lp, 'r');
        qraw(q, " UNION ALL ");
        list_inner(q, f, qp, lp, 'c');
    } else {
        list_inner(q, f, 0, 0, 0);
    }
    qraw(q, ") x ORDER BY x.created_ms DESC, x.id DESC");
}

/* Runs SQL on shard I (its replica when there is one and it answers). */
static int list_exec(struct pg_store *s, int i, const char *sql, int n, const char *const *vals,
                     PGresult **res)
{
    if (s->replica && i == 0) { /* it mirrors shard 0 */
        int rc = oh_pg_exec_sql(s->replica, sql, n, vals, res, true);
        if (rc != OH_EUNAVAIL && rc != OH_ETIMEOUT) return rc;
    }
    return oh_pg_exec_sql(s->dir.at[i].pool, sql, n, vals, res, true);
}

int pg_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    struct pg_query q;
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : 0;
    if (rc == 0) list_sql(&q, f);
    if (rc == 0 && q.len >= sizeof q.sql - 1) rc = OH_EIO;
    for (int i = 0; rc == 0 && i < nsh; i++)
        rc = list_exec(s, i, q.sql, q.n, q.vals, &res[i]);
    for (int emitted = 0; rc == 0 && emitted < f->limit; emitted++) {
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || list_before(res[i], at[i], res[best], at[best])))
                best = i;
        if (best < 0) break;
        struct oh_conversation c;
        int row = at[best]++;
        conv_row(res[best], row, &c);
        int stop = fn(opaque, &c, strtoll(PQgetvalue(res[best], row, 24), NULL, 10));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    for (int i = 0; res && i < nsh; i++)
        PQclear(res[i]);
    free(res);
    free(at);
    return rc;
}

/* Per shard: the rows after its own position; handed out in turns, one
 * shard's row after another's, up to LIMIT, so each shard's position is
 * its last row handed out. The primary answers: a replica behind it could
 * miss a change that the live stream delivered before the snapshot. */
int pg_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
               char *next)
{
    struct pg_store *s = (struct pg_store *)st;
    int n = pg_nshards(s), rc = 0;
    int listed = 1; /* a position from a process that knows a shard not known here yet */
    for (const char *p = after; *p; p++)
        listed += *p == '.';
    if (listed > n) {
        oh_pg_shards_refresh(&s->dir, true);
        n = pg_known(s);
    }
    int64_t *revs = calloc((size_t)n, sizeof *revs);
    PGresult **res = calloc((size_t)n, sizeof *res);
    int *at = calloc((size_t)n, sizeof *at);
    if (!revs || !res || !at) {
        rc = OH_ENOMEM;
        goto out;
    }
    if (!*after) { /* now: each counter as committed */
        for (int i = 0; rc == 0 && i < n; i++) {
            rc = oh_pg_exec(s->dir.at[i].pool, P_REV_GET, 0, NULL, &res[i], true);
            if (rc == 0 && PQntuples(res[i]) == 1)
                revs[i] = strtoll(PQgetvalue(res[i], 0, 0), NULL, 10);
        }
        if (rc == 0) oh_store_pos_format(revs, n, next);
        goto out;
    }
    if (oh_store_pos_parse(after, revs, n) != 0) {
        rc = OH_EINVAL;
        goto out;
    }
    char lim[24];
    pg_i64s(lim, sizeof lim, limit > 0 ? limit : 1);
    for (int i = 0; rc == 0 && i < n; i++) {
        char r[24];
        pg_i64s(r, sizeof r, revs[i]);
        const char *vals[] = {r, lim};
        rc = oh_pg_exec(s->dir.at[i].pool, P_CHANGES, 2, vals, &res[i], true);
    }
    for (int emitted = 0, more = 1; rc == 0 && more && emitted < limit;) {
        more = 0;
        for (int i = 0; i < n && emitted < limit; i++) {
            if (at[i] >= PQntuples(res[i])) continue;
            more = 1;
            struct oh_conversation c;
            conv_row(res[i], at[i]++, &c);
            revs[i] = c.rev;
            emitted++;
            int stop = fn(opaque, &c);
            if (stop) {
                rc = stop < 0 ? stop : 0;
                more = 0;
                break;
            }
        }
    }
    if (rc == 0) oh_store_pos_format(revs, n, next);
out:
    for (int i = 0; res && i < n; i++)
        PQclear(res[i]);
    free(res);
    free(at);
    free(revs);
    return rc;
}

/* ---- references, states, cursors ---- */

/* A reference lives on the shard of the conversation it points to; a
 * lookup asks the shards in order. */
int pg_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
               struct oh_store_ref *out)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s);
    const char *vals[] = {channel, account, ref};
    for (int i = 0; i < nsh; i++) {
        PGresult *r;
        int rc = oh_pg_exec(s->dir.at[i].pool, P_REF_GET, 3, vals, &r, true);
        if (rc != 0) return rc;
        bool found = PQntuples(r) == 1;
        if (found) {
            snprintf(out->conversation_id, sizeof out->conversation_id, "%s", PQgetvalue(r, 0, 0));
            snprintf(out->message_id, sizeof out->message_id, "%s", PQgetvalue(r, 0, 1));
        }
        PQclear(r);
        if (found) return 0;
    }
    return OH_ENOTFOUND;
}

static int exec_void(struct oh_pg_pool *p, enum pg_stmt id, int n, const char *const *vals)
{
    PGresult *r;
    int rc = oh_pg_exec(p, id, n, vals, &r, true);
    PQclear(r);
    return rc;
}

int pg_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
               const char *conv, const char *message_id)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {channel, account, ref, conv, message_id};
    return pg_conv_void(s, conv, P_REF_PUT, 5, vals);
}

/* Copies column 0 of the single row of R into OUT. */
static int copy_value(PGresult *r, char *out, size_t outlen)
{
    if (PQntuples(r) != 1) return OH_ENOTFOUND;
    size_t len = (size_t)PQgetlength(r, 0, 0);
    if (len + 1 > outlen) return OH_ETOOBIG;
    memcpy(out, PQgetvalue(r, 0, 0), len + 1);
    return 0;
}

int pg_message_state(oh_store *st, const char *conv, const char *message_id, char out[16])
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv, message_id};
    PGresult *r;
    int rc = pg_conv_exec(s, conv, P_STATE_GET, 2, vals, &r);
    if (rc != 0) return rc;
    rc = copy_value(r, out, 16);
    PQclear(r);
    return rc;
}

int pg_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                  const char *device, int64_t seq)
{
    struct pg_store *s = (struct pg_store *)st;
    char q[24];
    pg_i64s(q, sizeof q, seq);
    const char *vals[] = {conv, user, role, device, q};
    return pg_conv_void(s, conv, P_CURSOR_SET, 5, vals);
}

int pg_cursors(oh_store *st, const char *conv, const char *role, const char *user,
               oh_store_cursor_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv, user, role};
    PGresult *r;
    int rc = pg_conv_exec(s, conv, P_CURSORS, 3, vals, &r);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int stop = fn(opaque, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

/* ---- key/value (shard 0) ---- */

int pg_kv_put(oh_store *st, const char *ns, const char *key, const char *value)
{
    const char *vals[] = {ns, key, value};
    return exec_void(SHARD0(st), P_KV_PUT, 3, vals);
}

int pg_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen)
{
    const char *vals[] = {ns, key};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_KV_GET, 2, vals, &r, true);
    if (rc != 0) return rc;
    rc = copy_value(r, out, outlen);
    PQclear(r);
    return rc;
}

/* One statement: the keys as a JSON array. */
int pg_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                   void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    json_t *arr = json_array(), *idx = json_object();
    for (size_t i = 0; arr && idx && i < n; i++) {
        json_array_append_new(arr, json_string(keys[i]));
        json_object_set_new(idx, keys[i], json_integer((json_int_t)i));
    }
    char *j = arr && idx ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (!j) {
        json_decref(idx);
        return OH_ENOMEM;
    }
    const char *vals[] = {ns, j};
    PGresult *r;
    int rc = oh_pg_exec_sql(SHARD0(st),
                            "SELECT key, value FROM kv WHERE ns = $1 AND key IN "
                            "(SELECT jsonb_array_elements_text($2::jsonb))",
                            2, vals, &r, true);
    free(j);
    if (rc == 0) {
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *at = json_object_get(idx, PQgetvalue(r, i, 0));
            if (at) fn(ctx, (size_t)json_integer_value(at), PQgetvalue(r, i, 1));
        }
        PQclear(r);
    }
    json_decref(idx);
    return rc;
}

int pg_kv_del(oh_store *st, const char *ns, const char *key)
{
    const char *vals[] = {ns, key};
    return exec_void(SHARD0(st), P_KV_DEL, 2, vals);
}

/* One statement ($4 NULL: insert only where absent; else update only where
 * the row holds $4): two members swapping one key at once serialize on its
 * row, and the second's WHERE sees the first's value. */
int pg_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
               const char *value)
{
    const char *vals[] = {ns, key, value, expected};
    PGresult *r;
    int rc = oh_pg_exec_sql(
        SHARD0(st),
        "INSERT INTO kv (ns, key, value) SELECT $1, $2, $3 WHERE $4::text IS NULL OR EXISTS "
        "(SELECT 1 FROM kv WHERE ns = $1 AND key = $2) ON CONFLICT (ns, key) "
        "DO UPDATE SET value = EXCLUDED.value WHERE $4::text IS NOT NULL AND kv.value = $4",
        4, vals, &r, true);
    if (rc) return rc;
    rc = strcmp(PQcmdTuples(r), "1") == 0 ? OH_OK : OH_ERETRY;
    PQclear(r);
    return rc;
}

int pg_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque)
{
    const char *vals[] = {ns};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_KV_SCAN, 1, vals, &r, true);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int stop = fn(opaque, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

/* Conversations live on their shards: each shard's counts in turn. */
int pg_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = pg_nshards(s), rc = OH_OK;
    for (int i = 0; i < nsh && rc == OH_OK; i++) {
        PGresult *r;
        /* (the replica, when there is one, mirrors a single shard) */
        rc = nsh == 1 ? pg_read_exec(s, s->dir.at[0].pool, P_OPEN_ASSIGNEES, 0, NULL, &r)
                      : oh_pg_exec(s->dir.at[i].pool, P_OPEN_ASSIGNEES, 0, NULL, &r, true);
        if (rc != OH_OK) return rc;
        for (int j = 0; j < PQntuples(r) && rc == OH_OK; j++)
            rc = fn(opaque, PQgetvalue(r, j, 0), strtoll(PQgetvalue(r, j, 1), NULL, 10));
        PQclear(r);
    }
    return rc;
}

/* $2's rows (a JSON array of {key, value}; value null: delete) written
 * in namespace $1, in one statement. */
static const char kv_write_sql[] =
    "WITH w AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS w(key text, value text)), "
    "d AS (DELETE FROM kv WHERE ns = $1 AND key IN (SELECT key FROM w WHERE value IS NULL)) "
    "INSERT INTO kv (ns, key, value) SELECT $1, key, value FROM w WHERE value IS NOT NULL "
    "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value";

/* KEYS[i] with VALUES[i] (NULL: null) as kv_write_sql's $2; NULL when out
 * of memory. The caller frees it. */
static char *kv_rows(const char *const *keys, const char *const *values, size_t n)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < n; i++)
        if (json_array_append_new(rows,
                                  json_pack("{s:s, s:o}", "key", keys[i], "value",
                                            values[i] ? json_string(values[i]) : json_null()))) {
            json_decref(rows);
            rows = NULL;
        }
    char *j = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    return j;
}

/* One statement on shard 0 (the kv's), hence one transaction. */
int pg_kv_write(oh_store *st, const char *ns, const char *const *keys, const char *const *values,
                size_t n)
{
    char *j = kv_rows(keys, values, n);
    if (!j) return OH_ENOMEM;
    const char *vals[] = {ns, j};
    PGresult *r;
    int rc = oh_pg_exec_sql(SHARD0(st), kv_write_sql, 2, vals, &r, true);
    if (rc == 0) PQclear(r);
    free(j);
    return rc;
}

/* Points CONVS[i] at CONTACTS[i], one statement each on its shard (POOLS[i]
 * when given, else looked up); on shard 0 through C0 when given (the
 * caller's open transaction there). */
static int refs_write(struct pg_store *s, struct oh_pg_conn *c0, const char *const *convs,
                      const char *const *contacts, struct oh_pg_pool *const *pools, size_t n)
{
    static const char sql[] = "UPDATE conversations SET contact_ref = $2 WHERE id = $1";
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *vals[] = {convs[i], contacts[i]};
        PGresult *r;
        struct oh_pg_pool *p = pools ? pools[i] : NULL;
        if (!p) rc = pg_conv_pool(s, convs[i], &p);
        if (rc == 0)
            rc = c0 && p == s->dir.at[0].pool ? oh_pg_held_exec(p, c0, sql, 2, vals, &r)
                                              : oh_pg_exec_sql(p, sql, 2, vals, &r, true);
        if (rc == 0) PQclear(r);
    }
    return rc;
}

int pg_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts, size_t n)
{
    return refs_write((struct pg_store *)st, NULL, convs, contacts, NULL, n);
}

int pg_conversations_touch(oh_store *st, const char *const *convs, size_t n)
{
    struct pg_store *s = (struct pg_store *)st;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *vals[] = {convs[i]};
        struct oh_pg_pool *p;
        PGresult *r;
        rc = pg_conv_pool(s, convs[i], &p);
        if (rc == 0) rc = oh_pg_exec_sql(p, PG_CONV_TOUCH_SQL, 1, vals, &r, true);
        if (rc == 0) PQclear(r);
    }
    return rc;
}

/* ---- the contact directory's checked write (shard 0) ---- */

/* Several sync members decide links and merges from what they read of the
 * directory; a write decided from rows another member changed meanwhile
 * would undo that member's (an identifier on the wrong contact, a merge
 * lost, two contacts for one person). So a write locks the keys it read
 * and writes, then checks that what it read is still there. The locks
 * (transaction advisory locks, taken in one order, class of their own)
 * cover keys read as absent, which FOR UPDATE cannot lock: two members
 * creating one key wait for each other, and the second's check, a later
 * statement, sees the first's row. Keys are folded to 1024 lock keys so a
 * big batch takes at most that many (two keys sharing one only wait). */
#define PG_CONTACT_LOCK_CLASS "7041130" /* "contacts" */
static const char contact_lock_sql[] =
    "SELECT count(pg_advisory_xact_lock(" PG_CONTACT_LOCK_CLASS ", k)) FROM (SELECT DISTINCT "
    "hashtext(x) & 1023 AS k FROM jsonb_array_elements_text($1::jsonb) AS x ORDER BY k) s";

/* How many of $2's keys (a JSON array of {key, value}; value null: was
 * absent) in namespace $1 hold something else now; their rows locked. */
static const char contact_check_sql[] =
    "WITH e AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS e(key text, value text)), "
    "cur AS (SELECT key, value FROM kv WHERE ns = $1 AND key IN (SELECT key FROM e) FOR UPDATE) "
    "SELECT count(*) FROM e LEFT JOIN cur USING (key) WHERE e.value IS DISTINCT FROM cur.value";

/* The keys of SEEN and of the N writes, as contact_lock_sql's $1. */
static char *lock_keys(const char *const *keys, size_t n, const struct oh_contact_seen *seen)
{
    json_t *all = json_array();
    for (size_t i = 0; all && seen && i < seen->n; i++)
        json_array_append_new(all, json_string(seen->keys[i]));
    for (size_t i = 0; all && i < n; i++)
        json_array_append_new(all, json_string(keys[i]));
    char *j = all && json_array_size(all) == n + (seen ? seen->n : 0)
                  ? json_dumps(all, JSON_COMPACT)
                  : NULL;
    json_decref(all);
    return j;
}

int pg_contact_write(oh_store *st, const char *const *keys, const char *const *values, size_t n,
                     const struct oh_contact_seen *seen, const char *const *convs,
                     const char *const *contacts, size_t k)
{
    struct pg_store *s = (struct pg_store *)st;
    struct oh_pg_pool *p = SHARD0(st);
    bool check = seen && seen->n;
    if (!n && !check) return refs_write(s, NULL, convs, contacts, NULL, k);
    char *lk = lock_keys(keys, n, seen), *w = kv_rows(keys, values, n);
    char *e = check ? kv_rows(seen->keys, seen->values, seen->n) : NULL;
    /* the refs' shards looked up first (placements live on shard 0): no
     * second connection of shard 0's pool is taken while one is held */
    struct oh_pg_pool **pools = calloc(k ? k : 1, sizeof *pools);
    struct oh_pg_conn *c = NULL;
    PGresult *r = NULL;
    int rc = lk && w && (e || !check) && pools ? 0 : OH_ENOMEM;
    for (size_t i = 0; i < k && rc == 0; i++)
        rc = pg_conv_pool(s, convs[i], &pools[i]);
    if (rc == 0) rc = oh_pg_hold(p, &c);
    const char *lvals[] = {lk}, *evals[] = {OH_STORE_CONTACTS_NS, e},
               *wvals[] = {OH_STORE_CONTACTS_NS, w};
    if (rc == 0) rc = oh_pg_held_exec(p, c, "BEGIN", 0, NULL, &r);
    PQclear(r);
    r = NULL;
    if (rc == 0) rc = oh_pg_held_exec(p, c, contact_lock_sql, 1, lvals, &r);
    PQclear(r);
    r = NULL;
    if (rc == 0 && check) {
        rc = oh_pg_held_exec(p, c, contact_check_sql, 2, evals, &r);
        if (rc == 0 && strcmp(PQgetvalue(r, 0, 0), "0") != 0) rc = OH_ERETRY;
        PQclear(r);
        r = NULL;
    }
    if (rc == 0 && n) rc = oh_pg_held_exec(p, c, kv_write_sql, 2, wvals, &r);
    PQclear(r);
    r = NULL;
    /* the refs while the keys are locked: a member deciding from what this
     * writes (a merge re-pointing the conversations) points them after */
    if (rc == 0) rc = refs_write(s, c, convs, contacts, pools, k);
    if (rc == 0) rc = oh_pg_held_exec(p, c, "COMMIT", 0, NULL, &r);
    PQclear(r);
    if (c) oh_pg_unhold(p, c); /* rolls back what failed */
    free(pools);
    free(lk);
    free(w);
    free(e);
    return rc;
}
