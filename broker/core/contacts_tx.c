/* contacts_tx.c - one contact operation's (or batch's) view of the
 * directory: every key read once and kept with the operation's own writes,
 * which go to the space together at its end (contacts_int.h). */
#include <stdlib.h>
#include <string.h>
#include "core/contacts.h"
#include "core/contacts_int.h"

static int copy_out(const json_t *v, char *out, size_t len)
{
    if (json_is_null(v)) return OH_ENOTFOUND;
    if (json_string_length(v) >= len) return OH_ETOOBIG;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int tx_get(void *o, const char *key, char *out, size_t len)
{
    struct oh_contact_tx *t = o;
    json_t *v = json_object_get(t->pending, key);
    if (v) return copy_out(v, out, len);
    if ((v = json_object_get(t->read, key))) return copy_out(v, out, len);
    int rc = t->d->get(t->d->opaque, key, out, len);
    if (rc == 0 || rc == OH_ENOTFOUND) {
        json_object_set_new(t->read, key, rc ? json_null() : json_string(out));
    } else if (rc == OH_ETOOBIG) {
        char *buf = malloc(OH_CONTACT_READ_MAX);
        if (buf && t->d->get(t->d->opaque, key, buf, OH_CONTACT_READ_MAX) == 0)
            json_object_set_new(t->read, key, json_string(buf));
        free(buf);
    }
    return rc;
}

static int tx_put(void *o, const char *key, const char *value)
{
    struct oh_contact_tx *t = o;
    return json_object_set_new(t->pending, key, json_string(value)) ? OH_ENOMEM : 0;
}

static int tx_del(void *o, const char *key)
{
    struct oh_contact_tx *t = o;
    return json_object_set_new(t->pending, key, json_null()) ? OH_ENOMEM : 0;
}

struct got {
    struct oh_contact_tx *t;
    const char *const *keys;
};

static void got_one(void *ctx, size_t i, const char *value)
{
    struct got *g = ctx;
    json_object_set_new(g->t->read, g->keys[i], json_string(value));
}

/* Reads the N KEYS not known yet at once (when the space can), keeping
 * what it finds and that the rest are absent. */
int oh_contact_tx_fetch(struct oh_contact_tx *t, const char **keys, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(t->pending, keys[i]) && !json_object_get(t->read, keys[i]))
            keys[m++] = keys[i];
    if (!m || !t->d->get_many) return 0;
    struct got g = {t, keys};
    int rc = t->d->get_many(t->d->opaque, keys, m, got_one, &g);
    if (rc) return rc;
    for (size_t i = 0; i < m; i++)
        if (!json_object_get(t->read, keys[i])) json_object_set_new(t->read, keys[i], json_null());
    return 0;
}

/* Reads KEY (any size the space keeps) into what the operation read. */
static int tx_load(struct oh_contact_tx *t, const char *key)
{
    char *buf = malloc(OH_CONTACT_READ_MAX);
    int rc = buf ? t->d->get(t->d->opaque, key, buf, OH_CONTACT_READ_MAX) : OH_ENOMEM;
    if (rc == 0 || rc == OH_ENOTFOUND)
        json_object_set_new(t->read, key, rc ? json_null() : json_string(buf));
    free(buf);
    return rc == OH_ENOTFOUND ? 0 : rc;
}

/* The operation's view of the N KEYS, what it has not read yet read in one
 * round when the space can (one key at a time when it cannot). */
static int tx_get_many(void *o, const char *const *keys, size_t n,
                       void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    struct oh_contact_tx *t = o;
    const char **k = calloc(n ? n : 1, sizeof *k);
    if (!k) return OH_ENOMEM;
    memcpy(k, keys, n * sizeof *k);
    int rc = oh_contact_tx_fetch(t, k, n);
    free(k);
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *v = json_object_get(t->pending, keys[i]);
        if (!v && !(v = json_object_get(t->read, keys[i]))) {
            rc = tx_load(t, keys[i]);
            v = json_object_get(t->read, keys[i]);
        }
        if (json_is_string(v)) fn(ctx, i, json_string_value(v));
    }
    return rc;
}

struct oh_contact_dir oh_contact_tx_begin(struct oh_contact_tx *t, const struct oh_contact_dir *d)
{
    t->d = d;
    t->pending = json_object();
    t->read = json_object();
    t->refs = NULL;
    return (struct oh_contact_dir){t, tx_get, tx_put, tx_del, NULL, tx_get_many};
}

/* OBJ's keys and their string values (NULL for null) as two arrays
 * (OBJ keeps owning the strings); false when out of memory. */
static bool flatten(json_t *obj, const char ***keys, const char ***vals)
{
    size_t n = json_object_size(obj), i = 0;
    const char *k;
    json_t *v;
    *keys = calloc(n ? n : 1, sizeof **keys);
    *vals = calloc(n ? n : 1, sizeof **vals);
    if (!*keys || !*vals) return false;
    json_object_foreach(obj, k, v)
    {
        (*keys)[i] = k;
        (*vals)[i++] = json_string_value(v);
    }
    return true;
}

/* Writes what the operation changed (in one go when the space can, checked
 * against what it read), then forgets it; RC: the operation's result
 * (nothing is written unless 0). */
int oh_contact_tx_end(struct oh_contact_tx *t, int rc)
{
    size_t n = json_object_size(t->pending), i;
    const char **keys, **vals, **rkeys = NULL, **rvals = NULL;
    if (!flatten(t->pending, &keys, &vals) || !flatten(t->read, &rkeys, &rvals))
        rc = rc ? rc : OH_ENOMEM;
    if (rc == 0 && (n || (t->refs && t->d->write))) {
        if (t->d->write) {
            struct oh_contact_seen seen = {rkeys, rvals, json_object_size(t->read)};
            rc = t->d->write(t->d->opaque, keys, vals, n, &seen, t->refs);
        } else {
            for (i = 0; i < n && rc == 0; i++) {
                rc = vals[i] ? t->d->put(t->d->opaque, keys[i], vals[i])
                             : t->d->del(t->d->opaque, keys[i]);
                if (rc == OH_ENOTFOUND) rc = 0;
            }
        }
    }
    free(keys);
    free(vals);
    free(rkeys);
    free(rvals);
    json_decref(t->pending);
    json_decref(t->read);
    return rc;
}

int oh_contact_batch_begin(struct oh_contact_batch *b, const struct oh_contact_dir *d)
{
    struct oh_contact_tx *t = malloc(sizeof *t);
    if (!t) return OH_ENOMEM;
    b->dir = oh_contact_tx_begin(t, d);
    if (!t->pending || !t->read) {
        json_decref(t->pending);
        json_decref(t->read);
        free(t);
        return OH_ENOMEM;
    }
    b->tx = t;
    return 0;
}

int oh_contact_batch_end(struct oh_contact_batch *b, bool write)
{
    struct oh_contact_tx *t = b->tx;
    int rc = oh_contact_tx_end(t, write ? 0 : OH_ECLOSED);
    free(t);
    b->tx = NULL;
    return write ? rc : 0;
}
