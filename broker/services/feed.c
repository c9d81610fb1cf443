/* feed.c - the live feed of a gateway that does not materialize itself
 * (Kafka, role gateway): follows the timeline topic from its end and hands
 * each sequenced event to the WebSocket subscribers. A service (service.h)
 * without a group, on the thread "oh-feed"; it routes on the records'
 * metadata and never parses a body. */
#include "core/hub_int.h"
#include "services/service.h"

/* runs on the service's thread */
static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    oh_hub *hub = state;
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        if (r->meta.subject && r->meta.seq > 0) {
            oh_hub_feed(hub, r->meta.subject, r->meta.seq, r->value, r->len);
            continue;
        }
        /* written before records had metadata */
        json_t *ev = json_loadb(r->value, r->len, 0, NULL);
        json_t *seq = json_object_get(ev, "seq");
        const char *conv = oh_event_subject(ev);
        if (conv && json_is_integer(seq))
            oh_hub_feed(hub, conv, json_integer_value(seq), r->value, r->len);
        json_decref(ev);
    }
    return OH_OK;
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    *state = hub;
    return OH_OK;
}

/* only a gateway that does not run sync (which feeds it directly) */
static bool wanted(const oh_hub *hub)
{
    return hub->run_gateway && !hub->run_sync;
}

const struct oh_service oh_service_feed = {
    .name = "feed",
    .group = NULL,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 256,
    .wanted = wanted,
    .init = init,
    .process = process,
};
