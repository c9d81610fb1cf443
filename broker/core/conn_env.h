/* conn_env.h - the daemon's side of the connector environment: one env per
 * connector instance, and the rules several channels share, applied around
 * a connector's webhook and send. Not for connectors (they see connector.h). */
#ifndef OH_CONN_ENV_H
#define OH_CONN_ENV_H

#include "core/connector.h"
#include "core/hub.h"

struct oh_instance;

/* The env of VT's instances in HUB (borrowed by the env; HUB's store may be
 * NULL). NULL when out of memory. Free with oh_conn_env_free(), after the
 * instance is destroyed. */
struct oh_conn_env *oh_conn_env_new(oh_hub *hub, const struct oh_connector *vt);
void oh_conn_env_free(struct oh_conn_env *env);

/* The connector's send behind the customer-service window its vtable
 * declares. Same contract as oh_connector.send. Runs on a dispatcher
 * thread; may block. */
int oh_conn_send(const struct oh_instance *in, const json_t *event, struct oh_send_result *res);

#endif
