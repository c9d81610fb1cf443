/* meta_normalize.c - the pure parser of Meta messaging webhooks (Messenger
 * "page" and "instagram" objects): entry[].messaging[] -> CloudEvents. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "meta.h"
#include "core/crypto.h"
#include "core/metrics.h"

/* One parse: where events go and what to ask about echoes. */
struct mn {
    const struct meta_channel *ch;
    const struct oh_norm_ctx *nc;
    meta_skip_echo_fn skip;
    void *opaque;
    struct oh_event_list *out;
    char *err;
    size_t errlen;
};

/* One messaging[] item: whose conversation it is and when it happened. */
struct mn_item {
    char account[256]; /* the Page id / Instagram professional account id */
    char page[256];    /* the page side of this item (sender of an echo) */
    char contact[256]; /* PSID / IGSID */
    char conv[OH_ID_MAX];
    int64_t ts_ms;    /* messaging timestamp, 0 when absent */
    json_t *jcontact; /* the contact id as a string, shared by its events */
};

/* KEY = S, a string of the parsed body (jansson checked its UTF-8) or of ours.
 * Events are built key by key in the order json_pack gave them: its format
 * parser and UTF-8 checks were a fifth of a Meta normalize. Nonzero on failure. */
static int put(json_t *obj, const char *key, const char *s)
{
    return json_object_set_new_nocheck(obj, key, json_string_nocheck(s));
}

/* The words events repeat (channel, direction, kind, author kind, state, "")
 * are made once and shared by reference: jansson's reference counts are
 * atomic and nothing edits a string in place. */
static const char *const words[] = {
    "",          "messenger", "instagram", "inbound",     "outbound",    "customer",
    "page",      "system",    "text",      "image",       "video",       "audio",
    "document",  "sticker",   "location",  "unsupported", "interactive", "reaction",
    "delivered", "read",      "postback",  "quick_reply",
};
static json_t *word_json[OH_ARRAY_SIZE(words)];
static pthread_once_t words_once = PTHREAD_ONCE_INIT;

static void words_init(void)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(words); i++)
        word_json[i] = json_string_nocheck(words[i]);
}

/* A new reference to the string S: the shared one when S is one of words[]. */
static json_t *word(const char *s)
{
    pthread_once(&words_once, words_init);
    for (size_t i = 0; i < OH_ARRAY_SIZE(words); i++)
        if (words[i][0] == s[0] && strcmp(words[i], s) == 0 && word_json[i])
            return json_incref(word_json[i]);
    return json_string_nocheck(s);
}

/* KEY = W, one of words[] (or any string of ours). Nonzero on failure. */
static int put_word(json_t *obj, const char *key, const char *w)
{
    return json_object_set_new_nocheck(obj, key, word(w));
}

/* KEY = V (a new reference, which this takes). Nonzero on failure. */
static int putj(json_t *obj, const char *key, json_t *v)
{
    return json_object_set_new_nocheck(obj, key, v);
}

/* {K1: V1, K2: V2} from new references (taken, also on failure); NULL on
 * failure, as json_pack. */
static json_t *pairj(const char *k1, json_t *v1, const char *k2, json_t *v2)
{
    json_t *o = json_object();
    if (!o) {
        json_decref(v1);
        json_decref(v2);
        return NULL;
    }
    int bad = putj(o, k1, v1); /* one statement each: the keys keep their order */
    bad |= putj(o, k2, v2);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* {K1: V1, K2: V2, K3: V3} of words or body strings; NULL on failure. */
static json_t *triple(const char *k1, const char *v1, const char *k2, const char *v2,
                      const char *k3, const char *v3)
{
    json_t *o = json_object();
    if (o && (put_word(o, k1, v1) || put_word(o, k2, v2) || put_word(o, k3, v3))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* data.author {kind, id} (ID a new reference, taken). */
static void mn_author(json_t *data, const char *kind, json_t *id)
{
    json_object_set_new_nocheck(data, "author", pairj("kind", word(kind), "id", id));
}

/* SRC (UTF-8) cut to fit DST (SIZE bytes) at a character boundary, so that
 * a cut id stays UTF-8: cut inside a character, json_pack once refused it
 * and the delivery failed as "out of memory". Returns the length. */
static size_t copy_str(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* A string field, or an integer one printed into BUF (Graph ids and app
 * ids arrive either way); NULL when absent or of another type. */
static const char *mn_str(const json_t *obj, const char *key, char *buf, size_t len)
{
    const json_t *v = json_object_get(obj, key);
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* Milliseconds from a number or numeric string; values that look like
 * seconds (the "changes" test format) are scaled. 0 when absent. */
static int64_t mn_ms(const json_t *v)
{
    int64_t t = 0;
    if (json_is_integer(v))
        t = json_integer_value(v);
    else if (json_is_real(v)) {
        double d = json_real_value(v); /* out of range: not a time */
        t = d > 0 && d < 9.2e18 ? (int64_t)d : 0;
    } else if (json_is_string(v))
        t = strtoll(json_string_value(v), NULL, 10);
    if (t > 0 && t < 100000000000LL) t *= 1000;
    return t > 0 ? t : 0;
}

static int mn_fail(struct mn *p, const char *what)
{
    oh_errf(p->err, p->errlen, "%s", what);
    return OH_EINVAL;
}

/* The fields every event of ITEM carries. */
static json_t *mn_data(struct mn *p, const struct mn_item *it, const char *direction,
                       const char *kind)
{
    json_t *d = json_object();
    if (d && (put(d, "conversation_id", it->conv) || put_word(d, "channel", p->ch->name) ||
              put(d, "account", it->account) || put_word(d, "direction", direction) ||
              putj(d, "contact", pairj("id", json_incref(it->jcontact), "name", word(""))) ||
              put_word(d, "kind", kind))) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static int mn_emit(struct mn *p, const struct mn_item *it, const char *type, const char *id,
                   json_t *data)
{
    if (!data) return OH_ENOMEM;
    if (it->ts_ms) {
        char when[32];
        oh_time_rfc3339(when, it->ts_ms);
        put(data, "sent_at", when);
    }
    json_t *ev = oh_event_new(type, id, it->ts_ms ? it->ts_ms : p->nc->now_ms, data);
    return oh_event_list_push(p->out, ev);
}

/* Attachment type -> contract kind. */
static const char *mn_att_kind(const char *type, const json_t *payload)
{
    if (!type) return "unsupported";
    if (strcmp(type, "image") == 0)
        return json_object_get(payload, "sticker_id") ? "sticker" : "image";
    if (strcmp(type, "video") == 0 || strcmp(type, "reel") == 0 || strcmp(type, "ig_reel") == 0)
        return "video";
    if (strcmp(type, "audio") == 0) return "audio";
    if (strcmp(type, "file") == 0) return "document";
    if (strcmp(type, "location") == 0) return "location";
    if (strcmp(type, "story_mention") == 0) return "image";
    return "unsupported"; /* share, post, ig_post, fallback, template, ... */
}

/* message.attachments[] -> data.attachments; returns the first kind. */
static const char *mn_attachments(const json_t *atts, json_t *data)
{
    const char *first = NULL;
    if (!json_array_size(atts)) return NULL;
    json_t *list = json_array();
    size_t i;
    const json_t *a;
    json_array_foreach(atts, i, a)
    {
        const char *type = json_string_value(json_object_get(a, "type"));
        const json_t *payload = json_object_get(a, "payload");
        const char *kind = mn_att_kind(type, payload);
        if (!first) first = kind;
        if (strcmp(kind, "location") == 0) {
            const json_t *c = json_object_get(payload, "coordinates");
            json_object_set_new(data, "location",
                                json_pack("{s:f, s:f, s:s, s:s}", "latitude",
                                          json_number_value(json_object_get(c, "lat")), "longitude",
                                          json_number_value(json_object_get(c, "long")), "name", "",
                                          "address", ""));
            continue;
        }
        const char *url = json_string_value(json_object_get(payload, "url"));
        json_t *o = pairj("kind", word(kind), "type", word(type ? type : ""));
        if (url && *url) {
            /* the CDN URL itself, and a ref for GET /v1/media/<channel>/<ref> */
            size_t ulen = strlen(url);
            char *ref = malloc(4 * ((ulen + 2) / 3) + 1);
            if (ref) {
                oh_base64url((const uint8_t *)url, ulen, ref);
                put(o, "media_ref", ref);
                free(ref);
            }
            put(o, "url", url);
        }
        const char *title = json_string_value(json_object_get(a, "title"));
        if (!title) title = json_string_value(json_object_get(payload, "title"));
        if (title) put(o, "title", title);
        char buf[32];
        const char *sticker = mn_str(payload, "sticker_id", buf, sizeof buf);
        if (sticker) put(o, "sticker_id", sticker);
        const char *media_id = mn_str(payload, "id", buf, sizeof buf);
        if (media_id && !sticker) put(o, "media_id", media_id);
        json_array_append_new(list, o);
    }
    if (json_array_size(list))
        json_object_set_new_nocheck(data, "attachments", list);
    else
        json_decref(list);
    return first;
}

/* message (customer's, or an echo of the page's) -> inbound / outbound. */
static int mn_message(struct mn *p, const struct mn_item *it, const json_t *msg)
{
    json_t *jmid = json_object_get(msg, "mid");
    const char *mid = json_string_value(jmid);
    if (!mid || !*mid) return mn_fail(p, "message without mid");
    bool echo = json_is_true(json_object_get(msg, "is_echo"));
    char appbuf[32];
    const char *app_id = mn_str(msg, "app_id", appbuf, sizeof appbuf);
    if (echo && p->skip && p->skip(p->opaque, app_id, mid))
        return OH_OK; /* our own send: its outbound event is already in the history */

    char id[OH_ID_MAX];
    if (json_is_true(json_object_get(msg, "is_deleted"))) {
        /* Instagram: the customer unsent MID. */
        char key[600];
        snprintf(key, sizeof key, "%s#deleted", mid);
        oh_event_id(id, p->ch->name, it->account, mid, "deleted", NULL);
        json_t *data = mn_data(p, it, echo ? "outbound" : "inbound", "unsupported");
        if (!data) return OH_ENOMEM;
        /* KEY went through a bounded buffer: checked, as before */
        json_object_set_new_nocheck(data, "message_id", json_string(key));
        put(data, "delete_of", mid);
        put_word(data, "text", "");
        mn_author(data, echo ? "page" : "customer",
                  echo ? json_string_nocheck(it->page) : json_incref(it->jcontact));
        return mn_emit(p, it, echo ? OH_EV_OUTBOUND : OH_EV_INBOUND, id, data);
    }

    oh_event_id(id, p->ch->name, it->account, mid, NULL);
    json_t *data = mn_data(p, it, echo ? "outbound" : "inbound", "text");
    if (!data) return OH_ENOMEM;
    json_t *jtext = json_object_get(msg, "text");
    const char *text = json_string_value(jtext);
    /* the body's own strings, shared: they outlive the body by reference */
    putj(data, "message_id", json_incref(jmid));
    putj(data, "text", text ? json_incref(jtext) : word(""));
    const char *kind = text ? "text" : "unsupported";
    const char *akind = mn_attachments(json_object_get(msg, "attachments"), data);
    /* a link preview ("fallback", "share") beside text stays a text message */
    if (akind && !(text && *text && strcmp(akind, "unsupported") == 0)) kind = akind;
    const json_t *qr = json_object_get(msg, "quick_reply");
    if (json_is_object(qr)) {
        const char *payload = json_string_value(json_object_get(qr, "payload"));
        json_object_set_new_nocheck(data, "interactive",
                                    triple("type", "quick_reply", "payload", payload ? payload : "",
                                           "title", text ? text : ""));
        kind = "interactive";
    }
    put_word(data, "kind", kind);
    const json_t *rt = json_object_get(msg, "reply_to");
    const char *rmid = json_string_value(json_object_get(rt, "mid"));
    if (rmid) put(data, "reply_to", rmid);
    const json_t *story = json_object_get(rt, "story");
    if (json_is_object(story)) json_object_set_nocheck(data, "reply_to_story", (json_t *)story);
    const json_t *ref = json_object_get(msg, "referral");
    if (json_is_object(ref)) json_object_set_nocheck(data, "referral", (json_t *)ref);
    if (json_is_true(json_object_get(msg, "is_unsupported"))) put_word(data, "kind", "unsupported");
    if (echo) {
        mn_author(data, "page", json_string_nocheck(it->page));
        if (app_id) put(data, "app_id", app_id);
        const char *meta = json_string_value(json_object_get(msg, "metadata"));
        if (meta) put(data, "metadata", meta);
        json_object_set_new_nocheck(data, "echo", json_true());
    } else {
        mn_author(data, "customer", json_incref(it->jcontact));
    }
    return mn_emit(p, it, echo ? OH_EV_OUTBOUND : OH_EV_INBOUND, id, data);
}

/* Messenger message_edits: the customer changed the text of MID. */
static int mn_edit(struct mn *p, const struct mn_item *it, const json_t *edit)
{
    const char *mid = json_string_value(json_object_get(edit, "mid"));
    if (!mid || !*mid) return mn_fail(p, "message_edit without mid");
    char n[32], key[600], id[OH_ID_MAX];
    const char *num = mn_str(edit, "num_edit", n, sizeof n);
    if (!num) num = "0";
    snprintf(key, sizeof key, "%s#edit%s", mid, num);
    oh_event_id(id, p->ch->name, it->account, mid, "edit", num, NULL);
    const char *text = json_string_value(json_object_get(edit, "text"));
    json_t *data = mn_data(p, it, "inbound", "text");
    if (!data) return OH_ENOMEM;
    json_object_set_new_nocheck(data, "message_id", json_string(key)); /* checked: cut */
    put(data, "text", text ? text : "");
    put(data, "edit_of", mid);
    mn_author(data, "customer", json_incref(it->jcontact));
    return mn_emit(p, it, OH_EV_INBOUND, id, data);
}

/* A button press (postback button, Get Started, persistent menu, ice
 * breaker). Older payloads have no mid: the id comes from who and when. */
static int mn_postback(struct mn *p, const struct mn_item *it, const json_t *pb)
{
    const char *mid = json_string_value(json_object_get(pb, "mid"));
    const char *title = json_string_value(json_object_get(pb, "title"));
    const char *payload = json_string_value(json_object_get(pb, "payload"));
    char key[600], id[OH_ID_MAX];
    if (mid && *mid) {
        snprintf(key, sizeof key, "%s", mid);
    } else {
        snprintf(key, sizeof key, "postback:%s:%lld", it->contact, (long long)it->ts_ms);
    }
    oh_event_id(id, p->ch->name, it->account, key, NULL);
    json_t *data = mn_data(p, it, "inbound", "interactive");
    if (!data) return OH_ENOMEM;
    json_object_set_new_nocheck(data, "message_id", json_string(key)); /* checked: cut */
    put(data, "text", title ? title : "");
    json_object_set_new_nocheck(
        data, "interactive",
        triple("type", "postback", "payload", payload ? payload : "", "title", title ? title : ""));
    const json_t *ref = json_object_get(pb, "referral");
    if (json_is_object(ref)) json_object_set_nocheck(data, "referral", (json_t *)ref);
    mn_author(data, "customer", json_incref(it->jcontact));
    return mn_emit(p, it, OH_EV_INBOUND, id, data);
}

/* message_reactions: react / unreact on MID; an unreact has emoji "". */
static int mn_reaction(struct mn *p, const struct mn_item *it, const json_t *r)
{
    const char *mid = json_string_value(json_object_get(r, "mid"));
    if (!mid || !*mid) return mn_fail(p, "reaction without mid");
    const char *action = json_string_value(json_object_get(r, "action"));
    const char *name = json_string_value(json_object_get(r, "reaction"));
    const char *emoji = json_string_value(json_object_get(r, "emoji"));
    bool unreact = action && strcmp(action, "unreact") == 0;
    char ts[32], key[700], id[OH_ID_MAX];
    snprintf(ts, sizeof ts, "%lld", (long long)it->ts_ms);
    snprintf(key, sizeof key, "%s#reaction:%s:%s", mid, it->contact, ts);
    oh_event_id(id, p->ch->name, it->account, mid, "reaction", it->contact, unreact ? "-" : "+",
                emoji ? emoji : (name ? name : ""), ts, NULL);
    json_t *data = mn_data(p, it, "inbound", "reaction");
    if (!data) return OH_ENOMEM;
    json_object_set_new_nocheck(data, "message_id", json_string(key)); /* checked: cut */
    put_word(data, "text", "");
    json_object_set_new_nocheck(data, "reaction",
                                triple("message_id", mid, "emoji",
                                       unreact ? "" : (emoji ? emoji : (name ? name : "")), "name",
                                       name ? name : ""));
    mn_author(data, "customer", json_incref(it->jcontact));
    return mn_emit(p, it, OH_EV_INBOUND, id, data);
}

/* One status event about our outbound message MID ("" for a bare
 * watermark). WATERMARK is 0 when the platform sent none. */
static int mn_status1(struct mn *p, const struct mn_item *it, const char *state, const char *mid,
                      int64_t watermark)
{
    char id[OH_ID_MAX], wm[32] = "";
    if (watermark) oh_time_rfc3339(wm, watermark);
    if (*mid)
        oh_event_id(id, p->ch->name, it->account, mid, "status", state, NULL);
    else
        oh_event_id(id, p->ch->name, it->account, it->contact, "watermark", state, wm, NULL);
    json_t *data = mn_data(p, it, "outbound", "text");
    if (!data) return OH_ENOMEM;
    /* status.message_id is the platform's mid; the sync service replaces
     * it with our message id (keeping the mid as provider_message_id) when
     * the mid is one of our sends. */
    json_t *st = pairj("message_id", json_string_nocheck(mid), "state", word(state));
    if (*wm) put(st, "watermark", wm);
    json_object_set_new_nocheck(data, "status", st);
    mn_author(data, "system", word(p->ch->name));
    struct mn_item at = *it;
    if (!at.ts_ms) at.ts_ms = watermark;
    return mn_emit(p, &at, OH_EV_STATUS, id, data);
}

/* delivery {mids?, watermark} / read {watermark} (Messenger) or read {mid}
 * (Instagram messaging_seen): one status per mid, else one per watermark. */
static int mn_status(struct mn *p, const struct mn_item *it, const char *state, const json_t *o)
{
    int64_t watermark = mn_ms(json_object_get(o, "watermark"));
    const json_t *mids = json_object_get(o, "mids");
    const char *mid = json_string_value(json_object_get(o, "mid"));
    int rc = OH_OK;
    if (json_array_size(mids)) {
        size_t i;
        const json_t *m;
        json_array_foreach(mids, i, m)
        {
            if (json_string_value(m) && *json_string_value(m) &&
                (rc = mn_status1(p, it, state, json_string_value(m), watermark)) != 0)
                return rc;
        }
        return OH_OK;
    }
    if (mid && *mid) return mn_status1(p, it, state, mid, watermark);
    if (!watermark) return mn_fail(p, "delivery/read without mids, mid or watermark");
    return mn_status1(p, it, state, "", watermark);
}

/* The messaging[] item fields this parser turns into events. */
static const char *const mn_fields[] = {"message",  "message_edit", "postback",
                                        "reaction", "delivery",     "read"};

static bool mn_wanted(const json_t *m)
{
    for (size_t i = 0; i < OH_ARRAY_SIZE(mn_fields); i++)
        if (json_is_object(json_object_get(m, mn_fields[i]))) return true;
    return false;
}

/* ITEM by what it holds (mn_wanted said it holds one of mn_fields). */
static int mn_kind(struct mn *p, const struct mn_item *it, const json_t *m, const json_t *msg)
{
    const json_t *o;
    if (json_is_object(msg)) return mn_message(p, it, msg);
    if (json_is_object(o = json_object_get(m, "message_edit"))) return mn_edit(p, it, o);
    if (json_is_object(o = json_object_get(m, "postback"))) return mn_postback(p, it, o);
    if (json_is_object(o = json_object_get(m, "reaction"))) return mn_reaction(p, it, o);
    if (json_is_object(o = json_object_get(m, "delivery"))) return mn_status(p, it, "delivered", o);
    return mn_status(p, it, "read", json_object_get(m, "read"));
}

/* One messaging[] (or standby[], or changes[].value) item. */
static int mn_item(struct mn *p, const char *entry_id, const json_t *m)
{
    if (!json_is_object(m)) return mn_fail(p, "messaging item is not an object");
    if (!mn_wanted(m)) {
        /* optins, referrals, handovers, account linking, and the page-level
         * notices with no sender (policy_enforcement, app_roles): not
         * messages, and no reason to fail the messages batched with them */
        char labels[96];
        snprintf(labels, sizeof labels, "channel=\"%s\"", p->ch->name);
        oh_metrics_inc("omnihub_webhook_ignored_total", labels, 1);
        return OH_OK;
    }
    struct mn_item it = {0};
    char sbuf[32], rbuf[32];
    const json_t *sender = json_object_get(m, "sender");
    const json_t *recipient = json_object_get(m, "recipient");
    const char *sid = mn_str(sender, "id", sbuf, sizeof sbuf);
    if (!sid) sid = json_string_value(json_object_get(sender, "user_ref")); /* chat plugin */
    const char *rid = mn_str(recipient, "id", rbuf, sizeof rbuf);
    const json_t *msg = json_object_get(m, "message");
    bool echo = json_is_true(json_object_get(msg, "is_echo"));
    const char *page = echo ? sid : rid;
    const char *contact = echo ? rid : sid;
    if (!contact || !*contact) return mn_fail(p, "messaging item without sender/recipient id");
    const char *account = p->nc->account ? p->nc->account : (entry_id ? entry_id : page);
    if (!account || !*account) return mn_fail(p, "messaging item without a page id");
    /* ids of the body are UTF-8, and stay so when cut; ours (--account) is checked */
    if (account == p->nc->account && !oh_utf8_valid(account, strlen(account)))
        return mn_fail(p, "account is not valid UTF-8");
    copy_str(it.account, sizeof it.account, account);
    copy_str(it.page, sizeof it.page, page ? page : account);
    copy_str(it.contact, sizeof it.contact, contact);
    oh_conversation_id(it.conv, p->ch->name, it.account, it.contact);
    it.ts_ms = mn_ms(json_object_get(m, "timestamp"));

    it.jcontact = json_string_nocheck(it.contact);
    int rc = mn_kind(p, &it, m, msg);
    json_decref(it.jcontact);
    return rc;
}

static int mn_entry(struct mn *p, const json_t *entry)
{
    if (!json_is_object(entry)) return mn_fail(p, "entry is not an object");
    char ebuf[32];
    const char *eid = mn_str(entry, "id", ebuf, sizeof ebuf);
    char entry_id[256] = "";
    if (eid) copy_str(entry_id, sizeof entry_id, eid);
    static const char *const lists[] = {"messaging", "standby"};
    int rc;
    for (size_t l = 0; l < OH_ARRAY_SIZE(lists); l++) {
        const json_t *arr = json_object_get(entry, lists[l]);
        size_t i;
        const json_t *m;
        json_array_foreach(arr, i, m)
        {
            if ((rc = mn_item(p, *entry_id ? entry_id : NULL, m)) != 0) return rc;
        }
    }
    /* The "changes" shape ({field, value}) of the dashboard's test sends
     * and of Instagram Login apps: value is one messaging item. */
    const json_t *changes = json_object_get(entry, "changes");
    size_t i;
    const json_t *c;
    json_array_foreach(changes, i, c)
    {
        const json_t *v = json_object_get(c, "value");
        if (json_is_object(v) && json_object_get(v, "sender") &&
            (rc = mn_item(p, *entry_id ? entry_id : NULL, v)) != 0)
            return rc;
    }
    return OH_OK;
}

int meta_normalize(const struct meta_channel *ch, const struct oh_norm_ctx *nc,
                   meta_skip_echo_fn skip, void *opaque, const uint8_t *body, size_t len,
                   struct oh_event_list *out, char *err, size_t errlen)
{
    struct oh_event_list tmp = {0};
    struct mn p = {ch, nc, skip, opaque, &tmp, err, errlen};
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        oh_errf(err, errlen, "not JSON: %s", jerr.text);
        return OH_EINVAL;
    }
    int rc = OH_OK;
    const char *object = json_string_value(json_object_get(root, "object"));
    const json_t *entries = json_object_get(root, "entry");
    if (!json_is_object(root))
        rc = mn_fail(&p, "body is not an object");
    else if (!object || strcmp(object, ch->object) != 0) {
        oh_errf(err, errlen, "\"object\" is \"%s\", expected \"%s\"", object ? object : "",
                ch->object);
        rc = OH_EINVAL;
    } else if (!json_is_array(entries))
        rc = mn_fail(&p, "no entry array");
    size_t i;
    const json_t *e;
    if (rc == OH_OK) json_array_foreach(entries, i, e)
        {
            if ((rc = mn_entry(&p, e)) != 0) break;
        }
    json_decref(root);
    /* All or nothing: a bad item anywhere rejects the whole delivery. */
    for (i = 0; i < tmp.n; i++) {
        if (rc == OH_OK)
            rc = oh_event_list_push(out, tmp.ev[i]); /* takes it, also on failure */
        else
            json_decref(tmp.ev[i]);
    }
    free(tmp.ev);
    return rc;
}
