/* x_normalize.c - the pure half of the X connector: an Account Activity
 * delivery's direct_message_events -> inbound DMs and outbound echoes,
 * direct_message_mark_read_events -> read statuses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "x.h"

static const char *str_or(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

void x_sign(const char *secret, const void *msg, size_t len, char out[64])
{
    uint8_t mac[OH_SHA256_LEN];
    oh_hmac_sha256(secret, strlen(secret), msg, len, mac);
    memcpy(out, "sha256=", 7);
    oh_base64(mac, sizeof mac, out + 7);
}

/* X attaches at most one media object to a DM. */
static const char *attachment(json_t *data, const json_t *md)
{
    const json_t *att = json_object_get(md, "attachment");
    const json_t *media = json_object_get(att, "media");
    if (!json_is_object(media)) return NULL;
    const char *type = str_or(media, "type", "photo");
    const char *kind = strcmp(type, "photo") == 0 ? "image" : "video";
    const char *url = str_or(media, "media_url_https", str_or(media, "media_url", ""));
    const char *mime = "video/mp4";
    if (strcmp(kind, "image") == 0) {
        const char *dot = strrchr(url, '.');
        mime = dot && strcmp(dot, ".png") == 0 ? "image/png" : "image/jpeg";
    }
    char idbuf[32];
    const char *mid = str_or(media, "id_str", NULL);
    if (!mid && json_is_integer(json_object_get(media, "id"))) {
        snprintf(idbuf, sizeof idbuf, "%lld",
                 (long long)json_integer_value(json_object_get(media, "id")));
        mid = idbuf;
    }
    json_t *a = json_pack("{s:s, s:s, s:s, s:s, s:s}", "kind", kind, "mime_type", mime, "filename",
                          "", "media_ref", mid ? mid : "", "url", url);
    json_object_set_new(data, "attachments", json_pack("[o]", a));
    return kind;
}

/* One message_create event. */
static int one_dm(const struct oh_norm_ctx *nc, const char *account, const char *for_user,
                  const json_t *root, const json_t *ev, x_skip_echo_fn skip, void *opaque,
                  struct oh_event_list *out, char *err, size_t errlen)
{
    const char *eid = str_or(ev, "id", NULL);
    const json_t *mc = json_object_get(ev, "message_create");
    const char *sender = str_or(mc, "sender_id", NULL);
    const char *recipient = str_or(json_object_get(mc, "target"), "recipient_id", NULL);
    if (!eid || !*eid || !sender || !recipient) {
        oh_errf(err, errlen, "message_create without id, sender_id or target.recipient_id");
        return OH_EINVAL;
    }
    /* The subscribed account wrote it (from the X app, or an echo of one
     * of our own sends) when it is the sender. */
    bool ours = strcmp(sender, for_user) == 0;
    const char *app = str_or(mc, "source_app_id", "");
    if (ours && skip && skip(opaque, app, eid)) return OH_OK;
    const char *contact = ours ? recipient : sender;
    const json_t *users = json_object_get(root, "users");
    const json_t *cu = json_object_get(users, contact);
    const json_t *md = json_object_get(mc, "message_data");
    char conv[OH_ID_MAX], id[OH_ID_MAX], when[32];
    oh_conversation_id(conv, X_CHANNEL, account, contact);
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:{s:s, s:s}}", "conversation_id", conv,
        "channel", X_CHANNEL, "account", account, "direction", ours ? "outbound" : "inbound",
        "contact", "id", contact, "name", str_or(cu, "name", ""), "message_id", eid, "kind", "text",
        "text", str_or(md, "text", ""), "author", "kind", ours ? "page" : "customer", "id", sender);
    if (!data) return OH_ENOMEM;
    if (str_or(cu, "screen_name", NULL))
        json_object_set_new(data, "screen_name", json_string(str_or(cu, "screen_name", "")));
    const char *kind = attachment(data, md);
    if (kind) json_object_set_new(data, "kind", json_string(kind));
    const json_t *qr = json_object_get(md, "quick_reply_response");
    if (qr)
        json_object_set_new(
            data, "interactive",
            json_pack("{s:s, s:s}", "type", "quick_reply", "metadata", str_or(qr, "metadata", "")));
    if (ours) {
        json_object_set_new(data, "echo", json_true());
        const char *appname =
            str_or(json_object_get(json_object_get(root, "apps"), app), "name", NULL);
        if (appname) json_object_set_new(data, "source_app", json_string(appname));
    }
    /* created_timestamp is epoch milliseconds as a string */
    const char *ts = str_or(ev, "created_timestamp", NULL);
    int64_t ms = ts ? strtoll(ts, NULL, 10) : 0;
    if (ms <= 0) ms = nc->now_ms;
    oh_time_rfc3339(when, ms);
    json_object_set_new(data, "sent_at", json_string(when));
    oh_event_id(id, X_CHANNEL, account, eid, (const char *)NULL);
    return oh_event_list_push(out,
                              oh_event_new(ours ? OH_EV_OUTBOUND : OH_EV_INBOUND, id, ms, data));
}

/* A read receipt: the customer read our DMs up to last_read_event_id. The
 * status names X's event id; the sync service swaps in our own message id
 * when it is one of our sends. Reads by the account itself are skipped. */
static int one_read(const struct oh_norm_ctx *nc, const char *account, const char *for_user,
                    const json_t *ev, struct oh_event_list *out, char *err, size_t errlen)
{
    const char *reader = str_or(ev, "sender_id", NULL);
    const char *last = str_or(ev, "last_read_event_id", NULL);
    if (!reader || !last || !*last) {
        oh_errf(err, errlen, "mark_read event without sender_id or last_read_event_id");
        return OH_EINVAL;
    }
    if (strcmp(reader, for_user) == 0) return OH_OK;
    char conv[OH_ID_MAX], id[OH_ID_MAX], when[32];
    oh_conversation_id(conv, X_CHANNEL, account, reader);
    const char *ts = str_or(ev, "created_timestamp", NULL);
    int64_t ms = ts ? strtoll(ts, NULL, 10) : 0;
    if (ms <= 0) ms = nc->now_ms;
    oh_time_rfc3339(when, ms);
    json_t *data = json_pack(
        "{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:{s:s, s:s}}",
        "conversation_id", conv, "channel", X_CHANNEL, "account", account, "direction", "outbound",
        "contact", "id", reader, "name", "", "message_id", last, "kind", "text", "text", "",
        "status", "message_id", last, "state", "read", "sent_at", when, "author", "kind", "system",
        "id", "x");
    if (!data) return OH_ENOMEM;
    oh_event_id(id, X_CHANNEL, account, last, "status", "read", (const char *)NULL);
    return oh_event_list_push(out, oh_event_new(OH_EV_STATUS, id, ms, data));
}

int x_parse(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len, x_skip_echo_fn skip,
            void *opaque, struct oh_event_list *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    if (!json_is_object(root)) {
        oh_errf(err, errlen, "body is not a JSON object (%s)", root ? "" : jerr.text);
        json_decref(root);
        return OH_EINVAL;
    }
    const json_t *dms = json_object_get(root, "direct_message_events");
    const char *for_user = str_or(root, "for_user_id", NULL);
    if (!for_user || !*for_user) {
        oh_errf(err, errlen, "delivery without for_user_id");
        json_decref(root);
        return OH_EINVAL;
    }
    const char *account = nc->account && *nc->account ? nc->account : for_user;
    int rc = OH_OK;
    size_t i;
    const json_t *ev;
    json_array_foreach(dms, i, ev)
    {
        /* Only message_create events are DMs; others are skipped. */
        if (strcmp(str_or(ev, "type", ""), "message_create") != 0) continue;
        if ((rc = one_dm(nc, account, for_user, root, ev, skip, opaque, out, err, errlen))) break;
    }
    const json_t *reads = json_object_get(root, "direct_message_mark_read_events");
    json_array_foreach(reads, i, ev)
    {
        if (rc || (rc = one_read(nc, account, for_user, ev, out, err, errlen))) break;
    }
    json_decref(root);
    return rc;
}

int x_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                struct oh_event_list *out, char *err, size_t errlen)
{
    return x_parse(nc, body, len, NULL, NULL, out, err, errlen);
}
