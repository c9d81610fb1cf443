/* feed.c - the live feed of a gateway that does not materialize itself
 * (Kafka, role gateway): follows the timeline topic from its end and hands
 * each sequenced event to the WebSocket subscribers. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "services/feed.h"

struct oh_feed_reader {
    oh_hub *hub;
    oh_log_consumer *c;
    pthread_t thread;
};

static void *run(void *arg)
{
    struct oh_feed_reader *f = arg;
    struct oh_log_record recs[256];
    while (!atomic_load(&f->hub->stopping)) {
        int n = oh_log_poll(f->c, recs, 256, 200);
        if (n < 0) {
            usleep(200000);
            continue;
        }
        for (int i = 0; i < n; i++) {
            json_t *ev = json_loadb(recs[i].value, recs[i].len, 0, NULL);
            json_t *seq = json_object_get(ev, "seq");
            const char *conv = oh_event_subject(ev);
            if (conv && json_is_integer(seq))
                oh_hub_feed(f->hub, conv, json_integer_value(seq), recs[i].value, recs[i].len);
            json_decref(ev);
        }
    }
    return NULL;
}

struct oh_feed_reader *oh_feed_start(oh_hub *hub, char *err, size_t errlen)
{
    struct oh_feed_reader *f = calloc(1, sizeof *f);
    if (!f) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    f->hub = hub;
    f->c = oh_log_consumer_new(hub->log, NULL, OH_TOPIC_TIMELINE, NULL, err, errlen);
    if (!f->c || oh_log_seek_end(f->c) || pthread_create(&f->thread, NULL, run, f)) {
        if (f->c && !err[0])
            oh_errf(err, errlen, "cannot start the timeline reader");
        oh_log_consumer_close(f->c);
        free(f);
        return NULL;
    }
    pthread_setname_np(f->thread, "oh-feed");
    return f;
}

/* Call after hub->stopping is set. */
void oh_feed_stop(struct oh_feed_reader *f)
{
    if (!f)
        return;
    pthread_join(f->thread, NULL);
    oh_log_consumer_close(f->c);
    free(f);
}
