/* lagwatch.h - the consuming roles' own lag on /metrics: a thread that
 * samples oh_log_lag() for the groups this process consumes in. */
#ifndef OH_LAGWATCH_H
#define OH_LAGWATCH_H

#include "core/hub.h"

struct oh_lagwatch;

/* Starts sampling every INTERVAL_MS the groups of the services HUB runs
 * (sync: omnihub-sync on events; dispatch: omnihub-dispatch on timeline)
 * into the gauges omnihub_consumer_lag and omnihub_consumer_lag_seconds
 * {group,topic,partition}. Returns NULL with ERR on failure, and NULL with
 * ERR empty when HUB runs no consuming service. Stop with oh_lagwatch_stop(). */
struct oh_lagwatch *oh_lagwatch_start(oh_hub *hub, int interval_ms, char *err, size_t errlen);
/* Joins the thread and frees; call after hub->stopping is set, before the
 * log is closed. NULL is fine. */
void oh_lagwatch_stop(struct oh_lagwatch *w);

#endif
