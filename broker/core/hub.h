/* hub.h - the ingest path of the running daemon: validated, normalized
 * events appended to the log (connectors reach it through their env). */
#ifndef OH_HUB_H
#define OH_HUB_H

#include "core/oh.h"
#include "core/config.h"
#include "core/event.h"
#include "log/log.h"
#include "store/store.h"

typedef struct oh_hub oh_hub;

/* Called once all events of one ingest call are durable (err 0) or one of
 * them failed (err < 0). Runs on a log thread: must not block. */
typedef void (*oh_hub_done_fn)(void *opaque, int err);

/* The largest record an event is appended as, in bytes: under Kafka's
 * default message.max.bytes (1,000,000) with room for what the timeline's
 * copy adds (seq, epoch, metadata), so an event the log took can always be
 * forwarded. */
#define OH_HUB_RECORD_MAX (1000000 - OH_LOG_TIMELINE_ROOM)

/* The bound a record of HUB's log has: OH_HUB_RECORD_MAX, and with Kafka at
 * most kafka.message_max_bytes less OH_LOG_TIMELINE_ROOM (a lowered limit
 * lowers it, so the timeline's copy of any event acknowledged still fits). */
size_t oh_hub_record_max(oh_hub *hub);

/* Validates and appends every event of EVENTS to the events topic, keyed by
 * its conversation id. Takes the events (the list is left empty). DONE is
 * called exactly once, unless a negative value is returned: OH_EINVAL for
 * an invalid event, OH_ETOOBIG for one whose record is over
 * oh_hub_record_max() (then none of them is appended). Any thread. */
int oh_hub_ingest(oh_hub *hub, struct oh_event_list *events, oh_hub_done_fn done, void *opaque);

/* oh_hub_ingest for an append a client waits on (a request's 202): the
 * gateway's reads of that conversation wait until sync has stored it
 * (oh_hub_appended_at). Services' own appends use oh_hub_ingest. */
int oh_hub_ingest_client(oh_hub *hub, struct oh_event_list *events, oh_hub_done_fn done,
                         void *opaque);

/* Blocking form for pollers and tools; never call it on the HTTP thread. */
int oh_hub_ingest_wait(oh_hub *hub, struct oh_event_list *events);

/* True when this process appended an event with subject ID (a conversation
 * id) in the last WITHIN_MS: its 202 may have reached the client before
 * sync stored it. Remembers the last few thousand subjects, so a false
 * answer only means "not lately". Any thread. */
bool oh_hub_appended_lately(const char *id, int64_t within_ms);

/* When this process appended to subject ID in the last WITHIN_MS and a
 * client's append of it (oh_hub_ingest_client) has completed: where the last
 * such lies in the events topic (PARTITION, OFFSET). Read your writes: once sync's stored
 * position passes OFFSET, the store shows that event. Any thread. */
bool oh_hub_appended_at(const char *id, int64_t within_ms, int32_t *partition, int64_t *offset);

#endif
