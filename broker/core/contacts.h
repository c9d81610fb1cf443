/* contacts.h - one person across channels (CONTRACT part 2, Contacts): the
 * identifiers an event carries, phone numbers in E.164, and the directory's
 * rules (link on verified identifiers only, merge, unmerge, erase) over a
 * key/value space the caller provides. Pure apart from that space: the sync
 * service runs it over the store's kv, the unit tests over memory. */
#ifndef OH_CONTACTS_H
#define OH_CONTACTS_H

#include <jansson.h>
#include "core/oh.h"
#include "core/event.h"

/* A contact command on the events topic (like OH_EV_COMMAND, never
 * sequenced): data {contact_id, op: "merge"|"unmerge"|"erase", other (merge),
 * identifier {type, value} (unmerge), author {kind, id}}; subject = the
 * contact id. Sync decides it and sequences one of the events below on the
 * contact's own timeline (subject and Kafka key = the contact id). */
#define OH_EV_CONTACT_COMMAND  "omnihub.contact.command"
#define OH_EV_CONTACT_MERGED   "omnihub.contact.merged"
#define OH_EV_CONTACT_UNMERGED "omnihub.contact.unmerged"
#define OH_EV_CONTACT_ERASED   "omnihub.contact.erased"
/* what an erased message's history row holds instead (seq stays dense) */
#define OH_EV_ERASED "omnihub.message.erased"

/* Identifier types of CONTRACT part 2 besides a channel's own ids (the
 * email type is the address, whichever channel it came from). */
#define OH_IDENT_PHONE "phone"
#define OH_IDENT_EMAIL "email"

#define OH_CONTACT_IDS_MAX   16   /* identifiers one event may bring */
#define OH_CONTACT_VALUE_MAX 256  /* bytes of one identifier's value */
#define OH_CONTACT_NAME_MAX  256  /* bytes of a name a contact keeps (longer: cut) */
/* A contact lists its conversations in pages of at most OH_CONTACT_CONVS_MAX
 * ids and OH_CONTACT_PAGE_BYTES bytes of JSON (a kv value stays under 64
 * KiB): the first in its record, the others under "p:<contact>:<k>", up to
 * OH_CONTACT_PAGES_MAX of them (about 101,000 conversations); a conversation
 * past that is linked but not listed, logged as an error. */
#define OH_CONTACT_CONVS_MAX  1000
#define OH_CONTACT_PAGE_BYTES 40000
#define OH_CONTACT_PAGES_MAX  100
/* A contact's record (its identifiers, name, first page and, for a root,
 * its merged members), dumped, stays within this many bytes, under the
 * kv's 64 KiB: an identifier that would pass it is not kept (logged), a
 * conversation goes to a further page, and a merge that would pass it is
 * refused (409). */
#define OH_CONTACT_RECORD_MAX  60000
#define OH_CONTACT_MEMBERS_MAX 10000 /* contacts merged into one, at most */

struct oh_contact_ident {
    char type[64]; /* OH_IDENT_PHONE, OH_IDENT_EMAIL or a channel's name */
    char value[OH_CONTACT_VALUE_MAX];
    bool verified;
};

/* IN (national or international notation: +, 00/011, spaces, dots,
 * dashes, parentheses) as E.164 into OUT (>= 17 bytes), a national number
 * taking REGION's (ISO 3166 alpha-2, e.g. "DE") calling code after its
 * trunk prefix is dropped. 0, or OH_EINVAL when it is not a plausible
 * number (7..15 digits, known calling code) or REGION is unknown. */
int oh_phone_e164(const char *in, const char *region, char *out, size_t outlen);

/* The identifiers of the contact of event data DATA: its
 * data.contact.identifiers (phone to E.164, email case-folded; an entry
 * that does not normalize is dropped), then the channel's own id
 * {type: channel, value: contact.id, verified: true} unless the connector
 * listed that type itself (an entry of it that was dropped counts: the
 * connector spoke for it); the own id is normalized as an identifier of its
 * type and dropped when it does not normalize. Returns how many were
 * written to OUT (<= MAX). */
int oh_contact_idents(const json_t *data, const char *region, struct oh_contact_ident *out,
                      int max);

/* What one operation decided from: the N keys it read and the values it
 * found (VALUES[i] NULL: absent). */
struct oh_contact_seen {
    const char *const *keys;
    const char *const *values;
    size_t n;
};

/* How often oh_contact_link and oh_contact_command decide again when their
 * write finds the directory changed (OH_ERETRY, below) before they give up. */
#define OH_CONTACT_TRIES 8

/* Conversations a write points at contact TO (a merge's or an unmerge's),
 * in the same transaction as the directory's changes. */
struct oh_contact_refs {
    const char *const *convs;
    size_t n;
    const char *to;
};

/* The key/value space the directory lives in; get copies into OUT
 * (OH_ENOTFOUND when absent). Keys: "c:<contact>" (its record, with its
 * first page of conversations and how many more pages it has, "pages"),
 * "p:<contact>:<k>" (its k-th further page of conversations, k from 1),
 * "v:<type>:<value>" (the owner of a verified identifier),
 * "u:<type>:<value>" (contacts holding it unverified), "k:<conversation>"
 * (its contact), "e:<command>" (the event a decided command produced). */
struct oh_contact_dir {
    void *opaque;
    int (*get)(void *opaque, const char *key, char *out, size_t outlen);
    int (*put)(void *opaque, const char *key, const char *value);
    int (*del)(void *opaque, const char *key);
    /* optional: the N writes of one operation at once, atomically (VALUES[i]
     * NULL: delete KEYS[i]); without it they are put and deleted in turn.
     * SEEN (NULL: unchecked) is what they were decided from: when a key of
     * it no longer holds what was read (another sync member wrote it
     * meanwhile), nothing is written and the answer is OH_ERETRY, so the
     * operation reads again and decides again instead of overwriting.
     * REFS (NULL: none) are written with them, checked the same way: a
     * conversation is never pointed at a root another member's merge has
     * meanwhile merged away. N may be 0 when REFS is not NULL. */
    int (*write)(void *opaque, const char *const *keys, const char *const *values, size_t n,
                 const struct oh_contact_seen *seen, const struct oh_contact_refs *refs);
    /* optional: reads the N KEYS at once, FN(CTX, i, value) for each one
     * present (absent ones are skipped) */
    int (*get_many)(void *opaque, const char *const *keys, size_t n,
                    void (*fn)(void *ctx, size_t i, const char *value), void *ctx);
};

/* Links conversation CONV, whose contact brings IDS (N of them) and NAME
 * (kept cut to OH_CONTACT_NAME_MAX bytes when the contact has none yet),
 * to a contact: the one owning one of its verified identifiers, else a new
 * one (id derived from the first verified identifier, or from CONV), which
 * takes IDS. Unverified identifiers never link. Idempotent (a conversation
 * linked before keeps its contact). The contact the conversation belongs to
 * now (after merges: the root) goes to OUT (OH_ID_MAX). Decided again
 * while the write answers OH_ERETRY, up to OH_CONTACT_TRIES times (then
 * OH_ERETRY). An identifier the record has no room for (64, or
 * OH_CONTACT_RECORD_MAX) is neither listed nor looked up by later. The
 * contact's record unreadable: its error, nothing written (OH_ETOOBIG:
 * larger than the directory reads, which trying again does not change). */
int oh_contact_link(const struct oh_contact_dir *d, const char *conv,
                    const struct oh_contact_ident *ids, int n, const char *name,
                    char out[OH_ID_MAX]);

/* Several operations whose writes go to the directory together: run them
 * on B->dir after oh_contact_batch_begin(), then oh_contact_batch_end()
 * writes what they changed in one go (WRITE false: forgets it). */
struct oh_contact_batch {
    void *tx; /* contacts.c's */
    struct oh_contact_dir dir;
};
/* OH_ENOMEM when out of memory (then end is not called). A batch (like
 * each single operation) reads every key from the space once, a miss too,
 * and keeps it until its end: nothing is cached from one batch to the next,
 * so a directory another sync member changed in between is read afresh.
 * End writes with what the batch read as its SEEN: OH_ERETRY when another
 * member changed one of those keys meanwhile (nothing written; the caller
 * runs the batch again). */
int oh_contact_batch_begin(struct oh_contact_batch *b, const struct oh_contact_dir *d);
int oh_contact_batch_end(struct oh_contact_batch *b, bool write);

/* One conversation to link: its id and its contact's identifiers. */
struct oh_contact_linkreq {
    const char *conv;
    const struct oh_contact_ident *ids;
    int n;
};
/* Reads what linking the K conversations of REQ will read into batch B
 * ahead, in two get_many calls (the conversations' and identifiers' keys
 * and the new ids' contacts; then the contacts those name), a third only
 * when one of those contacts has further pages of conversations (their
 * last pages), instead of one get per key. Nothing without get_many.
 * Optional: links read what was not fetched. */
int oh_contact_batch_prefetch(struct oh_contact_batch *b, const struct oh_contact_linkreq *req,
                              size_t k);

/* The contact ID resolves to now (ID itself unless merged). */
int oh_contact_root(const struct oh_contact_dir *d, const char *id, char out[OH_ID_MAX]);

/* The contact object {contact_id, name, identifiers, conversations,
 * merged, suggestions, erased} of ID's root; *OUT a new reference.
 * OH_ENOTFOUND when unknown; the space's error when a member's record or a
 * page of conversations cannot be read (never a part of the list). */
int oh_contact_get(const struct oh_contact_dir *d, const char *id, json_t **out);

/* The contact holding identifier TYPE:VALUE (normalized as for
 * oh_contact_idents with REGION), as its root: OH_ENOTFOUND when none. */
int oh_contact_find(const struct oh_contact_dir *d, const char *type, const char *value,
                    const char *region, char out[OH_ID_MAX]);

/* What a command came to. */
struct oh_contact_result {
    int code;              /* 200, 400, 404, 409 */
    bool changed;          /* something moved: an event is due */
    char root[OH_ID_MAX];  /* the contact the command is about, as a root */
    char other[OH_ID_MAX]; /* merge: the other root; unmerge: the split-off root */
    json_t *convs;         /* the conversations whose contact is now ROOT (merge,
                              erase) or OTHER (unmerge): a directory with write
                              points them there with its changes (erase: the
                              caller erases them); owned */
    json_t *moved;         /* of CONVS, those this decision moved from another
                              contact (merge: the other family's; unmerge: the
                              split-off family's); NULL when it moved none (a
                              re-decision, an erasure); owned */
    char why[160];         /* the refusal's message */
};

/* What a decision that changed something also writes: FN(OPAQUE, W, OUT)
 * reads and puts through W, the operation's view of the directory, so its
 * keys go in the same checked write as the decision's (all or none); a
 * non-zero answer writes nothing (OH_ERETRY: decided again, as when the
 * write finds the directory changed; else 503). */
struct oh_contact_then {
    int (*fn)(void *opaque, const struct oh_contact_dir *w, const struct oh_contact_result *out);
    void *opaque;
};

/* Decides and applies contact command CMD (its data) to the directory,
 * with THEN (NULL: none) when it changed something. Re-deciding an applied
 * command changes nothing more and reports the same conversations (the
 * caller's updates are idempotent). Decided again while the write answers
 * OH_ERETRY, up to OH_CONTACT_TRIES times (then 503); 503 with nothing
 * written when the family's conversations cannot be read. Clear OUT with
 * oh_contact_result_clear(). */
void oh_contact_command(const struct oh_contact_dir *d, const json_t *cmd, const char *region,
                        const struct oh_contact_then *then, struct oh_contact_result *out);
void oh_contact_result_clear(struct oh_contact_result *out);

/* Checks a merge/unmerge body before it is appended: 0, or 400 with WHY. */
int oh_contact_check(const char *op, const json_t *body, char *why, size_t whylen);

#endif
