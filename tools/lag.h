/* lag.h - consumer lag evaluation behind `omnihubctl lag`: a window of
 * (committed, end) samples per partition in, a Burrow-style status out. */
#ifndef OH_TOOLS_LAG_H
#define OH_TOOLS_LAG_H

#include <stdio.h>
#include "log/log.h"

/* One observation of one (group, topic, partition). */
struct oh_lag_sample {
    int64_t at_ms;        /* when it was taken (epoch ms) */
    int64_t committed;    /* next offset the group will read; -1 none */
    int64_t end;          /* log-end offset */
    int64_t oldest_ts; /* timestamp of the oldest unread record, ms; -1 none */
    int64_t end_ts;       /* timestamp of the last record, ms; -1 none */
};

enum oh_lag_status { OH_LAG_OK, OH_LAG_WARN, OH_LAG_STALL, OH_LAG_STOP };

struct oh_lag_result {
    enum oh_lag_status status;
    int64_t committed;  /* of the newest sample */
    int64_t end;        /* of the newest sample */
    int64_t lag;        /* end - committed (no commit: end) */
    double time_lag_s;  /* age of the oldest unread record (as Kafka tools show it), 0 if none */
    double waiting_s;   /* the same figure, under its earlier JSON name */
    const char *reason; /* static one-line explanation */
};

/* Evaluates the window S[0..N-1] (oldest first, N >= 1):
 * - OK:    lag was zero in some sample, or committed advanced and the lag
 *          did not grow over the window;
 * - WARN:  committed advanced but the lag grew from the first to the last sample;
 * - STALL: committed did not advance over the window while lag > 0, and the
 *          oldest unread record has waited at most STOP_AFTER_MS;
 * - STOP:  committed did not advance while lag > 0 and the oldest unread
 *          record has waited longer than STOP_AFTER_MS: nobody consumes.
 * With a single sample and lag > 0 progress cannot be seen: OK while the
 * oldest unread record waited at most STOP_AFTER_MS, else STOP.
 * `omnihubctl lag` uses OH_LAG_STOP_AFTER_MS unless told otherwise.
 * Returns 0, or OH_EINVAL on an empty window. Pure. */
int oh_lag_eval(const struct oh_lag_sample *s, int n, int64_t stop_after_ms,
                struct oh_lag_result *out);

/* "OK", "WARN", "STALL", "STOP". */
const char *oh_lag_status_name(enum oh_lag_status st);

/* The topic GROUP consumes: the project's groups are known (omnihub-sync
 * reads events, omnihub-dispatch reads timeline); others default to events. */
const char *oh_lag_topic_of(const char *group);

#define OH_LAG_STOP_AFTER_MS 60000

struct oh_lag_opts {
    const char *const *groups; /* NULL or NGROUPS 0: the project's groups */
    int ngroups;
    bool json;
    int samples;           /* >= 1 (at most 64 are taken) */
    int interval_ms;       /* between samples */
    int64_t stop_after_ms; /* 0: OH_LAG_STOP_AFTER_MS */
};

/* `omnihubctl lag`: samples every partition of each group's topic
 * O->samples times, O->interval_ms apart, and prints one row per (group,
 * topic, partition) to OUT: a table, or with O->json one object
 * {"groups":[{"group","topic","partitions":[{...}]}]}. Returns 0, or a
 * negative code when the log cannot be read. The worst status found is
 * stored in *WORST when WORST is not NULL. */
int oh_lag_cmd(oh_log *log, const struct oh_lag_opts *o, FILE *out, enum oh_lag_status *worst);

#endif
