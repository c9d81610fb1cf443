/* lagwatch.c - samples the consumer lag of this process's groups off the
 * hot path and exports it as Prometheus gauges. Runs on its own thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/hub_int.h"
#include "services/lagwatch.h"
#include "core/metrics.h"

#define LW_MAX_PARTS 256

struct lw_group {
    const char *group, *topic;
};

struct oh_lagwatch {
    oh_hub *hub;
    pthread_t thread;
    int interval_ms, ngroups;
    struct lw_group groups[2];
    struct oh_log_lag lag[LW_MAX_PARTS];
};

/* One sample of one group into the gauges. */
static void lw_sample(struct oh_lagwatch *w, const struct lw_group *g)
{
    int n = oh_log_lag(w->hub->log, g->group, g->topic, w->lag, LW_MAX_PARTS);
    if (n < 0) {
        OH_WARN("lagwatch", "lag of %s on %s: %s", g->group, g->topic, oh_strerror(n));
        return;
    }
    int64_t now = oh_now_ms();
    for (int i = 0; i < n; i++) {
        const struct oh_log_lag *l = &w->lag[i];
        int64_t lag = l->end - (l->committed >= 0 ? l->committed : 0);
        if (lag < 0) lag = 0;
        /* age of the oldest unread record: grows while nobody consumes */
        double age = lag > 0 && l->oldest_ts >= 0 && now > l->oldest_ts
                         ? (double)(now - l->oldest_ts) / 1000.0
                         : 0;
        char labels[160];
        snprintf(labels, sizeof labels, "group=\"%s\",topic=\"%s\",partition=\"%d\"", g->group,
                 g->topic, (int)l->partition);
        oh_metrics_set("omnihub_consumer_lag", labels, (double)lag);
        oh_metrics_set("omnihub_consumer_lag_seconds", labels, age);
    }
}

static void *lw_run(void *arg)
{
    struct oh_lagwatch *w = arg;
    int64_t next = 0;
    while (!atomic_load(&w->hub->stopping)) {
        if (oh_mono_ms() >= next) {
            for (int i = 0; i < w->ngroups && !atomic_load(&w->hub->stopping); i++)
                lw_sample(w, &w->groups[i]);
            next = oh_mono_ms() + w->interval_ms;
        }
        usleep(100000);
    }
    return NULL;
}

struct oh_lagwatch *oh_lagwatch_start(oh_hub *hub, int interval_ms, char *err, size_t errlen)
{
    if (errlen) err[0] = '\0';
    if (!hub->run_sync && !hub->run_dispatch) return NULL;
    struct oh_lagwatch *w = calloc(1, sizeof *w);
    if (!w) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    w->hub = hub;
    w->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    if (hub->run_sync) w->groups[w->ngroups++] = (struct lw_group){OH_GROUP_SYNC, OH_TOPIC_EVENTS};
    if (hub->run_dispatch)
        w->groups[w->ngroups++] = (struct lw_group){OH_GROUP_DISPATCH, OH_TOPIC_TIMELINE};
    oh_metrics_describe("omnihub_consumer_lag",
                        "records of the partition not yet consumed by the group");
    oh_metrics_describe("omnihub_consumer_lag_seconds",
                        "age of the oldest record the group has not consumed, 0 when caught up");
    if (pthread_create(&w->thread, NULL, lw_run, w)) {
        oh_errf(err, errlen, "cannot start the lag watcher");
        free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, "oh-lagwatch");
    return w;
}

void oh_lagwatch_stop(struct oh_lagwatch *w)
{
    if (!w) return;
    pthread_join(w->thread, NULL);
    free(w);
}
