/* store_fields.h - private to the store backends: the fields of an event
 * that the materialization needs, extracted once by store.c. */
#ifndef OH_STORE_FIELDS_H
#define OH_STORE_FIELDS_H

#include <jansson.h>
#include "store/store_int.h"

/* Borrowed pointers into the event; "" where a field is absent. */
struct oh_store_fields {
    const char *id, *conv, *type;
    const char *channel, *account, *contact_id, *contact_name;
    const char *message_id;  /* data.message_id */
    const char *status_mid;  /* data.status.message_id (else data.message_id) */
    const char *provider_id; /* data.status.provider_message_id */
    const char *state;       /* data.status.state for status events, else "" */
    int rank;                /* oh_store_state_rank(state) */
    bool inbound, status;
    int64_t ts_ms; /* "time", now when absent or unparsable */
    /* the inbox: an inbound or outbound message that is not a private note
     * (data.internal) sets the conversation's last message */
    bool message;          /* of type inbound or outbound */
    bool preview;          /* MESSAGE and not internal: becomes last_* */
    const char *direction; /* "inbound" | "outbound" when MESSAGE, else "" */
    const char *kind;      /* data.kind */
    const char *text;      /* data.text */
    const char *subject;   /* data.subject (email) */
};

/* The state an omnihub.conversation.updated leaves (its data.state), for
 * the conversation's state columns. Strings borrowed from the event. */
struct oh_store_state {
    bool set; /* the event is a conversation.updated with a state object */
    const char *status, *assignee, *team, *priority; /* "" for null */
    char labels[2304];                               /* JSON array text */
    int64_t snoozed_until_ms, episode;
};
void oh_store_state_get(const json_t *ev, struct oh_store_state *out);

/* The inbox preview of TEXT: at most OH_STORE_PREVIEW_CHARS characters,
 * cut at a UTF-8 character boundary. OUT holds 4 * that + 4 bytes. */
#define OH_STORE_PREVIEW_CHARS 200
void oh_store_preview(const char *text, char out[4 * OH_STORE_PREVIEW_CHARS + 4]);

/* The text of F's message that goes into the full-text index (text and
 * subject, at most OH_STORE_SEARCH_MAX bytes, cut at a character
 * boundary): NULL when there is none to index or out of memory; caller
 * frees with free(). */
#define OH_STORE_SEARCH_MAX 32768
char *oh_store_search_text(const struct oh_store_fields *f);

/* OH_EINVAL when EV is not an object or lacks id or conversation id. */
int oh_store_fields_get(const json_t *ev, struct oh_store_fields *f);

/* Removes any "seq"/"epoch" attribute from EV and returns its compact
 * serialization (caller frees with free()), NULL on allocation failure. */
char *oh_store_dump_unsequenced(json_t *ev);

/* Sets "seq" and "epoch" on EV. */
void oh_store_set_seq(json_t *ev, int64_t seq, const char *epoch);

/* Sets SEQ and EPOCH on IT's event (replacing any) and returns its stored
 * text, compact, ending in them (caller frees with free()): IT->raw with
 * them appended when given and the event carried neither, else the event
 * dumped. NULL on allocation failure. */
char *oh_store_sequenced_text(struct oh_store_item *it, int64_t seq, const char *epoch,
                              size_t *len);

/* The per-event checksum: CRC-32C of the event's text without its seq and
 * epoch (the compact text ending in `,"seq":SEQ,"epoch":"EPOCH"}` with that
 * suffix replaced by `}`), so that PostgreSQL, which appends the suffix in
 * SQL, stores the checksum computed here before the seq is known; the
 * suffix itself is checked against the row's seq and the store's epoch.
 * OH_EDAMAGED when JSON does not end in that suffix. */
int oh_store_text_crc(const char *json, size_t len, int64_t seq, const char *epoch, uint32_t *crc);

/* Checks a stored row before it is served. CRC < 0: a row stored before
 * checksums existed, served unverified. On a mismatch logs an ERROR naming
 * CONV and SEQ, counts omnihub_store_damaged_events_total and returns
 * OH_EDAMAGED. */
int oh_store_row_check(const char *conv, int64_t seq, const char *json, size_t len, int64_t crc,
                       const char *epoch);

#endif
