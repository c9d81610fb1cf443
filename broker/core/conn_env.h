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

/* The webhook authentication the connector's vtable declares
 * (.webhook_auth), before its .webhook: OH_OK with *ANSWERED false when the
 * request goes on to the connector; OH_OK with *ANSWERED true when the core
 * answered it in REPLY (a subscription check); or OH_EAUTH, OH_EFORBIDDEN,
 * OH_EINVAL with ERR. Runs on the HTTP service thread; pure apart from the
 * rejection counter. */
int oh_conn_webhook_auth(const struct oh_instance *in, const struct oh_http_req *req,
                         struct oh_http_reply *reply, bool *answered, char *err, size_t errlen);
/* The same for connector VT with its keys' values given (unit tests). */
int oh_webhook_auth(const struct oh_connector *vt, const char *verify_token, const char *app_secret,
                    const struct oh_http_req *req, struct oh_http_reply *reply, bool *answered,
                    char *err, size_t errlen);

#endif
