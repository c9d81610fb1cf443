/* line_send.c - the LINE connector's outbound side: agent replies through
 * the push API (reply tokens expire too soon for agents) and downloads of
 * message content. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/http_client.h"
#include "line.h"

#define LINE_MAX_MESSAGES 5 /* message objects the push API takes per call */

static int fail(struct oh_send_result *res, int rc, const char *code, const char *msg)
{
    snprintf(res->error_code, sizeof res->error_code, "%s", code);
    snprintf(res->error, sizeof res->error, "%s", msg);
    return rc;
}

/* X-Line-Retry-Key: a UUID derived from our message id, so every attempt
 * of the same message carries the same key and LINE delivers it once. */
static void retry_key(const char *message_id, char out[37])
{
    uint8_t h[OH_SHA256_LEN];
    oh_sha256(message_id, strlen(message_id), h);
    h[6] = (uint8_t)((h[6] & 0x0f) | 0x40);
    h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
    char hex[2 * OH_SHA256_LEN + 1];
    oh_hex(h, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* The message objects for DATA; NULL with RES filled when LINE cannot
 * take the message. */
static json_t *build_messages(struct line_ctx *c, const json_t *data, struct oh_send_result *res)
{
    json_t *msgs = json_array();
    const char *text = json_string_value(json_object_get(data, "text"));
    if (!msgs) return NULL;
    if (text && *text) {
        json_t *m = json_pack("{s:s, s:s}", "type", "text", "text", text);
        char quote[256];
        if (m && line_quote_find(c, json_string_value(json_object_get(data, "reply_to")), quote,
                                 sizeof quote))
            json_object_set_new(m, "quoteToken", json_string(quote));
        json_array_append_new(msgs, m);
    }
    size_t i;
    const json_t *att;
    json_array_foreach(json_object_get(data, "attachments"), i, att)
    {
        const char *kind = json_string_value(json_object_get(att, "kind"));
        const char *url = json_string_value(json_object_get(att, "url"));
        if (!url) url = json_string_value(json_object_get(att, "link"));
        if (!kind || strcmp(kind, "image") != 0 || !url || strncmp(url, "https://", 8) != 0) {
            json_decref(msgs);
            fail(res, 0, "unsupported", "line: only images given by an https url can be attached");
            return NULL;
        }
        json_array_append_new(msgs, json_pack("{s:s, s:s, s:s}", "type", "image",
                                              "originalContentUrl", url, "previewImageUrl", url));
    }
    if (json_array_size(msgs) == 0 || json_array_size(msgs) > LINE_MAX_MESSAGES) {
        json_decref(msgs);
        fail(res, 0, json_array_size(msgs) ? "too_many_parts" : "empty",
             "line: a message needs text or images, at most 5 parts");
        return NULL;
    }
    return msgs;
}

/* LINE explains 4xx answers as {"message", "details":[{"message","property"}]}. */
static void explain(const char *body, size_t len, char *out, size_t outlen)
{
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(j, "message"));
    const json_t *d0 = json_array_get(json_object_get(j, "details"), 0);
    const char *dm = json_string_value(json_object_get(d0, "message"));
    const char *dp = json_string_value(json_object_get(d0, "property"));
    if (msg && dm)
        snprintf(out, outlen, "%s: %s%s%s", msg, dp ? dp : "", dp ? " " : "", dm);
    else
        snprintf(out, outlen, "%s", msg ? msg : "unexpected answer from the LINE API");
    json_decref(j);
}

/* Runs on a dispatcher thread. */
int line_send(void *opaque, const json_t *event, struct oh_send_result *res)
{
    struct line_ctx *c = opaque;
    if (!c->conf.access_token)
        return fail(res, OH_EINVAL, "not_configured", "line.access_token is not set");
    const json_t *data = oh_event_data(event);
    const char *to = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
    const char *ours = json_string_value(json_object_get(data, "message_id"));
    if (!to || !*to)
        return fail(res, OH_EINVAL, "invalid_recipient", "line: the event has no contact.id");
    json_t *msgs = build_messages(c, data, res);
    if (!msgs) return res->error_code[0] ? OH_EINVAL : OH_ERETRY;
    json_t *payload = json_pack("{s:s, s:o}", "to", to, "messages", msgs);
    if (!payload) return fail(res, OH_ERETRY, "internal", "out of memory");
    char url[1024], key[37], keyh[64];
    retry_key(ours ? ours : oh_event_get_id(event), key);
    snprintf(url, sizeof url, "%s/v2/bot/message/push", c->conf.api_base_url);
    snprintf(keyh, sizeof keyh, "X-Line-Retry-Key: %s", key);
    const char *headers[] = {keyh, NULL};
    struct oh_http_post post = {.url = url,
                                .json = payload,
                                .bearer = c->conf.access_token,
                                .headers = headers,
                                .timeout_ms = LINE_TIMEOUT_MS};
    struct oh_http_response resp;
    char err[256] = "";
    int rc = oh_http_post(&post, &resp, err, sizeof err);
    json_decref(payload);
    if (rc != OH_OK) {
        oh_http_response_free(&resp);
        return oh_http_send_outcome(NULL, rc, err[0] ? err : oh_strerror(rc), res);
    }
    /* 409: this retry key was accepted before, i.e. an earlier attempt went
     * through and only its answer was lost. */
    if ((resp.status >= 200 && resp.status < 300) || resp.status == 409) {
        json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
        const char *sent = json_string_value(
            json_object_get(json_array_get(json_object_get(j, "sentMessages"), 0), "id"));
        snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s",
                 sent ? sent : key);
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

/* Runs on a worker thread. */
int line_media(void *opaque, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
               size_t errlen)
{
    struct line_ctx *c = opaque;
    if (!c->conf.access_token) {
        oh_errf(err, errlen, "line.access_token is not set");
        return OH_EUNAVAIL;
    }
    size_t n = ref ? strlen(ref) : 0;
    if (n == 0 || n > 64 || strspn(ref, "0123456789") != n) {
        oh_errf(err, errlen, "not a LINE message id");
        return OH_EINVAL;
    }
    char url[1024], auth[1024];
    snprintf(url, sizeof url, "%s/v2/bot/message/%s/content", c->conf.api_data_base_url, ref);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->conf.access_token);
    const char *headers[] = {auth, NULL};
    struct oh_http_request req = {.method = "GET",
                                  .url = url,
                                  .headers = headers,
                                  .timeout_ms = 60000,
                                  .max_response = max_bytes};
    struct oh_http_response resp = {0};
    char herr[256] = "";
    int rc = oh_http_do(&req, &resp, herr, sizeof herr);
    if (rc != OH_OK) {
        oh_errf(err, errlen, "content download: %s", herr[0] ? herr : oh_strerror(rc));
        oh_http_response_free(&resp);
        return rc == OH_ETOOBIG ? OH_ETOOBIG : OH_EIO;
    }
    long status = resp.status;
    if (status != 200) {
        oh_http_response_free(&resp);
        oh_errf(err, errlen, "content download: HTTP %ld", status);
        /* 202: a video or audio file is still being prepared */
        return status == 404 ? OH_ENOTFOUND : status == 202 ? OH_EUNAVAIL : OH_EIO;
    }
    out->data = (uint8_t *)resp.body;
    out->len = resp.len;
    resp.body = NULL;
    snprintf(out->content_type, sizeof out->content_type, "%s",
             resp.content_type[0] ? resp.content_type : "application/octet-stream");
    out->filename[0] = '\0';
    out->conversation_id[0] = '\0';
    oh_http_response_free(&resp);
    return OH_OK;
}
