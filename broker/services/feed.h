/* feed.h - a gateway's timeline follower for live push (Kafka roles). */
#ifndef OH_FEED_H
#define OH_FEED_H

#include "core/hub.h"

struct oh_feed_reader;
/* Starts following the timeline from its end; NULL + ERR on failure. */
struct oh_feed_reader *oh_feed_start(oh_hub *hub, char *err, size_t errlen);
void oh_feed_stop(struct oh_feed_reader *f);

#endif
