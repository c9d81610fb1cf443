/* tg_send.c - the Telegram connector's outbound side: agent replies through
 * sendMessage (or a send<Media> call) and file downloads through getFile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/http_client.h"
#include "telegram.h"

/* What a Bot API call answered. */
struct tg_answer {
    long status;        /* HTTP status, 0 when none arrived */
    long long code;     /* error_code of an {"ok":false} answer */
    int retry_after_ms; /* parameters.retry_after, else Retry-After */
    char desc[256];     /* description, or the transport error */
    json_t *result;     /* "result" of an {"ok":true} answer (owned) */
};

static bool tg_ok(const struct tg_answer *a)
{
    return a->result != NULL;
}

static bool tg_retryable(const struct tg_answer *a)
{
    return !tg_ok(a) && (oh_http_retryable(a->status) || a->code == 429 || a->code >= 500);
}

/* Calls METHOD with PARAMS (borrowed) as JSON. Returns 0 when an answer
 * arrived (look at A), OH_ETOOBIG, or OH_ERETRY when none did. The URL holds
 * the bot token: it is never logged. */
static int tg_call(struct tg_ctx *c, const char *method, const json_t *params, struct tg_answer *a)
{
    memset(a, 0, sizeof *a);
    size_t ulen = strlen(c->conf.api_base_url) + strlen(c->conf.bot_token) + strlen(method) + 8;
    char *url = malloc(ulen);
    if (!url) {
        snprintf(a->desc, sizeof a->desc, "out of memory");
        return OH_ERETRY;
    }
    snprintf(url, ulen, "%s/bot%s/%s", c->conf.api_base_url, c->conf.bot_token, method);
    static const char *const accept[] = {"Accept: application/json", NULL};
    struct oh_http_post post = {
        .url = url, .json = params, .headers = accept, .timeout_ms = TG_TIMEOUT_MS};
    struct oh_http_response resp;
    char err[256] = "";
    int rc = oh_http_post(&post, &resp, err, sizeof err);
    free(url);
    if (rc != OH_OK) {
        snprintf(a->desc, sizeof a->desc, "%s", err[0] ? err : oh_strerror(rc));
        oh_http_response_free(&resp);
        return rc == OH_ETOOBIG ? OH_ETOOBIG : OH_ERETRY;
    }
    a->status = resp.status;
    a->retry_after_ms = resp.retry_after_ms;
    json_t *j = resp.body ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
    if (json_is_true(json_object_get(j, "ok")) && resp.status >= 200 && resp.status < 300) {
        a->result = json_incref(json_object_get(j, "result"));
        if (!a->result) a->result = json_true();
    } else {
        a->code = json_is_integer(json_object_get(j, "error_code"))
                      ? (long long)json_integer_value(json_object_get(j, "error_code"))
                      : resp.status;
        const char *d = json_string_value(json_object_get(j, "description"));
        snprintf(a->desc, sizeof a->desc, "%s", d ? d : "unexpected answer from the Bot API");
        json_int_t after =
            json_integer_value(json_object_get(json_object_get(j, "parameters"), "retry_after"));
        if (after > 0) a->retry_after_ms = (int)(after > 3600 ? 3600000 : after * 1000);
    }
    json_decref(j);
    oh_http_response_free(&resp);
    return OH_OK;
}

/* Chat ids are integers; "@channelusername" stays a string. */
static json_t *chat_value(const char *chat)
{
    const char *p = chat[0] == '-' ? chat + 1 : chat;
    if (!*p) return json_string(chat);
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return json_string(chat);
    return json_integer(strtoll(chat, NULL, 10));
}

static const char *att_method(const char *kind, const char **field)
{
    if (kind && strcmp(kind, "image") == 0) return *field = "photo", "sendPhoto";
    if (kind && strcmp(kind, "video") == 0) return *field = "video", "sendVideo";
    if (kind && strcmp(kind, "audio") == 0) return *field = "audio", "sendAudio";
    return *field = "document", "sendDocument";
}

static int fail(struct oh_send_result *res, int rc, const char *code, const char *msg)
{
    snprintf(res->error_code, sizeof res->error_code, "%s", code);
    snprintf(res->error, sizeof res->error, "%s", msg);
    return rc;
}

/* Builds the method and parameters for DATA; NULL with RES filled on a
 * message Telegram cannot take. */
static json_t *build(const json_t *data, const char **method, struct oh_send_result *res)
{
    const char *chat = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
    const char *text = json_string_value(json_object_get(data, "text"));
    const json_t *atts = json_object_get(data, "attachments");
    if (!chat || !*chat) {
        fail(res, 0, "invalid_recipient", "telegram: the event has no contact.id (chat id)");
        return NULL;
    }
    if (json_array_size(atts) > 1) {
        fail(res, 0, "unsupported", "telegram: at most one attachment per message");
        return NULL;
    }
    json_t *p = json_pack("{s:o}", "chat_id", chat_value(chat));
    if (!p) return NULL;
    const json_t *att = json_array_get(atts, 0);
    if (att) {
        const char *url = json_string_value(json_object_get(att, "url"));
        if (!url) url = json_string_value(json_object_get(att, "link"));
        if (!url || !*url) {
            json_decref(p);
            fail(res, 0, "unsupported", "telegram: an attachment needs a url");
            return NULL;
        }
        const char *field;
        *method = att_method(json_string_value(json_object_get(att, "kind")), &field);
        json_object_set_new(p, field, json_string(url));
        if (text && *text) json_object_set_new(p, "caption", json_string(text));
    } else {
        if (!text || !*text) {
            json_decref(p);
            fail(res, 0, "empty", "telegram: a message needs text or an attachment");
            return NULL;
        }
        *method = "sendMessage";
        json_object_set_new(p, "text", json_string(text));
    }
    long long reply;
    if (tg_parse_message_ref(json_string_value(json_object_get(data, "reply_to")), &reply))
        json_object_set_new(p, "reply_parameters", json_pack("{s:I}", "message_id", reply));
    return p;
}

/* Runs on a dispatcher thread. */
int tg_send(void *opaque, const json_t *event, struct oh_send_result *res)
{
    struct tg_ctx *c = opaque;
    if (!c->conf.bot_token)
        return fail(res, OH_EINVAL, "not_configured", "telegram.bot_token is not set");
    const json_t *data = oh_event_data(event);
    const char *method = NULL;
    json_t *params = build(data, &method, res);
    if (!params) return res->error_code[0] ? OH_EINVAL : OH_ERETRY;
    struct tg_answer a;
    int rc = tg_call(c, method, params, &a);
    json_decref(params);
    if (rc != OH_OK)
        return fail(res, rc == OH_ETOOBIG ? OH_EINVAL : OH_ERETRY, "transport", a.desc);
    if (tg_ok(&a)) {
        const json_t *mid = json_object_get(a.result, "message_id");
        const json_t *chat = json_object_get(json_object_get(a.result, "chat"), "id");
        const char *to = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));
        if (json_is_integer(chat))
            snprintf(res->provider_message_id, sizeof res->provider_message_id, "%lld:%lld",
                     (long long)json_integer_value(chat), (long long)json_integer_value(mid));
        else
            snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s:%lld", to,
                     (long long)json_integer_value(mid));
        json_decref(a.result);
        return OH_OK;
    }
    char code[32];
    snprintf(code, sizeof code, "%lld", a.code);
    if (tg_retryable(&a)) {
        res->retry_after_ms = a.retry_after_ms;
        return fail(res, OH_ERETRY, code, a.desc);
    }
    return fail(res,
                a.code == 401   ? OH_EAUTH
                : a.code == 403 ? OH_EFORBIDDEN
                                : OH_EINVAL,
                code, a.desc);
}

static bool safe_ref(const char *ref)
{
    if (!ref || !*ref || strlen(ref) > 256) return false;
    for (const char *p = ref; *p; p++)
        if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') && !(*p >= '0' && *p <= '9') &&
            *p != '-' && *p != '_')
            return false;
    return true;
}

static const char *mime_of(const char *path)
{
    static const struct {
        const char *ext, *mime;
    } types[] = {{".jpg", "image/jpeg"},
                 {".jpeg", "image/jpeg"},
                 {".png", "image/png"},
                 {".webp", "image/webp"},
                 {".mp4", "video/mp4"},
                 {".oga", "audio/ogg"},
                 {".ogg", "audio/ogg"},
                 {".mp3", "audio/mpeg"},
                 {".pdf", "application/pdf"},
                 {".webm", "video/webm"},
                 {".tgs", "application/x-tgsticker"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < OH_ARRAY_SIZE(types); i++)
        if (strcasecmp(dot, types[i].ext) == 0) return types[i].mime;
    return "application/octet-stream";
}

/* Runs on a worker thread. */
int tg_media(void *opaque, const char *ref, size_t max_bytes, struct oh_media *out, char *err,
             size_t errlen)
{
    struct tg_ctx *c = opaque;
    if (!c->conf.bot_token) {
        oh_errf(err, errlen, "telegram.bot_token is not set");
        return OH_EUNAVAIL;
    }
    if (!safe_ref(ref)) {
        oh_errf(err, errlen, "not a Telegram file id");
        return OH_EINVAL;
    }
    json_t *params = json_pack("{s:s}", "file_id", ref);
    struct tg_answer a;
    int rc = params ? tg_call(c, "getFile", params, &a) : OH_ENOMEM;
    json_decref(params);
    if (rc != OH_OK) {
        oh_errf(err, errlen, "getFile: %s", rc == OH_ENOMEM ? "out of memory" : a.desc);
        return rc == OH_ETOOBIG ? OH_EIO : rc == OH_ERETRY ? OH_EUNAVAIL : rc;
    }
    if (!tg_ok(&a)) {
        oh_errf(err, errlen, "getFile: %s", a.desc);
        return a.code == 400 || a.code == 404 ? OH_ENOTFOUND : OH_EIO;
    }
    const char *path = json_string_value(json_object_get(a.result, "file_path"));
    json_int_t size = json_integer_value(json_object_get(a.result, "file_size"));
    if (!path || !*path || strstr(path, "..")) {
        json_decref(a.result);
        oh_errf(err, errlen, "getFile: no usable file_path");
        return OH_ENOTFOUND;
    }
    if (size > 0 && (size_t)size > max_bytes) {
        json_decref(a.result);
        oh_errf(err, errlen, "file of %lld bytes is over the limit", (long long)size);
        return OH_ETOOBIG;
    }
    size_t ulen = strlen(c->conf.api_base_url) + strlen(c->conf.bot_token) + strlen(path) + 16;
    char *url = malloc(ulen);
    if (!url) {
        json_decref(a.result);
        return OH_ENOMEM;
    }
    snprintf(url, ulen, "%s/file/bot%s/%s", c->conf.api_base_url, c->conf.bot_token, path);
    const char *slash = strrchr(path, '/');
    snprintf(out->filename, sizeof out->filename, "%s", slash ? slash + 1 : path);
    const char *guess = mime_of(path);
    json_decref(a.result);
    struct oh_http_request req = {
        .method = "GET", .url = url, .timeout_ms = 60000, .max_response = max_bytes};
    struct oh_http_response resp = {0};
    char herr[256] = "";
    rc = oh_http_do(&req, &resp, herr, sizeof herr);
    free(url);
    if (rc != OH_OK || resp.status != 200) {
        if (rc == OH_OK)
            oh_errf(err, errlen, "file download: HTTP %ld", resp.status);
        else
            oh_errf(err, errlen, "file download: %s", herr);
        oh_http_response_free(&resp);
        return rc == OH_ETOOBIG ? OH_ETOOBIG : OH_EIO;
    }
    out->data = (uint8_t *)resp.body;
    out->len = resp.len;
    resp.body = NULL;
    /* Telegram serves files as application/octet-stream; the path knows. */
    snprintf(out->content_type, sizeof out->content_type, "%s",
             strcmp(guess, "application/octet-stream") || !resp.content_type[0]
                 ? guess
                 : resp.content_type);
    out->conversation_id[0] = '\0';
    oh_http_response_free(&resp);
    return OH_OK;
}
