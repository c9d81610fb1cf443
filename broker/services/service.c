/* service.c - the one consumer loop of every service (poll a batch,
 * process, commit; or, for a service that saves itself, commit after its
 * coalesced save) and the lag export of their groups. Each service runs on
 * its own thread, "oh-<name>"; the lag sampler on "oh-lagwatch". */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "services/service.h"
#include "core/metrics.h"

#define MAX_BATCH    4096
#define MAX_PARTS    256
#define MAX_SERVICES 16
#define SAVE_MS      200 /* struct oh_service.save_ms when it is not set */
#define RETRY_MS     200 /* a failed poll, or batch of a coalescing service */

/* The position after a batch in one partition. */
struct pending {
    int32_t partition;
    int64_t next;
};

struct oh_service_run {
    const struct oh_service *svc;
    char labels[96]; /* service="..",role=".." of its delay gauge */
    oh_hub *hub;
    void *state;
    oh_log_consumer *c;
    pthread_t thread;
    bool running;
    int batch;
    struct oh_log_record *recs;
    /* coalesced saving (svc->save): when the next save is due (monotonic
     * ms; 0: everything processed is saved), and the positions processed
     * since the last save */
    int save_ms;
    int64_t save_at;
    int linger_ms; /* svc->lingers: services.linger_ms, else 0 */
    struct pending pend[MAX_PARTS];
    int npend;
};

struct oh_service_batch {
    struct oh_service_run *run;
    const struct oh_log_record *recs;
    int n;
    bool committed;
};

int oh_service_commit(struct oh_service_batch *b)
{
    if (b->committed || !b->run->svc->group) return OH_OK;
    b->committed = true;
    int rc = OH_OK;
    /* the last record of each partition in the batch gives its next offset */
    for (int i = 0; i < b->n; i++) {
        const struct oh_log_record *r = &b->recs[i];
        bool last = true;
        for (int j = i + 1; j < b->n && last; j++)
            last = b->recs[j].partition != r->partition;
        if (!last) continue;
        int e = oh_log_commit(b->run->c, r->partition, r->offset + 1);
        if (e && !rc) rc = e;
    }
    return rc;
}

/* ---- coalesced saving (struct oh_service.save) ------------------------ */

/* The service saves; then the positions processed before are committed.
 * Once the save succeeded the positions are dropped whatever the commit
 * says: a later one moves the group on, a crash re-reads a little more. */
static int flush(struct oh_service_run *r)
{
    if (!r->save_at) return OH_OK;
    int rc = r->svc->save(r->state);
    if (rc) {
        OH_WARN(r->svc->name, "not saved: %s; again in %d ms", oh_strerror(rc), r->save_ms);
        r->save_at = oh_mono_ms() + r->save_ms;
        return rc;
    }
    for (int i = 0; i < r->npend && r->svc->group; i++)
        oh_log_commit(r->c, r->pend[i].partition, r->pend[i].next);
    r->npend = 0;
    r->save_at = 0;
    return OH_OK;
}

/* Notes the position after the batch RECS (N) as processed, not saved:
 * each partition's last record gives its next offset. */
static void processed(struct oh_service_run *r, const struct oh_log_record *recs, int n)
{
    if (!r->save_at) r->save_at = oh_mono_ms() + r->save_ms;
    for (int i = 0; i < n; i++) {
        int p = 0;
        while (p < r->npend && r->pend[p].partition != recs[i].partition)
            p++;
        if (p == MAX_PARTS) { /* more partitions than fit: save what came before now */
            flush(r);
            if (r->npend == MAX_PARTS) continue; /* not saved: read again after a crash */
            p = r->npend;
            if (!r->save_at) r->save_at = oh_mono_ms() + r->save_ms;
        }
        if (p == r->npend) r->npend++;
        r->pend[p] = (struct pending){recs[i].partition, recs[i].offset + 1};
    }
}

/* A batch the service could not process is read again: each of its
 * partitions from its first record in the batch. */
static void reread(struct oh_service_run *r, const struct oh_log_record *recs, int n, int err)
{
    OH_WARN(r->svc->name, "batch not processed: %s; reading it again in %d ms", oh_strerror(err),
            RETRY_MS);
    for (int i = 0; i < n; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++)
            first = recs[j].partition != recs[i].partition;
        if (first) oh_log_seek(r->c, recs[i].partition, recs[i].offset);
    }
    usleep(RETRY_MS * 1000);
}

/* Waits until LINGER_MS after POLLED (monotonic ms), or the hub stops. */
static void linger(struct oh_service_run *r, int64_t polled)
{
    for (int64_t left;
         !atomic_load(&r->hub->stopping) && (left = polled + r->linger_ms - oh_mono_ms()) > 0;)
        usleep((useconds_t)(left < 50 ? left : 50) * 1000);
}

static void *loop(void *arg)
{
    struct oh_service_run *r = arg;
    const struct oh_service *svc = r->svc;
    while (!atomic_load(&r->hub->stopping)) {
        int n = oh_log_poll(r->c, r->recs, r->batch, 200);
        if (n < 0) {
            OH_WARN(svc->name, "poll failed: %s", oh_strerror(n));
            usleep(RETRY_MS * 1000);
            continue;
        }
        if (n == 0) {
            oh_metrics_set("omnihub_service_delay_seconds", r->labels, 0);
            if (r->save_at && oh_mono_ms() >= r->save_at) flush(r);
            if (svc->tick) svc->tick(r->state);
            continue;
        }
        /* how far behind the stream this member works: the age of the
         * batch's oldest record as it starts on it */
        int64_t oldest = INT64_MAX, now = oh_now_ms();
        for (int i = 0; i < n; i++)
            if (r->recs[i].timestamp_ms > 0 && r->recs[i].timestamp_ms < oldest)
                oldest = r->recs[i].timestamp_ms;
        oh_metrics_set("omnihub_service_delay_seconds", r->labels,
                       oldest < now ? (double)(now - oldest) / 1000.0 : 0);
        int64_t polled = oh_mono_ms();
        oh_metrics_inc("omnihub_service_batches_total", r->labels, 1);
        oh_metrics_inc("omnihub_service_records_total", r->labels, (uint64_t)n);
        struct oh_service_batch b = {r, r->recs, n, false};
        int rc = svc->process(r->state, &b, r->recs, n);
        if (!svc->save) {
            if (rc == OH_OK) oh_service_commit(&b);
        } else if (rc == OH_OK) {
            processed(r, r->recs, n);
            if (oh_mono_ms() >= r->save_at) flush(r);
        } else {
            reread(r, r->recs, n, rc);
        }
        if (r->linger_ms && n < r->batch) linger(r, polled);
    }
    if (svc->save) flush(r); /* a clean stop saves */
    return NULL;
}

static void on_assigned(void *opaque, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct oh_service_run *r = opaque;
    r->svc->assigned(r->state, c, parts, n);
}

/* A coalescing service saves before it gives partitions up, and what it
 * processed of them is committed; if the save fails, their positions are
 * dropped: the next owner reads from the last committed one. */
static void on_revoked(void *opaque, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct oh_service_run *r = opaque;
    if (r->svc->save && flush(r)) {
        for (int i = 0; i < r->npend;) {
            bool gone = false;
            for (int j = 0; j < n && !gone; j++)
                gone = r->pend[i].partition == parts[j];
            if (gone)
                r->pend[i] = r->pend[--r->npend];
            else
                i++;
        }
    }
    if (r->svc->revoked) r->svc->revoked(r->state, c, parts, n);
}

void oh_service_stop(struct oh_service_run *r)
{
    if (!r) return;
    if (r->running) pthread_join(r->thread, NULL);
    oh_log_consumer_close(r->c); /* a revoke callback may still use the state */
    if (r->svc->stop) r->svc->stop(r->state);
    free(r->recs);
    free(r);
}

struct oh_service_run *oh_service_start(const struct oh_service *svc, oh_hub *hub, char *err,
                                        size_t errlen)
{
    struct oh_service_run *r = calloc(1, sizeof *r);
    if (!r) {
        oh_errf(err, errlen, "%s: out of memory", svc->name);
        return NULL;
    }
    r->svc = svc;
    r->hub = hub;
    snprintf(r->labels, sizeof r->labels, "service=\"%s\",role=\"%s\"", svc->name,
             svc->role ? svc->role : svc->name);
    oh_metrics_set("omnihub_service_delay_seconds", r->labels, 0);
    oh_metrics_describe("omnihub_service_batches_total",
                        "batches the member polled and processed, per service (records per batch: "
                        "omnihub_service_records_total over this)");
    oh_metrics_describe("omnihub_service_records_total",
                        "records the member polled and processed, per service (a batch read again "
                        "counts again)");
    r->batch = svc->batch_key ? (int)oh_config_int(hub->cfg, svc->batch_key) : svc->batch;
    if (r->batch < 1 || r->batch > MAX_BATCH) r->batch = svc->batch;
    int64_t save_ms = svc->save_key ? oh_config_int(hub->cfg, svc->save_key) : svc->save_ms;
    if (save_ms < 1 || save_ms > INT32_MAX) save_ms = svc->save_ms > 0 ? svc->save_ms : SAVE_MS;
    r->save_ms = (int)save_ms;
    int64_t linger_ms = svc->lingers ? oh_config_int(hub->cfg, "services.linger_ms") : 0;
    r->linger_ms = linger_ms > 0 ? (int)(linger_ms < 1000 ? linger_ms : 1000) : 0;
    char why[512] = "";
    if (svc->init && svc->init(hub, &r->state, why, sizeof why)) {
        oh_errf(err, errlen, "%s: %s", svc->name, why[0] ? why : "cannot start");
        free(r);
        return NULL;
    }
    struct oh_log_rebalance reb = {svc->assigned ? on_assigned : NULL,
                                   svc->revoked || svc->save ? on_revoked : NULL, r};
    if (!(r->recs = calloc((size_t)r->batch, sizeof *r->recs))) {
        snprintf(why, sizeof why, "out of memory");
    } else if (!(r->c = oh_log_consumer_new(hub->log, svc->group, svc->topic, &reb, why,
                                            sizeof why))) {
    } else if (!svc->group && oh_log_seek_end(r->c)) {
        snprintf(why, sizeof why, "cannot find the end of %s", svc->topic);
    } else if (pthread_create(&r->thread, NULL, loop, r)) {
        snprintf(why, sizeof why, "cannot start its thread");
    } else {
        r->running = true;
        char tname[16];
        snprintf(tname, sizeof tname, "oh-%s", svc->name);
        pthread_setname_np(r->thread, tname);
        return r;
    }
    oh_errf(err, errlen, "%s: %s", svc->name, why);
    /* the threads init may have started end when the hub stops, and a
     * service that cannot start stops the daemon */
    atomic_store(&hub->stopping, true);
    oh_service_stop(r);
    return NULL;
}

/* ---- the set of a role, and its lag ---------------------------------- */

struct oh_service_set {
    oh_hub *hub;
    struct oh_service_run *run[MAX_SERVICES];
    int n;
    pthread_t lag_thread;
    bool lag_running;
    int interval_ms;
    struct oh_log_lag lag[MAX_PARTS];
};

/* One sample of one group into the gauges. */
static void lag_sample(struct oh_service_set *set, const struct oh_service *svc)
{
    int n = oh_log_lag(set->hub->log, svc->group, svc->topic, set->lag, MAX_PARTS);
    if (n < 0) {
        OH_WARN("lagwatch", "lag of %s on %s: %s", svc->group, svc->topic, oh_strerror(n));
        return;
    }
    int64_t now = oh_now_ms(), total = 0;
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const struct oh_log_lag *l = &set->lag[i];
        int64_t lag = l->end - (l->committed >= 0 ? l->committed : 0);
        if (lag < 0) lag = 0;
        /* age of the oldest unread record: grows while nobody consumes */
        double age = lag > 0 && l->oldest_ts >= 0 && now > l->oldest_ts
                         ? (double)(now - l->oldest_ts) / 1000.0
                         : 0;
        char labels[160];
        snprintf(labels, sizeof labels, "group=\"%s\",topic=\"%s\",partition=\"%d\"", svc->group,
                 svc->topic, (int)l->partition);
        oh_metrics_set("omnihub_consumer_lag", labels, (double)lag);
        oh_metrics_set("omnihub_consumer_lag_seconds", labels, age);
        total += lag;
        if (age > worst) worst = age;
    }
    /* the group as a whole, named by the role that scales it (the figures
     * are the group's: every member exports the same) */
    char labels[160];
    snprintf(labels, sizeof labels, "role=\"%s\",group=\"%s\"", svc->role ? svc->role : svc->name,
             svc->group);
    oh_metrics_set("omnihub_role_lag", labels, (double)total);
    oh_metrics_set("omnihub_role_lag_seconds", labels, worst);
}

static void *lag_loop(void *arg)
{
    struct oh_service_set *set = arg;
    int64_t next = 0;
    while (!atomic_load(&set->hub->stopping)) {
        if (oh_mono_ms() >= next) {
            for (int i = 0; i < set->n && !atomic_load(&set->hub->stopping); i++)
                if (set->run[i]->svc->group) lag_sample(set, set->run[i]->svc);
            next = oh_mono_ms() + set->interval_ms;
        }
        usleep(100000);
    }
    return NULL;
}

int oh_services_start(oh_hub *hub, const struct oh_service *const *table, int interval_ms,
                      struct oh_service_set **out, char *err, size_t errlen)
{
    struct oh_service_set *set = *out = calloc(1, sizeof *set);
    if (!set) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    set->hub = hub;
    set->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    bool grouped = false;
    for (const struct oh_service *const *s = table; *s; s++) {
        if ((*s)->role && !oh_hub_runs(hub, (*s)->role)) continue;
        if ((*s)->wanted && !(*s)->wanted(hub)) continue;
        if (set->n == MAX_SERVICES) {
            oh_errf(err, errlen, "too many services");
            return OH_EINVAL;
        }
        if (!(set->run[set->n] = oh_service_start(*s, hub, err, errlen))) return OH_EINVAL;
        set->n++;
        grouped |= (*s)->group != NULL;
    }
    if (!grouped) return OH_OK;
    oh_metrics_describe("omnihub_consumer_lag",
                        "records of the partition not yet consumed by the group");
    oh_metrics_describe("omnihub_consumer_lag_seconds",
                        "age of the oldest record the group has not consumed, 0 when caught up");
    if (pthread_create(&set->lag_thread, NULL, lag_loop, set)) {
        oh_errf(err, errlen, "cannot start the lag watcher");
        return OH_EIO;
    }
    set->lag_running = true;
    pthread_setname_np(set->lag_thread, "oh-lagwatch");
    return OH_OK;
}

void oh_services_stop(struct oh_service_set *set)
{
    if (!set) return;
    if (set->lag_running) pthread_join(set->lag_thread, NULL);
    for (int i = set->n; i-- > 0;)
        oh_service_stop(set->run[i]);
    free(set);
}
