/* pgload.c - bulk preload of a PostgreSQL store for the scale scenario:
 * the rows oh_store_materialize would write for a fresh store (history
 * with seq and epoch appended to the event's compact JSON exactly as its
 * SQL does, references, conversations), streamed with one COPY per table
 * after dropping that table's indexes, which are rebuilt afterwards from
 * their own definitions; and a comparison of two stores through the store
 * API, which checks the bulk path against materialize. */
#include "oh_build_config.h"

#ifdef OH_HAVE_POSTGRES
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "core/daemon.h"
#include "pg.h"
#include "store/store.h"
#include "store/store_fields.h"

#define COPY_FLUSH  (1 << 20)
#define CLOCK_EVERY 4096 /* events per "batch": the broker clock of materialize */

enum { T_HISTORY, T_REFS, T_CONVS, T_COUNT };

static const char *const tables[T_COUNT] = {"history", "refs", "conversations"};
static const char *const columns[T_COUNT] = {
    "conversation_id, seq, event_id, type, src_partition, src_offset, ts_ms, json",
    "channel, account, ref, conversation_id, message_id",
    "id, channel, account, contact_id, contact_name, head, created_ms, updated_ms, "
    "last_inbound_ms"};

struct copy {
    PGconn *c;
    char *buf;
    size_t len, cap;
    char *rebuild; /* SQL recreating the constraints and indexes dropped */
    int rc;
};

struct bench_pgload {
    struct copy t[T_COUNT];
    char epoch[48];
    long nconvs, added;
    int64_t now_ms;
    int64_t *head, *created, *last_in;
};

static oh_store *open_store(const char *dsn, oh_config **cfg, char *err, size_t errlen)
{
    char *e1 = NULL, *e2 = NULL;
    if (asprintf(&e1, "OMNIHUB_STORE_BACKEND=postgres") < 0 ||
        asprintf(&e2, "OMNIHUB_STORE_POSTGRES_DSN=%s", dsn) < 0) {
        free(e1);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    char *envp[] = {e1, e2, NULL};
    *cfg = oh_config_load(NULL, oh_config_tables(), envp, err, errlen);
    oh_store *st = *cfg ? oh_store_open(*cfg, err, errlen) : NULL;
    free(e1);
    free(e2);
    return st;
}

static void put(struct copy *t, const char *s, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = (t->len + n) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) {
            t->rc = -1;
            return;
        }
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

/* A text field of COPY's text format: backslash, tab, newline and CR escaped. */
static void field(struct copy *t, const char *s, size_t n, char sep)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc = s[i] == '\\'   ? "\\\\"
                          : s[i] == '\t' ? "\\t"
                          : s[i] == '\n' ? "\\n"
                          : s[i] == '\r' ? "\\r"
                                         : NULL;
        if (!esc) continue;
        put(t, s + run, i - run);
        put(t, esc, 2);
        run = i + 1;
    }
    put(t, s + run, n - run);
    put(t, &sep, 1);
}

static void sfield(struct copy *t, const char *s, char sep)
{
    field(t, s, strlen(s), sep);
}

static void ifield(struct copy *t, long long v, char sep)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", v);
    put(t, b, (size_t)n);
    put(t, &sep, 1);
}

static int flush(struct copy *t, bool force)
{
    if (t->rc || (!force && t->len < COPY_FLUSH) || !t->len) return t->rc;
    if (PQputCopyData(t->c, t->buf, (int)t->len) != 1) t->rc = -1;
    t->len = 0;
    return t->rc;
}

/* With a transaction open on T: collects the drop and the re-create of
 * each constraint and index of TABLE, runs the drops, truncates it and
 * starts the COPY (FREEZE: the rows need no vacuum to be all-visible). */
static int start_copy(struct copy *t, int i, char *err, size_t errlen)
{
    const char *q = "SELECT format('ALTER TABLE %I DROP CONSTRAINT %I', $1::text, conname),"
                    " format('ALTER TABLE %I ADD CONSTRAINT %I %s', $1::text, conname,"
                    " pg_get_constraintdef(oid)) FROM pg_constraint"
                    " WHERE conrelid = $1::regclass AND contype IN ('p', 'u')"
                    " UNION ALL SELECT format('DROP INDEX %s', indexrelid::regclass),"
                    " pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = $1::regclass"
                    " AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)";
    const char *vals[] = {tables[i]};
    PGresult *r = PQexecParams(t->c, q, 1, NULL, vals, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) goto fail;
    size_t cap = 64;
    for (int k = 0; k < PQntuples(r); k++)
        cap += (size_t)PQgetlength(r, k, 1) + 2;
    t->rebuild = calloc(1, cap);
    for (int k = 0; t->rebuild && k < PQntuples(r); k++) {
        strcat(t->rebuild, PQgetvalue(r, k, 1));
        strcat(t->rebuild, "; ");
        PGresult *d = PQexec(t->c, PQgetvalue(r, k, 0));
        bool ok = PQresultStatus(d) == PGRES_COMMAND_OK;
        PQclear(d);
        if (!ok) goto fail;
    }
    PQclear(r);
    char sql[400];
    snprintf(sql, sizeof sql, "TRUNCATE %s", tables[i]);
    r = PQexec(t->c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) goto fail;
    PQclear(r);
    snprintf(sql, sizeof sql, "COPY %s (%s) FROM STDIN WITH (FREEZE)", tables[i], columns[i]);
    r = PQexec(t->c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) goto fail;
    PQclear(r);
    return 0;
fail:
    snprintf(err, errlen, "postgres: %s: %s", tables[i], PQerrorMessage(t->c));
    PQclear(r);
    return -1;
}

static void load_free(struct bench_pgload *l)
{
    for (int i = 0; i < T_COUNT; i++) {
        PQfinish(l->t[i].c);
        free(l->t[i].buf);
        free(l->t[i].rebuild);
    }
    free(l->head);
    free(l->created);
    free(l->last_in);
    free(l);
}

struct bench_pgload *bench_pgload_begin(const char *dsn, long nconvs, char *err, size_t errlen)
{
    oh_config *cfg = NULL;
    oh_store *st = open_store(dsn, &cfg, err, errlen);
    struct bench_pgload *l = st ? calloc(1, sizeof *l) : NULL;
    if (l) snprintf(l->epoch, sizeof l->epoch, "%s", oh_store_epoch(st));
    oh_store_close(st);
    oh_config_free(cfg);
    if (!l) return NULL;
    l->nconvs = nconvs;
    l->head = calloc((size_t)nconvs, sizeof *l->head);
    l->created = calloc((size_t)nconvs, sizeof *l->created);
    l->last_in = calloc((size_t)nconvs, sizeof *l->last_in);
    if (!l->head || !l->created || !l->last_in) goto nomem;
    for (int i = 0; i < T_COUNT; i++) {
        struct copy *t = &l->t[i];
        t->c = PQconnectdb(dsn);
        if (PQstatus(t->c) != CONNECTION_OK) {
            snprintf(err, errlen, "postgres: %s", PQerrorMessage(t->c));
            goto fail;
        }
        PGresult *r = PQexec(t->c, "SET maintenance_work_mem = '1GB'; BEGIN");
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            snprintf(err, errlen, "postgres: %s", PQerrorMessage(t->c));
            goto fail;
        }
        if (i == T_HISTORY) {
            r = PQexec(t->c, "SELECT 1 FROM history LIMIT 1");
            ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0;
            PQclear(r);
            if (!ok) {
                snprintf(err, errlen, "bulk preload needs an empty store");
                goto fail;
            }
        }
        if (start_copy(t, i, err, errlen)) goto fail;
    }
    l->now_ms = oh_now_ms();
    return l;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    load_free(l);
    return NULL;
}

int bench_pgload_add(struct bench_pgload *l, long c, json_t *ev, int32_t part, int64_t off,
                     bool last)
{
    struct oh_store_fields f;
    if (c < 0 || c >= l->nconvs || oh_store_fields_get(ev, &f) != 0 || f.status) return -1;
    if (l->added++ % CLOCK_EVERY == 0) l->now_ms = oh_now_ms();
    char *text = oh_store_dump_unsequenced(ev);
    size_t n = text ? strlen(text) : 0;
    if (n < 2 || text[n - 1] != '}') {
        free(text);
        return -1;
    }
    int64_t seq = ++l->head[c];
    if (seq == 1) l->created[c] = l->now_ms;
    if (f.inbound && f.ts_ms > l->last_in[c]) l->last_in[c] = f.ts_ms;
    /* the history row: the JSON as materialize's SQL stores it,
     * left(j, -1) || ',"seq":' || seq || ',"epoch":"' || epoch || '"}' */
    struct copy *h = &l->t[T_HISTORY];
    sfield(h, f.conv, '\t');
    ifield(h, seq, '\t');
    sfield(h, f.id, '\t');
    sfield(h, f.type, '\t');
    ifield(h, part, '\t');
    ifield(h, off, '\t');
    ifield(h, f.ts_ms, '\t');
    char tail[96];
    int tn =
        snprintf(tail, sizeof tail, ",\"seq\":%lld,\"epoch\":\"%s\"}", (long long)seq, l->epoch);
    text[n - 1] = '\0';
    field(h, text, n - 1, '\t');
    h->len--; /* the separator: the tail continues the same field */
    field(h, tail, (size_t)tn, '\n');
    free(text);
    if (*f.message_id) {
        struct copy *r = &l->t[T_REFS];
        sfield(r, f.channel, '\t');
        sfield(r, f.account, '\t');
        sfield(r, f.message_id, '\t');
        sfield(r, f.conv, '\t');
        sfield(r, f.message_id, '\n');
    }
    if (last) {
        struct copy *v = &l->t[T_CONVS];
        sfield(v, f.conv, '\t');
        sfield(v, f.channel, '\t');
        sfield(v, f.account, '\t');
        sfield(v, f.contact_id, '\t');
        sfield(v, f.contact_name, '\t');
        ifield(v, l->head[c], '\t');
        ifield(v, l->created[c], '\t');
        ifield(v, l->now_ms, '\t');
        ifield(v, l->last_in[c], '\n');
    }
    int rc = 0;
    for (int i = 0; i < T_COUNT; i++)
        rc |= flush(&l->t[i], false);
    return rc;
}

/* Drains T's results; 0 when none was an error. */
static int results(struct copy *t, char *err, size_t errlen)
{
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(t->c))) {
        ExecStatusType s = PQresultStatus(r);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && !rc) {
            snprintf(err, errlen, "postgres: %s", PQresultErrorMessage(r));
            rc = -1;
        }
        PQclear(r);
    }
    return rc;
}

int bench_pgload_end(struct bench_pgload *l, char *err, size_t errlen)
{
    int rc = 0;
    for (int i = 0; i < T_COUNT && !rc; i++) {
        struct copy *t = &l->t[i];
        if (flush(t, true) || PQputCopyEnd(t->c, NULL) != 1) {
            snprintf(err, errlen, "postgres: COPY %s: %s", tables[i], PQerrorMessage(t->c));
            rc = -1;
        }
        if (!rc) rc = results(t, err, errlen);
    }
    /* the three tables' indexes are built at the same time */
    for (int i = 0; i < T_COUNT && !rc; i++) {
        char *sql = NULL;
        if (asprintf(&sql, "%sCOMMIT; ANALYZE %s", l->t[i].rebuild ? l->t[i].rebuild : "",
                     tables[i]) < 0 ||
            !PQsendQuery(l->t[i].c, sql)) {
            snprintf(err, errlen, "postgres: %s", PQerrorMessage(l->t[i].c));
            rc = -1;
        }
        free(sql);
    }
    for (int i = 0; i < T_COUNT && !rc; i++)
        rc = results(&l->t[i], err, errlen);
    load_free(l);
    return rc;
}

/* ---- comparison ---- */

struct rows {
    json_t *arr; /* [seq, json] pairs */
};

static int collect_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    json_array_append_new(((struct rows *)opaque)->arr,
                          json_pack("[I, s#]", (json_int_t)seq, json, len));
    return 0;
}

static int collect_conv(void *opaque, const struct oh_conversation *c)
{
    json_array_append_new(opaque, json_string(c->id));
    return 0;
}

/* TEXT with the epoch attribute's value FROM replaced by TO (caller frees). */
static char *re_epoch(const char *text, const char *from, const char *to)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"epoch\":\"%s\"", from);
    const char *p = strstr(text, pat);
    char *out = NULL;
    if (!p) return strdup(text);
    if (asprintf(&out, "%.*s\"epoch\":\"%s\"%s", (int)(p - text), text, to, p + strlen(pat)) < 0)
        return NULL;
    return out;
}

static int compare_conv(oh_store *a, oh_store *b, const char *id, char *err, size_t errlen)
{
    struct oh_conversation ca, cb;
    if (oh_store_conversation_get(a, id, &ca) || oh_store_conversation_get(b, id, &cb)) {
        snprintf(err, errlen, "conversation %s: not in both stores", id);
        return -1;
    }
    if (strcmp(ca.channel, cb.channel) || strcmp(ca.account, cb.account) ||
        strcmp(ca.contact_id, cb.contact_id) || strcmp(ca.contact_name, cb.contact_name) ||
        ca.head != cb.head || ca.last_inbound_ms != cb.last_inbound_ms) {
        snprintf(err, errlen, "conversation %s: directory entries differ", id);
        return -1;
    }
    struct rows ra = {json_array()}, rb = {json_array()};
    int rc = oh_store_history(a, id, 0, 0, collect_row, &ra) ||
                     oh_store_history(b, id, 0, 0, collect_row, &rb) ||
                     json_array_size(ra.arr) != json_array_size(rb.arr) ||
                     json_array_size(ra.arr) != (size_t)ca.head
                 ? -1
                 : 0;
    if (rc) snprintf(err, errlen, "conversation %s: histories differ in length", id);
    for (size_t i = 0; !rc && i < json_array_size(ra.arr); i++) {
        json_t *x = json_array_get(ra.arr, i), *y = json_array_get(rb.arr, i);
        char *ty =
            re_epoch(json_string_value(json_array_get(y, 1)), oh_store_epoch(b), oh_store_epoch(a));
        if (!ty ||
            json_integer_value(json_array_get(x, 0)) != json_integer_value(json_array_get(y, 0)) ||
            strcmp(json_string_value(json_array_get(x, 1)), ty) != 0) {
            snprintf(err, errlen, "conversation %s: history row %zu differs", id, i);
            rc = -1;
        }
        free(ty);
        /* the message's reference */
        json_t *ev = rc ? NULL : json_loads(json_string_value(json_array_get(x, 1)), 0, NULL);
        const char *mid =
            json_string_value(json_object_get(json_object_get(ev, "data"), "message_id"));
        if (!rc && mid) {
            struct oh_store_ref fa, fb;
            if (oh_store_ref_get(a, ca.channel, ca.account, mid, &fa) ||
                oh_store_ref_get(b, ca.channel, ca.account, mid, &fb) ||
                strcmp(fa.conversation_id, fb.conversation_id) ||
                strcmp(fa.message_id, fb.message_id)) {
                snprintf(err, errlen, "conversation %s: reference %s differs", id, mid);
                rc = -1;
            }
        }
        json_decref(ev);
    }
    json_decref(ra.arr);
    json_decref(rb.arr);
    return rc;
}

int bench_pg_compare(const char *dsn_a, const char *dsn_b, char *err, size_t errlen)
{
    oh_config *cfa = NULL, *cfb = NULL;
    oh_store *a = open_store(dsn_a, &cfa, err, errlen);
    oh_store *b = a ? open_store(dsn_b, &cfb, err, errlen) : NULL;
    json_t *la = json_array(), *lb = json_array();
    int rc = !b ? -1 : 0;
    if (!rc && (oh_store_conversations(a, 0, 0, collect_conv, la) ||
                oh_store_conversations(b, 0, 0, collect_conv, lb) ||
                json_array_size(la) != json_array_size(lb) || json_array_size(la) == 0)) {
        snprintf(err, errlen, "conversation lists differ (%zu vs %zu)", json_array_size(la),
                 json_array_size(lb));
        rc = -1;
    }
    for (size_t i = 0; !rc && i < json_array_size(la); i++)
        rc = compare_conv(a, b, json_string_value(json_array_get(la, i)), err, errlen);
    json_decref(la);
    json_decref(lb);
    oh_store_close(a);
    oh_store_close(b);
    oh_config_free(cfa);
    oh_config_free(cfb);
    return rc;
}

#endif
