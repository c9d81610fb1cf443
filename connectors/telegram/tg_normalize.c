/* tg_normalize.c - the pure half of the Telegram connector: one Bot API
 * Update (message, edit, channel post, callback query, reaction) -> one
 * CloudEvent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "telegram.h"

/* What the parser needs to know about the message being built. */
struct tg_msg {
    const char *account;
    char chat_id[32];
    char contact_name[256];
    char message_id[96]; /* "<chat_id>:<message_id>" */
};

static const char *str_or(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* After snprintf wrote N (its return value) into OUT (OUTLEN bytes) from
 * UTF-8 strings: a cut inside a character is moved back to its start, so
 * the text stays UTF-8 (a cut character once failed the whole update as
 * "out of memory"). */
static void utf8_cut(char *out, size_t outlen, int n)
{
    if (n < 0 || (size_t)n < outlen) return;
    size_t len = outlen - 1, k = len;
    while (k > 0 && len - k < 3 && ((unsigned char)out[k - 1] & 0xC0) == 0x80)
        k--;
    if (k == 0) return;
    unsigned char lead = (unsigned char)out[k - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > len - (k - 1)) out[k - 1] = '\0';
}

/* Telegram ids are integers (64-bit for chats); some callers quote them. */
static bool id_text(const json_t *v, char *out, size_t outlen)
{
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
        return true;
    }
    if (json_is_string(v) && *json_string_value(v)) {
        utf8_cut(out, outlen, snprintf(out, outlen, "%s", json_string_value(v)));
        return true;
    }
    return false;
}

/* "First Last", falling back to the title (groups, channels) or username. */
static void display_name(const json_t *o, char *out, size_t outlen)
{
    const char *title = str_or(o, "title", NULL);
    const char *first = str_or(o, "first_name", NULL), *last = str_or(o, "last_name", NULL);
    int n;
    if (title)
        n = snprintf(out, outlen, "%s", title);
    else if (first && last)
        n = snprintf(out, outlen, "%s %s", first, last);
    else if (first || last)
        n = snprintf(out, outlen, "%s", first ? first : last);
    else
        n = snprintf(out, outlen, "%s", str_or(o, "username", ""));
    utf8_cut(out, outlen, n);
}

/* KEY = V (a new reference, taken); nonzero when V is NULL or on failure.
 * Events are built key by key in the order json_pack gave them (its format
 * parser was a tenth of a normalize): strings of the body or of ours go in
 * unchecked, strings cut to a buffer through json_string, which checks the
 * UTF-8 as json_pack did. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new_nocheck(obj, key, v);
}

/* {id, name} of the chat. */
static json_t *contact_of(const struct tg_msg *m)
{
    json_t *c = json_object();
    if (c &&
        (put(c, "id", json_string(m->chat_id)) || put(c, "name", json_string(m->contact_name)))) {
        json_decref(c);
        return NULL;
    }
    return c;
}

/* The common data fields of every event of a chat. */
static json_t *base_data(const struct tg_msg *m, const char *kind, const char *text)
{
    char conv[OH_ID_MAX];
    oh_conversation_id(conv, TG_CHANNEL, m->account, m->chat_id);
    json_t *d = json_object();
    if (d &&
        (put(d, "conversation_id", json_string_nocheck(conv)) ||
         put(d, "channel", json_string_nocheck(TG_CHANNEL)) ||
         put(d, "account", json_string(m->account)) ||
         put(d, "direction", json_string_nocheck("inbound")) || put(d, "contact", contact_of(m)) ||
         put(d, "message_id", json_string(m->message_id)) ||
         put(d, "kind", json_string_nocheck(kind)) || put(d, "text", json_string_nocheck(text)))) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static void set_time(json_t *data, int64_t ms)
{
    char when[32];
    oh_time_rfc3339(when, ms);
    put(data, "sent_at", json_string_nocheck(when));
}

/* [V] (V a new reference, taken); NULL when V is NULL, as json_pack("[o]"). */
static json_t *one(json_t *v)
{
    json_t *a = v ? json_array() : NULL;
    if (a && json_array_append_new(a, v) == 0) return a;
    if (!a) json_decref(v);
    json_decref(a);
    return NULL;
}

/* The author: the sending user, else the sending chat (channel posts). */
static void set_author(json_t *data, const json_t *msg, const char *chat_id)
{
    const json_t *from = json_object_get(msg, "from");
    const json_t *who = from ? from : json_object_get(msg, "sender_chat");
    char id[32];
    if (!id_text(json_object_get(who, "id"), id, sizeof id)) snprintf(id, sizeof id, "%s", chat_id);
    const char *kind = json_is_true(json_object_get(from, "is_bot")) ? "bot" : "customer";
    json_t *a = json_object();
    if (a && (put(a, "kind", json_string_nocheck(kind)) || put(a, "id", json_string(id)))) {
        json_decref(a);
        a = NULL;
    }
    put(data, "author", a);
}

static json_t *attachment(const char *kind, const json_t *file, const char *mime,
                          const char *filename)
{
    json_t *att = json_object();
    if (att && (put(att, "kind", json_string_nocheck(kind)) ||
                put(att, "mime_type", json_string_nocheck(str_or(file, "mime_type", mime))) ||
                put(att, "filename", json_string_nocheck(str_or(file, "file_name", filename))) ||
                put(att, "media_ref", json_string_nocheck(str_or(file, "file_id", ""))))) {
        json_decref(att);
        att = NULL;
    }
    if (att && json_is_integer(json_object_get(file, "file_size")))
        json_object_set(att, "size", json_object_get(file, "file_size"));
    return att;
}

/* Media kinds in the order they must be tested: an animation also carries
 * a document, a venue also carries a location. */
static const struct {
    const char *field, *kind, *mime;
} tg_media_kinds[] = {
    {"animation", "video", "video/mp4"},  {"video", "video", "video/mp4"},
    {"video_note", "video", "video/mp4"}, {"audio", "audio", "audio/mpeg"},
    {"voice", "audio", "audio/ogg"},      {"document", "document", "application/octet-stream"},
};

/* Fills kind, attachments, location, contacts of DATA from MSG. */
static const char *content(json_t *data, const json_t *msg)
{
    const json_t *v;
    if ((v = json_object_get(msg, "photo")) && json_array_size(v)) {
        /* sizes come smallest first; the last one is the original */
        const json_t *big = json_array_get(v, json_array_size(v) - 1);
        put(data, "attachments", one(attachment("image", big, "image/jpeg", "")));
        return "image";
    }
    if ((v = json_object_get(msg, "sticker"))) {
        const char *mime = json_is_true(json_object_get(v, "is_animated"))
                               ? "application/x-tgsticker"
                           : json_is_true(json_object_get(v, "is_video")) ? "video/webm"
                                                                          : "image/webp";
        put(data, "attachments", one(attachment("sticker", v, mime, "")));
        json_object_set_new(data, "sticker",
                            json_pack("{s:s, s:s}", "emoji", str_or(v, "emoji", ""), "set_name",
                                      str_or(v, "set_name", "")));
        return "sticker";
    }
    for (size_t i = 0; i < OH_ARRAY_SIZE(tg_media_kinds); i++) {
        if (!(v = json_object_get(msg, tg_media_kinds[i].field))) continue;
        put(data, "attachments",
            one(attachment(tg_media_kinds[i].kind, v, tg_media_kinds[i].mime, "")));
        return tg_media_kinds[i].kind;
    }
    const json_t *venue = json_object_get(msg, "venue");
    const json_t *loc =
        venue ? json_object_get(venue, "location") : json_object_get(msg, "location");
    if (loc) {
        json_object_set_new(
            data, "location",
            json_pack("{s:O?, s:O?, s:s, s:s}", "latitude", json_object_get(loc, "latitude"),
                      "longitude", json_object_get(loc, "longitude"), "name",
                      str_or(venue, "title", ""), "address", str_or(venue, "address", "")));
        return "location";
    }
    if ((v = json_object_get(msg, "contact"))) {
        char name[256];
        display_name(v, name, sizeof name);
        json_t *c = json_pack("{s:s, s:s}", "name", name, "phone", str_or(v, "phone_number", ""));
        if (c && json_object_get(v, "user_id"))
            json_object_set(c, "user_id", json_object_get(v, "user_id"));
        json_object_set_new(data, "contacts", json_pack("[o]", c));
        return "contacts";
    }
    if ((v = json_object_get(msg, "poll"))) {
        json_object_set_new(
            data, "interactive",
            json_pack("{s:s, s:s}", "type", "poll", "question", str_or(v, "question", "")));
        return "interactive";
    }
    if (json_object_get(msg, "text")) return "text";
    return "unsupported";
}

static int chat_of(const json_t *chat, struct tg_msg *m, char *err, size_t errlen)
{
    if (!json_is_object(chat) ||
        !id_text(json_object_get(chat, "id"), m->chat_id, sizeof m->chat_id)) {
        oh_errf(err, errlen, "message without chat.id");
        return OH_EINVAL;
    }
    display_name(chat, m->contact_name, sizeof m->contact_name);
    return OH_OK;
}

/* message, channel_post, and their edited_ forms. */
static int on_message(const struct oh_norm_ctx *nc, const char *account, const json_t *msg,
                      bool edit, struct oh_event_list *out, char *err, size_t errlen)
{
    struct tg_msg m = {.account = account};
    const json_t *mid = json_object_get(msg, "message_id");
    if (!json_is_object(msg) || !json_is_integer(mid)) {
        oh_errf(err, errlen, "message without message_id");
        return OH_EINVAL;
    }
    if (chat_of(json_object_get(msg, "chat"), &m, err, errlen)) return OH_EINVAL;
    char orig[96];
    snprintf(orig, sizeof orig, "%s:%lld", m.chat_id, (long long)json_integer_value(mid));
    long long edit_date = (long long)json_integer_value(json_object_get(msg, "edit_date"));
    if (edit && !edit_date) edit_date = (long long)json_integer_value(json_object_get(msg, "date"));
    if (edit)
        snprintf(m.message_id, sizeof m.message_id, "%s:%lld", orig, edit_date);
    else
        snprintf(m.message_id, sizeof m.message_id, "%s", orig);

    const char *text = str_or(msg, "text", str_or(msg, "caption", ""));
    json_t *data = base_data(&m, "text", text);
    if (!data) return OH_ENOMEM;
    put(data, "kind", json_string_nocheck(content(data, msg)));
    int64_t date = json_integer_value(json_object_get(msg, "date"));
    int64_t when = oh_time_from_seconds(edit ? edit_date : date);
    if (!when) when = nc->now_ms;
    set_time(data, when);
    set_author(data, msg, m.chat_id);

    const json_t *reply = json_object_get(msg, "reply_to_message");
    if (json_is_integer(json_object_get(reply, "message_id"))) {
        char rchat[32], ref[96];
        if (!id_text(json_object_get(json_object_get(reply, "chat"), "id"), rchat, sizeof rchat))
            snprintf(rchat, sizeof rchat, "%s", m.chat_id);
        snprintf(ref, sizeof ref, "%s:%lld", rchat,
                 (long long)json_integer_value(json_object_get(reply, "message_id")));
        json_object_set_new(data, "reply_to", json_string(ref));
    }
    if (json_object_get(msg, "forward_origin") || json_object_get(msg, "forward_from") ||
        json_object_get(msg, "forward_from_chat") || json_object_get(msg, "forward_date"))
        json_object_set_new(data, "forwarded", json_true());
    if (json_object_get(msg, "media_group_id"))
        json_object_set(data, "media_group_id", json_object_get(msg, "media_group_id"));

    char id[OH_ID_MAX];
    if (edit) {
        char ed[24];
        snprintf(ed, sizeof ed, "%lld", edit_date);
        json_object_set_new(data, "edit_of", json_string(orig));
        oh_event_id(id, TG_CHANNEL, account, orig, "edit", ed, (const char *)NULL);
    } else {
        oh_event_id(id, TG_CHANNEL, account, orig, (const char *)NULL);
    }
    return oh_event_list_push(out, oh_event_new(OH_EV_INBOUND, id, when, data));
}

/* A press on an inline keyboard button. */
static int on_callback(const struct oh_norm_ctx *nc, const char *account, const json_t *cq,
                       struct oh_event_list *out, char *err, size_t errlen)
{
    const char *cqid = str_or(cq, "id", NULL);
    const json_t *from = json_object_get(cq, "from");
    if (!cqid || !json_is_object(from)) {
        oh_errf(err, errlen, "callback_query without id or from");
        return OH_EINVAL;
    }
    struct tg_msg m = {.account = account};
    const json_t *msg = json_object_get(cq, "message");
    /* Without the message (inline mode) the press belongs to the user's
     * private chat with the bot, whose chat id is the user id. */
    if (chat_of(json_is_object(json_object_get(msg, "chat")) ? json_object_get(msg, "chat") : from,
                &m, err, errlen))
        return OH_EINVAL;
    utf8_cut(m.message_id, sizeof m.message_id,
             snprintf(m.message_id, sizeof m.message_id, "callback:%s", cqid));
    const char *payload = str_or(cq, "data", str_or(cq, "game_short_name", ""));
    json_t *data = base_data(&m, "interactive", payload);
    if (!data) return OH_ENOMEM;
    json_t *inter =
        json_pack("{s:s, s:s, s:s}", "type", "callback_query", "id", cqid, "data", payload);
    if (inter && json_object_get(cq, "inline_message_id"))
        json_object_set(inter, "inline_message_id", json_object_get(cq, "inline_message_id"));
    json_object_set_new(data, "interactive", inter);
    if (json_is_integer(json_object_get(msg, "message_id"))) {
        char ref[96];
        snprintf(ref, sizeof ref, "%s:%lld", m.chat_id,
                 (long long)json_integer_value(json_object_get(msg, "message_id")));
        json_object_set_new(data, "reply_to", json_string(ref));
    }
    set_time(data, nc->now_ms);
    set_author(data, cq, m.chat_id);
    char id[OH_ID_MAX];
    oh_event_id(id, TG_CHANNEL, account, "callback", cqid, (const char *)NULL);
    return oh_event_list_push(out, oh_event_new(OH_EV_INBOUND, id, nc->now_ms, data));
}

/* A user changed their reaction to a message (message_reaction updates,
 * delivered when allowed_updates asks for them). */
static int on_reaction(const struct oh_norm_ctx *nc, const char *account, const json_t *r,
                       struct oh_event_list *out, char *err, size_t errlen)
{
    struct tg_msg m = {.account = account};
    const json_t *mid = json_object_get(r, "message_id");
    if (!json_is_integer(mid) || chat_of(json_object_get(r, "chat"), &m, err, errlen)) {
        oh_errf(err, errlen, "message_reaction without chat.id or message_id");
        return OH_EINVAL;
    }
    char target[96], date[24], who[32];
    snprintf(target, sizeof target, "%s:%lld", m.chat_id, (long long)json_integer_value(mid));
    long long d = (long long)json_integer_value(json_object_get(r, "date"));
    snprintf(date, sizeof date, "%lld", d);
    const json_t *actor = json_object_get(r, "user");
    if (!actor) actor = json_object_get(r, "actor_chat");
    if (!id_text(json_object_get(actor, "id"), who, sizeof who))
        snprintf(who, sizeof who, "%s", m.chat_id);
    /* The new reaction set; the first emoji stands for it, "" means removed. */
    const json_t *first = json_array_get(json_object_get(r, "new_reaction"), 0);
    const char *emoji = str_or(first, "emoji", "");
    if (first && !*emoji) emoji = str_or(first, "custom_emoji_id", str_or(first, "type", ""));
    snprintf(m.message_id, sizeof m.message_id, "%s:reaction:%s:%s", target, who, date);
    json_t *data = base_data(&m, "reaction", "");
    if (!data) return OH_ENOMEM;
    json_object_set_new(data, "reaction",
                        json_pack("{s:s, s:s}", "message_id", target, "emoji", emoji));
    int64_t when = oh_time_from_seconds(d);
    if (!when) when = nc->now_ms;
    set_time(data, when);
    const bool is_bot = json_is_true(json_object_get(actor, "is_bot"));
    json_object_set_new(data, "author",
                        json_pack("{s:s, s:s}", "kind", is_bot ? "bot" : "customer", "id", who));
    char id[OH_ID_MAX];
    oh_event_id(id, TG_CHANNEL, account, target, "reaction", who, emoji, date, (const char *)NULL);
    return oh_event_list_push(out, oh_event_new(OH_EV_INBOUND, id, when, data));
}

int tg_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                 struct oh_event_list *out, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *upd = json_loadb((const char *)body, len, 0, &jerr);
    if (!json_is_object(upd)) {
        oh_errf(err, errlen, "body is not a JSON object (%s)", upd ? "" : jerr.text);
        json_decref(upd);
        return OH_EINVAL;
    }
    if (!json_is_integer(json_object_get(upd, "update_id"))) {
        oh_errf(err, errlen, "update without update_id");
        json_decref(upd);
        return OH_EINVAL;
    }
    const char *account = nc->account && *nc->account ? nc->account : TG_DEFAULT_ACCOUNT;
    if (!oh_utf8_valid(account, strlen(account))) {
        oh_errf(err, errlen, "account is not valid UTF-8");
        json_decref(upd);
        return OH_EINVAL;
    }
    size_t before = out->n;
    int rc = OH_OK;
    const json_t *v;
    if ((v = json_object_get(upd, "message")) || (v = json_object_get(upd, "channel_post")))
        rc = on_message(nc, account, v, false, out, err, errlen);
    else if ((v = json_object_get(upd, "edited_message")) ||
             (v = json_object_get(upd, "edited_channel_post")))
        rc = on_message(nc, account, v, true, out, err, errlen);
    else if ((v = json_object_get(upd, "callback_query")))
        rc = on_callback(nc, account, v, out, err, errlen);
    else if ((v = json_object_get(upd, "message_reaction")))
        rc = on_reaction(nc, account, v, out, err, errlen);
    /* The update id is a delivery counter; keep it for tracing. */
    if (rc == OH_OK && out->n > before)
        json_object_set(oh_event_data(out->ev[out->n - 1]), "update_id",
                        json_object_get(upd, "update_id"));
    json_decref(upd);
    return rc;
}

bool tg_parse_message_ref(const char *ref, long long *message_id)
{
    if (!ref || !*ref) return false;
    const char *colon = strchr(ref, ':');
    const char *num = colon ? colon + 1 : ref;
    char *end;
    long long v = strtoll(num, &end, 10);
    if (end == num || (*end && *end != ':') || v <= 0) return false;
    *message_id = v;
    return true;
}
