/* x_send.c - the X connector's outbound side: agent replies as one-to-one
 * DMs through POST /2/dm_conversations/with/{participant_id}/messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/http_client.h"
#include "x.h"

static int fail(struct oh_send_result *res, int rc, const char *code, const char *msg)
{
    snprintf(res->error_code, sizeof res->error_code, "%s", code);
    snprintf(res->error, sizeof res->error, "%s", msg);
    return rc;
}

/* Remembers a dm_event_id of ours so that its echo is not stored again. */
static void remember(struct x_ctx *c, const char *event_id)
{
    pthread_mutex_lock(&c->lock);
    snprintf(c->recent[c->recent_next], sizeof c->recent[0], "%s", event_id);
    c->recent_next = (c->recent_next + 1) % X_RECENT;
    pthread_mutex_unlock(&c->lock);
}

/* X v2 errors: {"title","detail","type"} or {"errors":[{"message","code"}]}. */
static void explain(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *detail = json_string_value(json_object_get(j, "detail"));
    const char *title = json_string_value(json_object_get(j, "title"));
    const char *msg = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
    snprintf(out, outlen, "%s", detail ? detail : title ? title : msg ? msg : "unexpected answer");
    json_decref(j);
}

/* Runs on a dispatcher thread. */
int x_send(void *opaque, const json_t *event, struct oh_send_result *res)
{
    struct x_ctx *c = opaque;
    if (!c->conf.access_token)
        return fail(res, OH_EINVAL, "not_configured", "x.access_token is not set");
    const json_t *data = oh_event_data(event);
    const char *to = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
    const char *text = json_string_value(json_object_get(data, "text"));
    size_t n = to ? strlen(to) : 0;
    if (n == 0 || n > 24 || strspn(to, "0123456789") != n)
        return fail(res, OH_EINVAL, "invalid_recipient", "x: contact.id is not an X user id");
    if (json_array_size(json_object_get(data, "attachments")) > 0)
        return fail(res, OH_EINVAL, "unsupported",
                    "x: attachments need an uploaded media id; send a link in the text");
    if (!text || !*text) return fail(res, OH_EINVAL, "empty", "x: a DM needs text");
    json_t *payload = json_pack("{s:s}", "text", text);
    if (!payload) return fail(res, OH_ERETRY, "internal", "out of memory");
    char url[1024];
    snprintf(url, sizeof url, "%s/2/dm_conversations/with/%s/messages", c->conf.api_base_url, to);
    struct oh_http_post post = {
        .url = url, .json = payload, .bearer = c->conf.access_token, .timeout_ms = X_TIMEOUT_MS};
    struct oh_http_response resp;
    char err[256] = "";
    int rc = oh_http_post(&post, &resp, err, sizeof err);
    json_decref(payload);
    if (rc != OH_OK) {
        oh_http_response_free(&resp);
        return oh_http_send_outcome(NULL, rc, err[0] ? err : oh_strerror(rc), res);
    }
    long status = resp.status;
    if (status >= 200 && status < 300) {
        json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
        const char *eid =
            json_string_value(json_object_get(json_object_get(j, "data"), "dm_event_id"));
        if (eid && *eid) {
            snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s", eid);
            remember(c, eid);
        }
        if (!eid || !*eid) {
            /* Sent, but unnamed: keep our own id rather than fail a DM that went out. */
            OH_WARN("x", "DM sent but the answer carries no dm_event_id");
            const char *ours = json_string_value(json_object_get(data, "message_id"));
            snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s",
                     ours ? ours : "");
        }
        json_decref(j);
        oh_http_response_free(&resp);
        return OH_OK;
    }
    char why[400];
    explain(resp.body, resp.len, why, sizeof why);
    rc = oh_http_send_outcome(&resp, rc, why, res);
    oh_http_response_free(&resp);
    return rc;
}
