/* compose.c - the message a customer or agent sends (REST and WebSocket
 * `send`): checks and normalizes what the caller supplies, derives the
 * event id from the author and their client_msg_id, and keeps that key
 * idempotent per author (same body: same answer; another body: 409). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/contacts.h"
#include "gateway/gateway_int.h"
#include "core/json_dump.h"
#include "core/metrics.h"

#define MAX_TEXT              65536
#define MAX_ATTACHMENTS       10
#define MAX_ATTACHMENTS_BYTES 16384 /* the normalized list, as stored */
#define MAX_TEMPLATE_BYTES    16384
#define MAX_REF               512 /* reply_to, media_ref */
#define MAX_URL               2048
#define MAX_FILENAME          255
#define MAX_MIME              127
#define MAX_SIZE              ((json_int_t)1 << 53) /* what a JavaScript client reads exactly */

/* The kinds in schemas/event.schema.json's enum that name a media file. */
static const char *const media_kinds[] = {"image", "audio", "video", "document", "sticker"};

static bool is_media_kind(const char *k)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(media_kinds); i++)
        if (strcmp(k, media_kinds[i]) == 0) return true;
    return false;
}

/* A string member of at most MAX bytes (jansson already refused invalid
 * UTF-8 and NUL when it parsed the body). */
static bool short_string(const json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) > 0 && json_string_length(v) <= max;
}

/* type "/" subtype, RFC 6838 characters, no parameters. */
static bool mime_valid(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1]) return false;
    for (const char *p = s; *p; p++)
        if (p != slash && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                            (*p >= '0' && *p <= '9') || strchr("!#$&-^_.+", *p)))
            return false;
    return true;
}

/* One attachment: an object with a media KIND and only the members the
 * schema names. A customer may describe a file (kind, mime_type, filename,
 * size) but never point at one: media_ref and url are what an agent's UI
 * or a connector fetches, so only agents set them. Unknown members are a
 * 400 rather than dropped, so a client learns at once that a field it
 * relies on is not stored. */
static int attachment_of(bool agent, size_t i, const json_t *a, json_t **out, char *err,
                         size_t errlen)
{
    const char *k;
    const json_t *v;
    if (!json_is_object(a)) {
        oh_errf(err, errlen, "attachments[%zu] must be an object", i);
        return 400;
    }
    const char *kind = json_string_value(json_object_get(a, "kind"));
    if (!kind || !is_media_kind(kind)) {
        oh_errf(err, errlen,
                "attachments[%zu].kind must be one of image, audio, video, document, sticker", i);
        return 400;
    }
    json_object_foreach((json_t *)a, k, v)
    {
        bool ok;
        if (strcmp(k, "kind") == 0) {
            ok = true;
        } else if (strcmp(k, "mime_type") == 0) {
            ok = short_string(v, MAX_MIME) && mime_valid(json_string_value(v));
        } else if (strcmp(k, "filename") == 0) {
            ok = short_string(v, MAX_FILENAME);
        } else if (strcmp(k, "size") == 0) {
            ok = json_is_integer(v) && json_integer_value(v) >= 0 &&
                 json_integer_value(v) <= MAX_SIZE;
        } else if (strcmp(k, "media_ref") == 0 || strcmp(k, "url") == 0) {
            if (!agent) {
                oh_errf(err, errlen, "attachments[%zu].%s: only agents refer to media", i, k);
                return 403;
            }
            ok = k[0] == 'm' ? short_string(v, MAX_REF)
                             : short_string(v, MAX_URL) &&
                                   (strncmp(json_string_value(v), "https://", 8) == 0 ||
                                    strncmp(json_string_value(v), "http://", 7) == 0);
        } else {
            oh_errf(err, errlen, "attachments[%zu]: unknown member \"%.64s\"", i, k);
            return 400;
        }
        if (!ok) {
            oh_errf(err, errlen, "attachments[%zu].%s is not valid", i, k);
            return 400;
        }
    }
    *out = json_deep_copy(a);
    if (!*out) {
        oh_errf(err, errlen, "out of memory");
        return 500;
    }
    return 0;
}

/* The normalized attachment list, NULL when there is none. */
static int attachments_of(bool agent, const json_t *att, json_t **out, char *err, size_t errlen)
{
    size_t i, len = 0;
    const json_t *a;
    *out = NULL;
    if (!att || json_array_size(att) == 0) return 0;
    if (json_array_size(att) > MAX_ATTACHMENTS) {
        oh_errf(err, errlen, "at most %d attachments", MAX_ATTACHMENTS);
        return 400;
    }
    json_t *list = json_array();
    if (!list) {
        oh_errf(err, errlen, "out of memory");
        return 500;
    }
    json_array_foreach(att, i, a)
    {
        json_t *one;
        int st = attachment_of(agent, i, a, &one, err, errlen);
        if (st) {
            json_decref(list);
            return st;
        }
        json_array_append_new(list, one);
    }
    char *text = oh_json_dump(list, &len);
    free(text);
    if (!text || len > MAX_ATTACHMENTS_BYTES) {
        json_decref(list);
        oh_errf(err, errlen, "attachments are longer than %d bytes", MAX_ATTACHMENTS_BYTES);
        return text ? 413 : 500;
    }
    *out = list;
    return 0;
}

/* reply_to must name a message of CONV: one of its event ids, or a
 * channel message id the store maps to it. */
static int reply_target(oh_store *st, const struct oh_conversation *c, const char *ref, char *err,
                        size_t errlen)
{
    int rc = c->head ? oh_store_event_get(st, c->id, ref, NULL, NULL) : OH_ENOTFOUND;
    struct oh_store_ref r;
    if (rc == OH_ENOTFOUND && c->head) {
        rc = oh_store_ref_get(st, c->channel, c->account, ref, &r);
        if (rc == OH_OK && strcmp(r.conversation_id, c->id) != 0) rc = OH_ENOTFOUND;
    }
    if (rc == OH_ENOTFOUND) {
        oh_errf(err, errlen, "reply_to names no message of this conversation");
        return 400;
    }
    if (rc) {
        oh_errf(err, errlen, "store: %s", oh_strerror(rc));
        return 503;
    }
    return 0;
}

/* ---- idempotency per author ---- */

/* What makes two sends with one client_msg_id "the same message": the
 * fields the caller chose, as normalized and stored. */
static void content_digest(const json_t *data, uint8_t out[OH_SHA256_LEN])
{
    static const char *const fields[] = {"text", "attachments", "template", "reply_to", "internal"};
    json_t *o = json_object();
    for (size_t i = 0; o && i < OH_ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(data, fields[i]);
        if (v) json_object_set(o, fields[i], v);
    }
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (s)
        oh_sha256(s, strlen(s), out);
    else
        memset(out, 0, OH_SHA256_LEN); /* out of memory: compares unequal to any real digest */
    free(s);
}

struct stored {
    bool found;
    uint8_t digest[OH_SHA256_LEN];
};

static int stored_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    struct stored *s = opaque;
    json_t *ev = json_loadb(json, len, 0, NULL);
    s->found = true;
    content_digest(oh_event_data(ev), s->digest);
    json_decref(ev);
    return 0;
}

/* Sends accepted but maybe not materialized yet, by event id: the store
 * alone would let a second body with the same key through until the sync
 * service stored the first (and then drop it as a duplicate after a 202).
 * One table per process, fixed size: a slot taken over by another id only
 * reopens that window for the older one. Ids hash the conversation and the
 * author, so gateways sharing the table cannot confuse two senders. */
#define RECENT_SLOTS 4096
static struct {
    char id[OH_ID_MAX];
    uint8_t digest[OH_SHA256_LEN];
} recent[RECENT_SLOTS];
static pthread_mutex_t recent_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t recent_slot(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h % RECENT_SLOTS;
}

/* False when ID was taken with another digest. */
static bool recent_claim(const char *id, const uint8_t digest[OH_SHA256_LEN])
{
    size_t i = recent_slot(id);
    bool ok = true;
    pthread_mutex_lock(&recent_mu);
    if (strcmp(recent[i].id, id) == 0) {
        ok = memcmp(recent[i].digest, digest, OH_SHA256_LEN) == 0;
    } else {
        snprintf(recent[i].id, sizeof recent[i].id, "%s", id);
        memcpy(recent[i].digest, digest, OH_SHA256_LEN);
    }
    pthread_mutex_unlock(&recent_mu);
    return ok;
}

void gw_message_forget(const json_t *event)
{
    const char *id = oh_event_get_id(event);
    uint8_t digest[OH_SHA256_LEN];
    if (!id) return;
    content_digest(oh_event_data(event), digest);
    size_t i = recent_slot(id);
    pthread_mutex_lock(&recent_mu);
    if (strcmp(recent[i].id, id) == 0 && memcmp(recent[i].digest, digest, OH_SHA256_LEN) == 0)
        recent[i].id[0] = '\0';
    pthread_mutex_unlock(&recent_mu);
}

/* 0 when EV may be appended: its id is new, or was sent with the same
 * content (the repeat gets the same answer, and sync drops the copy). */
static int idempotent(oh_store *st, const json_t *ev, char *err, size_t errlen)
{
    const json_t *data = oh_event_data(ev);
    const char *key = json_string_value(json_object_get(data, "client_msg_id"));
    uint8_t digest[OH_SHA256_LEN];
    struct stored s = {0};
    content_digest(data, digest);
    int rc = oh_store_event_get(st, oh_event_subject(ev), oh_event_get_id(ev), stored_row, &s);
    if (rc && rc != OH_ENOTFOUND) {
        oh_errf(err, errlen, "store: %s", oh_strerror(rc));
        return 503;
    }
    if ((s.found && memcmp(s.digest, digest, OH_SHA256_LEN) != 0) ||
        !recent_claim(oh_event_get_id(ev), digest)) {
        oh_errf(err, errlen, "client_msg_id \"%s\" was already used for another message", key);
        return 409;
    }
    return 0;
}

/* ---- the message ---- */

static int build_message(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                         const json_t *body, struct gw_job *job, json_t **out, char *err,
                         size_t errlen)
{
    const json_t *text = json_object_get(body, "text");
    const char *key = json_string_value(json_object_get(body, "client_msg_id"));
    const json_t *tmpl = json_object_get(body, "template");
    const json_t *att_in = json_object_get(body, "attachments");
    const json_t *reply_to = json_object_get(body, "reply_to");
    const json_t *internal = json_object_get(body, "internal");
    oh_store *st = gw->hub->store;
    bool agent = oh_auth_is_agent(who);
    *out = NULL;
    if (!key || !*key || strlen(key) > 128) {
        oh_errf(err, errlen, "client_msg_id must be a string of 1..128 characters");
        return 400;
    }
    if ((text && !json_is_string(text)) || (tmpl && !json_is_object(tmpl)) ||
        (att_in && !json_is_array(att_in)) || (reply_to && !json_is_string(reply_to))) {
        oh_errf(err, errlen,
                "text and reply_to must be strings, template an object, "
                "attachments an array");
        return 400;
    }
    if (!text && !tmpl && !json_array_size(att_in)) {
        oh_errf(err, errlen, "text is required");
        return 400;
    }
    if (text && json_string_length(text) > MAX_TEXT) {
        oh_errf(err, errlen, "text is longer than %d bytes", MAX_TEXT);
        return 413;
    }
    if (text && !oh_utf8_valid(json_string_value(text), json_string_length(text))) {
        oh_errf(err, errlen, "text must be valid UTF-8 without NUL");
        return 400;
    }
    if (tmpl && !agent) {
        oh_errf(err, errlen, "only agents send templates");
        return 403;
    }
    /* a private note: agents only (a customer asking for one is a valid
     * caller asking for what is not theirs), and nothing that only makes
     * sense on the channel */
    if (internal && !json_is_boolean(internal)) {
        oh_errf(err, errlen, "internal must be true or false");
        return 400;
    }
    if (json_is_true(internal) && !agent) {
        oh_errf(err, errlen, "only agents write private notes");
        return 403;
    }
    /* the suggestion the reply was made from (suggest_api.c), recorded so
     * that acceptance can be counted */
    const json_t *sugg = json_object_get(body, "suggestion");
    if (sugg && !agent) {
        oh_errf(err, errlen, "only agents use suggestions");
        return 403;
    }
    if (sugg) {
        const char *src = json_string_value(json_object_get(sugg, "source"));
        if (!json_is_object(sugg) || json_object_size(sugg) != 2 ||
            !short_string(json_object_get(sugg, "id"), 128) || !src ||
            (strcmp(src, "kb") && strcmp(src, "llm") && strcmp(src, "canned"))) {
            oh_errf(err, errlen, "suggestion must be {id, source: kb|llm|canned}");
            return 400;
        }
    }
    if (json_is_true(internal) && tmpl) {
        oh_errf(err, errlen, "a private note carries no template");
        return 400;
    }
    if (tmpl) {
        size_t len = 0;
        char *t = oh_json_dump(tmpl, &len);
        free(t);
        if (!t || len > MAX_TEMPLATE_BYTES) {
            oh_errf(err, errlen, "template is longer than %d bytes", MAX_TEMPLATE_BYTES);
            return t ? 413 : 500;
        }
    }
    if (reply_to && !short_string(reply_to, MAX_REF)) {
        oh_errf(err, errlen, "reply_to must be a message id of 1..%d bytes", MAX_REF);
        return 400;
    }
    if (!agent && strcmp(conv, "new") == 0) conv = who->owns;
    if (!oh_auth_may_access(who, conv)) {
        oh_errf(err, errlen, "not your conversation");
        return 403;
    }
    json_t *att;
    int status = attachments_of(agent, att_in, &att, err, errlen);
    if (status) return status;
    struct oh_conversation c;
    /* everything above is checked again when the job comes back (it is
     * cheap and changes nothing): the wait keeps no half-built state */
    int rc = gw_conversation_later(gw, conv, &c, job);
    if (rc == GW_LATER) {
        json_decref(att);
        return GW_LATER;
    }
    struct oh_owned owned;
    const char *channel = NULL;
    if (rc == OH_ENOTFOUND && !agent &&
        gw_customer_conversation(gw, who->sub, &owned, &channel) == OH_OK &&
        strcmp(owned.conversation_id, conv) == 0) {
        /* a customer's first message opens the conversation they own, on
         * the channel that serves customers */
        memset(&c, 0, sizeof c);
        snprintf(c.id, sizeof c.id, "%s", conv);
        snprintf(c.channel, sizeof c.channel, "%s", channel);
        snprintf(c.account, sizeof c.account, "%s", owned.account);
        snprintf(c.contact_id, sizeof c.contact_id, "%s", who->sub);
        snprintf(c.contact_name, sizeof c.contact_name, "%s", who->sub);
    } else if (rc == OH_ENOTFOUND) {
        oh_errf(err, errlen, "no such conversation");
        status = 404;
    } else if (rc) {
        oh_errf(err, errlen, "store: %s", oh_strerror(rc));
        status = 503;
    }
    if (!status && reply_to)
        status = reply_target(st, &c, json_string_value(reply_to), err, errlen);
    if (status) {
        json_decref(att);
        return status;
    }
    /* each author has their own keys: a customer's "reply-1" and an
     * agent's "reply-1" are two messages */
    char id[OH_ID_MAX], when[32];
    oh_event_id(id, "message", conv, agent ? "agent" : "customer", who->sub, key,
                (const char *)NULL);
    oh_time_rfc3339(when, oh_now_ms());
    const char *kind =
        att ? json_string_value(json_object_get(json_array_get(att, 0), "kind")) : "text";
    json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, "
                             "s:{s:s, s:s}}",
                             "conversation_id", conv, "channel", c.channel, "account", c.account,
                             "direction", agent ? "outbound" : "inbound", "contact", "id",
                             c.contact_id, "name", c.contact_name, "message_id", id, "kind", kind,
                             "text", text ? json_string_value(text) : "", "sent_at", when, "author",
                             "kind", agent ? "agent" : "customer", "id", who->sub);
    if (data && !agent && (who->email[0] || who->phone[0])) {
        /* the token's issuer vouches for these: contacts link on them */
        json_t *ids = json_array();
        if (who->email[0])
            json_array_append_new(ids, json_pack("{s:s, s:s, s:b}", "type", OH_IDENT_EMAIL, "value",
                                                 who->email, "verified", 1));
        if (who->phone[0])
            json_array_append_new(ids, json_pack("{s:s, s:s, s:b}", "type", OH_IDENT_PHONE, "value",
                                                 who->phone, "verified", 1));
        json_object_set_new(json_object_get(data, "contact"), "identifiers", ids);
    }
    if (data && tmpl) json_object_set(data, "template", (json_t *)tmpl);
    if (data && att) json_object_set(data, "attachments", att);
    if (data && reply_to) json_object_set(data, "reply_to", (json_t *)reply_to);
    json_object_set_new(data, "client_msg_id", json_string(key));
    if (json_is_true(internal)) json_object_set_new(data, "internal", json_true());
    if (sugg) json_object_set(data, "suggestion", (json_t *)sugg);
    json_decref(att);
    *out = oh_event_new(agent ? OH_EV_OUTBOUND : OH_EV_INBOUND, id, 0, data);
    if (!*out) {
        oh_errf(err, errlen, "out of memory");
        return 500;
    }
    status = idempotent(st, *out, err, errlen);
    if (status) {
        json_decref(*out);
        *out = NULL;
    }
    return status;
}

void gw_message_count(const json_t *event, int err)
{
    const char *channel = oh_event_data_str(event, "channel");
    char lab[128];
    /* the connector's name: "<name>:<sub-channel>" counts as "<name>", as
     * its webhook does */
    snprintf(lab, sizeof lab, "channel=\"%.*s\",result=\"%s\"",
             channel ? (int)strcspn(channel, ":") : 7, channel ? channel : "unknown",
             err ? "failed" : "accepted");
    oh_metrics_inc("omnihub_ingest_total", lab, 1);
}

int gw_build_message(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                     const json_t *body, struct gw_job *job, json_t **out, char *err, size_t errlen)
{
    int status = build_message(gw, who, conv, body, job, out, err, errlen);
    /* a look again that fails before it reaches the wait (out of memory)
     * ends the wait all the same */
    if (status != GW_LATER) gw_wait_over(gw, job);
    return status;
}
