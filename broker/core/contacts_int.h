/* contacts_int.h - what contacts.c, contacts_ident.c and contacts_tx.c
 * share. */
#ifndef OH_CONTACTS_INT_H
#define OH_CONTACTS_INT_H

#include <jansson.h>
#include <stdbool.h>
#include "core/contacts.h"

/* ID's value in its type's form (a phone in E.164 with REGION for national
 * numbers, an email case-folded); false when it does not normalize. */
bool oh_contact_normalize(struct oh_contact_ident *id, const char *region);
/* An identifier type: 1..63 of [A-Za-z0-9:._-]. */
bool oh_contact_type_ok(const char *t);
/* An identifier value: valid UTF-8 without control characters, under
 * OH_CONTACT_VALUE_MAX bytes. */
bool oh_contact_value_ok(const char *v);

/* A record read back, at most (a kv value is up to 64 KiB). */
#define OH_CONTACT_READ_MAX (64 * 1024 + 1)

/* An operation (or a batch of them) sees the directory as it read it
 * first: each key is read from the space once (a miss too) and kept with
 * the operation's own writes, which come first. Lives as long as the
 * operation: nothing is kept from one to the next. */
struct oh_contact_tx {
    const struct oh_contact_dir *d;
    json_t *pending;                    /* key -> new value, or null: deleted */
    json_t *read;                       /* key -> the value read, or null: absent */
    const struct oh_contact_refs *refs; /* written with them (d->write only) */
};

/* The directory as operation T sees it (its writes kept in T). */
struct oh_contact_dir oh_contact_tx_begin(struct oh_contact_tx *t, const struct oh_contact_dir *d);
/* Ends T: with RC 0 writes what it changed (in one go when the space can,
 * checked against what T read), else nothing; T's state is freed either
 * way. The write's answer, or RC. */
int oh_contact_tx_end(struct oh_contact_tx *t, int rc);
/* Reads the N KEYS T has not read yet at once (when the space can). */
int oh_contact_tx_fetch(struct oh_contact_tx *t, const char **keys, size_t n);

#endif
