/* line_normalize.c - the pure half of the LINE connector: one webhook
 * delivery (destination + events[]) -> one CloudEvent per chat event. */
#include <stdio.h>
#include <string.h>
#include "line.h"

static const char *str_or(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* The conversation partner: the group or room for group chats, else the
 * user. NULL when the event has no usable source. */
static const char *contact_of(const json_t *src)
{
    const char *type = str_or(src, "type", "user");
    if (strcmp(type, "group") == 0) return str_or(src, "groupId", NULL);
    if (strcmp(type, "room") == 0) return str_or(src, "roomId", NULL);
    return str_or(src, "userId", NULL);
}

/* KEY = S, a string of the body (jansson checked its UTF-8) or of ours;
 * nonzero on failure. Events are built key by key in the order json_pack
 * gave them: its format parser was a tenth of a normalize. */
static int put(json_t *obj, const char *key, const char *s)
{
    return json_object_set_new_nocheck(obj, key, json_string_nocheck(s));
}

/* {K1: V1, K2: V2} of such strings; NULL on failure. */
static json_t *pair(const char *k1, const char *v1, const char *k2, const char *v2)
{
    json_t *o = json_object();
    if (o && (put(o, k1, v1) || put(o, k2, v2))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *attachment(const char *kind, const char *mime, const json_t *msg)
{
    json_t *att = json_object();
    if (att && (put(att, "kind", kind) || put(att, "mime_type", mime) ||
                put(att, "filename", str_or(msg, "fileName", "")) ||
                put(att, "media_ref", str_or(msg, "id", "")))) {
        json_decref(att);
        att = NULL;
    }
    if (!att) return NULL;
    if (json_is_integer(json_object_get(msg, "fileSize")))
        json_object_set(att, "size", json_object_get(msg, "fileSize"));
    if (json_is_integer(json_object_get(msg, "duration")))
        json_object_set(att, "duration_ms", json_object_get(msg, "duration"));
    /* Content sent through an external provider is not on LINE's servers. */
    const json_t *cp = json_object_get(msg, "contentProvider");
    if (strcmp(str_or(cp, "type", "line"), "external") == 0) {
        json_object_set_new(att, "url", json_string(str_or(cp, "originalContentUrl", "")));
        if (json_object_get(cp, "previewImageUrl"))
            json_object_set(att, "preview_url", json_object_get(cp, "previewImageUrl"));
    }
    return att;
}

/* Fills kind, text and content fields of DATA from a message object. */
static void message_content(json_t *data, const json_t *msg)
{
    const char *type = str_or(msg, "type", "");
    const char *kind = "unsupported", *text = "";
    json_t *att = NULL;
    if (strcmp(type, "text") == 0) {
        kind = "text";
        text = str_or(msg, "text", "");
    } else if (strcmp(type, "image") == 0) {
        kind = "image";
        att = attachment("image", "image/jpeg", msg);
        json_t *set = json_object_get(msg, "imageSet");
        if (set) json_object_set(data, "image_set", set);
    } else if (strcmp(type, "video") == 0) {
        kind = "video";
        att = attachment("video", "video/mp4", msg);
    } else if (strcmp(type, "audio") == 0) {
        kind = "audio";
        att = attachment("audio", "audio/x-m4a", msg);
    } else if (strcmp(type, "file") == 0) {
        kind = "document";
        att = attachment("document", "application/octet-stream", msg);
    } else if (strcmp(type, "location") == 0) {
        kind = "location";
        json_object_set_new(
            data, "location",
            json_pack("{s:O?, s:O?, s:s, s:s}", "latitude", json_object_get(msg, "latitude"),
                      "longitude", json_object_get(msg, "longitude"), "name",
                      str_or(msg, "title", ""), "address", str_or(msg, "address", "")));
    } else if (strcmp(type, "sticker") == 0) {
        kind = "sticker";
        text = str_or(msg, "text", ""); /* message stickers carry text */
        json_object_set_new(data, "sticker",
                            json_pack("{s:s, s:s, s:s}", "package_id", str_or(msg, "packageId", ""),
                                      "sticker_id", str_or(msg, "stickerId", ""), "resource_type",
                                      str_or(msg, "stickerResourceType", "")));
    } else {
        json_object_set_new(data, "message_type", json_string(type));
    }
    if (att) {
        json_t *list = json_array();
        if (list && json_array_append_new(list, att) == 0)
            json_object_set_new_nocheck(data, "attachments", list);
        else if (!list)
            json_decref(att);
        else
            json_decref(list);
    }
    put(data, "kind", kind);
    put(data, "text", text);
    if (json_object_get(msg, "quotedMessageId"))
        json_object_set(data, "reply_to", json_object_get(msg, "quotedMessageId"));
    if (json_object_get(msg, "quoteToken"))
        json_object_set(data, "quote_token", json_object_get(msg, "quoteToken"));
}

/* Events that are not messages: postbacks become interactive replies, the
 * rest (follow, unfollow, join, unsend, ...) keep their LINE type in
 * data.event with kind "unsupported" and empty text. */
static void other_content(json_t *data, const char *type, const json_t *ev)
{
    const char *kind = "unsupported", *text = "";
    if (strcmp(type, "postback") == 0) {
        const json_t *pb = json_object_get(ev, "postback");
        kind = "interactive";
        text = str_or(pb, "data", "");
        json_t *inter = json_pack("{s:s, s:s}", "type", "postback", "data", text);
        if (inter && json_object_get(pb, "params"))
            json_object_set(inter, "params", json_object_get(pb, "params"));
        json_object_set_new(data, "interactive", inter);
    } else if (strcmp(type, "follow") == 0) {
        json_object_set_new(
            data, "follow",
            json_pack("{s:b}", "is_unblocked",
                      json_is_true(json_object_get(json_object_get(ev, "follow"), "isUnblocked"))));
    } else if (strcmp(type, "unsend") == 0) {
        json_object_set(data, "unsend_of",
                        json_object_get(json_object_get(ev, "unsend"), "messageId"));
    }
    put(data, "event", type);
    put(data, "kind", kind);
    put(data, "text", text);
}

static int one_event(const struct oh_norm_ctx *nc, const char *account, const json_t *ev,
                     struct oh_event_list *out, char *err, size_t errlen)
{
    const char *type = str_or(ev, "type", NULL);
    const json_t *src = json_object_get(ev, "source");
    const char *contact = contact_of(src);
    if (!type) {
        oh_errf(err, errlen, "event without type");
        return OH_EINVAL;
    }
    /* Channel-level events (activated, botSuspended, ...) have no chat. */
    if (!contact || !*contact) return OH_OK;
    const json_t *msg = json_object_get(ev, "message");
    bool is_msg = strcmp(type, "message") == 0;
    const char *weid = str_or(ev, "webhookEventId", NULL);
    if (is_msg && !str_or(msg, "id", NULL)) {
        oh_errf(err, errlen, "message event without message.id");
        return OH_EINVAL;
    }
    if (!is_msg && !weid) {
        oh_errf(err, errlen, "%s event without webhookEventId", type);
        return OH_EINVAL;
    }
    /* A message keeps its LINE id; other events are named by their webhook
     * event id (a ULID), the same on every redelivery. */
    const char *mid = is_msg ? str_or(msg, "id", "") : weid;
    char conv[OH_ID_MAX], id[OH_ID_MAX], when[32];
    oh_conversation_id(conv, LINE_CHANNEL, account, contact);
    json_t *data = json_object();
    /* the account may be ours (--account): checked as json_pack checked it */
    if (data && (put(data, "conversation_id", conv) || put(data, "channel", LINE_CHANNEL) ||
                 json_object_set_new_nocheck(data, "account", json_string(account)) ||
                 put(data, "direction", "inbound") ||
                 json_object_set_new_nocheck(data, "contact", pair("id", contact, "name", "")) ||
                 put(data, "message_id", mid))) {
        json_decref(data);
        data = NULL;
    }
    if (!data) return OH_ENOMEM;
    if (is_msg)
        message_content(data, msg);
    else
        other_content(data, type, ev);
    int64_t ts = json_integer_value(json_object_get(ev, "timestamp"));
    if (ts <= 0) ts = nc->now_ms;
    oh_time_rfc3339(when, ts);
    put(data, "sent_at", when);
    const char *user = str_or(src, "userId", contact);
    json_object_set_new_nocheck(data, "author", pair("kind", "customer", "id", user));
    if (weid) put(data, "webhook_event_id", weid);
    if (json_is_true(json_object_get(json_object_get(ev, "deliveryContext"), "isRedelivery")))
        json_object_set_new(data, "redelivery", json_true());
    if (strcmp(str_or(ev, "mode", "active"), "standby") == 0)
        json_object_set_new(data, "standby", json_true());
    /* Everything a redelivery repeats names a non-message event: the ULID
     * alone is not trusted to be unique across event types. */
    char tsbuf[24];
    snprintf(tsbuf, sizeof tsbuf, "%lld",
             (long long)json_integer_value(json_object_get(ev, "timestamp")));
    if (is_msg)
        oh_event_id(id, LINE_CHANNEL, account, mid, (const char *)NULL);
    else
        oh_event_id(id, LINE_CHANNEL, account, "event", weid, type, contact, tsbuf,
                    (const char *)NULL);
    return oh_event_list_push(out, oh_event_new(OH_EV_INBOUND, id, ts, data));
}

int line_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                   struct oh_event_list *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    const json_t *events = json_object_get(root, "events");
    if (!json_is_object(root) || !json_is_array(events)) {
        oh_errf(err, errlen, "body is not a webhook delivery with events[] (%s)",
                root ? "no events array" : jerr.text);
        json_decref(root);
        return OH_EINVAL;
    }
    const char *account =
        nc->account && *nc->account ? nc->account : str_or(root, "destination", NULL);
    if (!account || !*account) {
        size_t n = json_array_size(events);
        json_decref(root);
        if (n == 0) return OH_OK;
        oh_errf(err, errlen, "delivery without destination");
        return OH_EINVAL;
    }
    if (account == nc->account && !oh_utf8_valid(account, strlen(account))) {
        json_decref(root);
        oh_errf(err, errlen, "account is not valid UTF-8");
        return OH_EINVAL;
    }
    size_t i;
    const json_t *ev;
    int rc = OH_OK;
    json_array_foreach(events, i, ev)
    {
        if (!json_is_object(ev)) {
            oh_errf(err, errlen, "events[%zu] is not an object", i);
            rc = OH_EINVAL;
        } else {
            rc = one_event(nc, account, ev, out, err, errlen);
        }
        if (rc) break;
    }
    json_decref(root);
    return rc;
}
