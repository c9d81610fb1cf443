/* wa_send.c - agent replies out through Graph's /{phone_number_id}/messages
 * (text, reply context, media by link, templates) and media downloads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/http_client.h"
#include "whatsapp.h"

static const char *wa_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* Unicode code points in a UTF-8 string: what Graph calls characters. */
static size_t wa_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) n++;
    return n;
}

/* Ids we put into a URL path: Graph's are digits, keep it strict. */
static bool wa_path_safe(const char *s)
{
    if (!s || !*s || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!(*s >= '0' && *s <= '9') && !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
            *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

static json_t *wa_refuse(char *code, size_t codelen, char *err, size_t errlen, const char *ecode,
                         const char *msg)
{
    snprintf(code, codelen, "%s", ecode);
    snprintf(err, errlen, "%s", msg);
    return NULL;
}

/* {name, language, parameters[]} -> Graph's template object. */
static json_t *wa_template(const json_t *t, char *code, size_t codelen, char *err, size_t errlen)
{
    const char *name = wa_str(t, "name");
    const json_t *lang = json_object_get(t, "language");
    const char *lcode = json_is_string(lang) ? json_string_value(lang) : wa_str(lang, "code");
    if (!name || !*name)
        return wa_refuse(code, codelen, err, errlen, "invalid_template",
                         "template.name is required");
    if (!lcode || !*lcode)
        return wa_refuse(code, codelen, err, errlen, "invalid_template",
                         "template.language is required (e.g. \"en_US\")");
    json_t *out = json_pack("{s:s, s:{s:s}}", "name", name, "language", "code", lcode);
    const json_t *components = json_object_get(t, "components");
    const json_t *params = json_object_get(t, "parameters");
    if (json_is_array(components)) { /* headers and buttons: Graph's own shape */
        json_object_set_new(out, "components", json_deep_copy(components));
        return out;
    }
    if (params && !json_is_array(params)) {
        json_decref(out);
        return wa_refuse(code, codelen, err, errlen, "invalid_template",
                         "template.parameters must be an array");
    }
    if (json_array_size(params) == 0) return out;
    json_t *list = json_array();
    size_t i;
    const json_t *p;
    json_array_foreach(params, i, p)
    {
        if (json_is_object(p)) {
            json_array_append_new(list, json_deep_copy(p));
        } else if (json_is_string(p)) {
            json_array_append_new(list, json_pack("{s:s, s:O}", "type", "text", "text", p));
        } else if (json_is_number(p)) {
            char num[64];
            snprintf(num, sizeof num, "%.15g", json_number_value(p));
            json_array_append_new(list, json_pack("{s:s, s:s}", "type", "text", "text", num));
        } else {
            json_decref(list);
            json_decref(out);
            return wa_refuse(code, codelen, err, errlen, "invalid_template",
                             "template.parameters holds strings, numbers or Graph objects");
        }
    }
    json_object_set_new(out, "components",
                        json_pack("[{s:s, s:o}]", "type", "body", "parameters", list));
    return out;
}

/* One attachment sent by link (or by an uploaded media id). */
static json_t *wa_attachment(const json_t *a, const char *text, const char **type, char *code,
                             size_t codelen, char *err, size_t errlen)
{
    static const char *const kinds[] = {"image", "audio", "video", "document", "sticker"};
    const char *kind = wa_str(a, "kind");
    *type = NULL;
    for (size_t i = 0; kind && i < OH_ARRAY_SIZE(kinds); i++)
        if (strcmp(kind, kinds[i]) == 0) *type = kinds[i];
    if (!*type)
        return wa_refuse(code, codelen, err, errlen, "invalid_attachment",
                         "attachment kind must be image, audio, video, document or sticker");
    const char *link = wa_str(a, "url");
    if (!link) link = wa_str(a, "link");
    const char *media_id = wa_str(a, "media_ref");
    json_t *out = json_object();
    if (link && *link)
        json_object_set_new(out, "link", json_string(link));
    else if (media_id && *media_id)
        json_object_set_new(out, "id", json_string(media_id));
    else {
        json_decref(out);
        return wa_refuse(code, codelen, err, errlen, "invalid_attachment",
                         "attachment needs a url (media by link)");
    }
    bool captions = strcmp(*type, "audio") != 0 && strcmp(*type, "sticker") != 0;
    if (text && *text) {
        if (!captions) {
            json_decref(out);
            return wa_refuse(code, codelen, err, errlen, "invalid_attachment",
                             "WhatsApp audio and sticker messages carry no caption: send the "
                             "text separately");
        }
        if (wa_chars(text) > 1024) {
            json_decref(out);
            return wa_refuse(code, codelen, err, errlen, "text_too_long",
                             "a WhatsApp media caption holds at most 1024 characters");
        }
        json_object_set_new(out, "caption", json_string(text));
    }
    const char *filename = wa_str(a, "filename");
    if (filename && *filename && strcmp(*type, "document") == 0)
        json_object_set_new(out, "filename", json_string(filename));
    return out;
}

json_t *wa_send_body(const json_t *data, char *code, size_t codelen, char *err, size_t errlen)
{
    const char *to = wa_str(json_object_get(data, "contact"), "id");
    const char *text = wa_str(data, "text");
    const char *reply_to = wa_str(data, "reply_to");
    const json_t *tmpl = json_object_get(data, "template");
    const json_t *atts = json_object_get(data, "attachments");
    if (!to || !*to)
        return wa_refuse(code, codelen, err, errlen, "invalid_recipient",
                         "the conversation has no WhatsApp recipient (contact.id)");
    json_t *body = json_pack("{s:s, s:s, s:s}", "messaging_product", "whatsapp", "recipient_type",
                             "individual", "to", to);
    json_t *part = NULL;
    const char *type = NULL;
    if (tmpl && !json_is_null(tmpl)) {
        if (!json_is_object(tmpl)) {
            json_decref(body);
            return wa_refuse(code, codelen, err, errlen, "invalid_template",
                             "template must be an object {name, language, parameters}");
        }
        type = "template";
        part = wa_template(tmpl, code, codelen, err, errlen);
    } else if (json_array_size(atts) > 1) {
        json_decref(body);
        return wa_refuse(code, codelen, err, errlen, "invalid_attachment",
                         "WhatsApp sends one attachment per message");
    } else if (json_array_size(atts) == 1) {
        part = wa_attachment(json_array_get(atts, 0), text, &type, code, codelen, err, errlen);
    } else if (!text || !*text) {
        json_decref(body);
        return wa_refuse(code, codelen, err, errlen, "empty_message",
                         "nothing to send: no text, attachment or template");
    } else if (wa_chars(text) > WA_TEXT_MAX) {
        json_decref(body);
        snprintf(code, codelen, "text_too_long");
        snprintf(err, errlen, "a WhatsApp text message holds at most %d characters, this one %zu",
                 WA_TEXT_MAX, wa_chars(text));
        return NULL;
    } else {
        type = "text";
        part = json_pack("{s:b, s:s}", "preview_url", 0, "body", text);
    }
    if (!part) {
        json_decref(body);
        return NULL;
    }
    json_object_set_new(body, "type", json_string(type));
    json_object_set_new(body, type, part);
    if (reply_to && *reply_to)
        json_object_set_new(body, "context", json_pack("{s:s}", "message_id", reply_to));
    return body;
}

/* Graph error codes that mean "slow down" or "try later" even on a 4xx. */
static bool wa_graph_transient(long long code)
{
    static const long long transient[] = {1,      2,      4,      80007,  130429,
                                          131000, 131016, 131048, 131056, 133004};
    for (size_t i = 0; i < OH_ARRAY_SIZE(transient); i++)
        if (code == transient[i]) return true;
    return false;
}

/* Graph's {"error":{...}} -> RES; returns the send's result code. */
static int wa_graph_error(const struct oh_http_response *resp, struct oh_send_result *res)
{
    json_t *root = json_loadb(resp->body ? resp->body : "", resp->len, 0, NULL);
    const json_t *e = json_object_get(root, "error");
    long long code = json_integer_value(json_object_get(e, "code"));
    const char *title = wa_str(e, "error_user_title");
    if (!title) title = wa_str(e, "message");
    const char *details = wa_str(json_object_get(e, "error_data"), "details");
    if (code == WA_GRAPH_WINDOW) {
        snprintf(res->error_code, sizeof res->error_code, WA_ERR_WINDOW);
        snprintf(res->error, sizeof res->error,
                 "outside the 24-hour customer service window: more than 24 hours since the "
                 "customer's last message, only a template can be sent (Graph %lld: %s)",
                 code, title ? title : "Re-engagement message");
    } else {
        if (code)
            snprintf(res->error_code, sizeof res->error_code, "%lld", code);
        else
            snprintf(res->error_code, sizeof res->error_code, "http_%ld", resp->status);
        snprintf(res->error, sizeof res->error, "%s%s%s", title ? title : "Graph API error",
                 details ? ": " : "", details ? details : "");
    }
    json_decref(root);
    if (oh_http_retryable(resp->status) || (code != WA_GRAPH_WINDOW && wa_graph_transient(code))) {
        res->retry_after_ms = resp->retry_after_ms;
        return OH_ERETRY;
    }
    return resp->status == 401 || resp->status == 403 ? OH_EAUTH : OH_EINVAL;
}

/* The 24-hour window is the core's (.reply_window_s, templates exempt):
 * checked before this runs. The provider id -> our message reference is
 * recorded by one writer, the sync service, when it materializes the
 * "sent" status the dispatcher makes of RES (and finds it among the
 * earlier events of its batch until then). runs on a dispatcher thread */
int wa_send(void *ctx, const json_t *event, struct oh_send_result *res)
{
    struct wa_ctx *c = ctx;
    const json_t *data = oh_event_data(event);
    const char *account = wa_str(data, "account");
    if (!wa_path_safe(account)) {
        snprintf(res->error_code, sizeof res->error_code, "invalid_account");
        snprintf(res->error, sizeof res->error, "account is not a phone_number_id");
        return OH_EINVAL;
    }
    if (!wa_number_allowed(c, account)) {
        snprintf(res->error_code, sizeof res->error_code, "invalid_account");
        snprintf(res->error, sizeof res->error, "%s is not one of whatsapp.phone_number_ids",
                 account);
        return OH_EINVAL;
    }
    json_t *body =
        wa_send_body(data, res->error_code, sizeof res->error_code, res->error, sizeof res->error);
    if (!body) return OH_EINVAL;
    size_t ulen = strlen(c->conf.api_base_url) + strlen(account) + 16;
    char *url = malloc(ulen);
    if (!url) {
        json_decref(body);
        return OH_ERETRY;
    }
    snprintf(url, ulen, "%s/%s/messages", c->conf.api_base_url, account);
    static const char *const accept[] = {"Accept: application/json", NULL};
    struct oh_http_post post = {.url = url,
                                .json = body,
                                .bearer = c->conf.access_token,
                                .headers = accept,
                                .timeout_ms = c->conf.timeout_ms,
                                .max_response = 256 * 1024};
    struct oh_http_response resp;
    char herr[256] = "";
    int rc = oh_http_post(&post, &resp, herr, sizeof herr);
    free(url);
    json_decref(body);
    if (rc) {
        snprintf(res->error_code, sizeof res->error_code, "transport");
        snprintf(res->error, sizeof res->error, "Graph API unreachable: %s", herr);
        oh_http_response_free(&resp);
        return OH_ERETRY;
    }
    if (resp.status >= 200 && resp.status < 300) {
        json_t *root = json_loadb(resp.body, resp.len, 0, NULL);
        const char *wamid = wa_str(json_array_get(json_object_get(root, "messages"), 0), "id");
        if (wamid) {
            snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s", wamid);
        } else
            oh_env_log(c->env, OH_LVL_WARN, "Graph accepted a message without returning its id");
        json_decref(root);
        rc = OH_OK;
    } else {
        rc = wa_graph_error(&resp, res);
        oh_env_log(c->env, OH_LVL_WARN, "send failed: HTTP %ld, %s: %s", resp.status,
                   res->error_code, res->error);
    }
    oh_http_response_free(&resp);
    return rc;
}

/* GET with the bearer token; the answer in RESP (caller frees). */
static int wa_get(struct wa_ctx *c, const char *url, size_t max, long timeout_ms,
                  struct oh_http_response *resp, char *err, size_t errlen)
{
    size_t alen = strlen(c->conf.access_token) + 32;
    char *auth = malloc(alen);
    if (!auth) return OH_ENOMEM;
    snprintf(auth, alen, "Authorization: Bearer %s", c->conf.access_token);
    const char *headers[] = {auth, NULL};
    struct oh_http_request req = {.method = "GET",
                                  .url = url,
                                  .headers = headers,
                                  .timeout_ms = timeout_ms,
                                  .max_response = max};
    int rc = oh_http_do(&req, resp, err, errlen);
    free(auth);
    return rc;
}

/* Runs on a worker thread: Graph's /{media-id} gives a short-lived URL,
 * which needs the same bearer token. */
int wa_media(void *ctx, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
             size_t errlen)
{
    struct wa_ctx *c = ctx;
    if (!wa_path_safe(ref)) {
        oh_errf(err, errlen, "not a WhatsApp media id");
        return OH_ENOTFOUND;
    }
    size_t ulen = strlen(c->conf.api_base_url) + strlen(ref) + 2;
    char *url = malloc(ulen);
    if (!url) return OH_ENOMEM;
    snprintf(url, ulen, "%s/%s", c->conf.api_base_url, ref);
    struct oh_http_response meta;
    int rc = wa_get(c, url, 64 * 1024, c->conf.timeout_ms, &meta, err, errlen);
    free(url);
    if (rc) {
        oh_http_response_free(&meta);
        return rc == OH_ETOOBIG ? OH_EIO : rc;
    }
    if (meta.status != 200) {
        oh_errf(err, errlen, "Graph answered %ld for media %s", meta.status, ref);
        rc = meta.status == 404 || meta.status == 400 ? OH_ENOTFOUND : OH_EIO;
        oh_http_response_free(&meta);
        return rc;
    }
    json_t *info = json_loadb(meta.body, meta.len, 0, NULL);
    oh_http_response_free(&meta);
    const char *furl = wa_str(info, "url");
    json_int_t size = json_integer_value(json_object_get(info, "file_size"));
    if (!furl || (strncmp(furl, "https://", 8) && strncmp(furl, "http://", 7))) {
        oh_errf(err, errlen, "Graph gave no download URL for media %s", ref);
        json_decref(info);
        return OH_EIO;
    }
    if (size > 0 && (size_t)size > max_bytes) {
        oh_errf(err, errlen, "media %s is %lld bytes, over the limit of %zu", ref, (long long)size,
                max_bytes);
        json_decref(info);
        return OH_ETOOBIG;
    }
    snprintf(out->content_type, sizeof out->content_type, "%s",
             wa_str(info, "mime_type") ? wa_str(info, "mime_type") : "");
    struct oh_http_response file;
    rc = wa_get(c, furl, max_bytes, c->conf.timeout_ms * 6, &file, err, errlen);
    json_decref(info);
    if (rc == 0 && file.status != 200) {
        oh_errf(err, errlen, "media download answered %ld", file.status);
        rc = OH_EIO;
    }
    if (rc) {
        oh_http_response_free(&file);
        return rc;
    }
    if (!out->content_type[0])
        snprintf(out->content_type, sizeof out->content_type, "%s",
                 file.content_type[0] ? file.content_type : "application/octet-stream");
    out->data = (uint8_t *)file.body; /* ownership passes to the gateway */
    out->len = file.len;
    snprintf(out->filename, sizeof out->filename, "%s", ref);
    if (!wa_media_owner_get(c, ref, out->conversation_id)) out->conversation_id[0] = '\0';
    return OH_OK;
}
