/* wa_normalize.c - WhatsApp Business Account webhook deliveries (every
 * entry, every change) -> normalized inbound message and status events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "whatsapp.h"

/* Everything one change shares: its business number and its contacts. */
struct wa_change {
    const struct oh_norm_ctx *nc;
    const char *account;    /* metadata.phone_number_id (or --account) */
    const json_t *contacts; /* value.contacts[] */
    struct oh_event_list *out;
    struct wa_parse_stats *stats;
    wa_media_fn media_fn;
    void *opaque;
};

static const char *wa_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static const char *wa_str_or(const json_t *obj, const char *key, const char *def)
{
    const char *s = wa_str(obj, key);
    return s ? s : def;
}

/* Graph sends timestamps as decimal strings of seconds. DEF (the receive
 * time) stands in when there is none. */
static int64_t wa_time_ms(const json_t *obj, int64_t def)
{
    if (def <= 0) def = oh_now_ms();
    const json_t *t = json_object_get(obj, "timestamp");
    if (json_is_integer(t)) {
        int64_t ms = oh_time_from_seconds(json_integer_value(t));
        return ms ? ms : def;
    }
    const char *s = json_string_value(t);
    if (!s || !*s) return def;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    int64_t ms = *end ? 0 : oh_time_from_seconds(v);
    return ms ? ms : def;
}

/* Copies a JSON value into DATA under KEY when present. */
static void wa_copy(json_t *data, const char *key, const json_t *src, const char *srckey)
{
    json_t *v = json_object_get(src, srckey);
    if (v) json_object_set_new(data, key, json_deep_copy(v));
}

/* The contact's profile name for WA_ID, "" when the delivery has none. */
static const char *wa_profile_name(const json_t *contacts, const char *wa_id)
{
    size_t i;
    const json_t *c;
    json_array_foreach(contacts, i, c)
    {
        const char *id = wa_str(c, "wa_id");
        if (id && strcmp(id, wa_id) == 0)
            return wa_str_or(json_object_get(c, "profile"), "name", "");
    }
    if (json_array_size(contacts) == 1)
        return wa_str_or(json_object_get(json_array_get(contacts, 0), "profile"), "name", "");
    return "";
}

/* The customer's wa_id: the contact entry matching "from", else "from". */
static const char *wa_contact_id(const json_t *contacts, const char *from)
{
    size_t i;
    const json_t *c;
    json_array_foreach(contacts, i, c)
    {
        const char *id = wa_str(c, "wa_id");
        if (id && strcmp(id, from) == 0) return id;
    }
    /* Some numbers (Brazil, Mexico) arrive with "from" formatted differently
     * from the wa_id; a single contact entry is the sender. */
    if (json_array_size(contacts) == 1 && wa_str(json_array_get(contacts, 0), "wa_id"))
        return wa_str(json_array_get(contacts, 0), "wa_id");
    return from;
}

/* Builds the common part of an event's data. */
static json_t *wa_data(const struct wa_change *ch, const char *conv, const char *direction,
                       const char *contact_id, const char *contact_name, const char *kind)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s}", "conversation_id", conv, "channel",
                     WA_CHANNEL, "account", ch->account, "direction", direction, "contact", "id",
                     contact_id, "name", contact_name, "kind", kind);
}

static const char *const wa_media_kinds[] = {"image", "audio", "video", "document", "sticker"};

static bool wa_is_media(const char *type)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(wa_media_kinds); i++)
        if (strcmp(type, wa_media_kinds[i]) == 0) return true;
    return false;
}

/* image / audio / video / document / sticker -> one attachment. */
static void wa_media_fields(const struct wa_change *ch, const char *conv, const char *type,
                            const json_t *m, json_t *data)
{
    const json_t *o = json_object_get(m, type);
    json_t *att = json_pack("{s:s}", "kind", type);
    wa_copy(att, "mime_type", o, "mime_type");
    wa_copy(att, "filename", o, "filename");
    wa_copy(att, "size", o, "file_size");
    wa_copy(att, "media_ref", o, "id");
    wa_copy(att, "sha256", o, "sha256");
    if (json_is_true(json_object_get(o, "voice"))) json_object_set_new(att, "voice", json_true());
    if (json_object_get(o, "animated"))
        json_object_set_new(att, "animated",
                            json_boolean(json_is_true(json_object_get(o, "animated"))));
    json_object_set_new(data, "attachments", json_pack("[o]", att));
    json_object_set_new(data, "text", json_string(wa_str_or(o, "caption", "")));
    const char *id = wa_str(o, "id");
    if (id && ch->media_fn) ch->media_fn(ch->opaque, id, conv);
}

/* Joins the formatted names of shared contacts for the text preview. */
static json_t *wa_contacts_text(const json_t *list)
{
    char buf[1024] = "";
    size_t n = 0, i;
    const json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *name = wa_str(json_object_get(c, "name"), "formatted_name");
        if (!name) continue;
        int w = snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", name);
        if (w < 0 || (size_t)w >= sizeof buf - n) break;
        n += (size_t)w;
    }
    return json_string(buf);
}

/* The kind-specific fields of an inbound message. Returns the kind. */
static const char *wa_message_body(const struct wa_change *ch, const char *conv, const json_t *m,
                                   json_t *data)
{
    const char *type = wa_str_or(m, "type", "unknown");
    if (strcmp(type, "text") == 0) {
        json_object_set_new(data, "text",
                            json_string(wa_str_or(json_object_get(m, "text"), "body", "")));
        return "text";
    }
    if (wa_is_media(type)) {
        wa_media_fields(ch, conv, type, m, data);
        return type;
    }
    if (strcmp(type, "location") == 0) {
        const json_t *l = json_object_get(m, "location");
        json_t *loc = json_object();
        wa_copy(loc, "latitude", l, "latitude");
        wa_copy(loc, "longitude", l, "longitude");
        wa_copy(loc, "name", l, "name");
        wa_copy(loc, "address", l, "address");
        wa_copy(loc, "url", l, "url");
        json_object_set_new(data, "location", loc);
        json_object_set_new(data, "text", json_string(wa_str_or(l, "name", "")));
        return "location";
    }
    if (strcmp(type, "contacts") == 0) {
        const json_t *list = json_object_get(m, "contacts");
        json_object_set_new(data, "contacts",
                            json_is_array(list) ? json_deep_copy(list) : json_array());
        json_object_set_new(data, "text", wa_contacts_text(list));
        return "contacts";
    }
    if (strcmp(type, "interactive") == 0) {
        const json_t *i = json_object_get(m, "interactive");
        const char *itype = wa_str_or(i, "type", "");
        const json_t *reply = json_object_get(i, itype);
        json_t *out = json_pack("{s:s}", "type", itype);
        wa_copy(out, "id", reply, "id");
        wa_copy(out, "title", reply, "title");
        wa_copy(out, "description", reply, "description");
        /* nfm_reply (flows) and later reply types: kept whole */
        if (strcmp(itype, "button_reply") != 0 && strcmp(itype, "list_reply") != 0)
            wa_copy(out, "reply", i, itype);
        json_object_set_new(data, "interactive", out);
        json_object_set_new(data, "text",
                            json_string(wa_str_or(reply, "title", wa_str_or(reply, "body", ""))));
        return "interactive";
    }
    if (strcmp(type, "button") == 0) {
        const json_t *b = json_object_get(m, "button");
        json_t *out = json_pack("{s:s}", "type", "button");
        wa_copy(out, "title", b, "text");
        wa_copy(out, "payload", b, "payload");
        json_object_set_new(data, "interactive", out);
        json_object_set_new(data, "text", json_string(wa_str_or(b, "text", "")));
        return "interactive";
    }
    if (strcmp(type, "reaction") == 0) {
        const json_t *r = json_object_get(m, "reaction");
        const char *emoji = wa_str_or(r, "emoji", ""); /* missing or "": removed */
        json_object_set_new(
            data, "reaction",
            json_pack("{s:s, s:s}", "message_id", wa_str_or(r, "message_id", ""), "emoji", emoji));
        json_object_set_new(data, "text", json_string(emoji));
        return "reaction";
    }
    /* "unsupported", "unknown", "system", "order" and types added later:
     * kept with the type's own object and Graph's errors[]. */
    json_object_set_new(data, "wa_type", json_string(type));
    static const char *const kept[] = {"system", "order", "unsupported", "unknown"};
    const char *key = "wa_payload"; /* never let a type name overwrite our fields */
    for (size_t i = 0; i < OH_ARRAY_SIZE(kept); i++)
        if (strcmp(type, kept[i]) == 0) key = kept[i];
    wa_copy(data, key, m, type);
    wa_copy(data, "errors", m, "errors");
    const json_t *e0 = json_array_get(json_object_get(m, "errors"), 0);
    const char *text = wa_str(json_object_get(m, "system"), "body");
    if (!text) text = wa_str(json_object_get(m, "order"), "text");
    if (!text) text = wa_str(json_object_get(e0, "error_data"), "details");
    if (!text) text = wa_str_or(e0, "title", wa_str_or(e0, "message", ""));
    json_object_set_new(data, "text", json_string(text));
    return "unsupported";
}

/* The sender of a message without "from": a user with a username hides
 * the phone number, and the change's one contact names them by their
 * business-scoped user id (contacts[].user_id, "US.1349..."). */
static const char *wa_bsuid(const json_t *contacts)
{
    if (json_array_size(contacts) != 1) return NULL;
    return wa_str(json_array_get(contacts, 0), "user_id");
}

/* The business-scoped user id of the contact entry named WA_ID (a single
 * entry is the sender), when Meta sends one beside the phone number. */
static const char *wa_user_id(const json_t *contacts, const char *wa_id)
{
    size_t i;
    const json_t *c;
    json_array_foreach(contacts, i, c)
    {
        const char *id = wa_str(c, "wa_id");
        if (id && strcmp(id, wa_id) == 0) return wa_str(c, "user_id");
    }
    return json_array_size(contacts) == 1 ? wa_str(json_array_get(contacts, 0), "user_id") : NULL;
}

/* The identifiers WhatsApp vouches for (core/contacts.h links on them):
 * the number the sender verified at sign-up, and beside it, when the
 * change names one, the business-scoped user id, so the same person
 * writing later with the number hidden (named by that id alone) is linked
 * to the same contact. NULL when the sender is known by the user id only. */
static json_t *wa_identifiers(const json_t *contacts, const char *wa_id)
{
    if (strlen(wa_id) >= 20 || strspn(wa_id, "0123456789") != strlen(wa_id)) return NULL;
    char e164[24];
    snprintf(e164, sizeof e164, "+%s", wa_id);
    json_t *ids = json_pack("[{s:s, s:s, s:b}]", "type", "phone", "value", e164, "verified", 1);
    const char *user = wa_user_id(contacts, wa_id);
    if (ids && user && *user && strcmp(user, wa_id) != 0) {
        /* the channel's own id, which an identifier of its type replaces */
        json_array_append_new(
            ids, json_pack("{s:s, s:s, s:b}", "type", WA_CHANNEL, "value", wa_id, "verified", 1));
        json_array_append_new(
            ids, json_pack("{s:s, s:s, s:b}", "type", WA_CHANNEL, "value", user, "verified", 1));
    }
    return ids;
}

static int wa_message(const struct wa_change *ch, const json_t *m)
{
    const char *from = wa_str(m, "from");
    if (!from || !*from) from = wa_bsuid(ch->contacts);
    const char *wamid = wa_str(m, "id");
    if (!from || !*from || !wamid || !*wamid) return OH_EINVAL;
    const char *wa_id = wa_contact_id(ch->contacts, from);
    char conv[OH_ID_MAX], id[OH_ID_MAX], when[32];
    oh_conversation_id(conv, WA_CHANNEL, ch->account, wa_id);
    json_t *data = wa_data(ch, conv, "inbound", wa_id, wa_profile_name(ch->contacts, wa_id), "");
    if (!data) return OH_ENOMEM;
    json_t *ids = wa_identifiers(ch->contacts, wa_id);
    if (ids) json_object_set_new(json_object_get(data, "contact"), "identifiers", ids);
    json_object_set_new(data, "message_id", json_string(wamid));
    const char *kind = wa_message_body(ch, conv, m, data);
    json_object_set_new(data, "kind", json_string(kind));
    int64_t ms = wa_time_ms(m, ch->nc->now_ms);
    oh_time_rfc3339(when, ms);
    json_object_set_new(data, "sent_at", json_string(when));
    json_object_set_new(data, "author", json_pack("{s:s, s:s}", "kind", "customer", "id", wa_id));
    const json_t *ctx = json_object_get(m, "context");
    if (ctx) {
        const char *reply_to = wa_str(ctx, "id");
        if (reply_to && *reply_to) json_object_set_new(data, "reply_to", json_string(reply_to));
        if (json_is_true(json_object_get(ctx, "forwarded")) ||
            json_is_true(json_object_get(ctx, "frequently_forwarded")))
            json_object_set_new(data, "forwarded", json_true());
        if (json_is_true(json_object_get(ctx, "frequently_forwarded")))
            json_object_set_new(data, "frequently_forwarded", json_true());
        wa_copy(data, "referred_product", ctx, "referred_product");
    }
    wa_copy(data, "referral", m, "referral");
    if (strcmp(kind, "reaction") == 0)
        oh_event_id(id, WA_CHANNEL, ch->account, wamid, "reaction",
                    json_string_value(json_object_get(json_object_get(data, "reaction"), "emoji")),
                    (const char *)NULL);
    else
        oh_event_id(id, WA_CHANNEL, ch->account, wamid, (const char *)NULL);
    ch->stats->messages++;
    return oh_event_list_push(ch->out, oh_event_new(OH_EV_INBOUND, id, ms, data));
}

/* Graph's error objects -> {code, title, message, details, href}. */
static json_t *wa_error(const json_t *e)
{
    json_t *out = json_object();
    const json_t *code = json_object_get(e, "code");
    if (json_is_integer(code)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(code));
        json_object_set_new(out, "code", json_string(buf));
    } else if (json_is_string(code)) {
        json_object_set_new(out, "code", json_string(json_string_value(code)));
    }
    wa_copy(out, "title", e, "title");
    wa_copy(out, "message", e, "message");
    wa_copy(out, "href", e, "href");
    const char *details = wa_str(json_object_get(e, "error_data"), "details");
    if (details) json_object_set_new(out, "details", json_string(details));
    if (!json_object_get(out, "message") && json_object_get(out, "title"))
        wa_copy(out, "message", e, "title");
    return out;
}

static bool wa_known_state(const char *s)
{
    return !strcmp(s, "sent") || !strcmp(s, "delivered") || !strcmp(s, "read") ||
           !strcmp(s, "failed");
}

static int wa_status(const struct wa_change *ch, const json_t *s)
{
    const char *wamid = wa_str(s, "id");
    const char *state = wa_str(s, "status");
    const char *wa_id = wa_str(s, "recipient_id");
    if (!wa_id || !*wa_id) wa_id = wa_str(s, "recipient_user_id"); /* sent to a BSUID */
    if (!wamid || !*wamid || !state || !wa_id || !*wa_id) return OH_EINVAL;
    if (!wa_known_state(state)) { /* "played" (voice), "deleted" (legacy) */
        ch->stats->ignored_items++;
        return OH_OK;
    }
    char conv[OH_ID_MAX], id[OH_ID_MAX];
    oh_conversation_id(conv, WA_CHANNEL, ch->account, wa_id);
    json_t *data = wa_data(ch, conv, "outbound", wa_id, "", "text");
    if (!data) return OH_ENOMEM;
    /* the number it was delivered to, as a message from it would name it: a
     * conversation of statuses only (a template never answered) is linked to
     * the person by them */
    json_t *ids = wa_identifiers(ch->contacts, wa_id);
    if (ids) json_object_set_new(json_object_get(data, "contact"), "identifiers", ids);
    /* status.message_id is Graph's wamid: the sync service swaps in our own
     * message id (keeping the wamid as provider_message_id) when it knows it. */
    json_t *st = json_pack("{s:s, s:s}", "message_id", wamid, "state", state);
    const json_t *errors = json_object_get(s, "errors");
    if (json_array_size(errors) > 0) {
        json_object_set_new(st, "error", wa_error(json_array_get(errors, 0)));
        wa_copy(data, "errors", s, "errors");
    }
    json_object_set_new(data, "status", st);
    int64_t ms = wa_time_ms(s, ch->nc->now_ms);
    char when[32];
    oh_time_rfc3339(when, ms);
    json_object_set_new(data, "sent_at", json_string(when));
    json_object_set_new(data, "author",
                        json_pack("{s:s, s:s}", "kind", "system", "id", "whatsapp"));
    wa_copy(data, "pricing", s, "pricing");
    wa_copy(data, "wa_conversation", s, "conversation");
    oh_event_id(id, WA_CHANNEL, ch->account, wamid, "status", state, (const char *)NULL);
    ch->stats->statuses++;
    return oh_event_list_push(ch->out, oh_event_new(OH_EV_STATUS, id, ms, data));
}

static int wa_value(struct wa_change *ch, const json_t *value)
{
    size_t i;
    const json_t *item;
    const json_t *errors = json_object_get(value, "errors");
    json_array_foreach(errors, i, item)
    {
        const char *msg = wa_str_or(item, "message", wa_str_or(item, "title", "?"));
        long long code = json_integer_value(json_object_get(item, "code"));
        OH_WARN("whatsapp", "account %s: Graph reports error %lld: %s", ch->account, code, msg);
        ch->stats->account_errors++;
    }
    /* A malformed item is skipped (and counted) rather than failing the whole
     * delivery: Meta would retry it, good items included, for days. */
    json_array_foreach(json_object_get(value, "messages"), i, item)
    {
        int rc = wa_message(ch, item);
        if (rc == OH_EINVAL) {
            OH_WARN("whatsapp", "account %s: skipped a message without sender or \"id\"",
                    ch->account);
            ch->stats->malformed++;
        } else if (rc) {
            return rc;
        }
    }
    json_array_foreach(json_object_get(value, "statuses"), i, item)
    {
        int rc = wa_status(ch, item);
        if (rc == OH_EINVAL) {
            OH_WARN("whatsapp", "account %s: skipped a status without id, status or recipient",
                    ch->account);
            ch->stats->malformed++;
        } else if (rc) {
            return rc;
        }
    }
    return OH_OK;
}

int wa_parse(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
             struct oh_event_list *out, struct wa_parse_stats *stats, wa_media_fn media_fn,
             void *opaque, char *err, size_t errlen)
{
    struct wa_parse_stats local = {0};
    if (!stats) stats = &local;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    if (!root) {
        oh_errf(err, errlen, "invalid JSON at line %d: %s", jerr.line, jerr.text);
        return OH_EINVAL;
    }
    int rc = OH_OK;
    const char *object = wa_str(root, "object");
    const json_t *entries = json_object_get(root, "entry");
    if (!object || strcmp(object, "whatsapp_business_account") != 0) {
        oh_errf(err, errlen, "unknown object \"%s\" (want whatsapp_business_account)",
                object ? object : "");
        rc = OH_EINVAL;
    } else if (!json_is_array(entries)) {
        oh_errf(err, errlen, "\"entry\" is not an array");
        rc = OH_EINVAL;
    }
    size_t n0 = out->n, i, j;
    const json_t *entry, *change;
    json_array_foreach(entries, i, entry)
    {
        if (rc) break;
        json_array_foreach(json_object_get(entry, "changes"), j, change)
        {
            const char *field = wa_str_or(change, "field", "messages");
            const json_t *value = json_object_get(change, "value");
            if (strcmp(field, "messages") != 0 || !json_is_object(value)) {
                stats->ignored_changes++;
                continue;
            }
            const char *account =
                nc->account ? nc->account
                            : wa_str(json_object_get(value, "metadata"), "phone_number_id");
            if (!account || !*account) {
                oh_errf(err, errlen, "a change lacks metadata.phone_number_id");
                rc = OH_EINVAL;
                break;
            }
            struct wa_change ch = {
                nc, account, json_object_get(value, "contacts"), out, stats, media_fn, opaque};
            if ((rc = wa_value(&ch, value)) != OH_OK) break;
        }
    }
    if (rc) { /* all or nothing: drop what this delivery added */
        for (size_t k = n0; k < out->n; k++)
            json_decref(out->ev[k]);
        out->n = n0;
        if (rc == OH_ENOMEM) oh_errf(err, errlen, "out of memory");
    }
    json_decref(root);
    return rc;
}

int wa_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                 struct oh_event_list *out, char *err, size_t errlen)
{
    return wa_parse(nc, body, len, out, NULL, NULL, NULL, err, errlen);
}
