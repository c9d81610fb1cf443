/* metrics.c - a small Prometheus registry: counters, gauges and latency
 * histograms keyed by name and label body, rendered as text format 0.0.4. */
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "core/metrics.h"

enum kind { COUNTER, GAUGE, HISTOGRAM };

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS OH_ARRAY_SIZE(buckets)

struct series {
    struct series *next;  /* hash chain */
    struct series *order; /* insertion order, for rendering */
    enum kind kind;
    char *name, *labels;
    double value; /* counter/gauge; histogram sum */
    uint64_t count, bucket[NBUCKETS];
    const double *bounds; /* a histogram's upper bounds: BUCKETS or its family's */
    size_t nbounds;
};

/* Histogram families with bounds of their own (oh_metrics_buckets). */
static struct {
    const char *name;
    const double *bounds;
    size_t n;
} families[16];
static size_t nfamilies;

struct help {
    struct help *next;
    char *name, *text;
};

/* HELP of the families the core and shared connector code emit; a
 * connector describes its own with oh_metrics_describe(). */
static const struct {
    const char *name, *text;
} core_help[] = {
    {"omnihub_auth_failures_total", "bearer tokens refused (missing, expired, bad signature)"},
    {"omnihub_consumer_lag", "records a consumer group has not read, per partition"},
    {"omnihub_consumer_lag_seconds", "age of the oldest record a group has not read"},
    {"omnihub_contacts_erased_events_total",
     "message events erased into tombstones (contact erasure)"},
    {"omnihub_contacts_link_cpu_seconds",
     "sync's CPU time spent linking new conversations to contacts, since start"},
    {"omnihub_contacts_links_total", "new conversations linked to a contact"},
    {"omnihub_dispatch_queue_depth",
     "outbound messages this dispatch member holds: waiting, backing off or being sent"},
    {"omnihub_gateway_sync_waits", "requests waiting for sync to store what they need"},
    {"omnihub_http_errors_total", "HTTP answers with an error status, by status code"},
    {"omnihub_http_rate_limited_total", "requests refused with 429, by limit (address, token)"},
    {"omnihub_http_requests_total", "HTTP requests answered, by method, route and status"},
    {"omnihub_ingest_pending", "events this process appended that the log has not acknowledged"},
    {"omnihub_ingest_seconds", "time from a request's arrival to its event being durable"},
    {"omnihub_ingest_total", "events offered for ingest, by channel and result"},
    {"omnihub_log_append_seconds", "time an append waits for its log commit"},
    {"omnihub_outbound_attempts_total", "send attempts of outbound messages, by channel, result"},
    {"omnihub_outbound_total", "outbound messages finished, by channel and final state"},
    {"omnihub_role_lag", "records a role's consumer group has not read, all partitions"},
    {"omnihub_role_lag_seconds",
     "age of the oldest record a role's group has not read (any partition), 0 when caught up"},
    {"omnihub_send_refused_total", "sends the platform refused before trying (e.g. its window)"},
    {"omnihub_service_delay_seconds",
     "age of the oldest record of the batch a service member last started on, 0 when idle"},
    {"omnihub_signals_total",
     "signals shared with the other gateways (direction out) and heard from them (in), by result"},
    {"omnihub_signature_failures_total", "webhook deliveries with a missing or bad signature"},
    {"omnihub_sync_duplicates_total", "events dropped by sync as already stored (retries)"},
    {"omnihub_sync_conflicting_repeats_total",
     "of those, repeats of an id stored for another conversation (a message_id reused across "
     "contacts)"},
    {"omnihub_sync_forward_errors_total", "timeline appends by sync that failed (retried)"},
    {"omnihub_sync_forward_too_large_total",
     "stored events not forwarded to the timeline: larger than the log takes (not retried)"},
    {"omnihub_sync_lag_seconds", "age of the newest event sync materialized"},
    {"omnihub_sync_materialized_total", "events sequenced and stored by sync"},
    {"omnihub_sync_poison_total", "records sync could not parse and skipped"},
    {"omnihub_sync_store_errors_total", "store transactions of sync that failed (retried)"},
    {"omnihub_webhook_errors_total", "webhook deliveries that failed to normalize, by channel"},
    {"omnihub_webhook_ignored_total", "webhook items ignored on purpose, by channel"},
    {"omnihub_webhook_redeliveries_total", "webhook deliveries seen before (provider retries)"},
    {"omnihub_webhook_rejected_total", "webhook deliveries refused, by channel and reason"},
    {"omnihub_ws_connections", "open WebSocket connections"},
    {"omnihub_ws_connections_total", "WebSocket connections accepted"},
    {"omnihub_ws_events_pushed_total", "live events pushed to WebSocket clients"},
    {"omnihub_ws_events_replayed_total", "events replayed to WebSocket clients on subscribe"},
    {"omnihub_ws_push_seconds", "time from an event's commit to its push to a client"},
    {"omnihub_ws_rate_limited_total", "WebSocket client messages over ws.rate"},
    {"omnihub_ws_signals_total", "WebSocket typing and presence signals, by type and result"},
    {"omnihub_ws_slow_closes_total", "WebSocket clients closed for reading too slowly"},
    {"omnihub_ws_subscriptions_total", "WebSocket subscriptions, by result"},
};

#define NSLOTS 1024
static struct series *slots[NSLOTS];
static struct series *first, **last = &first;
static struct help *helps;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t hash(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (uint8_t)*a) * 16777619u;
    h = (h ^ '{') * 16777619u;
    for (; *b; b++)
        h = (h ^ (uint8_t)*b) * 16777619u;
    return h;
}

/* Finds or creates a series; called with the lock held. */
static struct series *lookup(const char *name, const char *labels, enum kind kind)
{
    if (!labels) labels = "";
    uint32_t h = hash(name, labels) % NSLOTS;
    for (struct series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
    struct series *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name)) || !(s->labels = strdup(labels))) {
        if (s) free(s->name);
        free(s);
        return NULL;
    }
    s->kind = kind;
    s->bounds = buckets;
    s->nbounds = NBUCKETS;
    for (size_t i = 0; i < nfamilies; i++)
        if (strcmp(families[i].name, name) == 0) {
            s->bounds = families[i].bounds;
            s->nbounds = families[i].n;
        }
    s->next = slots[h];
    slots[h] = s;
    *last = s;
    last = &s->order;
    return s;
}

void oh_metrics_inc(const char *name, const char *labels, uint64_t by)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, COUNTER);
    if (s) s->value += (double)by;
    pthread_mutex_unlock(&lock);
}

void oh_metrics_set(const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, GAUGE);
    if (s) s->value = value;
    pthread_mutex_unlock(&lock);
}

void oh_metrics_observe(const char *name, const char *labels, double seconds)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, HISTOGRAM);
    if (s) {
        s->value += seconds;
        s->count++;
        for (size_t i = 0; i < s->nbounds; i++)
            if (seconds <= s->bounds[i]) s->bucket[i]++;
    }
    pthread_mutex_unlock(&lock);
}

int oh_metrics_buckets(const char *name, const double *bounds, size_t n)
{
    int rc = OH_OK;
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < nfamilies && strcmp(families[i].name, name) != 0)
        i++;
    if (n < 1 || n > NBUCKETS || (i == nfamilies && nfamilies == OH_ARRAY_SIZE(families)))
        rc = OH_EINVAL;
    else if (i == nfamilies)
        families[nfamilies++] = (typeof(families[0])){name, bounds, n};
    pthread_mutex_unlock(&lock);
    return rc;
}

void oh_metrics_describe(const char *name, const char *help)
{
    pthread_mutex_lock(&lock);
    struct help *h;
    for (h = helps; h; h = h->next)
        if (strcmp(h->name, name) == 0) break;
    if (!h && (h = calloc(1, sizeof *h))) {
        h->name = strdup(name);
        h->text = strdup(help);
        h->next = helps;
        helps = h;
    }
    pthread_mutex_unlock(&lock);
}

double oh_metrics_value(const char *name, const char *labels)
{
    double v = 0;
    pthread_mutex_lock(&lock);
    uint32_t h = hash(name, labels ? labels : "") % NSLOTS;
    for (struct series *s = slots[h]; s; s = s->next)
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, labels ? labels : "") == 0)
            v = s->kind == HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&lock);
    return v;
}

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p) return;
        b->p = p;
        b->cap = cap;
    }
}

/* Whole numbers as integers; others as the shortest decimal that reads
 * back as V (Prometheus parses it with strtod): 0.004 rather than %.17g's
 * 0.0040000000000000001. */
static void put_number(struct buf *b, double v)
{
    char s[40];
    if (v == (double)(int64_t)v && v > -9007199254740992.0 && v < 9007199254740992.0) {
        put(b, "%lld", (long long)v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break;
    }
    put(b, "%s", s);
}

static const char *help_of(const char *name)
{
    for (struct help *h = helps; h; h = h->next)
        if (strcmp(h->name, name) == 0) return h->text;
    for (size_t i = 0; i < OH_ARRAY_SIZE(core_help); i++)
        if (strcmp(core_help[i].name, name) == 0) return core_help[i].text;
    return NULL;
}

/* process_* as the Prometheus client libraries export them, read at
 * render time from /proc/self (Linux). */
static void put_process(struct buf *b)
{
    static double start_s;
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/stat", "r");
    unsigned long utime = 0, stime = 0, vsize = 0;
    long rss = 0;
    unsigned long long starttime = 0;
    if (f) {
        /* field 2 (comm) may hold spaces: scan from the last ')' */
        char line[1024];
        const char *p = fgets(line, sizeof line, f) ? strrchr(line, ')') : NULL;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d "
                        "%*d %llu %lu %ld",
                        &utime, &stime, &starttime, &vsize, &rss) == 5 &&
            !start_s) {
            /* start time: boot time + starttime ticks */
            FILE *st = fopen("/proc/stat", "r");
            char l[256];
            while (st && fgets(l, sizeof l, st))
                if (strncmp(l, "btime ", 6) == 0)
                    start_s = strtod(l + 6, NULL) + (double)starttime / (double)tick;
            if (st) fclose(st);
        }
        fclose(f);
    }
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        closedir(d);
        fds--; /* the one opendir held */
    }
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    put(b, "# HELP process_cpu_seconds_total user and system CPU time spent\n"
           "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    put_number(b, (double)(utime + stime) / (double)tick);
    put(b, "\n# HELP process_resident_memory_bytes resident memory size\n"
           "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
        rss * page);
    put(b, "# HELP process_virtual_memory_bytes virtual memory size\n"
           "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %lu\n",
        vsize);
    put(b, "# HELP process_open_fds open file descriptors\n"
           "# TYPE process_open_fds gauge\nprocess_open_fds %d\n",
        fds);
    put(b, "# HELP process_max_fds the limit of open file descriptors\n"
           "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
        (unsigned long long)rl.rlim_cur);
    put(b, "# HELP process_start_time_seconds start time since the Unix epoch\n"
           "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ");
    put_number(b, start_s);
    put(b, "\n");
}

static const char *kind_name(enum kind k)
{
    return k == COUNTER ? "counter" : k == GAUGE ? "gauge" : "histogram";
}

/* Whether a family line (# TYPE) was already written for NAME. */
static bool seen_before(struct series *upto, const char *name)
{
    for (struct series *s = first; s && s != upto; s = s->order)
        if (strcmp(s->name, name) == 0) return true;
    return false;
}

char *oh_metrics_render(size_t *len)
{
    struct buf b = {0};
    put(&b, "# HELP omnihub_build_info the running omnihub's version (value 1)\n"
            "# TYPE omnihub_build_info gauge\nomnihub_build_info{version=\"%s\"} 1\n",
        OH_VERSION);
    put_process(&b);
    pthread_mutex_lock(&lock);
    /* families in first-seen order, all series of a family together */
    for (struct series *f = first; f; f = f->order) {
        if (seen_before(f, f->name)) continue;
        const char *help = help_of(f->name);
        put(&b, "# HELP %s %s\n", f->name, help ? help : "(no description)");
        put(&b, "# TYPE %s %s\n", f->name, kind_name(f->kind));
        for (struct series *s = f; s; s = s->order) {
            if (strcmp(s->name, f->name) != 0) continue;
            const char *sep = *s->labels ? "," : "";
            if (s->kind != HISTOGRAM) {
                put(&b, "%s%s%s%s ", s->name, *s->labels ? "{" : "", s->labels,
                    *s->labels ? "}" : "");
                put_number(&b, s->value);
                put(&b, "\n");
                continue;
            }
            for (size_t i = 0; i < s->nbounds; i++)
                put(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", s->name, s->labels, sep, s->bounds[i],
                    (unsigned long long)s->bucket[i]);
            put(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, s->labels, sep,
                (unsigned long long)s->count);
            put(&b, "%s_sum%s%s%s ", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "");
            put_number(&b, s->value);
            put(&b, "\n");
            put(&b, "%s_count%s%s%s %llu\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&lock);
    if (len) *len = b.len;
    return b.p;
}
