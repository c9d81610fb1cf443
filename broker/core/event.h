/* event.h - the CloudEvents 1.0 envelope every normalized message, reaction
 * and status travels in, and the stable ids derived for it. */
#ifndef OH_EVENT_H
#define OH_EVENT_H

#include <jansson.h>
#include "core/oh.h"

#define OH_EV_INBOUND  "omnihub.message.inbound"
#define OH_EV_OUTBOUND "omnihub.message.outbound"
#define OH_EV_STATUS   "omnihub.message.status"
/* the desk (CONTRACT part 2) */
#define OH_EV_UPDATED  "omnihub.conversation.updated" /* sequenced, internal */
#define OH_EV_INTERNAL "omnihub.internal" /* what a customer sees in an internal event's place */

#define OH_ID_MAX 129 /* ids and conversation ids: at most 128 chars + NUL */

/* Stable, URL-safe id from a list of parts (NULL-terminated varargs).
 * The same parts always give the same id: "e_" + 32 base64url chars of
 * SHA-256 over the length-prefixed parts. OUT must hold OH_ID_MAX bytes. */
void oh_event_id(char out[OH_ID_MAX], const char *part, ...) __attribute__((sentinel));

/* Conversation id for (channel, account, contact) on chat channels:
 * "c_" + 32 base64url chars of a SHA-256; no address in clear. */
void oh_conversation_id(char out[OH_ID_MAX], const char *channel, const char *account,
                        const char *contact);

/* True when S (LEN bytes) is a valid id: 1..128 characters of
 * [A-Za-z0-9._~-] (URL-safe, no escaping needed). */
bool oh_id_valid(const char *s, size_t len);

/* Builds a CloudEvent around DATA (takes ownership of DATA, which must be an
 * object holding at least conversation_id, channel and account). TYPE is one
 * of OH_EV_*; ID the stable event id; TIME_MS the event time (0 = now).
 * Returns a new reference, NULL on allocation failure. */
json_t *oh_event_new(const char *type, const char *id, int64_t time_ms, json_t *data);

/* Convenience: borrowed accessors into an event; NULL when absent. */
const char *oh_event_get_id(const json_t *ev);
const char *oh_event_get_type(const json_t *ev);
const char *oh_event_subject(const json_t *ev); /* the conversation id */
json_t *oh_event_data(const json_t *ev);
const char *oh_event_author_kind(const json_t *ev); /* data.author.kind, NULL none */
const char *oh_event_data_str(const json_t *ev, const char *field);

/* Checks the envelope's required attributes and data fields; fills ERR.
 * Used on everything entering the log from outside the broker. */
int oh_event_validate(const json_t *ev, char *err, size_t errlen);

/* Milliseconds for a provider's Unix time in SECONDS; 0 when it is not a
 * time between 1970 and 9999 (callers then use the receive time). */
int64_t oh_time_from_seconds(int64_t seconds);

/* RFC 3339 UTC with milliseconds ("2026-11-23T10:00:00.000Z"); times outside
 * 1970..9999 are clamped. OUT >= 32. */
void oh_time_rfc3339(char out[32], int64_t ms);
/* Parses RFC 3339 (with offset or Z); returns OH_EINVAL on bad input. */
int oh_time_parse(const char *s, int64_t *ms);

/* True when S (LEN bytes) is valid UTF-8 without NUL bytes. */
bool oh_utf8_valid(const char *s, size_t len);
/* Replaces, in place, every byte of S that is not part of valid UTF-8 with
 * '?', so the text can go into JSON. */
void oh_utf8_sanitize(char *s);

/* ---- what a customer may see (visibility.c; CONTRACT part 2) ---- */

#define OH_EV_ENRICHED       "omnihub.message.enriched" /* sequenced, internal */
#define OH_EV_CONTACT_PREFIX "omnihub.contact."         /* contact events, internal */

enum oh_visibility {
    OH_VIS_ALL,      /* shown whole */
    OH_VIS_DESK,     /* a message shown without the desk's members (OH_DESK_MEMBERS) */
    OH_VIS_REDUCED,  /* a status change to open/resolved: shown reduced to it */
    OH_VIS_INTERNAL, /* shown as a placeholder */
};
/* The members of a message's data that are the desk's, not the message's:
 * the bot's workings (kind, confidence, the knowledge base's article ids,
 * whether an LLM wrote it) and the suggestion an agent's reply was made
 * from. Agents see them; customers get the message without them. */
#define OH_DESK_MEMBERS "bot", "suggestion"
/* What a customer may see of EV: internal are omnihub.conversation.*
 * (but for a status change to open or resolved), omnihub.message.enriched,
 * omnihub.contact.* and any event whose data.internal is true (an agent's
 * private note); a message with desk members is shown without them. Agents
 * see every event whole. */
enum oh_visibility oh_event_visibility(const json_t *ev);
/* True when EV is not shown to a customer as the message it is (a
 * placeholder or a reduced status change; a message without its desk
 * members still is one). */
bool oh_event_internal(const json_t *ev);
/* What a customer gets in EV's place (a new reference): EV itself when it
 * is shown whole; a message with desk members, a copy without them; for a
 * status change, EV with data reduced to conversation_id, channel,
 * account, changes.status and state.status; else the placeholder
 * {specversion, id, type "omnihub.internal", time, subject, seq, epoch},
 * which keeps the customer's seq dense. NULL when out of memory. */
json_t *oh_event_for_customer(const json_t *ev);
/* A cheap look at the stored text of an event (LEN bytes): false when it
 * certainly is shown whole to customers (no internal type, no "internal"
 * member, no desk member), so that history pages pass most events on
 * unparsed. */
bool oh_event_text_maybe_internal(const char *json, size_t len);
/* The text a customer gets for the stored event JSON (LEN bytes): 0 with
 * *OUT NULL when the text is shown as it is, 0 with *OUT (caller frees) and
 * *OUTLEN otherwise; OH_EINVAL when JSON does not parse, OH_ENOMEM. */
int oh_event_customer_text(const char *json, size_t len, char **out, size_t *outlen);

/* A growable list of events (owned references). */
struct oh_event_list {
    json_t **ev;
    size_t n, cap;
};
/* Appends EV (takes the reference). OH_ENOMEM on failure (EV released). */
int oh_event_list_push(struct oh_event_list *l, json_t *ev);
/* Releases every event and the array; the list is reusable afterwards. */
void oh_event_list_clear(struct oh_event_list *l);

/* Builds the status event recorded for one of our outbound messages
 * (OUTBOUND, borrowed): STATE sent, failed, delivered or read; its id
 * depends on the message and STATE only, so a state is stored once.
 * Returns a new reference (NULL when out of memory). */
json_t *oh_status_event(const json_t *outbound, const char *state, const char *provider_id,
                        const char *error_code, const char *error);

#endif
