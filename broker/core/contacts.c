/* contacts.c - the contact directory's rules: link on verified identifiers,
 * merge/unmerge as a reversible tree, erasure (identifiers and E.164 are in
 * contacts_ident.c). Records are JSON in a caller's key/value space
 * (contacts.h); runs on the sync service's thread (writes) and gateway
 * workers (reads). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/contacts.h"
#include "core/contacts_int.h"
#include "core/json_dump.h"

/* What a record may grow to by anything but its count of further pages,
 * whose ,"pages":N (up to 100) the bound keeps room for. */
#define REC_ROOM (OH_CONTACT_RECORD_MAX - 16)

/* ---- records ---- */

/* The record under KEY into *OUT (NULL: absent): 0, or the space's error. */
static int rec_read(const struct oh_contact_dir *d, const char *key, json_t **out)
{
    char small[4096];
    *out = NULL;
    int rc = d->get(d->opaque, key, small, sizeof small);
    if (rc == 0) *out = json_loads(small, JSON_DECODE_ANY, NULL);
    if (rc == OH_ETOOBIG) { /* a big record (many conversations or members) */
        char *buf = malloc(OH_CONTACT_READ_MAX);
        rc = buf ? d->get(d->opaque, key, buf, OH_CONTACT_READ_MAX) : OH_ENOMEM;
        if (rc == 0) *out = json_loads(buf, JSON_DECODE_ANY, NULL);
        free(buf);
    }
    return rc == OH_ENOTFOUND ? 0 : rc;
}

static json_t *rec_get(const struct oh_contact_dir *d, const char *prefix, const char *a,
                       const char *b)
{
    char key[OH_CONTACT_VALUE_MAX + 80];
    snprintf(key, sizeof key, "%s%s%s%s", prefix, a, b ? ":" : "", b ? b : "");
    json_t *v;
    rec_read(d, key, &v);
    return v;
}

static int rec_put(const struct oh_contact_dir *d, const char *prefix, const char *a, const char *b,
                   const json_t *v)
{
    char key[OH_CONTACT_VALUE_MAX + 80];
    snprintf(key, sizeof key, "%s%s%s%s", prefix, a, b ? ":" : "", b ? b : "");
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    /* never a record rec_read could not read back */
    int rc = !text                                 ? OH_ENOMEM
             : strlen(text) >= OH_CONTACT_READ_MAX ? OH_ETOOBIG
                                                   : d->put(d->opaque, key, text);
    free(text);
    return rc;
}

static int rec_del(const struct oh_contact_dir *d, const char *prefix, const char *a, const char *b)
{
    char key[OH_CONTACT_VALUE_MAX + 80];
    snprintf(key, sizeof key, "%s%s%s%s", prefix, a, b ? ":" : "", b ? b : "");
    int rc = d->del(d->opaque, key);
    return rc == OH_ENOTFOUND ? 0 : rc;
}

/* Contact ID's record into *OUT (NULL: absent): 0, or the space's error
 * (OH_ETOOBIG: larger than a record may be). */
static int contact_read(const struct oh_contact_dir *d, const char *id, json_t **out)
{
    char key[OH_CONTACT_VALUE_MAX + 80];
    snprintf(key, sizeof key, "c:%s", id);
    int rc = rec_read(d, key, out);
    if (*out && !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* Contact ID's record, NULL when absent or unreadable. */
static json_t *contact_get(const struct oh_contact_dir *d, const char *id)
{
    json_t *c;
    contact_read(d, id, &c);
    return c;
}

static int contact_put(const struct oh_contact_dir *d, const json_t *c)
{
    return rec_put(d, "c:", json_string_value(json_object_get(c, "id")), NULL, c);
}

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static bool has_str(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Adds S to the sorted set ARR (bounded by MAX). */
static void set_add(json_t *arr, const char *s, size_t max)
{
    if (has_str(arr, s) || json_array_size(arr) >= max) return;
    json_array_append_new(arr, json_string(s));
    oh_json_array_sort(arr, cmp_str);
}

/* The bytes record C takes when written (rec_put's dump). */
static size_t rec_size(const json_t *c)
{
    return json_dumpb(c, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

static void set_del(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(v), s) == 0)
    {
        json_array_remove(arr, i);
        return;
    }
}

int oh_contact_root(const struct oh_contact_dir *d, const char *id, char out[OH_ID_MAX])
{
    json_t *c = contact_get(d, id);
    if (!c) return OH_ENOTFOUND;
    snprintf(out, OH_ID_MAX, "%s", *str(c, "root") ? str(c, "root") : id);
    json_decref(c);
    return 0;
}

/* NAME as kept in a contact record: at most OH_CONTACT_NAME_MAX bytes, cut
 * on a character boundary (NAME is valid UTF-8: the events are checked),
 * so that no name, however long, makes the record too big to read back. */
static json_t *name_json(const char *name)
{
    size_t n = name ? strnlen(name, OH_CONTACT_NAME_MAX + 1) : 0;
    if (n > OH_CONTACT_NAME_MAX) {
        n = OH_CONTACT_NAME_MAX;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(name ? name : "", n);
}

static json_t *contact_new(const char *id, const char *name)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:[], s:[], s:[s], s:b}", "id", id, "root", id, "parent",
                     "", "name", name_json(name), "ids", "convs", "members", id, "erased", 0);
}

static bool ident_in(const json_t *ids, const struct oh_contact_ident *x)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) if (strcmp(str(v, "type"), x->type) == 0 &&
                                      strcmp(str(v, "value"), x->value) == 0 &&
                                      json_is_true(json_object_get(v, "verified")) ==
                                          x->verified) return true;
    return false;
}

/* The id of a new person: it follows from what identifies them, so two
 * sync members creating them at once create the same contact. */
static void new_id(const char *conv, const struct oh_contact_ident *ids, int n,
                   char out[OH_ID_MAX])
{
    int first = -1;
    for (int i = 0; i < n && first < 0; i++)
        if (ids[i].verified) first = i;
    if (first >= 0)
        oh_event_id(out, "contact", ids[first].type, ids[first].value, NULL);
    else
        oh_event_id(out, "contact", "conversation", conv, NULL);
    out[0] = 'p'; /* "p_": a person, not an event */
}

/* The number of further pages of conversations record C has. */
static json_int_t pages_of(const json_t *c)
{
    json_int_t n = json_integer_value(json_object_get(c, "pages"));
    return n < 0 ? 0 : n > OH_CONTACT_PAGES_MAX ? OH_CONTACT_PAGES_MAX : n;
}

/* Whether conversation S still fits on PAGE (contacts.h). */
static bool page_room(const json_t *page, const char *s)
{
    size_t bytes = 2 + strlen(s) + 3, i; /* [] and "s", */
    json_t *v;
    if (json_array_size(page) >= OH_CONTACT_CONVS_MAX) return false;
    json_array_foreach(page, i, v) bytes += json_string_length(v) + 3;
    return bytes <= OH_CONTACT_PAGE_BYTES;
}

/* Lists conversation CONV on contact C, whose record the caller writes:
 * on the record's own page while it has room (records of before pages read
 * unchanged), then on its last further page, a new one when that is full.
 * Linking reads the record and that page only (k: makes it idempotent). */
static int conv_add(const struct oh_contact_dir *d, json_t *c, const char *conv)
{
    json_t *first = json_object_get(c, "convs"), *last = NULL;
    json_int_t pages = pages_of(c);
    if (!json_is_array(first)) json_object_set_new(c, "convs", first = json_array());
    if (has_str(first, conv)) return 0;
    if (!pages && page_room(first, conv) && rec_size(c) + strlen(conv) + 3 <= REC_ROOM) {
        set_add(first, conv, OH_CONTACT_CONVS_MAX);
        return 0;
    }
    char key[OH_ID_MAX + 32];
    snprintf(key, sizeof key, "p:%s:%lld", str(c, "id"), (long long)pages);
    int rc = pages ? rec_read(d, key, &last) : 0;
    if (rc) return rc;
    if (!json_is_array(last)) {
        json_decref(last);
        last = json_array();
    }
    if (has_str(last, conv)) {
        json_decref(last);
        return 0;
    }
    if (!pages || !page_room(last, conv)) {
        json_decref(last);
        if (pages >= OH_CONTACT_PAGES_MAX) {
            OH_ERROR("contacts",
                     "contact %s lists the most conversations it keeps (%d pages): "
                     "conversation %s is linked to it but not listed, so merges do not "
                     "re-point it and an erasure of the contact does not erase it",
                     str(c, "id"), OH_CONTACT_PAGES_MAX, conv);
            return 0;
        }
        last = json_array();
        json_object_set_new(c, "pages", json_integer(++pages));
        snprintf(key, sizeof key, "p:%s:%lld", str(c, "id"), (long long)pages);
    }
    json_array_append_new(last, json_string(conv));
    char *text = json_dumps(last, JSON_COMPACT);
    rc = text ? d->put(d->opaque, key, text) : OH_ENOMEM;
    free(text);
    json_decref(last);
    return rc;
}

static int link_conv(const struct oh_contact_dir *d, const char *conv,
                     const struct oh_contact_ident *ids, int n, const char *name,
                     char out[OH_ID_MAX])
{
    /* linked already: linked again, its contact taking what it lacks of
     * what this event brings (a status linked the conversation: it has
     * neither a name nor all of a message's identifiers), unless erased */
    char owner[OH_ID_MAX] = "";
    json_t *k = rec_get(d, "k:", conv, NULL);
    if (json_is_string(k)) snprintf(owner, sizeof owner, "%s", json_string_value(k));
    json_decref(k);
    bool relink = *owner && oh_contact_root(d, owner, out) == 0; /* (0 or OH_ENOTFOUND) */
    if (!relink) *owner = '\0';
    /* else the owner of a verified identifier it brings */
    for (int i = 0; i < n && !*owner; i++) {
        if (!ids[i].verified) continue;
        json_t *o = rec_get(d, "v:", ids[i].type, ids[i].value);
        if (json_is_string(o)) snprintf(owner, sizeof owner, "%s", json_string_value(o));
        json_decref(o);
    }
    json_t *c = NULL;
    int rc = *owner ? contact_read(d, owner, &c) : 0;
    if (relink && (rc || !c || json_is_true(json_object_get(c, "erased")))) {
        json_decref(c); /* (a contact that cannot be read: as linked) */
        return 0;
    }
    if (rc == 0 && !c) {
        /* a new person: the id follows from what identifies them, so two
         * sync members creating them at once create the same contact */
        new_id(conv, ids, n, owner);
        if ((rc = contact_read(d, owner, &c)) == 0 && !c) c = contact_new(owner, name);
    }
    if (rc) { /* never written over: a record that cannot be read is not absent */
        if (rc == OH_ETOOBIG)
            OH_ERROR("contacts",
                     "contact %s: its record is larger than the directory reads; "
                     "conversation %s is not linked to it",
                     owner, conv);
        return rc;
    }
    if (!c) return OH_ENOMEM;
    json_t *cids = json_object_get(c, "ids");
    size_t size = rec_size(c), had = json_array_size(cids); /* what it takes, as it grows */
    for (int i = 0; i < n && rc == 0; i++) {
        /* an identifier the record cannot list leaves no trace either: an
         * erasure forgets the identifiers the record lists */
        if (!ident_in(cids, &ids[i])) {
            json_t *x = json_array_size(cids) < 64
                            ? json_pack("{s:s, s:s, s:b}", "type", ids[i].type, "value",
                                        ids[i].value, "verified", ids[i].verified)
                            : NULL;
            size_t more = x ? rec_size(x) + 1 : 0;
            if (!x || size + more > REC_ROOM) {
                json_decref(x);
                OH_WARN("contacts",
                        "contact %s: its record is full (64 identifiers or %d bytes); a %s "
                        "identifier is not kept",
                        str(c, "id"), OH_CONTACT_RECORD_MAX, ids[i].type);
                continue;
            }
            json_array_append_new(cids, x);
            size += more;
        }
        if (ids[i].verified) {
            json_t *o = rec_get(d, "v:", ids[i].type, ids[i].value);
            if (!json_is_string(o)) {
                json_t *s = json_string(owner);
                rc = rec_put(d, "v:", ids[i].type, ids[i].value, s);
                json_decref(s);
            }
            json_decref(o);
        } else {
            json_t *u = rec_get(d, "u:", ids[i].type, ids[i].value);
            if (!json_is_array(u)) {
                json_decref(u);
                u = json_array();
            }
            if (!has_str(u, owner)) {
                set_add(u, owner, 100);
                rc = rec_put(d, "u:", ids[i].type, ids[i].value, u);
            }
            json_decref(u);
        }
    }
    bool named = false;
    if (!*str(c, "name") && name && *name) {
        json_t *nm = name_json(name);
        if ((named = nm && size + rec_size(nm) <= REC_ROOM))
            json_object_set_new(c, "name", nm);
        else
            json_decref(nm);
    }
    if (relink && !named && json_array_size(cids) == had) { /* nothing new */
        json_decref(c);
        return rc;
    }
    /* an erased person writing again: what they bring now is kept */
    json_object_set_new(c, "erased", json_false());
    /* (linked again: listed and looked up already) */
    if (rc == 0 && !relink) rc = conv_add(d, c, conv);
    if (rc == 0) rc = contact_put(d, c);
    if (rc == 0 && !relink) {
        json_t *s = json_string(owner);
        rc = rec_put(d, "k:", conv, NULL, s);
        json_decref(s);
    }
    if (rc == 0) snprintf(out, OH_ID_MAX, "%s", *str(c, "root") ? str(c, "root") : owner);
    json_decref(c);
    return rc;
}

int oh_contact_link(const struct oh_contact_dir *d, const char *conv,
                    const struct oh_contact_ident *ids, int n, const char *name,
                    char out[OH_ID_MAX])
{
    int rc = OH_ERETRY;
    for (int i = 0; i < OH_CONTACT_TRIES && rc == OH_ERETRY; i++) {
        struct oh_contact_tx t;
        struct oh_contact_dir w = oh_contact_tx_begin(&t, d);
        rc = oh_contact_tx_end(&t, link_conv(&w, conv, ids, n, name, out));
    }
    return rc;
}

/* Adds key PREFIX A[:B] to KEYS (strings kept in KEEP). */
static void key_add(json_t *keys, const char *prefix, const char *a, const char *b)
{
    char key[OH_CONTACT_VALUE_MAX + 80];
    snprintf(key, sizeof key, "%s%s%s%s", prefix, a, b ? ":" : "", b ? b : "");
    json_array_append_new(keys, json_string(key));
}

static int fetch_keys(struct oh_contact_tx *t, json_t *keys)
{
    size_t n = json_array_size(keys);
    const char **k = calloc(n ? n : 1, sizeof *k);
    if (!k) return OH_ENOMEM;
    for (size_t i = 0; i < n; i++)
        k[i] = json_string_value(json_array_get(keys, i));
    int rc = oh_contact_tx_fetch(t, k, n);
    free(k);
    return rc;
}

int oh_contact_batch_prefetch(struct oh_contact_batch *b, const struct oh_contact_linkreq *req,
                              size_t k)
{
    struct oh_contact_tx *t = b->tx;
    if (!t || !t->d->get_many || !k) return 0;
    json_t *keys = json_array(), *next = json_array();
    int rc = keys && next ? 0 : OH_ENOMEM;
    for (size_t i = 0; i < k && rc == 0; i++) {
        char id[OH_ID_MAX];
        key_add(keys, "k:", req[i].conv, NULL);
        for (int j = 0; j < req[i].n; j++)
            key_add(keys, req[i].ids[j].verified ? "v:" : "u:", req[i].ids[j].type,
                    req[i].ids[j].value);
        new_id(req[i].conv, req[i].ids, req[i].n, id);
        key_add(keys, "c:", id, NULL);
    }
    if (rc == 0) rc = fetch_keys(t, keys);
    /* then the contacts those name (a conversation's, an identifier's owner) */
    size_t i;
    json_t *key;
    json_array_foreach(keys, i, key)
    {
        const char *ks = json_string_value(key);
        json_t *v = json_object_get(t->read, ks);
        if (rc || (strncmp(ks, "k:", 2) && strncmp(ks, "v:", 2)) || !json_is_string(v)) continue;
        json_t *owner = json_loads(json_string_value(v), JSON_DECODE_ANY, NULL);
        if (json_is_string(owner)) key_add(next, "c:", json_string_value(owner), NULL);
        json_decref(owner);
    }
    if (rc == 0) rc = fetch_keys(t, next);
    /* then the last further page of those contacts that have some (a link
     * appends there): a third round only when one has */
    json_t *last = json_array();
    json_array_extend(keys, next);
    json_array_foreach(keys, i, key)
    {
        const char *ks = json_string_value(key);
        json_t *v = json_object_get(t->read, ks);
        if (rc || strncmp(ks, "c:", 2) || !json_is_string(v) ||
            !strstr(json_string_value(v), "\"pages\":"))
            continue;
        json_t *c = json_loads(json_string_value(v), 0, NULL);
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)pages_of(c));
        if (pages_of(c)) key_add(last, "p:", ks + 2, num);
        json_decref(c);
    }
    if (rc == 0) rc = last ? fetch_keys(t, last) : OH_ENOMEM;
    json_decref(keys);
    json_decref(next);
    json_decref(last);
    return rc;
}

struct many {
    json_t *out;
};

static void many_one(void *ctx, size_t i, const char *value)
{
    struct many *m = ctx;
    json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);
    if (v) json_array_set_new(m->out, i, v);
}

/* The records under KEYS (an array of strings) into *OUT, a new array in
 * their order (null: absent), read in one round when the space can: 0, or
 * the space's error (*OUT NULL). */
static int recs_get(const struct oh_contact_dir *d, json_t *keys, json_t **out)
{
    size_t n = json_array_size(keys);
    const char **k = calloc(n ? n : 1, sizeof *k);
    struct many m = {json_array()};
    int rc = k && m.out ? 0 : OH_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        k[i] = json_string_value(json_array_get(keys, i));
        rc = json_array_append_new(m.out, json_null()) ? OH_ENOMEM : 0;
    }
    if (rc == 0 && n && d->get_many) rc = d->get_many(d->opaque, k, n, many_one, &m);
    for (size_t i = 0; i < n && rc == 0 && !d->get_many; i++) {
        json_t *v;
        rc = rec_read(d, k[i], &v);
        if (v) json_array_set_new(m.out, i, v);
    }
    free(k);
    if (rc) {
        json_decref(m.out);
        m.out = NULL;
    }
    *out = m.out;
    return rc;
}

/* The records of root R's members (R itself for the root), in one round,
 * into *OUT (a new array): 0, or the space's error. */
static int family_recs(const struct oh_contact_dir *d, const json_t *r, json_t **out)
{
    json_t *keys = json_array(), *got = NULL, *m;
    size_t i;
    const json_t *members = json_object_get(r, "members");
    json_array_foreach(members, i, m) key_add(keys, "c:", json_string_value(m), NULL);
    int rc = keys ? recs_get(d, keys, &got) : OH_ENOMEM;
    json_decref(keys);
    *out = rc ? NULL : json_array();
    json_array_foreach(rc ? NULL : members, i, m)
    {
        json_t *c =
            strcmp(json_string_value(m), str(r, "id")) == 0 ? (json_t *)r : json_array_get(got, i);
        if (json_is_object(c)) json_array_append(*out, c);
    }
    json_decref(got);
    return *out || rc ? rc : OH_ENOMEM;
}

/* The conversations the records RECS list: each one's own page, then its
 * further pages, all read in one round; into *OUT (a new array). */
static int convs_of(const struct oh_contact_dir *d, const json_t *recs, json_t **out)
{
    json_t *all = json_array(), *keys = json_array(), *pages = NULL, *c, *v;
    size_t i, j;
    json_array_foreach(recs, i, c)
    {
        json_array_foreach(json_object_get(c, "convs"), j, v) json_array_append(all, v);
        for (json_int_t k = 1; keys && k <= pages_of(c); k++) {
            char num[24];
            snprintf(num, sizeof num, "%lld", (long long)k);
            key_add(keys, "p:", str(c, "id"), num);
        }
    }
    int rc = all && keys ? recs_get(d, keys, &pages) : OH_ENOMEM;
    json_array_foreach(pages, i, c) if (json_is_array(c)) json_array_extend(all, c);
    json_decref(pages);
    json_decref(keys);
    if (rc) {
        json_decref(all);
        all = NULL;
    }
    *out = all;
    return rc;
}

/* The conversations of every member of root R (a new array), or NULL when
 * the directory cannot be read: never a part of them. */
static json_t *family_convs(const struct oh_contact_dir *d, const json_t *r)
{
    json_t *recs = NULL, *all = NULL;
    if (family_recs(d, r, &recs) == 0) convs_of(d, recs, &all);
    json_decref(recs);
    return all;
}

/* Suggestions for root R: other people holding one of the family's
 * identifiers where at least one side holds it unverified. */
static json_t *suggestions(const struct oh_contact_dir *d, const json_t *r, const json_t *ids)
{
    json_t *out = json_array(), *seen = json_object(), *v;
    size_t i;
    const char *self = str(r, "id");
    json_array_foreach(ids, i, v)
    {
        const char *t = str(v, "type"), *val = str(v, "value");
        json_t *cands = json_array();
        json_t *u = rec_get(d, "u:", t, val);
        size_t j;
        json_t *x;
        if (json_is_array(u)) json_array_extend(cands, u);
        json_decref(u);
        if (!json_is_true(json_object_get(v, "verified"))) {
            json_t *o = rec_get(d, "v:", t, val);
            if (json_is_string(o)) json_array_append(cands, o);
            json_decref(o);
        }
        json_array_foreach(cands, j, x)
        {
            char root[OH_ID_MAX];
            if (oh_contact_root(d, json_string_value(x), root) || strcmp(root, self) == 0 ||
                json_object_get(seen, root))
                continue;
            json_object_set_new(seen, root, json_true());
            json_array_append_new(out, json_pack("{s:s, s:{s:s, s:s}}", "contact_id", root,
                                                 "identifier", "type", t, "value", val));
        }
        json_decref(cands);
    }
    json_decref(seen);
    return out;
}

/* Adds identifier V to the family's list IDS once: two merged people may
 * both hold it, verified if either side verified it. */
static void add_ident(json_t *ids, json_t *v)
{
    json_t *w;
    size_t i;
    json_array_foreach(ids, i, w)
    {
        if (strcmp(str(w, "type"), str(v, "type")) != 0 ||
            strcmp(str(w, "value"), str(v, "value")) != 0)
            continue;
        if (json_is_true(json_object_get(v, "verified")) &&
            !json_is_true(json_object_get(w, "verified"))) {
            json_t *both = json_deep_copy(w);
            json_object_set_new(both, "verified", json_true());
            json_array_set_new(ids, i, both);
        }
        return;
    }
    json_array_append(ids, v);
}

int oh_contact_get(const struct oh_contact_dir *d, const char *id, json_t **out)
{
    char root[OH_ID_MAX];
    int rc = oh_contact_root(d, id, root);
    if (rc) return rc;
    json_t *r = contact_get(d, root);
    if (!r) return OH_ENOTFOUND;
    json_t *ids = json_array(), *merged = json_array(), *recs = NULL, *convs = NULL, *c, *v;
    size_t i, j;
    const char *name = str(r, "name");
    rc = family_recs(d, r, &recs);
    json_array_foreach(recs, i, c)
    {
        if (strcmp(str(c, "id"), root) != 0)
            json_array_append_new(merged, json_string(str(c, "id")));
        json_array_foreach(json_object_get(c, "ids"), j, v) add_ident(ids, v);
    }
    if (rc == 0) rc = convs_of(d, recs, &convs);
    json_decref(recs);
    if (rc) {
        json_decref(ids);
        json_decref(merged);
        json_decref(r);
        return rc;
    }
    oh_json_array_sort(convs, cmp_str);
    *out = json_pack("{s:s, s:s, s:O, s:o, s:o, s:o, s:b}", "contact_id", root, "name", name,
                     "identifiers", ids, "conversations", convs, "merged", merged, "suggestions",
                     suggestions(d, r, ids), "erased", json_is_true(json_object_get(r, "erased")));
    json_decref(ids);
    json_decref(r);
    return *out ? 0 : OH_ENOMEM;
}

int oh_contact_find(const struct oh_contact_dir *d, const char *type, const char *value,
                    const char *region, char out[OH_ID_MAX])
{
    struct oh_contact_ident id;
    if (!oh_contact_type_ok(type) || !oh_contact_value_ok(value)) return OH_EINVAL;
    snprintf(id.type, sizeof id.type, "%s", type);
    snprintf(id.value, sizeof id.value, "%s", value);
    if (!oh_contact_normalize(&id, region)) return OH_EINVAL;
    json_t *o = rec_get(d, "v:", id.type, id.value);
    if (!json_is_string(o)) {
        json_t *u = rec_get(d, "u:", id.type, id.value);
        json_decref(o);
        o = json_is_array(u) ? json_incref(json_array_get(u, 0)) : NULL;
        json_decref(u);
    }
    int rc = json_is_string(o) ? oh_contact_root(d, json_string_value(o), out) : OH_ENOTFOUND;
    json_decref(o);
    return rc;
}

/* ---- commands ---- */

int oh_contact_check(const char *op, const json_t *body, char *why, size_t whylen)
{
    if (!json_is_object(body)) {
        snprintf(why, whylen, "body must be a JSON object");
        return 400;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)body, k, v)
    {
        if (strcmp(k, strcmp(op, "merge") == 0 ? "other" : "identifier") != 0) {
            snprintf(why, whylen, "unknown field \"%.64s\"", k);
            return 400;
        }
    }
    if (strcmp(op, "merge") == 0) {
        const char *o = json_string_value(json_object_get(body, "other"));
        if (!o || !oh_id_valid(o, strlen(o))) {
            snprintf(why, whylen, "other must be a contact id");
            return 400;
        }
        return 0;
    }
    const json_t *id = json_object_get(body, "identifier");
    const char *t = json_string_value(json_object_get(id, "type"));
    const char *val = json_string_value(json_object_get(id, "value"));
    if (!t || !val || json_object_size(id) != 2 || !oh_contact_type_ok(t) ||
        !oh_contact_value_ok(val)) {
        snprintf(why, whylen, "identifier must be {type, value} (strings)");
        return 400;
    }
    return 0;
}

static void refuse(struct oh_contact_result *out, int code, const char *why)
{
    out->code = code;
    snprintf(out->why, sizeof out->why, "%s", why);
}

/* The family's conversations could not be read: the decision is not
 * written (oh_contact_command), the caller may try again. */
static void unread(struct oh_contact_result *out)
{
    refuse(out, 503, "the directory could not be read");
    out->changed = false;
}

/* A write of the decision failed with RC: nothing of it is written
 * (oh_contact_command writes only what a 200 decided). */
static void unwritten(struct oh_contact_result *out, int rc)
{
    if (rc == OH_ETOOBIG) /* trying again does not help */
        refuse(out, 409, "the change would make a contact's record larger than one is kept");
    else
        refuse(out, 503, "the directory refused the change");
}

static void merge(const struct oh_contact_dir *d, json_t *a, const char *other,
                  struct oh_contact_result *out)
{
    char rb[OH_ID_MAX];
    if (oh_contact_root(d, other, rb)) {
        refuse(out, 404, "no such contact (other)");
        return;
    }
    snprintf(out->other, sizeof out->other, "%s", rb);
    if (strcmp(rb, out->root) == 0) {
        out->code = 200; /* one person already: the conversations are re-pointed again */
        if (!(out->convs = family_convs(d, a))) unread(out);
        return;
    }
    json_t *b = contact_get(d, rb), *m;
    size_t i;
    if (!b) {
        refuse(out, 404, "no such contact (other)");
        return;
    }
    if (json_is_true(json_object_get(b, "erased")) || json_is_true(json_object_get(a, "erased"))) {
        json_decref(b);
        refuse(out, 409, "an erased contact is not merged");
        return;
    }
    /* the root's record lists the family's members: the merge is refused
     * before anything is written when the record could not hold them */
    size_t size = rec_size(a);
    json_array_foreach(json_object_get(b, "members"), i, m)
    {
        if (!has_str(json_object_get(a, "members"), json_string_value(m)))
            size += json_string_length(m) + 3;
    }
    size_t members = json_array_size(json_object_get(a, "members")) +
                     json_array_size(json_object_get(b, "members"));
    if (size > REC_ROOM || members > OH_CONTACT_MEMBERS_MAX) {
        json_decref(b);
        refuse(out, 409, "the merged contact would list more members than one contact holds");
        return;
    }
    out->moved = family_convs(d, b); /* before its members are re-rooted */
    if (!out->moved) {
        json_decref(b);
        unread(out);
        return;
    }
    json_array_foreach(json_object_get(b, "members"), i, m)
    {
        json_t *c = strcmp(json_string_value(m), rb) == 0 ? json_incref(b)
                                                          : contact_get(d, json_string_value(m));
        if (!c) continue;
        json_object_set_new(c, "root", json_string(out->root));
        if (c != b) contact_put(d, c);
        set_add(json_object_get(a, "members"), json_string_value(m), OH_CONTACT_MEMBERS_MAX);
        json_decref(c);
    }
    json_object_set_new(b, "parent", json_string(out->root));
    json_object_set_new(b, "members", json_array());
    int rc = contact_put(d, b);
    if (rc == 0) rc = contact_put(d, a);
    json_decref(b);
    if (rc) {
        unwritten(out, rc);
        return;
    }
    out->code = 200;
    out->changed = true;
    if (!(out->convs = family_convs(d, a))) unread(out);
}

/* Whether member M of root R lies under X (M itself, or its parents reach X
 * before R). */
static bool under(const struct oh_contact_dir *d, const char *m, const char *x, const char *r)
{
    char cur[OH_ID_MAX];
    snprintf(cur, sizeof cur, "%s", m);
    for (int hops = 0; hops < 10000; hops++) {
        if (strcmp(cur, x) == 0) return true;
        if (strcmp(cur, r) == 0 || !*cur) return false;
        json_t *c = contact_get(d, cur);
        snprintf(cur, sizeof cur, "%s", c ? str(c, "parent") : "");
        json_decref(c);
    }
    return false;
}

static void unmerge(const struct oh_contact_dir *d, json_t *a, const json_t *ident,
                    const char *region, struct oh_contact_result *out)
{
    const char *root = out->root;
    struct oh_contact_ident id;
    snprintf(id.type, sizeof id.type, "%s", str(ident, "type"));
    snprintf(id.value, sizeof id.value, "%s", str(ident, "value"));
    if (!oh_contact_normalize(&id, region)) {
        refuse(out, 400, "identifier does not normalize");
        return;
    }
    /* its owner in this family: the verified index, else the members' lists */
    char owner[OH_ID_MAX] = "";
    json_t *o = rec_get(d, "v:", id.type, id.value), *m;
    if (json_is_string(o)) snprintf(owner, sizeof owner, "%s", json_string_value(o));
    json_decref(o);
    size_t i;
    if (!*owner) {
        json_t *u = rec_get(d, "u:", id.type, id.value), *x;
        json_array_foreach(u, i, x)
        {
            char r[OH_ID_MAX];
            if (!oh_contact_root(d, json_string_value(x), r) && strcmp(r, root) == 0) {
                snprintf(owner, sizeof owner, "%s", json_string_value(x));
                break;
            }
        }
        if (!*owner && json_array_size(u))
            snprintf(owner, sizeof owner, "%s", json_string_value(json_array_get(u, 0)));
        json_decref(u);
    }
    char orr[OH_ID_MAX];
    if (!*owner || oh_contact_root(d, owner, orr)) {
        refuse(out, 404, "no contact holds it");
        return;
    }
    if (strcmp(orr, root) != 0) {
        out->code = 200; /* not (or no longer) merged here: nothing to undo */
        snprintf(out->other, sizeof out->other, "%s", orr);
        json_t *x = contact_get(d, orr);
        out->convs = x ? family_convs(d, x) : json_array();
        json_decref(x);
        if (!out->convs) unread(out);
        return;
    }
    if (strcmp(owner, root) == 0) {
        refuse(out, 409, "the identifier is the contact's own; only merged ones split off");
        return;
    }
    /* X: the contact that was merged into the root and brought OWNER */
    char x[OH_ID_MAX];
    snprintf(x, sizeof x, "%s", owner);
    for (int hops = 0; hops < 10000; hops++) {
        json_t *c = contact_get(d, x);
        const char *p = c ? str(c, "parent") : "";
        bool top = !*p || strcmp(p, root) == 0;
        if (!top) snprintf(x, sizeof x, "%s", p);
        json_decref(c);
        if (top) break;
    }
    json_t *sub = json_array(), *keep = json_array();
    json_array_foreach(json_object_get(a, "members"), i, m)
    {
        const char *mid = json_string_value(m);
        json_array_append(under(d, mid, x, root) ? sub : keep, m);
    }
    json_t *xc = NULL;
    int rc = 0;
    json_array_foreach(sub, i, m)
    {
        json_t *c = contact_get(d, json_string_value(m));
        if (!c) continue;
        json_object_set_new(c, "root", json_string(x));
        if (strcmp(json_string_value(m), x) == 0) {
            json_object_set_new(c, "parent", json_string(""));
            json_object_set(c, "members", sub);
            xc = json_incref(c);
        }
        int prc = contact_put(d, c);
        if (!rc) rc = prc;
        json_decref(c);
    }
    json_object_set(a, "members", keep);
    if (!rc) rc = contact_put(d, a);
    json_decref(keep);
    json_decref(sub);
    if (rc || !xc) {
        json_decref(xc);
        unwritten(out, rc ? rc : OH_EIO);
        return;
    }
    snprintf(out->other, sizeof out->other, "%s", x);
    out->code = 200;
    out->changed = true;
    out->convs = family_convs(d, xc);
    out->moved = json_incref(out->convs);
    json_decref(xc);
    if (!out->convs) unread(out);
}

static void erase(const struct oh_contact_dir *d, json_t *a, struct oh_contact_result *out)
{
    json_t *m, *v;
    size_t i, j;
    if (!(out->convs = family_convs(d, a))) { /* erasing part of them is no erasure */
        unread(out);
        return;
    }
    json_array_foreach(json_object_get(a, "members"), i, m)
    {
        json_t *c = strcmp(json_string_value(m), out->root) == 0
                        ? json_incref(a)
                        : contact_get(d, json_string_value(m));
        if (!c) continue;
        json_array_foreach(json_object_get(c, "ids"), j, v)
        {
            const char *t = str(v, "type"), *val = str(v, "value");
            if (json_is_true(json_object_get(v, "verified"))) {
                json_t *o = rec_get(d, "v:", t, val);
                if (json_is_string(o) && strcmp(json_string_value(o), json_string_value(m)) == 0)
                    rec_del(d, "v:", t, val);
                json_decref(o);
            } else {
                json_t *u = rec_get(d, "u:", t, val);
                if (json_is_array(u)) {
                    set_del(u, json_string_value(m));
                    if (json_array_size(u))
                        rec_put(d, "u:", t, val, u);
                    else
                        rec_del(d, "u:", t, val);
                }
                json_decref(u);
            }
        }
        json_object_set_new(c, "ids", json_array());
        json_object_set_new(c, "name", json_string(""));
        json_object_set_new(c, "erased", json_true());
        if (c != a) contact_put(d, c);
        json_decref(c);
    }
    if (contact_put(d, a)) {
        refuse(out, 503, "the directory refused the change");
        return;
    }
    out->code = 200;
    out->changed = true;
}

static void command(const struct oh_contact_dir *d, const json_t *cmd, const char *region,
                    struct oh_contact_result *out)
{
    const char *op = str(cmd, "op"), *id = str(cmd, "contact_id");
    if (oh_contact_root(d, id, out->root)) {
        refuse(out, 404, "no such contact");
        return;
    }
    json_t *a = contact_get(d, out->root);
    if (!a) {
        refuse(out, 404, "no such contact");
        return;
    }
    if (strcmp(op, "merge") == 0)
        merge(d, a, str(cmd, "other"), out);
    else if (strcmp(op, "unmerge") == 0)
        unmerge(d, a, json_object_get(cmd, "identifier"), region, out);
    else if (strcmp(op, "erase") == 0)
        erase(d, a, out);
    else
        refuse(out, 400, "unknown contact command");
    json_decref(a);
}

void oh_contact_command(const struct oh_contact_dir *d, const json_t *cmd, const char *region,
                        const struct oh_contact_then *then, struct oh_contact_result *out)
{
    int rc = OH_ERETRY;
    const char *op = str(cmd, "op");
    bool repoint = d->write && (strcmp(op, "merge") == 0 || strcmp(op, "unmerge") == 0);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < OH_CONTACT_TRIES && rc == OH_ERETRY; i++) {
        struct oh_contact_tx t;
        struct oh_contact_dir w = oh_contact_tx_begin(&t, d);
        oh_contact_result_clear(out);
        command(&w, cmd, region, out);
        int then_rc =
            then && out->code == 200 && out->changed ? then->fn(then->opaque, &w, out) : 0;
        /* the conversations are pointed in the same checked write: decided
         * from a directory that moved meanwhile, neither happens */
        size_t n = repoint && out->code == 200 ? json_array_size(out->convs) : 0;
        const char **convs = n ? calloc(n, sizeof *convs) : NULL;
        struct oh_contact_refs refs = {convs, n,
                                       strcmp(op, "unmerge") == 0 ? out->other : out->root};
        for (size_t j = 0; convs && j < n; j++)
            convs[j] = json_string_value(json_array_get(out->convs, j));
        /* by id, the order sync's batches lock conversation rows in */
        if (convs) qsort(convs, n, sizeof *convs, cmp_cstr);
        if (convs) t.refs = &refs;
        /* a refusal writes nothing it did (a 503 or 409 after some puts) */
        rc = oh_contact_tx_end(&t, then_rc            ? then_rc
                                   : out->code != 200 ? OH_EIO
                                   : n && !convs      ? OH_ENOMEM
                                                      : 0);
        free(convs);
    }
    if (rc && out->code == 200) {
        json_decref(out->convs);
        json_decref(out->moved);
        out->convs = out->moved = NULL;
        out->changed = false;
        refuse(out, 503,
               rc == OH_ERETRY ? "the directory kept changing under the decision; try again"
                               : "the directory refused the change");
    }
}

void oh_contact_result_clear(struct oh_contact_result *out)
{
    json_decref(out->convs);
    json_decref(out->moved);
    memset(out, 0, sizeof *out);
}
