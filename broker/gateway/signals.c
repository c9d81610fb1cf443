/* signals.c - what travels between WebSocket clients and is never stored:
 * typing (rate limited per sender and conversation), agent presence (the
 * gateway's agent directory, core/presence.c) and a customer's read
 * receipt forwarded to the agents watching. Service thread. */
#include <stdio.h>
#include <string.h>
#include "core/metrics.h"
#include "gateway/ws_int.h"

/* at most one typing signal per sender and conversation in this window */
#define TYPING_WINDOW_MS 1000

struct frame {
    char *text;
    size_t len;
    bool agents_only;
    const struct wsconn *skip;
};

static void send_frame(struct wsconn *c, bool all, void *opaque)
{
    const struct frame *f = opaque;
    if (c == f->skip || (f->agents_only && !oh_auth_is_agent(&c->who))) return;
    gw_ws_send(c, f->text, f->len, NULL, 0, NULL, 0);
}

/* Sends O (stolen) to the watchers of CONV (NULL: agents on "*" only). */
static void fan_out(struct oh_gateway *gw, const char *conv, json_t *o, bool agents_only,
                    const struct wsconn *skip)
{
    struct frame f = {.agents_only = agents_only, .skip = skip};
    f.text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!f.text) return;
    f.len = strlen(f.text);
    gw->ws_each_watcher(gw, conv, send_frame, &f); /* ws.c, above this file */
    free(f.text);
}

/* ---- typing ---- */

static uint64_t fnv64(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull; /* a separator: ("ab","c") != ("a","bc") */
}

/* False when SENDER already typed in CONV within the window. A slot taken
 * over by another sender only lets one more signal through. */
static bool typing_allowed(struct oh_gateway *gw, const struct oh_principal *who, const char *conv)
{
    uint64_t key =
        fnv64(fnv64(fnv64(14695981039346656037ull, oh_auth_role_name(who->role)), who->sub), conv);
    struct gw_typing_slot *s = &gw->typing[key % GW_TYPING_SLOTS];
    int64_t now = oh_mono_ms();
    if (s->key == key && now - s->ms < TYPING_WINDOW_MS) return false;
    s->key = key;
    s->ms = now;
    return true;
}

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
    if (!typing_allowed(c->gw, &c->who, conv)) {
        oh_metrics_inc("omnihub_ws_signals_total", "type=\"typing\",result=\"dropped\"", 1);
        return; /* dropped, never queued: the next one in a second says the same */
    }
    oh_metrics_inc("omnihub_ws_signals_total", "type=\"typing\",result=\"forwarded\"", 1);
    fan_out(c->gw, conv,
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:s}", "type", "typing", "conversation", conv,
                      "from", "role", oh_auth_role_name(c->who.role), "id", c->who.sub, "state",
                      state),
            false, c);
}

/* ---- presence ---- */

/* C's own presence is now TO (GONE: it closed); agents on "*" hear of a
 * change of the agent's aggregate presence. */
static void presence_move(struct wsconn *c, enum oh_presence_status to, bool gone)
{
    struct oh_gateway *gw = c->gw;
    enum oh_presence_status now;
    bool changed =
        oh_presence_move(gw->presence, c->who.sub, c->presence, to, gone, oh_now_ms(), &now);
    c->presence = to;
    if (!changed) return;
    oh_metrics_inc("omnihub_ws_signals_total", "type=\"presence\",result=\"forwarded\"", 1);
    fan_out(gw, NULL,
            json_pack("{s:s, s:s, s:s}", "type", "presence", "agent", c->who.sub, "status",
                      oh_presence_name(now)),
            true, NULL);
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
}

/* ---- read receipts ---- */

void gw_signal_read(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                    int64_t seq)
{
    if (who->role != OH_ROLE_CUSTOMER) return; /* agents' cursors are their own business */
    fan_out(gw, conv,
            json_pack("{s:s, s:s, s:I, s:{s:s, s:s}}", "type", "read", "conversation", conv, "seq",
                      (json_int_t)seq, "from", "role", "customer", "id", who->sub),
            true, NULL);
}
