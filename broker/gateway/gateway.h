/* gateway.h - the HTTP and WebSocket front door (libwebsockets). */
#ifndef OH_GATEWAY_H
#define OH_GATEWAY_H

#include "core/hub.h"

/* Binds http.listen (and http.admin_listen) and prepares the service,
 * before the log and the store are open; NULL + ERR on failure. Until
 * oh_gateway_ready(), /healthz and /metrics answer as usual, /readyz 503
 * "starting" and every other route (and WebSocket upgrade) 503. */
struct oh_gateway *oh_gateway_new(oh_hub *hub, char *err, size_t errlen);
/* Once the log, the store and the connectors are open, before the services
 * start: the service thread (which must be in oh_gateway_run()) connects
 * the gateway to them, and this waits for it. Any other thread; OH_OK, or
 * OH_EUNAVAIL with ERR when the gateway stopped first. */
int oh_gateway_attach(struct oh_gateway *gw, char *err, size_t errlen);
/* From now on every route is served (after oh_gateway_attach). Any thread. */
void oh_gateway_ready(struct oh_gateway *gw);
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
