/* lag.c - Burrow-style consumer lag status from sampled committed and
 * log-end offsets, and the `omnihubctl lag` report (table or JSON). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lag.h"

#define MAX_PARTS 256

static int64_t lag_of(const struct oh_lag_sample *s)
{
    int64_t lag = s->end - (s->committed >= 0 ? s->committed : 0);
    return lag > 0 ? lag : 0;
}

int oh_lag_eval(const struct oh_lag_sample *s, int n, int64_t stop_after_ms,
                struct oh_lag_result *out)
{
    if (!s || n <= 0 || !out) return OH_EINVAL;
    const struct oh_lag_sample *first = &s[0], *last = &s[n - 1];
    *out =
        (struct oh_lag_result){.committed = last->committed, .end = last->end, .lag = lag_of(last)};
    if (out->lag > 0) {
        /* Unknown timestamp of the oldest unread record: it has waited at
         * least as long as we have been watching. */
        int64_t since = last->oldest_ts >= 0 ? last->oldest_ts : first->at_ms;
        out->waiting_s = since < last->at_ms ? (double)(last->at_ms - since) / 1000.0 : 0;
    }
    out->time_lag_s = out->waiting_s;
    bool stopped = out->waiting_s * 1000.0 > (double)stop_after_ms;

    for (int i = 0; i < n; i++) {
        if (lag_of(&s[i]) == 0) {
            out->status = OH_LAG_OK;
            out->reason = out->lag ? "caught up within the window" : "caught up";
            return 0;
        }
    }
    if (n == 1) {
        out->status = stopped ? OH_LAG_STOP : OH_LAG_OK;
        out->reason = stopped ? "the oldest unread record waits longer than the stop threshold"
                              : "one sample: progress not measured";
        return 0;
    }
    if (last->committed > first->committed) {
        bool growing = lag_of(last) > lag_of(first);
        out->status = growing ? OH_LAG_WARN : OH_LAG_OK;
        out->reason = growing ? "committing, but the lag grows" : "committing, lag not growing";
        return 0;
    }
    out->status = stopped ? OH_LAG_STOP : OH_LAG_STALL;
    out->reason = stopped ? "no commit while the oldest unread record waits longer than the stop "
                            "threshold"
                          : "committed offset not advancing while records wait";
    return 0;
}

const char *oh_lag_status_name(enum oh_lag_status st)
{
    static const char *const names[] = {"OK", "WARN", "STALL", "STOP"};
    return (unsigned)st < OH_ARRAY_SIZE(names) ? names[st] : "?";
}

const char *oh_lag_topic_of(const char *group)
{
    if (group && (!strcmp(group, OH_GROUP_DISPATCH) || !strcmp(group, OH_GROUP_ENRICH) ||
                  !strcmp(group, OH_GROUP_SLA)))
        return OH_TOPIC_TIMELINE;
    return OH_TOPIC_EVENTS;
}

/* The samples of one group: [round][partition]. */
struct group_samples {
    const char *group, *topic;
    int nparts;
    struct oh_lag_sample *s; /* samples x MAX_PARTS */
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts))
        ;
}

static json_t *result_json(int32_t part, const struct oh_lag_result *r)
{
    return json_pack("{s:i, s:I, s:I, s:I, s:f, s:f, s:s, s:s}", "partition", (int)part,
                     "committed", (json_int_t)r->committed, "end", (json_int_t)r->end, "lag",
                     (json_int_t)r->lag, "time_lag_s", r->time_lag_s, "waiting_s", r->waiting_s,
                     "status", oh_lag_status_name(r->status), "reason", r->reason);
}

static void print_report(struct group_samples *g, int ngroups, int samples, bool json,
                         int64_t stop_after_ms, FILE *out, enum oh_lag_status *worst)
{
    json_t *root = json ? json_object() : NULL, *arr = json ? json_array() : NULL;
    if (!json)
        fprintf(out, "%-20s %-10s %4s %12s %12s %10s %10s %-6s\n", "GROUP", "TOPIC", "PART",
                "COMMITTED", "END", "LAG", "TIME_LAG_S", "STATUS");
    struct oh_lag_sample win[64];
    for (int k = 0; k < ngroups; k++) {
        json_t *parts = json ? json_array() : NULL;
        for (int p = 0; p < g[k].nparts; p++) {
            int n = 0;
            for (int i = 0; i < samples && n < (int)OH_ARRAY_SIZE(win); i++)
                win[n++] = g[k].s[(size_t)i * MAX_PARTS + (size_t)p];
            struct oh_lag_result r;
            if (oh_lag_eval(win, n, stop_after_ms, &r)) continue;
            if (r.status > *worst) *worst = r.status;
            if (json) {
                json_array_append_new(parts, result_json(p, &r));
            } else {
                char comm[24];
                if (r.committed < 0)
                    snprintf(comm, sizeof comm, "-");
                else
                    snprintf(comm, sizeof comm, "%lld", (long long)r.committed);
                fprintf(out, "%-20s %-10s %4d %12s %12lld %10lld %10.1f %-6s\n", g[k].group,
                        g[k].topic, p, comm, (long long)r.end, (long long)r.lag, r.time_lag_s,
                        oh_lag_status_name(r.status));
            }
        }
        if (json)
            json_array_append_new(arr, json_pack("{s:s, s:s, s:o}", "group", g[k].group, "topic",
                                                 g[k].topic, "partitions", parts));
    }
    if (json) {
        json_object_set_new(root, "groups", arr);
        json_dumpf(root, out, JSON_COMPACT);
        fputc('\n', out);
        json_decref(root);
    }
}

int oh_lag_cmd(oh_log *log, const struct oh_lag_opts *o, FILE *out, enum oh_lag_status *worst)
{
    static const char *const ours[] = {OH_GROUP_SYNC, OH_GROUP_DISPATCH};
    const char *const *groups = o->groups;
    int ngroups = o->ngroups, samples = o->samples, interval_ms = o->interval_ms;
    int64_t stop_after_ms = o->stop_after_ms > 0 ? o->stop_after_ms : OH_LAG_STOP_AFTER_MS;
    if (!groups || ngroups <= 0) {
        groups = ours;
        ngroups = (int)OH_ARRAY_SIZE(ours);
    }
    if (samples < 1) samples = 1;
    if (samples > 64) samples = 64;
    struct group_samples *g = calloc((size_t)ngroups, sizeof *g);
    if (!g) return OH_ENOMEM;
    int rc = 0;
    for (int k = 0; k < ngroups && !rc; k++) {
        g[k].group = groups[k];
        g[k].topic = oh_lag_topic_of(groups[k]);
        g[k].s = calloc((size_t)samples * MAX_PARTS, sizeof *g[k].s);
        if (!g[k].s) rc = OH_ENOMEM;
    }
    struct oh_log_lag lag[MAX_PARTS];
    for (int i = 0; i < samples && !rc; i++) {
        if (i) sleep_ms(interval_ms);
        for (int k = 0; k < ngroups && !rc; k++) {
            int n = oh_log_lag(log, g[k].group, g[k].topic, lag, MAX_PARTS);
            if (n < 0) {
                rc = n;
                break;
            }
            int64_t now = oh_now_ms();
            if (i == 0 || n < g[k].nparts) g[k].nparts = n;
            for (int p = 0; p < n && p < g[k].nparts; p++)
                g[k].s[(size_t)i * MAX_PARTS + (size_t)p] = (struct oh_lag_sample){
                    now, lag[p].committed, lag[p].end, lag[p].oldest_ts, lag[p].end_ts};
        }
    }
    enum oh_lag_status w = OH_LAG_OK;
    if (!rc) print_report(g, ngroups, samples, o->json, stop_after_ms, out, &w);
    if (worst) *worst = w;
    for (int k = 0; k < ngroups; k++)
        free(g[k].s);
    free(g);
    return rc;
}
