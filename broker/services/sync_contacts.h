/* sync_contacts.h - the sync service's part of contacts (CONTRACT part 2):
 * links new conversations to contacts and decides contact commands in log
 * order (core/contacts.h decides), sequencing omnihub.contact.* events on
 * the contact's own timeline. Runs on the sync service's thread only. */
#ifndef OH_SYNC_CONTACTS_H
#define OH_SYNC_CONTACTS_H

#include "core/hub.h"
#include "store/store.h"

struct oh_sync_contacts;

/* NULL when contacts.enabled is off (or no store, or out of memory): the
 * functions below then do nothing. Free with oh_sync_contacts_free(). */
struct oh_sync_contacts *oh_sync_contacts_new(oh_hub *hub);
void oh_sync_contacts_free(struct oh_sync_contacts *c);

/* The batch's follow-up (struct oh_store_then, OPAQUE the
 * oh_sync_contacts): once the batch's N ITEMS have their seqs, links the
 * conversation of each inbound or outbound message that is new (seq 1) or
 * not known to be linked: the latter's k:<conv> is looked up first, so a
 * conversation that began with a status (or was stored before contacts
 * were on) is linked by its first message (a replay gives the stored seq
 * back, so it links again, to the same contact): their directory keys read
 * ahead at once, then the directory's writes and the contact_refs through
 * WRITE in one call (SQLite: in the batch's own transaction). 0, or the
 * error that fails the batch (sync retries it). */
int oh_sync_contacts_link(void *opaque, const struct oh_store_item *items, size_t n,
                          oh_store_contact_write_fn write, void *wctx);
/* After the batch committed: counts the conversations it linked and
 * remembers them as linked (a set of 2^18 hashes; one that falls out is
 * looked up again at its next message). */
void oh_sync_contacts_linked(struct oh_sync_contacts *c);

/* Contact command EV (borrowed; C not NULL) read at PARTITION/OFFSET:
 * decides and applies it and adds its outcome to ITEMS (room for one more;
 * nothing when it was decided before); its event waits for
 * oh_sync_contacts_take(). 0, or OH_ECLOSED. */
int oh_sync_contacts_command(struct oh_sync_contacts *c, struct oh_store_item *items, size_t *n,
                             json_t *ev, int32_t partition, int64_t offset);

/* After the batch: when COMMITTED, tells the hub which command outcomes
 * exist now and hands each contact event of the batch to FN (the timeline
 * and the live feed); then forgets the batch. Returns how many events. */
typedef void (*oh_sync_contacts_fn)(void *opaque, const char *contact, int64_t seq,
                                    const char *type, const char *json, size_t len);
int oh_sync_contacts_take(struct oh_sync_contacts *c, bool committed, oh_sync_contacts_fn fn,
                          void *opaque);

/* The thread CPU time spent linking and the conversations linked, since
 * start (the benchmark's figure). */
void oh_sync_contacts_cpu(const struct oh_sync_contacts *c, int64_t *ns, int64_t *links);

#endif
