/* sync_contacts.c - contacts inside the sync service, the one sequencer:
 * links each new conversation to a contact (core/contacts.h), and decides
 * contact commands (merge, unmerge, erase) in log order, sequencing their
 * events on the contact's own timeline. Runs on the sync service's thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "services/sync_contacts.h"
#include "core/hub_int.h"
#include "core/json_dump.h"
#include "core/metrics.h"

/* The largest contact event read back (a merge lists its family's
 * conversations). */
#define EVENT_MAX (16u << 20)

struct oh_sync_contacts {
    oh_hub *hub;
    struct oh_contact_dir dir;
    const char *region;
    json_t *events;         /* the batch's contact events to forward: [[subject, seq, text]] */
    json_t *keep;           /* strings the batch's items borrow */
    json_t *done;           /* ids of the command outcomes the batch records */
    int64_t link_ns, links; /* CPU spent linking, conversations linked (since start) */
    int64_t linking;        /* conversations the batch being stored links */
    int64_t reported;       /* links already counted in the metrics */
    /* conversations known linked (a conversation's link is never undone),
     * by a hash of the id, direct-mapped: LINKED by a message, UNNAMED by
     * a status only (its contact may lack the name a message brings); and
     * those the batch being stored links, noted once it is stored */
    uint64_t *linked, *unnamed;
    struct pending {
        const char *conv;
        bool status; /* linked by a status */
    } * pending;
    size_t npending;
};

/* Slots of each known-linked set: 2 MiB. A conversation that falls out is
 * looked up in the directory again at its next message or status. */
#define LINKED_SLOTS (1u << 18)

static uint64_t conv_hash(const char *conv)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)conv; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h ? h : 1; /* 0: an empty slot */
}

static bool set_has(const uint64_t *set, const char *conv)
{
    uint64_t h = conv_hash(conv);
    return set[h & (LINKED_SLOTS - 1)] == h;
}

static void set_add(uint64_t *set, const char *conv)
{
    uint64_t h = conv_hash(conv);
    set[h & (LINKED_SLOTS - 1)] = h;
}

struct oh_sync_contacts *oh_sync_contacts_new(oh_hub *hub)
{
    if (!hub->store || !oh_config_bool(hub->cfg, "contacts.enabled")) return NULL;
    struct oh_sync_contacts *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->hub = hub;
    oh_store_contact_dir(hub->store, &c->dir);
    c->region = oh_config_str(hub->cfg, "contacts.default_region");
    c->events = json_array();
    c->keep = json_array();
    c->done = json_array();
    c->linked = calloc(LINKED_SLOTS, sizeof *c->linked);
    c->unnamed = calloc(LINKED_SLOTS, sizeof *c->unnamed);
    if (!c->events || !c->keep || !c->done || !c->linked || !c->unnamed) {
        oh_sync_contacts_free(c);
        return NULL;
    }
    return c;
}

void oh_sync_contacts_free(struct oh_sync_contacts *c)
{
    if (!c) return;
    json_decref(c->events);
    json_decref(c->keep);
    json_decref(c->done);
    free(c->linked);
    free(c->unnamed);
    free(c->pending);
    free(c);
}

static const char *keep(struct oh_sync_contacts *c, json_t *s)
{
    json_array_append_new(c->keep, s);
    return json_string_value(s);
}

/* Retries a directory or store step until it works or the hub stops. */
static bool retry(struct oh_sync_contacts *c, int rc, const char *what, int *delay_ms)
{
    if (atomic_load(&c->hub->stopping)) return false;
    OH_WARN("sync", "contacts: %s: %s; retrying in %d ms", what, oh_strerror(rc), *delay_ms);
    usleep((useconds_t)*delay_ms * 1000);
    *delay_ms = *delay_ms < 5000 ? *delay_ms * 2 : 5000;
    return true;
}

/* ---- linking new conversations ---- */

static int64_t cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The directory as linking sees it: reads go to the store's, the batch's
 * writes go to the store together with the conversations' contact_ref
 * (oh_store_contact_write: one transaction on SQLite). */
struct link_ctx {
    struct oh_sync_contacts *c;
    oh_store_contact_write_fn write;
    void *wctx;
    const char **convs, **to;
    size_t k;
    bool written;
};

static int lk_get(void *o, const char *key, char *out, size_t len)
{
    struct link_ctx *x = o;
    return x->c->dir.get(x->c->dir.opaque, key, out, len);
}

static int lk_get_many(void *o, const char *const *keys, size_t n,
                       void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    struct link_ctx *x = o;
    return x->c->dir.get_many(x->c->dir.opaque, keys, n, fn, ctx);
}

static int lk_write(void *o, const char *const *keys, const char *const *values, size_t n,
                    const struct oh_contact_seen *seen, const struct oh_contact_refs *refs)
{
    struct link_ctx *x = o; /* (a link's conversations are the batch's: x->convs) */
    x->written = true;
    return x->write(x->wctx, keys, values, n, seen, x->convs, x->to, x->k);
}

/* A new conversation's contact as the event names it. */
struct link_one {
    const char *conv, *name;
    bool status; /* linked by a status: remembered as UNNAMED */
    struct oh_contact_ident ids[OH_CONTACT_IDS_MAX];
    int n;
};

/* What a stored item can link its conversation by: LINK_MESSAGE, an inbound
 * or outbound message; LINK_STATUS, a status naming the contact (a
 * conversation may hold statuses only: a template another tool sent, never
 * answered; they name the customer all the same); else LINK_NONE. */
enum { LINK_NONE, LINK_MESSAGE, LINK_STATUS };

static int links_by(const struct oh_store_item *it)
{
    const char *type = it->event && it->seq ? oh_event_get_type(it->event) : NULL;
    if (!type) return LINK_NONE;
    if (!strcmp(type, OH_EV_INBOUND) || !strcmp(type, OH_EV_OUTBOUND)) return LINK_MESSAGE;
    const json_t *contact = json_object_get(oh_event_data(it->event), "contact");
    const char *id = json_string_value(json_object_get(contact, "id"));
    return !strcmp(type, OH_EV_STATUS) && id && *id ? LINK_STATUS : LINK_NONE;
}

/* A message that names its contact: linking it again gives a contact that a
 * status created nameless the name. */
static bool named(const struct oh_store_item *it)
{
    const json_t *contact = json_object_get(oh_event_data(it->event), "contact");
    const char *name = json_string_value(json_object_get(contact, "name"));
    return links_by(it) == LINK_MESSAGE && name && *name;
}

struct found {
    struct oh_sync_contacts *c;
    const char *const *convs;
    const bool *status; /* looked up for a status */
    bool *found;
};

static void found_one(void *ctx, size_t i, const char *value)
{
    struct found *f = ctx;
    f->found[i] = true;
    /* read before the batch wrote anything; a status cannot tell whether a
     * message or a status linked it: the first named message links again */
    set_add(f->status[i] ? f->c->unnamed : f->c->linked, f->convs[i]);
}

/* Whether item IT of a conversation not new with it is looked up before it
 * links: not a message that names its contact, of a conversation known
 * linked by statuses only (it links again, the name being what it brings) */
static bool needs_lookup(const struct oh_sync_contacts *c, const struct oh_store_item *it)
{
    return it->seq != 1 && !(named(it) && set_has(c->unnamed, oh_event_subject(it->event)));
}

/* The items (their indexes into CAND, how many) whose conversations the
 * batch links: its messages and the statuses that name a contact, once per
 * conversation (by a message rather than a status), of conversations new
 * with them (seq 1) or not known linked. The latter are looked up in the
 * directory first (k:<conv>, one round): found, they are left out and
 * noted as linked, but for a message that names its contact (it links
 * again: a status may have linked the conversation, and a status has no
 * name); else (stored before contacts were on) this item links it. A
 * conversation a status linked, or a status found linked, is noted apart
 * (UNNAMED), so that its first named message links it again, unread. */
static size_t wanting(struct oh_sync_contacts *c, const struct oh_store_item *items, size_t n,
                      size_t *cand)
{
    size_t m = 0, later = 0;
    for (size_t i = 0; i < n; i++) {
        int by = links_by(&items[i]);
        if (by == LINK_NONE) continue;
        const char *conv = oh_event_subject(items[i].event);
        if (items[i].seq != 1 &&
            (set_has(c->linked, conv) ||
             (set_has(c->unnamed, conv) && (by == LINK_STATUS || !named(&items[i])))))
            continue;
        size_t j = 0;
        while (j < m && strcmp(oh_event_subject(items[cand[j]].event), conv))
            j++;
        if (j < m) { /* one link a conversation: by its message rather than a status */
            if (by == LINK_MESSAGE && links_by(&items[cand[j]]) == LINK_STATUS) cand[j] = i;
            continue;
        }
        cand[m++] = i;
    }
    bool *look = calloc(m ? m : 1, sizeof *look); /* NULL: all linked again, idempotent */
    for (size_t j = 0; look && j < m; j++)
        later += look[j] = needs_lookup(c, &items[cand[j]]);
    if (!later) {
        free(look);
        return m;
    }
    const char **keys = calloc(later, sizeof *keys), **convs = calloc(later, sizeof *convs);
    bool *status = calloc(later, sizeof *status), *found = calloc(later, sizeof *found);
    json_t *held = json_array();
    size_t nk = 0;
    bool all = keys && convs && status && found && held;
    for (size_t j = 0; all && j < m; j++) {
        if (!look[j]) continue;
        convs[nk] = oh_event_subject(items[cand[j]].event);
        status[nk] = links_by(&items[cand[j]]) == LINK_STATUS;
        json_t *key = json_sprintf("k:%s", convs[nk]);
        json_array_append_new(held, key);
        keys[nk++] = json_string_value(key);
    }
    /* one round (the store's kv reads key by key where its backend has no
     * batch read); unread (an error), they are linked again: idempotent */
    struct found f = {c, convs, status, found};
    if (nk && c->dir.get_many) c->dir.get_many(c->dir.opaque, keys, nk, found_one, &f);
    /* found: linked already; a message that names its contact links again
     * all the same (the link may have been a status's, nameless) */
    size_t kept = 0, at = 0;
    for (size_t j = 0; j < m; j++) {
        bool looked = all && look[j];
        if (!looked || !found[at] || named(&items[cand[j]])) cand[kept++] = cand[j];
        at += looked;
    }
    free(look);
    json_decref(held);
    free(keys);
    free(convs);
    free(status);
    free(found);
    return kept;
}

/* One pass over the batch's new conversations in one directory batch:
 * their keys read ahead at once, then each linked; their ids into CONVS
 * and contacts into ROOTS (K of them); nothing is written unless every
 * link worked, then the directory's writes and the contact_refs go to
 * the store together. */
static int link_all(struct oh_sync_contacts *c, const struct oh_store_item *items, size_t n,
                    oh_store_contact_write_fn write, void *wctx, const char **convs, json_t *roots,
                    size_t *cand, size_t *k)
{
    struct link_ctx x = {.c = c, .write = write, .wctx = wctx, .convs = convs};
    struct oh_contact_dir d = {&x,   lk_get,   NULL,
                               NULL, lk_write, c->dir.get_many ? lk_get_many : NULL};
    *k = 0;
    json_array_clear(roots);
    size_t m = wanting(c, items, n, cand);
    if (!m) return 0;
    struct link_one *one = calloc(m, sizeof *one);
    struct oh_contact_linkreq *req = calloc(m, sizeof *req);
    struct oh_contact_batch b = {0};
    int rc = one && req ? oh_contact_batch_begin(&b, &d) : OH_ENOMEM;
    for (size_t j = 0; j < m && rc == 0; j++) {
        const json_t *ev = items[cand[j]].event;
        const json_t *data = oh_event_data(ev);
        struct link_one *l = &one[j];
        l->conv = oh_event_subject(ev);
        l->status = links_by(&items[cand[j]]) == LINK_STATUS;
        l->name = json_string_value(json_object_get(json_object_get(data, "contact"), "name"));
        l->n = oh_contact_idents(data, c->region, l->ids, OH_CONTACT_IDS_MAX);
        req[j] = (struct oh_contact_linkreq){l->conv, l->ids, l->n};
    }
    if (rc == 0) rc = oh_contact_batch_prefetch(&b, req, m);
    for (size_t i = 0; i < m && rc == 0; i++) {
        char root[OH_ID_MAX];
        rc = oh_contact_link(&b.dir, one[i].conv, one[i].ids, one[i].n, one[i].name, root);
        if (rc == OH_ETOOBIG) { /* its contact's record cannot be read (logged): not again */
            rc = 0;
            c->pending[c->npending++] = (struct pending){one[i].conv, false};
            continue;
        }
        if (rc == 0) { /* noted once the batch is stored (none if this fails) */
            c->pending[c->npending++] = (struct pending){one[i].conv, one[i].status};
            convs[(*k)++] = one[i].conv;
            json_array_append_new(roots, json_string(root));
        }
    }
    const char **to = rc == 0 && *k ? calloc(*k, sizeof *to) : NULL;
    if (rc == 0 && *k && !to) rc = OH_ENOMEM;
    for (size_t i = 0; to && i < *k; i++)
        to[i] = json_string_value(json_array_get(roots, i));
    x.to = to;
    x.k = *k;
    if (b.tx) {
        int wrc = oh_contact_batch_end(&b, rc == 0);
        if (rc == 0) rc = wrc;
    }
    /* nothing new for the directory (a replay): the refs alone */
    if (rc == 0 && !x.written && *k) rc = write(wctx, NULL, NULL, 0, NULL, convs, to, *k);
    free(to);
    free(req);
    free(one);
    return rc;
}

int oh_sync_contacts_link(void *opaque, const struct oh_store_item *items, size_t n,
                          oh_store_contact_write_fn write, void *wctx)
{
    struct oh_sync_contacts *c = opaque;
    if (!c) return 0;
    int64_t t0 = cpu_ns();
    const char **convs = calloc(n ? n : 1, sizeof *convs);
    size_t *cand = calloc(n ? n : 1, sizeof *cand);
    struct pending *pending = realloc(c->pending, (n ? n : 1) * sizeof *pending);
    if (pending) c->pending = pending;
    json_t *roots = json_array();
    size_t k = 0;
    int rc = convs && cand && pending && roots ? OH_ERETRY : OH_ENOMEM;
    /* another member changed what a link read (the same person arriving
     * on another partition, a merge): the batch is linked again afresh */
    for (int i = 0; i < OH_CONTACT_TRIES && rc == OH_ERETRY; i++) {
        c->npending = 0;
        rc = link_all(c, items, n, write, wctx, convs, roots, cand, &k);
    }
    if (rc) c->npending = 0;
    free(cand);
    if (rc == OH_ERETRY)
        OH_ERROR("sync",
                 "contacts: the directory changed under %d tries to link a batch; "
                 "the batch is stored again",
                 OH_CONTACT_TRIES);
    free(convs);
    json_decref(roots);
    c->link_ns += cpu_ns() - t0;
    c->linking = rc == 0 ? (int64_t)k : 0;
    if (rc) OH_WARN("sync", "contacts: cannot link conversations: %s", oh_strerror(rc));
    return rc;
}

void oh_sync_contacts_linked(struct oh_sync_contacts *c)
{
    if (!c) return;
    c->links += c->linking;
    c->linking = 0;
    for (size_t i = 0; i < c->npending; i++)
        set_add(c->pending[i].status ? c->unnamed : c->linked, c->pending[i].conv);
    c->npending = 0;
}

/* ---- commands ---- */

static void media_gone(void *opaque, const json_t *ev)
{
    oh_hub *hub = opaque;
    const json_t *data = oh_event_data(ev), *a;
    size_t i;
    struct oh_instance *in =
        oh_hub_connector(hub, json_string_value(json_object_get(data, "channel")));
    if (!in || !in->vt->media_erase) return;
    json_array_foreach(json_object_get(data, "attachments"), i, a)
    {
        const char *ref = json_string_value(json_object_get(a, "media_ref"));
        if (ref && *ref && in->vt->media_erase(in->ctx, ref) != OH_OK)
            OH_WARN("sync", "erasure: media of %s not removed", oh_event_subject(ev));
    }
}

/* The strings of ARR as an array borrowing them (*N of them), or NULL. */
static const char **strings_of(const json_t *arr, size_t *n)
{
    size_t i;
    json_t *v;
    *n = json_array_size(arr);
    const char **out = calloc(*n ? *n : 1, sizeof *out);
    if (out) json_array_foreach(arr, i, v) out[i] = json_string_value(v);
    return out;
}

/* A merge's or an unmerge's conversations were re-pointed with the
 * directory's write (oh_contact_command): those whose contact changed take
 * new change numbers so resuming inboxes are told; a re-decision (a replay
 * after a crash between the write and this) touches the family's, which
 * holds them. */
static int touch_moved(struct oh_sync_contacts *c, const struct oh_contact_result *r)
{
    size_t n;
    const char **convs = strings_of(r->moved ? r->moved : r->convs, &n);
    if (!convs) return OH_ENOMEM;
    int rc, delay_ms = 100;
    while ((rc = oh_store_conversations_touch(c->hub->store, convs, n)) && rc != OH_EINVAL)
        if (!retry(c, rc, "cannot tell inboxes of re-pointed conversations", &delay_ms)) break;
    free(convs);
    if (rc == OH_EINVAL) /* not an id the store takes: the change stands untold */
        OH_ERROR("sync", "contacts: a re-pointed conversation's id is invalid; not touched");
    return rc && rc != OH_EINVAL ? OH_ECLOSED : 0;
}

/* An erasure's conversations lose their content, all in one call (SQLite:
 * one transaction, one merge of the full-text index). Tried again while the
 * store fails; what a failed try erased on PostgreSQL has no messages left
 * to erase the next time. */
static int erase_convs(struct oh_sync_contacts *c, const struct oh_contact_result *r)
{
    size_t n;
    const char **convs = strings_of(r->convs, &n);
    if (!convs) return OH_ENOMEM;
    int64_t k = 0;
    int rc, delay_ms = 100;
    while ((rc = oh_store_erase(c->hub->store, convs, n, media_gone, c->hub, &k)))
        if (!retry(c, rc, "cannot erase a contact's conversations", &delay_ms)) break;
    free(convs);
    if (rc) return OH_ECLOSED;
    oh_metrics_inc("omnihub_contacts_erased_events_total", "", (uint64_t)k);
    return 0;
}

/* A command being decided: the event its change makes. */
struct made {
    struct oh_sync_contacts *c;
    const char *id; /* the command's */
    const json_t *cmd;
};

/* The event of a command that changed something, sequenced on the
 * contact's timeline ("h:<contact>" its seq) and kept under "e:<command>",
 * both in the decision's own write (oh_contact_then): a crash keeps the
 * change and its event or neither, and a replay forwards the same event. */
static int make_event(void *opaque, const struct oh_contact_dir *w,
                      const struct oh_contact_result *r)
{
    const struct made *m = opaque;
    const char *op = json_string_value(json_object_get(m->cmd, "op"));
    const char *type = strcmp(op, "merge") == 0     ? OH_EV_CONTACT_MERGED
                       : strcmp(op, "unmerge") == 0 ? OH_EV_CONTACT_UNMERGED
                                                    : OH_EV_CONTACT_ERASED;
    char key[OH_ID_MAX + 8], hkey[OH_ID_MAX + 8], was[24] = "";
    snprintf(key, sizeof key, "e:%s", m->id);
    snprintf(hkey, sizeof hkey, "h:%s", r->root);
    /* an erasure re-decided after a crash changes the directory again: the
     * event made the first time stands */
    int rc = w->get(w->opaque, key, was, sizeof was);
    if (rc != OH_ENOTFOUND) return rc == OH_ETOOBIG ? 0 : rc;
    rc = w->get(w->opaque, hkey, was, sizeof was);
    if (rc && rc != OH_ENOTFOUND) return rc;
    int64_t seq = (rc ? 0 : strtoll(was, NULL, 10)) + 1;
    char id[OH_ID_MAX];
    oh_event_id(id, "contact", m->id, NULL);
    json_t *data = json_pack("{s:s, s:s, s:O}", "contact_id", r->root, "op", op, "author",
                             json_object_get(m->cmd, "author"));
    if (data && strcmp(op, "merge") == 0) json_object_set_new(data, "other", json_string(r->other));
    if (data && strcmp(op, "unmerge") == 0) {
        json_object_set_new(data, "other", json_string(r->other));
        json_object_set(data, "identifier", json_object_get(m->cmd, "identifier"));
    }
    if (data)
        json_object_set_new(data, "conversations", r->convs ? json_incref(r->convs) : json_array());
    json_t *ev = oh_event_new(type, id, 0, data);
    if (ev) {
        json_object_set_new(ev, "source", json_string("/omnihub/contacts/-"));
        json_object_set_new(ev, "subject", json_string(r->root));
        json_object_set_new(ev, "seq", json_integer(seq));
        json_object_set_new(ev, "epoch", json_string(oh_store_epoch(m->c->hub->store)));
    }
    char *text = ev ? oh_json_dump(ev, NULL) : NULL, num[24];
    json_decref(ev);
    snprintf(num, sizeof num, "%lld", (long long)seq);
    rc = text ? w->put(w->opaque, key, text) : OH_ENOMEM;
    if (rc == 0) rc = w->put(w->opaque, hkey, num);
    free(text);
    return rc;
}

/* The event command CMD_ID made when it was decided, or NULL: it changed
 * nothing. */
static json_t *event_of(struct oh_sync_contacts *c, const char *cmd_id)
{
    char key[OH_ID_MAX + 8];
    json_t *ev = NULL;
    int rc = OH_ETOOBIG;
    snprintf(key, sizeof key, "e:%s", cmd_id);
    /* it lists the family's conversations: as large as the family */
    for (size_t len = 64 * 1024; rc == OH_ETOOBIG && len <= EVENT_MAX; len *= 4) {
        char *buf = malloc(len);
        rc = buf ? c->dir.get(c->dir.opaque, key, buf, len) : OH_ENOMEM;
        if (rc == 0) ev = json_loads(buf, 0, NULL);
        free(buf);
    }
    if (rc && rc != OH_ENOTFOUND)
        OH_ERROR("sync", "contacts: the event of command %s is not read back: %s", cmd_id,
                 oh_strerror(rc));
    return ev;
}

/* Queues event E (a contact event) for the timeline. */
static void forward(struct oh_sync_contacts *c, json_t *e)
{
    char *text = e ? oh_json_dump(e, NULL) : NULL;
    if (text)
        json_array_append_new(c->events, json_pack("[s, I, s, s]", oh_event_subject(e),
                                                   json_integer_value(json_object_get(e, "seq")),
                                                   text, oh_event_get_type(e)));
    free(text);
    json_decref(e);
}

int oh_sync_contacts_command(struct oh_sync_contacts *c, struct oh_store_item *items, size_t *n,
                             json_t *ev, int32_t partition, int64_t offset)
{
    const char *id = oh_event_get_id(ev), *subject = oh_event_subject(ev);
    const json_t *cmd = oh_event_data(ev);
    int code, rc, delay_ms = 100;
    char body[64];
    while ((rc = oh_store_command_result(c->hub->store, subject, id, &code, body, sizeof body)) &&
           rc != OH_ENOTFOUND)
        if (!retry(c, rc, "cannot read a command's outcome", &delay_ms)) return OH_ECLOSED;
    if (rc == OH_OK) {
        /* decided and applied before (the log repeated the record): its
         * outcome stands; its event, if any, is forwarded again */
        forward(c, event_of(c, id));
        return 0;
    }
    struct oh_store_item *it = &items[*n];
    *it = (struct oh_store_item){.src_partition = partition, .src_offset = offset};
    it->outcome_id = keep(c, json_string(id));
    json_array_append_new(c->done, json_string(id));
    it->outcome_conv = keep(c, json_string(subject));
    struct oh_contact_result r;
    struct made m = {c, id, cmd};
    const struct oh_contact_then then = {make_event, &m};
    oh_contact_command(&c->dir, cmd, c->region, &then, &r);
    json_t *out;
    if (r.code == 200) {
        const char *op = json_string_value(json_object_get(cmd, "op"));
        if ((rc = strcmp(op, "erase") == 0 ? erase_convs(c, &r) : touch_moved(c, &r))) {
            oh_contact_result_clear(&r);
            return rc;
        }
        /* made with the change; a re-decision after a crash finds both */
        forward(c, event_of(c, id));
        out = json_pack("{s:s, s:b}", "contact_id", r.root, "changed", r.changed);
    } else {
        out = json_pack("{s:{s:s, s:s}}", "error", "code",
                        r.code == 404   ? "not_found"
                        : r.code == 409 ? "conflict"
                        : r.code == 400 ? "bad_request"
                                        : "unavailable",
                        "message", r.why);
    }
    char *text = out ? oh_json_dump(out, NULL) : NULL;
    it->outcome_code = r.code;
    it->outcome_body = keep(c, json_string(text ? text : "{}"));
    free(text);
    json_decref(out);
    oh_contact_result_clear(&r);
    (*n)++;
    return 0;
}

int oh_sync_contacts_take(struct oh_sync_contacts *c, bool committed, oh_sync_contacts_fn fn,
                          void *opaque)
{
    if (!c) return 0;
    size_t i;
    json_t *e;
    int count = 0;
    size_t nd = json_array_size(c->done);
    if (committed && nd) { /* the gateway answers the commands now */
        const char **ids = calloc(nd, sizeof *ids);
        for (i = 0; ids && i < nd; i++)
            ids[i] = json_string_value(json_array_get(c->done, i));
        if (ids) oh_hub_outcomes(c->hub, ids, nd);
        free(ids);
    }
    json_array_clear(c->done);
    json_array_foreach(c->events, i, e)
    {
        const char *text = json_string_value(json_array_get(e, 2));
        fn(opaque, json_string_value(json_array_get(e, 0)),
           json_integer_value(json_array_get(e, 1)), json_string_value(json_array_get(e, 3)), text,
           strlen(text));
        count++;
    }
    json_array_clear(c->events);
    json_array_clear(c->keep);
    if (c->links > c->reported) {
        oh_metrics_inc("omnihub_contacts_links_total", "", (uint64_t)(c->links - c->reported));
        oh_metrics_set("omnihub_contacts_link_cpu_seconds", "", (double)c->link_ns / 1e9);
        c->reported = c->links;
    }
    return count;
}

void oh_sync_contacts_cpu(const struct oh_sync_contacts *c, int64_t *ns, int64_t *links)
{
    *ns = c ? c->link_ns : 0;
    *links = c ? c->links : 0;
}
