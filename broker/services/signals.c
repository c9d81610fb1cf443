/* signals.c - what the other gateways say (Kafka): follows the signals
 * topic from its end. Presence goes into this process's agent directory
 * (hub->presence, which the router reads too); typing, read receipts and
 * changes of an agent's presence go to this gateway's clients through
 * hub->signal_in. A service without a group, on the thread "oh-signals". */
#include <stdlib.h>
#include <string.h>
#include "core/hub_int.h"
#include "core/metrics.h"
#include "core/presence.h"
#include "services/service.h"

#define SIG_MAX         65536 /* bytes of one signal record, at most */
#define TTL_MIN_MS      1000  /* bounds of what a presence word may ask for */
#define TTL_MAX_MS      600000
#define TYPING_STALE_MS 10000 /* hosts' clocks may differ by a few seconds */
#define SWEEP_MS        1000  /* words past their time are forgotten this often */

struct signals {
    oh_hub *hub;
    int64_t swept_ms;
};

/* An agent's aggregate presence changed: this gateway's agents hear it. */
static void tell(void *opaque, const char *agent, enum oh_presence_status now)
{
    oh_hub *hub = ((struct signals *)opaque)->hub;
    if (!hub->signal_in) return;
    json_t *o = json_pack("{s:s, s:s, s:s}", "kind", "presence", "agent", agent, "status",
                          oh_presence_name(now));
    if (o) hub->signal_in(hub->signal_opaque, o);
}

static void sweep(struct signals *s)
{
    int64_t now = oh_now_ms();
    if (now - s->swept_ms < SWEEP_MS) return;
    s->swept_ms = now;
    oh_presence_forget(s->hub->presence, NULL, now, tell, s);
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Gateway ORIGIN's word on an agent, from SIG (checked: sizes bounded). */
static void presence_word(struct signals *s, const char *origin, const json_t *sig)
{
    const json_t *a = json_object_get(sig, "agent");
    const char *id = str(a, "id"), *name = str(a, "name");
    const json_t *teams = json_object_get(a, "teams");
    struct oh_agent_info info;
    memset(&info, 0, sizeof info);
    if (!id || !*id || strlen(id) >= sizeof info.id || (name && strlen(name) >= sizeof info.name) ||
        oh_presence_parse(str(a, "status"), &info.here))
        return;
    memcpy(info.id, id, strlen(id) + 1);
    if (name) memcpy(info.name, name, strlen(name) + 1);
    for (size_t i = 0; i < json_array_size(teams) && info.nteams < OH_AUTH_TEAMS_MAX; i++) {
        const char *t = json_string_value(json_array_get(teams, i));
        if (t && *t && strlen(t) < sizeof info.teams[0]) {
            memcpy(info.teams[info.nteams], t, strlen(t) + 1);
            info.nteams++;
        }
    }
    int64_t ttl = json_integer_value(json_object_get(sig, "ttl_ms"));
    ttl = ttl < TTL_MIN_MS ? TTL_MIN_MS : ttl > TTL_MAX_MS ? TTL_MAX_MS : ttl;
    int64_t now_ms = oh_now_ms();
    enum oh_presence_status now;
    if (oh_presence_remote(s->hub->presence, origin, &info, now_ms, now_ms + ttl, &now))
        tell(s, id, now);
}

/* A typing signal sent more than TYPING_STALE_MS ago (the reader caught up
 * after a broker outage): the person has long stopped or typed again. A
 * read receipt is true however late. */
static bool stale(const json_t *sig)
{
    json_int_t at = json_integer_value(json_object_get(sig, "at"));
    return at > 0 && oh_now_ms() - at > TYPING_STALE_MS;
}

/* runs on the service's thread */
static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct signals *s = state;
    oh_hub *hub = s->hub;
    (void)b;
    for (int i = 0; i < n; i++) {
        const struct oh_log_record *r = &recs[i];
        json_t *sig = r->len <= SIG_MAX ? json_loadb(r->value, r->len, 0, NULL) : NULL;
        const char *origin = str(sig, "origin"), *kind = str(sig, "kind");
        if (!origin || !kind || strlen(origin) >= OH_PRESENCE_ORIGIN_MAX ||
            strcmp(origin, hub->origin) == 0) { /* our own, or not a signal */
            json_decref(sig);
            continue;
        }
        oh_metrics_inc("omnihub_signals_total", "direction=\"in\",result=\"heard\"", 1);
        if (strcmp(kind, "presence") == 0) {
            presence_word(s, origin, sig);
        } else if (strcmp(kind, "bye") == 0) { /* it stopped: its agents are gone there */
            oh_presence_forget(hub->presence, origin, oh_now_ms(), tell, s);
        } else if (strcmp(kind, "typing") == 0 && stale(sig)) {
            oh_metrics_inc("omnihub_signals_total", "direction=\"in\",result=\"stale\"", 1);
        } else if (hub->signal_in && (strcmp(kind, "typing") == 0 || strcmp(kind, "read") == 0)) {
            hub->signal_in(hub->signal_opaque, sig);
            sig = NULL;
        }
        json_decref(sig);
    }
    sweep(s);
    return OH_OK;
}

static void tick(void *state)
{
    sweep(state);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct signals *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    s->hub = hub;
    *state = s;
    return OH_OK;
}

static void stop(void *state)
{
    free(state);
}

/* with Kafka, in a gateway (its clients) or a router (its agents), as long
 * as the process has an agent directory */
static bool wanted(const oh_hub *hub)
{
    return hub->presence && strcmp(oh_log_backend(hub->log), "kafka") == 0 &&
           (hub->run_gateway || oh_hub_runs(hub, "router"));
}

const struct oh_service oh_service_signals = {
    .name = "signals",
    .group = NULL,
    .topic = OH_TOPIC_SIGNALS,
    .batch = 256,
    .wanted = wanted,
    .init = init,
    .process = process,
    .tick = tick,
    .stop = stop,
};
