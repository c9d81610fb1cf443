/* convstate.h - the desk's conversation state (CONTRACT part 2) and the pure
 * reducer that decides every change of it: PATCH, claim, snooze wakes and
 * the re-opening by an inbound message. The sync service is its only caller
 * at run time (the one sequencer); the gateway uses the body checks. */
#ifndef OH_CONVSTATE_H
#define OH_CONVSTATE_H

#include <jansson.h>
#include "core/oh.h"

/* A state command: built by the gateway (PATCH, claim) or by sync (snooze
 * wake), appended to the events topic, evaluated by sync in log order and
 * never sequenced. data: {conversation_id, channel, account, op:
 * "patch"|"claim"|"wake"|"raise_priority"|"assign"|"breach", set: {fields}
 * (patch), if_match: head (optional), until: ms (wake), priority
 * (raise_priority: the state's priority becomes it when it is higher, never
 * lower; reason "triage"), author: {kind, id}, reason: "handoff:<why>"
 * (optional, the bot's patch: the change's reason instead of "patch")}.
 * assign (the router): assignee (id or null), expect (the assignee the
 * decision saw, null: none), reason "routed"|"requeued"; applied only while
 * the conversation is open and still held by EXPECT, else 409, so a
 * repeated or stale decision changes nothing.
 * breach (the SLA service): kind "frt"|"nrt", episode, sla (the
 * conversation's sla object); applied only while the conversation is open
 * in that episode, else 409; changes {sla}, reason "sla_breach:<kind>". */
#define OH_EV_COMMAND "omnihub.conversation.command"

#define OH_LABELS_MAX   32   /* labels of one conversation */
#define OH_LABEL_MAX    64   /* bytes of one label */
#define OH_STATE_ID_MAX 127  /* bytes of an assignee or team id */
#define OH_LABELS_TEXT  2304 /* the labels' JSON text, bounded by the above */

/* A new conversation's state: open, nobody assigned, no team, normal
 * priority, no labels, no snooze, episode 1. New reference. */
json_t *oh_convstate_new(const char *contact_id);

/* The state object of a stored conversation (ASSIGNEE, TEAM "" = none;
 * LABELS its JSON array text). New reference. */
json_t *oh_convstate_make(const char *status, const char *assignee, const char *team,
                          const char *priority, const char *labels, int64_t snoozed_until_ms,
                          const char *contact_id, int64_t episode);

/* Checks a PATCH body (the fields of CONTRACT part 2 only, each a valid
 * value; snoozed_until in the future at NOW_MS, after 1970 when NOW_MS is
 * 0): 0, or 400 with the reason in WHY. */
int oh_convstate_check_patch(const json_t *body, int64_t now_ms, char *why, size_t whylen);

/* What one command came to. */
struct oh_convstate_result {
    int code;           /* 200, 400, 404, 409 (another assignee), 412 (head moved) */
    json_t *changes;    /* 200 and something changed: {field: new value}, owned; else NULL */
    json_t *body;       /* the answer's body to record: the new state (200) or the
                           contract's error object; owned */
    const char *reason; /* of the conversation.updated: "patch", "claim", "snooze_expired",
                           "triage", "routed", "requeued", "sla_breach:frt",
                           "sla_breach:nrt" */
};

/* Evaluates command CMD (the command event's data) against STATE, the
 * conversation's state, whose head is HEAD; an accepted change is applied to
 * STATE in place. The caller frees OUT with oh_convstate_result_clear(). */
void oh_convstate_command(json_t *state, int64_t head, const json_t *cmd,
                          struct oh_convstate_result *out);
void oh_convstate_result_clear(struct oh_convstate_result *out);

/* An inbound message arrived: a pending, snoozed or resolved conversation
 * is open again (a new episode when it was resolved). Returns the changes
 * (owned by the caller) and applies them to STATE, or NULL when none. */
json_t *oh_convstate_inbound(json_t *state);

/* The snooze's end of STATE in ms, 0 when not snoozed. */
int64_t oh_convstate_snoozed_until(const json_t *state);

#endif
