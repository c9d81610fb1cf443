/* service.h - a service is a consumer of the stream: one loop polls its
 * topic as a group in batches, hands each batch to the service, and commits
 * the group's position once the batch's effects are durable (for a service
 * that saves itself, after its coalesced save: .save below). Sync, dispatch,
 * the gateway's live feed and triage (enrich) are services; so will routing,
 * KPIs and the bot be. Adding one: its file here and a line in registry.c. */
#ifndef OH_SERVICE_H
#define OH_SERVICE_H

#include "core/hub.h"
#include "log/log.h"

/* The batch being processed: its records and the position to commit. */
struct oh_service_batch;

struct oh_service {
    const char *name;  /* its thread is "oh-<name>", its log lines say "<name>" */
    const char *group; /* consumer group; NULL: no group, follows TOPIC from its
                          end and commits nothing (live readers) */
    const char *topic;
    const char *batch_key; /* config key of the batch size; NULL: BATCH */
    int batch;             /* the default batch size, 1..4096 */
    /* The role that runs it (`--role NAME`, and every process of role
     * "all"); NULL for the services of the built-in roles, which say in
     * wanted() which of gateway, sync, dispatch they follow. */
    const char *role;
    /* Optional with a role: whether HUB runs the service beyond that (a key
     * that turns it off, a store it needs). */
    bool (*wanted)(const oh_hub *hub);
    /* Optional; on the starting thread: builds the service's state in
     * *STATE (it may start threads of its own). OH_OK, or an error + ERR. */
    int (*init)(oh_hub *hub, void **state, char *err, size_t errlen);
    /* Runs on the service's thread for each polled batch (N >= 1), in log
     * order. Returns once the batch's effects are durable: OH_OK, and the
     * loop commits the batch (unless the service did already with
     * oh_service_commit()); anything else (e.g. the hub is stopping before
     * they were) and nothing is committed: the group reads the batch again
     * after a restart or a rebalance. Events the service decides are
     * appended with oh_hub_ingest(), like a connector's. */
    int (*process)(void *state, struct oh_service_batch *b, const struct oh_log_record *recs,
                   int n);
    /* Optional; on the service's thread when a poll found nothing. */
    void (*tick)(void *state);
    /* Optional; partition assignment (struct oh_log_rebalance), on the
     * service's thread. */
    void (*assigned)(void *state, oh_log_consumer *c, const int32_t *parts, int n);
    void (*revoked)(void *state, oh_log_consumer *c, const int32_t *parts, int n);
    /* Optional; after the loop has ended (hub->stopping is set): stops the
     * service's own threads and frees STATE. */
    void (*stop)(void *state);
    /* Optional: coalesced saving, for a service that keeps what it derives
     * in memory and writes it out itself. With it, OH_OK from process()
     * means "applied in memory", and the loop commits nothing then; it
     * calls save() once the oldest batch not saved is save_ms old (looked
     * at after each batch and each idle poll), before a rebalance takes
     * partitions away, and when the loop ends; when save() returns OH_OK
     * the positions of every batch processed before it are committed (it
     * is called again later when it fails). A batch process() fails is
     * read again (its partitions are sought back) after 200 ms. After a
     * crash the group reads again what came after the last save: process()
     * must give the same state from a saved one when it applies a record
     * twice, and decide events with ids derived from what it applied. Such
     * a service does not call oh_service_commit(). */
    int (*save)(void *state);
    const char *save_key; /* config key of the interval; NULL: save_ms */
    int save_ms;          /* the default interval, ms (0: 200) */
    /* After a batch that did not fill (the member caught up), the loop
     * waits services.linger_ms from that batch's poll before polling
     * again, so that what arrives meanwhile comes in one batch: fewer
     * wake-ups and log reads under load, for at most that much delay.
     * For the services no client waits on within milliseconds. */
    bool lingers;
};

/* Commits B's position now (from inside process): for a service whose
 * effects become durable before process returns, e.g. sync once the store
 * holds the batch. 0 or the log's error. */
int oh_service_commit(struct oh_service_batch *b);

/* Every service of the daemon, in start order; NULL-terminated (registry.c). */
extern const struct oh_service *const oh_service_table[];

/* One running service. */
struct oh_service_run;
/* Starts SVC for HUB: its init, its consumer, its thread. NULL + ERR; a
 * failure after init sets hub->stopping (to end what init started): the
 * daemon stops. */
struct oh_service_run *oh_service_start(const struct oh_service *svc, oh_hub *hub, char *err,
                                        size_t errlen);
/* Call after hub->stopping is set: joins the thread, then the service's
 * stop, and frees. NULL is fine. */
void oh_service_stop(struct oh_service_run *r);

/* The services a role runs, and their lag on /metrics. */
struct oh_service_set;
/* Starts every service of TABLE the role of HUB wants, then a thread that
 * samples every INTERVAL_MS the lag of each one's group into the gauges
 * omnihub_consumer_lag and omnihub_consumer_lag_seconds
 * {group,topic,partition}. *OUT is set even on failure (OH_E* + ERR) and
 * stopped with oh_services_stop(). */
int oh_services_start(oh_hub *hub, const struct oh_service *const *table, int interval_ms,
                      struct oh_service_set **out, char *err, size_t errlen);
/* Call after hub->stopping is set, before the log is closed: stops the lag
 * thread, then the services in reverse start order. NULL is fine. */
void oh_services_stop(struct oh_service_set *set);

/* Dispatch's routing, on a timeline record's metadata alone: true when it
 * is an agent's outbound message (which dispatch then parses and sends).
 * Records without metadata (written before it existed) are looked at in
 * the body. */
bool oh_dispatch_wants(const struct oh_log_record *r);

#endif
