/* sync_state.h - the sync service's part of the desk's conversation state:
 * turns state commands and inbound messages of a batch, in log order, into
 * sequenced omnihub.conversation.updated events and command outcomes
 * (core/convstate.h decides), and wakes snoozed conversations. Runs on the
 * sync service's thread only. */
#ifndef OH_SYNC_STATE_H
#define OH_SYNC_STATE_H

#include "core/hub.h"

/* The desk's view of one batch: the states of its conversations as the
 * store had them, kept up to date in memory while the batch is built. */
struct oh_sync_desk;

/* NULL when out of memory. Free with oh_sync_desk_free(). */
struct oh_sync_desk *oh_sync_desk_new(oh_hub *hub);
void oh_sync_desk_free(struct oh_sync_desk *d);

/* Adds record event EV (takes it) read at PARTITION/OFFSET to ITEMS, which
 * hold *N items and room for four more: a message as itself, followed by
 * the conversation.updated it causes (a re-open), and with inline triage
 * (triage.inline, this process running the enrich role too) a customer's
 * message by its omnihub.message.enriched event and the raise_priority
 * it decides (a conversation.updated and outcome); a command as its
 * conversation.updated and outcome, or its outcome alone (refused, no
 * change), or nothing (decided before). Returns 0, or OH_ECLOSED when the
 * hub stopped while the store was unavailable. */
int oh_sync_desk_add(struct oh_sync_desk *d, struct oh_store_item *items, size_t *n, json_t *ev,
                     int32_t partition, int64_t offset);

/* After the batch's items were committed: tells the hub which command
 * outcomes exist now, then forgets the batch (call also when the batch was
 * given up, with COMMITTED false). */
void oh_sync_desk_done(struct oh_sync_desk *d, bool committed);

/* Forgets what it knows of the states (the partitions moved: another
 * member may have changed them). */
void oh_sync_desk_forget(struct oh_sync_desk *d);

/* Appends a wake command for each snoozed conversation whose time passed
 * (at most every second; a wake already appended is not repeated for
 * 10 s, and a repeat is decided as a no-op and dropped by id). */
void oh_sync_desk_wake(struct oh_sync_desk *d);

#endif
