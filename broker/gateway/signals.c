/* signals.c - what travels between WebSocket clients and is never stored:
 * typing (rate limited per sender and conversation, per gateway), agent
 * presence (the gateway's agent directory, core/presence.c) and read
 * receipts. With Kafka each is also shared on the signals topic, so the
 * clients of every other gateway hear it (services/signals.c reads it back
 * there). Service thread unless marked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/crypto.h"
#include "core/metrics.h"
#include "gateway/ws_int.h"

/* signals from other gateways queued for the service thread, at most */
#define SIG_QUEUE_MAX 65536

/* One signal heard from another gateway (services/signals.c). */
struct gw_sig {
    struct gw_sig *next;
    json_t *sig;
};

static void share_done(void *opaque, int err, int32_t partition, int64_t offset)
{
    (void)opaque, (void)partition, (void)offset;
    if (err) oh_metrics_inc("omnihub_signals_total", "direction=\"out\",result=\"failed\"", 1);
}

/* Appends SIG (stolen) of KIND to the signals topic under KEY, with this
 * gateway's origin; nothing unless sharing, or once the hub stops (FORCE:
 * the farewell, which goes out as it stops). Any thread. */
static void share(struct oh_gateway *gw, const char *kind, const char *key, json_t *sig, bool force)
{
    oh_hub *hub = gw->hub;
    if (!sig || !gw->share || (!force && atomic_load(&hub->stopping))) {
        json_decref(sig);
        return;
    }
    char type[64];
    snprintf(type, sizeof type, "omnihub.signal.%s", kind);
    json_object_set_new(sig, "kind", json_string(kind));
    json_object_set_new(sig, "origin", json_string(hub->origin));
    json_object_set_new(sig, "at", json_integer(oh_now_ms()));
    char *text = json_dumps(sig, JSON_COMPACT);
    json_decref(sig);
    struct oh_log_meta meta = {.type = type, .subject = key};
    if (!text || oh_log_append_meta(hub->log, OH_TOPIC_SIGNALS, key, &meta, text, strlen(text),
                                    share_done, NULL) != OH_OK)
        oh_metrics_inc("omnihub_signals_total", "direction=\"out\",result=\"failed\"", 1);
    else
        oh_metrics_inc("omnihub_signals_total", "direction=\"out\",result=\"shared\"", 1);
    free(text);
}

/* at most one typing signal per sender and conversation in this window */
#define TYPING_WINDOW_MS 1000

struct frame {
    char *text;
    size_t len;
    bool agents_only;
    const struct wsconn *skip;
    const struct oh_principal *skip_who; /* every connection of this role, sub and device */
};

static bool same_device(const struct oh_principal *a, const struct oh_principal *b)
{
    return a->role == b->role && strcmp(a->sub, b->sub) == 0 && strcmp(a->device, b->device) == 0;
}

static void send_frame(struct wsconn *c, bool all, void *opaque)
{
    const struct frame *f = opaque;
    if (c == f->skip || (f->skip_who && same_device(&c->who, f->skip_who)) ||
        (f->agents_only && !oh_auth_is_agent(&c->who)))
        return;
    gw_ws_send(c, f->text, f->len, NULL, 0, NULL, 0);
}

/* Sends O (stolen) to the watchers of CONV (NULL: agents on "*" only) but
 * SKIP and the connections of SKIP_WHO (each may be NULL). */
static void fan_out(struct oh_gateway *gw, const char *conv, json_t *o, bool agents_only,
                    const struct wsconn *skip, const struct oh_principal *skip_who)
{
    struct frame f = {.agents_only = agents_only, .skip = skip, .skip_who = skip_who};
    f.text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!f.text) return;
    f.len = strlen(f.text);
    gw->ws_each_watcher(gw, conv, send_frame, &f); /* ws_live.c, above this file */
    free(f.text);
}

/* ---- typing ---- */

/* A typing state the window held back: who sent it, where, which. */
struct gw_typing_held {
    struct oh_principal who; /* role, sub and device are used */
    char conv[OH_ID_MAX];
    bool stop;
};

static uint64_t fnv64(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator: ("ab","c") != ("a","bc") */
}

/* Forwards WHO's typing STATE in CONV here (never back to SKIP, the
 * sending connection, or to WHO's device when SKIP is gone) and to the
 * other gateways, and notes it in slot S. */
static void forward_typing(struct oh_gateway *gw, struct gw_typing_slot *s,
                           const struct oh_principal *who, const char *conv, bool stop,
                           const struct wsconn *skip)
{
    const char *role = oh_auth_role_name(who->role), *state = stop ? "stop" : "start";
    s->ms = oh_mono_ms();
    s->last_stop = stop;
    oh_metrics_inc("omnihub_ws_signals_total", "type=\"typing\",result=\"forwarded\"", 1);
    fan_out(gw, conv,
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "type", "typing", "conversation", conv,
                      "from", "role", role, "id", who->sub, "state", state),
            false, skip, skip ? NULL : who);
    share(gw, "typing", conv,
          json_pack("{s:s, s:{s:s, s:s}, s:s}", "conversation", conv, "from", "role", role, "id",
                    who->sub, "state", state),
          false);
}

/* The state slot S held back, forwarded if it differs from the last one
 * (start, stop, start within a second: nothing more to say), then let go. */
static void release_held(struct oh_gateway *gw, struct gw_typing_slot *s)
{
    struct gw_typing_held *h = s->held;
    s->held = NULL;
    if (h && h->stop != s->last_stop) forward_typing(gw, s, &h->who, h->conv, h->stop, NULL);
    free(h);
}

/* Holds WHO's STATE in CONV in slot S until its window ends (the latest
 * one wins); dropped when out of memory. */
static void hold(struct gw_typing_slot *s, const struct oh_principal *who, const char *conv,
                 bool stop)
{
    if (!s->held && !(s->held = malloc(sizeof *s->held))) return;
    s->held->who.role = who->role;
    snprintf(s->held->who.sub, sizeof s->held->who.sub, "%s", who->sub);
    snprintf(s->held->who.device, sizeof s->held->who.device, "%s", who->device);
    snprintf(s->held->conv, sizeof s->held->conv, "%s", conv);
    s->held->stop = stop;
}

/* At most one typing signal per sender and conversation per window: a
 * later one is held and its state forwarded when the window ends, if it
 * changed (gw_signals_tick), so a "stop" right after a "start" is not lost.
 * A slot taken over by another sender first lets go of what it held. */
void gw_signal_typing(struct wsconn *c, json_t *msg)
{
    const char *conv = json_string_value(json_object_get(msg, "conversation"));
    const char *state = json_string_value(json_object_get(msg, "state"));
    if (!conv || !*conv || strlen(conv) >= OH_ID_MAX || strcmp(conv, "*") == 0 || !state ||
        (strcmp(state, "start") != 0 && strcmp(state, "stop") != 0)) {
        gw_ws_send_error(c, "bad_request",
                         "typing needs a conversation id and a state start or stop");
        return;
    }
    if (!oh_auth_may_access(&c->who, conv)) {
        gw_ws_send_error(c, "forbidden", "not your conversation");
        return;
    }
    struct oh_gateway *gw = c->gw;
    bool stop = strcmp(state, "stop") == 0;
    uint64_t key = fnv64(
        fnv64(fnv64(14695981039346656037ull, oh_auth_role_name(c->who.role)), c->who.sub), conv);
    struct gw_typing_slot *s = &gw->typing[key % GW_TYPING_SLOTS];
    if (s->key == key && oh_mono_ms() - s->ms < TYPING_WINDOW_MS) {
        oh_metrics_inc("omnihub_ws_signals_total", "type=\"typing\",result=\"held\"", 1);
        hold(s, &c->who, conv, stop);
        return;
    }
    if (s->key != key) release_held(gw, s);
    free(s->held); /* its window is over: this one says what it would have */
    s->held = NULL;
    s->key = key;
    forward_typing(gw, s, &c->who, conv, stop, c);
}

/* Forwards the typing states held by windows that have ended. */
static void typing_tick(struct oh_gateway *gw)
{
    int64_t now = oh_mono_ms();
    for (size_t i = 0; i < GW_TYPING_SLOTS; i++)
        if (gw->typing[i].held && now - gw->typing[i].ms >= TYPING_WINDOW_MS)
            release_held(gw, &gw->typing[i]);
}

/* ---- presence ---- */

static void presence_frame(struct oh_gateway *gw, const char *agent, enum oh_presence_status now)
{
    oh_metrics_inc("omnihub_ws_signals_total", "type=\"presence\",result=\"forwarded\"", 1);
    fan_out(gw, NULL,
            json_pack("{s:s, s:s, s:s}", "type", "presence", "agent", agent, "status",
                      oh_presence_name(now)),
            true, NULL, NULL);
}

/* Tells the other gateways what A is here (name, teams, status over this
 * gateway's connections), valid for three refresh periods. */
static void share_presence(struct oh_gateway *gw, const struct oh_agent_info *a)
{
    json_t *teams = json_array();
    for (int i = 0; teams && i < a->nteams; i++)
        json_array_append_new(teams, json_string(a->teams[i]));
    share(gw, "presence", a->id,
          json_pack("{s:{s:s, s:s, s:o*, s:s, s:i}, s:I}", "agent", "id", a->id, "name", a->name,
                    "teams", teams, "status", oh_presence_name(a->here), "devices", a->devices,
                    "ttl_ms", (json_int_t)(3 * gw->refresh_ms)),
          false);
}

/* C's own presence is now TO (GONE: it closed); agents on "*" hear of a
 * change of the agent's aggregate presence, other gateways of its
 * presence here. */
static void presence_move(struct wsconn *c, enum oh_presence_status to, bool gone)
{
    struct oh_gateway *gw = c->gw;
    enum oh_presence_status now;
    bool changed =
        oh_presence_move(gw->presence, c->who.sub, c->presence, to, gone, oh_now_ms(), &now);
    c->presence = to;
    struct oh_agent_info a;
    if (gw->share && oh_presence_get(gw->presence, c->who.sub, &a) == OH_OK) share_presence(gw, &a);
    if (changed) presence_frame(gw, c->who.sub, now);
}

void gw_signal_presence(struct wsconn *c, json_t *msg)
{
    enum oh_presence_status to;
    if (!oh_auth_is_agent(&c->who)) {
        gw_ws_send_error(c, "forbidden", "only agents have a presence");
        return;
    }
    if (oh_presence_parse(json_string_value(json_object_get(msg, "status")), &to)) {
        gw_ws_send_error(c, "bad_request", "presence status must be online, away or offline");
        return;
    }
    presence_move(c, to, false);
}

void gw_signal_connected(struct wsconn *c)
{
    if (oh_auth_is_agent(&c->who)) oh_presence_connect(c->gw->presence, &c->who, oh_now_ms());
}

void gw_signal_closed(struct wsconn *c)
{
    if (oh_auth_is_agent(&c->who)) presence_move(c, OH_PRESENCE_OFFLINE, true);
    /* a "start" held for a device that is gone would turn an indicator on
     * that nothing turns off; a held "stop" is still true */
    for (size_t i = 0; i < GW_TYPING_SLOTS; i++) {
        struct gw_typing_slot *s = &c->gw->typing[i];
        if (s->held && !s->held->stop && same_device(&s->held->who, &c->who)) {
            free(s->held);
            s->held = NULL;
        }
    }
}

/* ---- read receipts ---- */

void gw_signal_read(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                    int64_t seq)
{
    if (who->role != OH_ROLE_CUSTOMER) return; /* agents' cursors are their own business */
    /* the read frame of CONTRACT part 1 (with the reader's device), plus who read */
    fan_out(gw, conv,
            json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:s}}", "type", "read", "conversation", conv,
                      "seq", (json_int_t)seq, "device", who->device, "from", "role", "customer",
                      "id", who->sub),
            true, NULL, NULL);
}

void gw_signal_read_fanout(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                           int64_t seq)
{
    gw->ws_read_fanout(gw, who, conv, seq); /* ws_live.c, above this file */
    share(gw, "read", conv,
          json_pack("{s:s, s:I, s:{s:s, s:s, s:s}}", "conversation", conv, "seq", (json_int_t)seq,
                    "from", "role", oh_auth_role_name(who->role), "id", who->sub, "device",
                    who->device),
          false);
}

/* ---- the other gateways ---- */

/* runs on the signals thread (services/signals.c) */
static void signal_in(void *opaque, json_t *sig)
{
    struct oh_gateway *gw = opaque;
    struct gw_sig *s = malloc(sizeof *s);
    if (!s) {
        json_decref(sig);
        return;
    }
    s->next = NULL;
    s->sig = sig;
    pthread_mutex_lock(&gw->mu);
    bool room = gw->sig_len < SIG_QUEUE_MAX, wake = false;
    if (room) {
        *gw->sig_tail = s;
        gw->sig_tail = &s->next;
        gw->sig_len++;
        wake = gw_wake_locked(gw);
    }
    pthread_mutex_unlock(&gw->mu);
    if (!room) { /* the service thread is far behind: signals are the first to go */
        oh_metrics_inc("omnihub_signals_total", "direction=\"in\",result=\"dropped\"", 1);
        json_decref(sig);
        free(s);
        return;
    }
    if (wake) lws_cancel_service(gw->ctx);
}

static bool role_of(const char *name, enum oh_role *out)
{
    static const enum oh_role roles[] = {OH_ROLE_CUSTOMER, OH_ROLE_AGENT, OH_ROLE_ADMIN};
    for (size_t i = 0; name && i < OH_ARRAY_SIZE(roles); i++)
        if (strcmp(name, oh_auth_role_name(roles[i])) == 0) {
            *out = roles[i];
            return true;
        }
    return false;
}

/* Who a signal is from: role, id and device, each bounded; false if not. */
static bool sender(json_t *from, struct oh_principal *who)
{
    const char *id = json_string_value(json_object_get(from, "id"));
    const char *dev = json_string_value(json_object_get(from, "device"));
    memset(who, 0, sizeof *who);
    if (!role_of(json_string_value(json_object_get(from, "role")), &who->role) || !id ||
        strlen(id) >= sizeof who->sub || (dev && strlen(dev) >= sizeof who->device))
        return false;
    snprintf(who->sub, sizeof who->sub, "%s", id);
    snprintf(who->device, sizeof who->device, "%s", dev ? dev : "");
    return true;
}

/* What another gateway said, for this one's clients (the sender's own
 * clients heard it there). */
static void heard(struct oh_gateway *gw, json_t *sig)
{
    const char *kind = json_string_value(json_object_get(sig, "kind"));
    const char *conv = json_string_value(json_object_get(sig, "conversation"));
    struct oh_principal who;
    if (!kind) return;
    if (strcmp(kind, "presence") == 0) { /* services/signals.c: the aggregate changed */
        const char *agent = json_string_value(json_object_get(sig, "agent"));
        enum oh_presence_status now;
        if (agent && !oh_presence_parse(json_string_value(json_object_get(sig, "status")), &now))
            presence_frame(gw, agent, now);
        return;
    }
    if (!conv || !*conv || strlen(conv) >= OH_ID_MAX || strcmp(conv, "*") == 0 ||
        !sender(json_object_get(sig, "from"), &who))
        return;
    if (strcmp(kind, "typing") == 0) {
        const char *state = json_string_value(json_object_get(sig, "state"));
        if (!state || (strcmp(state, "start") != 0 && strcmp(state, "stop") != 0)) return;
        fan_out(gw, conv,
                json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "type", "typing", "conversation", conv,
                          "from", "role", oh_auth_role_name(who.role), "id", who.sub, "state",
                          state),
                false, NULL, NULL);
    } else if (strcmp(kind, "read") == 0) {
        json_t *seq = json_object_get(sig, "seq");
        if (json_is_integer(seq) && json_integer_value(seq) >= 0)
            gw->ws_read_fanout(gw, &who, conv, json_integer_value(seq));
    }
}

void gw_signals_drain(struct oh_gateway *gw)
{
    if (!gw->share) return;
    pthread_mutex_lock(&gw->mu);
    struct gw_sig *s = gw->sig_in;
    gw->sig_in = NULL;
    gw->sig_tail = &gw->sig_in;
    gw->sig_len = 0;
    pthread_mutex_unlock(&gw->mu);
    while (s) {
        struct gw_sig *next = s->next;
        heard(gw, s->sig);
        json_decref(s->sig);
        free(s);
        s = next;
    }
}

void gw_signals_init(struct oh_gateway *gw)
{
    oh_hub *hub = gw->hub;
    gw->sig_tail = &gw->sig_in;
    gw->refresh_ms = oh_config_int(hub->cfg, "signals.presence_refresh_ms");
    if (gw->refresh_ms < 100) gw->refresh_ms = 100;
    if (!hub->run_gateway || strcmp(oh_log_backend(hub->log), "kafka") != 0) return;
    uint8_t r[12];
    if (oh_random(r, sizeof r) != OH_OK) {
        OH_WARN("gateway", "no random origin: signals stay on this gateway");
        return;
    }
    int n = snprintf(hub->origin, sizeof hub->origin, "gw-");
    for (size_t i = 0; i < sizeof r; i++)
        n += snprintf(hub->origin + n, sizeof hub->origin - (size_t)n, "%02x", r[i]);
    hub->signal_in = signal_in;
    hub->signal_opaque = gw;
    gw->share = true;
    gw->refreshed_ms = oh_mono_ms();
    OH_INFO("gateway", "sharing signals with the other gateways as %s", hub->origin);
}

static int refresh_row(void *opaque, const struct oh_agent_info *a)
{
    if (a->devices > 0 && a->here != OH_PRESENCE_OFFLINE) share_presence(opaque, a);
    return OH_OK;
}

void gw_signals_tick(struct oh_gateway *gw)
{
    typing_tick(gw);
    int64_t now = oh_mono_ms();
    if (!gw->share || now - gw->refreshed_ms < gw->refresh_ms) return;
    gw->refreshed_ms = now;
    oh_presence_each(gw->presence, refresh_row, gw);
}

void gw_signals_bye(struct oh_gateway *gw)
{
    if (gw->share) share(gw, "bye", gw->hub->origin, json_object(), true);
    gw->share = false; /* the log closes next */
}

void gw_signals_free(struct oh_gateway *gw)
{
    for (size_t i = 0; i < GW_TYPING_SLOTS; i++) {
        free(gw->typing[i].held);
        gw->typing[i].held = NULL;
    }
    while (gw->sig_in) {
        struct gw_sig *s = gw->sig_in;
        gw->sig_in = s->next;
        json_decref(s->sig);
        free(s);
    }
}
