/* gateway.h - the HTTP and WebSocket front door (libwebsockets). */
#ifndef OH_GATEWAY_H
#define OH_GATEWAY_H

#include "core/hub.h"

/* Binds http.listen and prepares the service; NULL + ERR on failure. */
struct oh_gateway *oh_gateway_new(oh_hub *hub, char *err, size_t errlen);
/* Serves until oh_gateway_stop(), then closes the WebSocket clients with
 * 1001, going away (for at most a second); runs on the calling thread. */
int oh_gateway_run(struct oh_gateway *gw);
/* Asks the service loop to end; any thread, async-signal-safe. */
void oh_gateway_stop(struct oh_gateway *gw);
/* Finishes the work queued on the gateway's workers and stops them; after
 * it nothing of the gateway appends to the log. Ingests still in flight
 * complete into the gateway, so it must outlive the log: stop the loop,
 * drain, close the log, then free. */
void oh_gateway_drain(struct oh_gateway *gw);
void oh_gateway_free(struct oh_gateway *gw);

#endif
