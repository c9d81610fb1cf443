/* hub_int.h - the daemon's own view of the hub: its services, connector
 * instances and the in-process live feed. Not for connectors. */
#ifndef OH_HUB_INT_H
#define OH_HUB_INT_H

#include <stdatomic.h>
#include "core/hub.h"
#include "core/connector.h"
#include "core/handoff.h"
#include "core/marks.h"

struct oh_instance {
    const struct oh_connector *vt;
    void *ctx;
    struct oh_conn_env *env; /* what the instance was given; core/conn_env.h */
};

/* Receives each sequenced event once it is materialized (live push). Runs on
 * the thread that materialized or consumed it; must not block. */
typedef void (*oh_feed_fn)(void *opaque, const char *conv, int64_t seq, const char *json,
                           size_t len);

struct oh_sync;
struct oh_gateway;
struct oh_kbase;

struct oh_hub {
    oh_config *cfg;
    oh_log *log;
    oh_store *store; /* NULL in a pure gateway or dispatch role with Kafka */
    struct oh_instance conn[32];
    size_t nconn;
    bool run_gateway, run_sync, run_dispatch;
    /* the roles this process runs beyond those three: "all", or the
     * service roles of --role, comma-separated ("router,kpi") */
    char roles[256];
    oh_feed_fn feed;
    void *feed_opaque;
    struct oh_sync *sync; /* the unit tests' (oh_sync_start) */
    struct oh_gateway *gw;
    oh_handoff *handoff; /* NULL unless ingest and sync share the process */
    /* the messages sync scored inline, marked by (conversation, seq) for
     * the enrich service of this process; NULL unless sync scores inline
     * here (services/enrich_text.h, oh_triage_inline) */
    oh_marks *scored;
    /* the gateway's agent directory and presence (core/presence.h; the
     * gateway owns it), NULL in a process without a gateway */
    struct oh_presence *presence;
    /* signals from other gateways (services/signals.c) for this one's
     * clients: takes ownership of SIG, the signal's record as JSON; runs on
     * the signals thread, must not block. NULL without a gateway. */
    void (*signal_in)(void *opaque, json_t *sig);
    void *signal_opaque;
    /* this gateway's origin on the signals topic ("" none: it shares none) */
    char origin[40];
    /* told the ids of state commands whose outcomes sync committed (after
     * each batch); runs on sync's thread: must not block */
    void (*outcomes)(void *opaque, const char *const *ids, size_t n);
    void *outcomes_opaque;
    /* the knowledge base's articles and the canned responses, each an
     * index rebuilt from the store (oh_hub_kb_reload); NULL without a store */
    struct oh_kbase *kb, *canned;
    atomic_size_t record_max; /* oh_hub_record_max(), 0 until first asked */
    atomic_bool stopping;
};

/* Rebuilds the index of the articles (CANNED false) or of the canned
 * responses (true) from the store and swaps it in (core/kbase.h). Any
 * thread but the HTTP service thread (it reads the store). 0, or an error
 * with ERR. */
int oh_hub_kb_reload(oh_hub *hub, bool canned, char *err, size_t errlen);

/* The kv namespace of the canned responses: key = id, value = JSON
 * {id, title, text, updated_at}. */
#define OH_CANNED_NS "canned"

/* The instance serving CHANNEL ("<name>:<sub-channel>" is served by
 * "<name>"); NULL when no enabled connector serves it. */
struct oh_instance *oh_hub_connector(oh_hub *hub, const char *channel);

/* oh_hub_ingest for a service that writes its events' record text itself:
 * TEXTS[i] (LENS[i] bytes, borrowed for the call) is exactly
 * oh_json_dump(EVENTS->ev[i]) of an event the service built valid, so it is
 * neither validated nor dumped again; an event whose TEXTS[i] is NULL, or
 * every event when TEXTS is NULL, goes as with oh_hub_ingest. */
int oh_hub_ingest_texts(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                        const size_t *lens, oh_hub_done_fn done, void *opaque);
/* Its blocking form (oh_hub_ingest_wait). */
int oh_hub_ingest_texts_wait(oh_hub *hub, struct oh_event_list *events, const char *const *texts,
                             const size_t *lens);

/* Whether this process runs service role ROLE (a service's .role). */
bool oh_hub_runs(const oh_hub *hub, const char *role);

/* Hands a sequenced event to the live feed, if any. */
void oh_hub_feed(oh_hub *hub, const char *conv, int64_t seq, const char *json, size_t len);

/* Tells the hub's outcomes listener, if any (sync, after a commit). */
void oh_hub_outcomes(oh_hub *hub, const char *const *ids, size_t n);

/* The sync service alone, outside the daemon's service set (unit tests;
 * services/service.h runs every service). NULL + ERR. */
struct oh_sync *oh_sync_start(oh_hub *hub, char *err, size_t errlen);
/* Before anything is appended: refuses (OH_EINVAL, ERR says what happened
 * and what to do) a log that is not the one the store's positions refer to
 * (another identity, or an end before a stored position), unless
 * sync.adopt_log; otherwise records the log's identity in the store. */
int oh_sync_check_log(oh_hub *hub, char *err, size_t errlen);
void oh_sync_stop(struct oh_sync *s);

#endif
