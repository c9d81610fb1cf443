/* store.c - the store facade: picks the backend named by store.backend and
 * forwards every call to its ops table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json_dump.h"
#include "core/crypto.h"
#include "core/metrics.h"
#include "oh_build_config.h"
#include "store/store_fields.h"

#define OPS(st) (((const struct oh_store_base *)(st))->ops)
#define KV_MAX  (64 * 1024) /* a kv value, in bytes, at most (store.h) */

const struct oh_config_key oh_store_keys[] = {
    {"store.backend", OH_CFG_STR, "sqlite", "history store: sqlite|postgres"},
    {"store.sqlite.path", OH_CFG_STR, NULL, "SQLite store file (default <data_dir>/store.db)"},
    {"store.postgres.dsn", OH_CFG_SECRET, NULL, "libpq connection string of the primary"},
    {"store.postgres.read_dsn", OH_CFG_SECRET, NULL, "replica for history and list reads"},
    {"store.postgres.shards", OH_CFG_LIST, NULL,
     "DSNs of the ring shards, fixed at the first start (omnihubctl shard add adds more)"},
    {"store.verify_on_start", OH_CFG_BOOL, "false",
     "check every stored event's checksum at start and report damaged ones"},
    {"store.postgres.pool_size", OH_CFG_INT, "4", "connections per process and server"},
    {"store.postgres.placement_cache", OH_CFG_INT, "65536",
     "conversation -> shard entries cached per process (rounded up to a power of two)"},
    {NULL, 0, NULL, NULL},
};

int oh_store_check(const oh_config *cfg, char *err, size_t errlen)
{
    const char *backend = oh_config_str(cfg, "store.backend");
    if (!backend || !*backend || strcmp(backend, "sqlite") == 0) return OH_OK;
    if (strcmp(backend, "postgres") != 0) {
        oh_errf(err, errlen, "store.backend: unknown backend \"%s\" (sqlite|postgres)", backend);
        return OH_EINVAL;
    }
#ifdef OH_HAVE_POSTGRES
    return oh_store_pg_check(cfg, err, errlen);
#else
    oh_errf(err, errlen, "store.backend: postgres support was not built (libpq missing)");
    return OH_EINVAL;
#endif
}

oh_store *oh_store_open(const oh_config *cfg, char *err, size_t errlen)
{
    if (oh_store_check(cfg, err, errlen)) return NULL;
    const char *backend = oh_config_str(cfg, "store.backend");
#ifdef OH_HAVE_POSTGRES
    if (backend && strcmp(backend, "postgres") == 0) return oh_store_pg_ops.open(cfg, err, errlen);
#endif
    return oh_store_sqlite_ops.open(cfg, err, errlen);
}

void oh_store_close(oh_store *st)
{
    if (st) OPS(st)->close(st);
}

const char *oh_store_backend(const oh_store *st)
{
    return OPS(st)->name;
}

const char *oh_store_epoch(const oh_store *st)
{
    return OPS(st)->epoch(st);
}

int oh_store_ping(oh_store *st)
{
    return OPS(st)->ping(st);
}

static int write_after(void *st, const char *const *keys, const char *const *values, size_t n,
                       const struct oh_contact_seen *seen, const char *const *convs,
                       const char *const *contacts, size_t k)
{
    return oh_store_contact_write(st, keys, values, n, seen, convs, contacts, k);
}

int oh_store_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                         const struct oh_store_pos *pos, size_t npos)
{
    return oh_store_materialize_then(st, group, items, n, pos, npos, NULL);
}

int oh_store_materialize_then(oh_store *st, const char *group, struct oh_store_item *items,
                              size_t n, const struct oh_store_pos *pos, size_t npos,
                              const struct oh_store_then *then)
{
    for (size_t i = 0; i < n; i++) { /* the outputs, for every backend */
        items[i].seq = 0;
        items[i].json = NULL;
        items[i].len = 0;
    }
    int rc;
    if (then && then->fn && OPS(st)->materialize_then) {
        rc = OPS(st)->materialize_then(st, group, items, n, pos, npos, then);
    } else {
        rc = OPS(st)->materialize(st, group, items, n, pos, npos);
        if (rc == 0 && then && then->fn) rc = then->fn(then->opaque, items, n, write_after, st);
    }
    if (rc != 0)
        for (size_t i = 0; i < n; i++) {
            free(items[i].json);
            items[i].json = NULL;
        }
    return rc;
}

int oh_store_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t *next, int64_t *published)
{
    return OPS(st)->position_get(st, group, topic, partition, next, published);
}

int oh_store_position_published(oh_store *st, const char *group, const char *topic,
                                int32_t partition, int64_t published)
{
    return OPS(st)->position_published(st, group, topic, partition, published);
}

int oh_store_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                          void *opaque)
{
    return OPS(st)->since_source(st, partition, from, fn, opaque);
}

int oh_store_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
                     void *opaque)
{
    return OPS(st)->history(st, conv, after, limit, fn, opaque);
}

static int no_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    return 0;
}

int oh_store_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                       void *opaque)
{
    return OPS(st)->event_get(st, conv, event_id, fn ? fn : no_row, opaque);
}

int oh_store_verify(oh_store *st, struct oh_store_verify *v)
{
    *v = (struct oh_store_verify){0};
    return OPS(st)->verify(st, v);
}

int oh_store_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out)
{
    return OPS(st)->conversation_get(st, conv, out);
}

int oh_store_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque)
{
    return OPS(st)->open_assignees(st, fn, opaque);
}

int oh_store_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                     const struct oh_store_pos *pos, size_t npos)
{
    return OPS(st)->kpi_put(st, group, eps, n, pos, npos);
}

int oh_store_shard_add(oh_store *st, const char *name, const char *dsn, char *err, size_t errlen)
{
    if (!OPS(st)->shards) {
        oh_errf(err, errlen, "the %s store has no shards", OPS(st)->name);
        return OH_EINVAL;
    }
    return OPS(st)->shards->add(st, name, dsn, err, errlen);
}

int oh_store_shards(oh_store *st, oh_store_shard_fn fn, void *opaque)
{
    return OPS(st)->shards ? OPS(st)->shards->list(st, fn, opaque) : OH_EINVAL;
}

int oh_store_kpi_report(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                        void *opaque)
{
    return OPS(st)->kpi_report(st, q, fn, opaque);
}

int oh_store_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                           void *opaque)
{
    return OPS(st)->conversations(st, updated_after_ms, limit, fn, opaque);
}

int oh_store_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque)
{
    return OPS(st)->snoozed_due(st, now_ms, limit, fn, opaque);
}

int oh_store_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                            size_t len)
{
    return OPS(st)->command_result(st, conv, id, code, body, len);
}

int oh_store_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque)
{
    return OPS(st)->list(st, f, fn, opaque);
}

int oh_store_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
                     char *next)
{
    return OPS(st)->changes(st, after ? after : "", limit, fn, opaque, next);
}

int oh_store_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
                     struct oh_store_ref *out)
{
    return OPS(st)->ref_get(st, channel, account, ref, out);
}

int oh_store_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
                     const char *conv, const char *message_id)
{
    return OPS(st)->ref_put(st, channel, account, ref, conv, message_id);
}

int oh_store_message_state(oh_store *st, const char *conv, const char *message_id, char out[16])
{
    return OPS(st)->message_state(st, conv, message_id, out);
}

int oh_store_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                        const char *device, int64_t seq)
{
    return OPS(st)->cursor_set(st, conv, role, user, device, seq);
}

int oh_store_cursors(oh_store *st, const char *conv, const char *role, const char *user,
                     oh_store_cursor_fn fn, void *opaque)
{
    return OPS(st)->cursors(st, conv, role, user, fn, opaque);
}

static const char *fstr(const json_t *obj, const char *key);

static int dir_get(void *st, const char *key, char *out, size_t len)
{
    return oh_store_kv_get(st, OH_STORE_CONTACTS_NS, key, out, len);
}

static int dir_put(void *st, const char *key, const char *value)
{
    return oh_store_kv_put(st, OH_STORE_CONTACTS_NS, key, value);
}

static int dir_del(void *st, const char *key)
{
    return oh_store_kv_del(st, OH_STORE_CONTACTS_NS, key);
}

static int dir_write(void *st, const char *const *keys, const char *const *values, size_t n,
                     const struct oh_contact_seen *seen, const struct oh_contact_refs *refs)
{
    size_t k = refs ? refs->n : 0;
    const char **to = k ? calloc(k, sizeof *to) : NULL;
    if (k && !to) return OH_ENOMEM;
    for (size_t i = 0; i < k; i++)
        to[i] = refs->to;
    int rc = oh_store_contact_write(st, keys, values, n, seen, k ? refs->convs : NULL, to, k);
    free(to);
    return rc;
}

static int dir_get_many(void *st, const char *const *keys, size_t n,
                        void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    return oh_store_kv_get_many(st, OH_STORE_CONTACTS_NS, keys, n, fn, ctx);
}

void oh_store_contact_dir(oh_store *st, struct oh_contact_dir *out)
{
    *out = (struct oh_contact_dir){st, dir_get, dir_put, dir_del, dir_write, dir_get_many};
}

int oh_store_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                         void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    if (!n) return 0;
    if (OPS(st)->kv_get_many) return OPS(st)->kv_get_many(st, ns, keys, n, fn, ctx);
    enum { VMAX = KV_MAX + 1 };
    char *buf = malloc(VMAX);
    int rc = buf ? 0 : OH_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = OPS(st)->kv_get(st, ns, keys[i], buf, VMAX);
        if (rc == 0) fn(ctx, i, buf);
        if (rc == OH_ENOTFOUND) rc = 0;
    }
    free(buf);
    return rc;
}

int oh_store_kv_write(oh_store *st, const char *ns, const char *const *keys,
                      const char *const *values, size_t n)
{
    return n ? OPS(st)->kv_write(st, ns, keys, values, n) : 0;
}

int oh_store_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!convs[i] || !contacts[i] || strlen(convs[i]) >= OH_ID_MAX ||
            strlen(contacts[i]) >= OH_ID_MAX)
            return OH_EINVAL;
    return n ? OPS(st)->contact_refs(st, convs, contacts, n) : 0;
}

int oh_store_contact_write(oh_store *st, const char *const *keys, const char *const *values,
                           size_t n, const struct oh_contact_seen *seen, const char *const *convs,
                           const char *const *contacts, size_t k)
{
    for (size_t i = 0; i < k; i++)
        if (!convs[i] || !contacts[i] || strlen(convs[i]) >= OH_ID_MAX ||
            strlen(contacts[i]) >= OH_ID_MAX)
            return OH_EINVAL;
    if (OPS(st)->contact_write && (n || k))
        return OPS(st)->contact_write(st, keys, values, n, seen, convs, contacts, k);
    int rc = oh_store_kv_write(st, OH_STORE_CONTACTS_NS, keys, values, n);
    return rc ? rc : oh_store_contact_refs(st, convs, contacts, k);
}

int oh_store_conversations_touch(oh_store *st, const char *const *convs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!convs[i] || strlen(convs[i]) >= OH_ID_MAX) return OH_EINVAL;
    return n ? OPS(st)->conversations_touch(st, convs, n) : 0;
}

int oh_store_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn,
                   void *opaque, int64_t *count)
{
    int64_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!convs[i] || strlen(convs[i]) >= OH_ID_MAX) return OH_EINVAL;
    int rc = n ? OPS(st)->erase(st, convs, n, fn, opaque, &k) : 0;
    if (count) *count = k;
    return rc;
}

char *oh_store_tombstone(const json_t *ev, int64_t seq, const char *epoch, size_t *len,
                         uint32_t *crc)
{
    const json_t *data = json_object_get(ev, "data");
    static const char *const keep[] = {"specversion", "id",      "source",
                                       "time",        "subject", "datacontenttype"};
    json_t *t = json_object();
    for (size_t i = 0; t && i < OH_ARRAY_SIZE(keep); i++)
        if (json_object_get(ev, keep[i])) json_object_set(t, keep[i], json_object_get(ev, keep[i]));
    json_object_set_new(t, "type", json_string(OH_EV_ERASED));
    json_t *d = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "conversation_id",
                          fstr(data, "conversation_id"), "channel", fstr(data, "channel"),
                          "account", fstr(data, "account"), "direction", fstr(data, "direction"),
                          "kind", "erased", "erased", 1);
    if (!t || !d) {
        json_decref(t);
        json_decref(d);
        return NULL;
    }
    json_object_set_new(t, "data", d);
    oh_store_set_seq(t, seq, epoch);
    char *text = oh_json_dump(t, len);
    json_decref(t);
    if (text && oh_store_text_crc(text, *len, seq, epoch, crc) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

int oh_store_kv_put(oh_store *st, const char *ns, const char *key, const char *value)
{
    if (value && strlen(value) > KV_MAX) return OH_ETOOBIG;
    return OPS(st)->kv_put(st, ns, key, value ? value : "");
}

int oh_store_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen)
{
    return OPS(st)->kv_get(st, ns, key, out, outlen);
}

int oh_store_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
                     const char *value)
{
    if (!value || strlen(value) > KV_MAX) return value ? OH_ETOOBIG : OH_EINVAL;
    return OPS(st)->kv_swap(st, ns, key, expected, value);
}

int oh_store_kv_del(oh_store *st, const char *ns, const char *key)
{
    return OPS(st)->kv_del(st, ns, key);
}

int oh_store_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque)
{
    return OPS(st)->kv_scan(st, ns, fn, opaque);
}

int oh_store_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    return OPS(st)->article_put(st, a, version);
}

int oh_store_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque)
{
    return OPS(st)->article_get(st, id, fn, opaque);
}

int oh_store_article_del(oh_store *st, const char *id)
{
    return OPS(st)->article_del(st, id);
}

int oh_store_articles(oh_store *st, oh_store_article_fn fn, void *opaque)
{
    return OPS(st)->articles(st, fn, opaque);
}

int oh_store_state_rank(const char *state)
{
    static const char *const order[] = {"sent", "failed", "delivered", "read"};
    if (!state) return 0;
    for (size_t i = 0; i < OH_ARRAY_SIZE(order); i++)
        if (strcmp(state, order[i]) == 0) return (int)i + 1;
    return 0;
}

int oh_store_pos_parse(const char *s, int64_t *revs, int n)
{
    if (strcmp(s, "r0") == 0) { /* the beginning, whatever the number of shards */
        for (int i = 0; i < n; i++)
            revs[i] = 0;
        return 0;
    }
    if (*s++ != 'r') return OH_EINVAL;
    for (int i = 0; i < n; i++) {
        if (*s < '0' || *s > '9') return OH_EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end - s > 18) return OH_EINVAL;
        revs[i] = v;
        if (!*end) { /* a shorter list: the shards added since start at 0 */
            for (int k = i + 1; k < n; k++)
                revs[k] = 0;
            return 0;
        }
        if (*end != '.' || i + 1 >= n) return OH_EINVAL;
        s = end + 1;
    }
    return OH_EINVAL;
}

void oh_store_pos_format(const int64_t *revs, int n, char out[OH_STORE_POS_MAX])
{
    size_t at = 0;
    out[at++] = 'r';
    out[at] = '\0';
    for (int i = 0; i < n && at + 24 < OH_STORE_POS_MAX; i++)
        at += (size_t)snprintf(out + at, OH_STORE_POS_MAX - at, "%s%lld", i ? "." : "",
                               (long long)revs[i]);
}

static const char *fstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

int oh_store_fields_get(const json_t *ev, struct oh_store_fields *f)
{
    if (!json_is_object(ev)) return OH_EINVAL;
    const json_t *data = json_object_get(ev, "data");
    const json_t *contact = json_object_get(data, "contact");
    const json_t *status = json_object_get(data, "status");
    f->id = fstr(ev, "id");
    f->type = fstr(ev, "type");
    f->conv = fstr(ev, "subject");
    if (!*f->conv) f->conv = fstr(data, "conversation_id");
    if (!*f->id || !*f->conv || strlen(f->id) >= OH_ID_MAX || strlen(f->conv) >= OH_ID_MAX)
        return OH_EINVAL;
    f->channel = fstr(data, "channel");
    f->account = fstr(data, "account");
    f->contact_id = fstr(contact, "id");
    f->contact_name = fstr(contact, "name");
    f->message_id = fstr(data, "message_id");
    f->inbound = strcmp(f->type, OH_EV_INBOUND) == 0;
    f->status = strcmp(f->type, OH_EV_STATUS) == 0;
    f->status_mid = fstr(status, "message_id");
    if (!*f->status_mid) f->status_mid = f->message_id;
    f->provider_id = fstr(status, "provider_message_id");
    f->state = f->status ? fstr(status, "state") : "";
    f->rank = oh_store_state_rank(f->state);
    f->message = f->inbound || strcmp(f->type, OH_EV_OUTBOUND) == 0;
    f->preview = f->message && !json_is_true(json_object_get(data, "internal"));
    f->direction = f->message ? (f->inbound ? "inbound" : "outbound") : "";
    f->kind = fstr(data, "kind");
    f->text = fstr(data, "text");
    f->subject = fstr(data, "subject");
    const char *t = fstr(ev, "time");
    if (!*t || oh_time_parse(t, &f->ts_ms) != 0) f->ts_ms = oh_now_ms();
    return 0;
}

void oh_store_state_get(const json_t *ev, struct oh_store_state *out)
{
    memset(out, 0, sizeof *out);
    const json_t *st = json_object_get(json_object_get(ev, "data"), "state");
    if (strcmp(fstr(ev, "type"), OH_EV_UPDATED) != 0 || !json_is_object(st)) return;
    out->set = true;
    out->status = fstr(st, "status");
    out->assignee = fstr(st, "assignee");
    out->team = fstr(st, "team");
    out->priority = fstr(st, "priority");
    const char *until = fstr(st, "snoozed_until");
    if (!*until || oh_time_parse(until, &out->snoozed_until_ms)) out->snoozed_until_ms = 0;
    out->episode = json_integer_value(json_object_get(st, "episode"));
    if (out->episode < 1) out->episode = 1;
    /* the reducer bounds the labels (convstate.h); a text that does not fit
     * is left empty rather than cut into invalid JSON */
    char *l = json_is_array(json_object_get(st, "labels"))
                  ? json_dumps(json_object_get(st, "labels"), JSON_COMPACT)
                  : NULL;
    snprintf(out->labels, sizeof out->labels, "%s", l && strlen(l) < sizeof out->labels ? l : "[]");
    free(l);
}

/* The length of S's longest prefix of at most MAX bytes that ends on a
 * character boundary (S is valid UTF-8: the events were checked). */
static size_t utf8_cut(const char *s, size_t max)
{
    size_t len = strnlen(s, max + 1);
    if (len <= max) return len;
    len = max;
    while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
        len--;
    return len;
}

void oh_store_preview(const char *text, char out[4 * OH_STORE_PREVIEW_CHARS + 4])
{
    size_t i = 0;
    for (int chars = 0; text[i] && chars < OH_STORE_PREVIEW_CHARS; chars++) {
        i++;
        while (((unsigned char)text[i] & 0xc0) == 0x80)
            i++;
    }
    memcpy(out, text, i);
    out[i] = '\0';
}

char *oh_store_search_text(const struct oh_store_fields *f)
{
    if (!f->message || (!*f->text && !*f->subject)) return NULL;
    size_t sl = utf8_cut(f->subject, OH_STORE_SEARCH_MAX / 4);
    size_t tl = utf8_cut(f->text, OH_STORE_SEARCH_MAX - sl - 1);
    char *out = malloc(sl + tl + 2);
    if (!out) return NULL;
    memcpy(out, f->subject, sl);
    out[sl] = ' ';
    memcpy(out + sl + 1, f->text, tl);
    out[sl + 1 + tl] = '\0';
    return out;
}

char *oh_store_dump_unsequenced(json_t *ev)
{
    json_object_del(ev, "seq");
    json_object_del(ev, "epoch");
    return oh_json_dump(ev, NULL);
}

void oh_store_set_seq(json_t *ev, int64_t seq, const char *epoch)
{
    json_object_set_new(ev, "seq", json_integer(seq));
    json_object_set_new(ev, "epoch", json_string(epoch));
}

char *oh_store_sequenced_text(struct oh_store_item *it, int64_t seq, const char *epoch,
                              size_t *len)
{
    bool had = json_object_get(it->event, "seq") || json_object_get(it->event, "epoch");
    if (had) {
        json_object_del(it->event, "seq");
        json_object_del(it->event, "epoch");
    }
    oh_store_set_seq(it->event, seq, epoch);
    /* "{...}" without the two: the dump of the event as it is now would
     * be the same text with them before the last brace */
    if (had || !it->raw || it->raw_len < 3 || it->raw[it->raw_len - 1] != '}')
        return oh_json_dump(it->event, len);
    char suffix[128];
    int n =
        snprintf(suffix, sizeof suffix, ",\"seq\":%lld,\"epoch\":\"%s\"}", (long long)seq, epoch);
    if (n <= 0 || (size_t)n >= sizeof suffix) return oh_json_dump(it->event, len);
    char *text = malloc(it->raw_len - 1 + (size_t)n + 1);
    if (!text) return NULL;
    memcpy(text, it->raw, it->raw_len - 1);
    memcpy(text + it->raw_len - 1, suffix, (size_t)n + 1);
    *len = it->raw_len - 1 + (size_t)n;
    return text;
}

int oh_store_text_crc(const char *json, size_t len, int64_t seq, const char *epoch, uint32_t *crc)
{
    /* the text ends in ,"seq":<seq>,"epoch":"<epoch>"}: compared piece by
     * piece in place (formatting it with snprintf for every row read was a
     * quarter of a replay's instructions) */
    static const char seq_key[] = ",\"seq\":", epoch_key[] = ",\"epoch\":\"";
    char digits[24];
    size_t nd = 0;
    uint64_t v = seq < 0 ? 0 - (uint64_t)seq : (uint64_t)seq;
    do {
        digits[sizeof digits - 1 - nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (seq < 0) digits[sizeof digits - 1 - nd++] = '-';
    size_t el = strlen(epoch), sk = sizeof seq_key - 1, ek = sizeof epoch_key - 1;
    size_t n = sk + nd + ek + el + 2;
    if (n >= 128 || len <= n) return OH_EDAMAGED;
    const char *p = json + len - n;
    if (memcmp(p, seq_key, sk) != 0 || memcmp(p + sk, digits + sizeof digits - nd, nd) != 0 ||
        memcmp(p + sk + nd, epoch_key, ek) != 0 || memcmp(p + sk + nd + ek, epoch, el) != 0 ||
        memcmp(p + n - 2, "\"}", 2) != 0)
        return OH_EDAMAGED;
    *crc = oh_crc32c(oh_crc32c(0, json, len - n), "}", 1);
    return 0;
}

int oh_store_row_check(const char *conv, int64_t seq, const char *json, size_t len, int64_t crc,
                       const char *epoch)
{
    uint32_t have;
    if (crc < 0) return 0;
    if (oh_store_text_crc(json, len, seq, epoch, &have) == 0 && have == (uint32_t)crc) return 0;
    OH_ERROR("store",
             "conversation %s seq %lld: stored event damaged (checksum mismatch); not served", conv,
             (long long)seq);
    oh_metrics_inc("omnihub_store_damaged_events_total", "", 1);
    return OH_EDAMAGED;
}
