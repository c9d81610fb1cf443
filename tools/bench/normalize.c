/* normalize.c - the normalize scenario: each connector's pure parser over its
 * fixture payloads (tests/data/<channel>/), plus the dump the daemon does
 * before appending, next to jansson parsing and dumping the same bytes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "core/connector.h"

struct payloads {
    char **buf;
    size_t *len;
    size_t *events; /* what normalize gives for each payload */
    size_t n, bytes, total_events;
};

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) {
        b[n] = '\0';
        *len = (size_t)n;
    }
    return b;
}

/* The channel's payloads that normalize without error. */
static int load(const struct oh_connector *c, const char *dir, struct payloads *p)
{
    memset(p, 0, sizeof *p);
    DIR *d = opendir(dir);
    if (!d) return -1;
    const char *ext = strcmp(c->name, "email") == 0 ? ".eml" : ".json";
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name), el = strlen(ext);
        if (nl <= el || strcmp(de->d_name + nl - el, ext) != 0 || strstr(de->d_name, ".expect."))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *b = slurp(path, &len);
        if (!b) continue;
        struct oh_event_list out = {0};
        struct oh_norm_ctx nc = {NULL, 1700000000000};
        char err[256];
        int rc = c->normalize(&nc, (const uint8_t *)b, len, &out, err, sizeof err);
        size_t nev = out.n;
        oh_event_list_clear(&out);
        if (rc) {
            free(b);
            continue;
        }
        char **nb = realloc(p->buf, (p->n + 1) * sizeof *nb);
        size_t *nlen = realloc(p->len, (p->n + 1) * sizeof *nlen);
        size_t *nevs = realloc(p->events, (p->n + 1) * sizeof *nevs);
        if (nb) p->buf = nb;
        if (nlen) p->len = nlen;
        if (nevs) p->events = nevs;
        if (!nb || !nlen || !nevs) {
            free(b);
            break;
        }
        p->buf[p->n] = b;
        p->events[p->n] = nev;
        p->len[p->n++] = len;
        p->bytes += len;
        p->total_events += nev;
    }
    closedir(d);
    return p->n ? 0 : -1;
}

static void payloads_free(struct payloads *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->buf[i]);
    free(p->buf);
    free(p->len);
    free(p->events);
}

/* What one side (omnihub's normalize + dump, or the ceiling) did so far. */
struct side {
    bool ceiling;
    size_t done;     /* payloads */
    int64_t us;      /* time spent in its slices */
    size_t events;   /* events normalized (omnihub) */
    size_t expected; /* events the payloads gave when loaded */
    size_t dumped;   /* bytes of JSON dumped */
    struct bench_hist h;
};

/* One pass over every payload, each timed alone. */
static void pass(const struct oh_connector *c, const struct payloads *p, struct side *s)
{
    for (size_t i = 0; i < p->n; i++) {
        int64_t a = bench_now_us();
        if (s->ceiling) {
            json_t *j = json_loadb(p->buf[i], p->len[i], 0, NULL);
            char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
            s->dumped += d ? strlen(d) : 0;
            free(d);
            json_decref(j);
        } else {
            struct oh_event_list out = {0};
            struct oh_norm_ctx nc = {NULL, 1700000000000};
            char err[256];
            c->normalize(&nc, (const uint8_t *)p->buf[i], p->len[i], &out, err, sizeof err);
            for (size_t k = 0; k < out.n; k++) {
                char *d = json_dumps(out.ev[k], JSON_COMPACT);
                s->dumped += d ? strlen(d) : 0;
                free(d);
            }
            s->events += out.n;
            s->expected += p->events[i];
            oh_event_list_clear(&out);
        }
        bench_hist_record(&s->h, bench_now_us() - a);
        s->done++;
    }
}

/* Whole passes for about SECONDS. */
static void slice(const struct oh_connector *c, const struct payloads *p, double seconds,
                  struct side *s)
{
    int64_t t0 = bench_now_us(), end = t0 + (int64_t)(seconds * 1e6);
    do
        pass(c, p, s);
    while (bench_now_us() < end);
    s->us += bench_now_us() - t0;
}

/* The two sides take turns (ABBA, SLICES slices each, after an untimed pass
 * of each), so that a neighbour's burst on this shared machine, or the
 * first pass's page faults, do not land on one side only. */
#define SLICES 6

static void measure(const struct oh_connector *c, const struct payloads *p, double seconds,
                    bool with_ceiling, struct side *mine, struct side *ref)
{
    struct side warm = {0};
    pass(c, p, &warm);
    if (with_ceiling) {
        warm.ceiling = true;
        pass(c, p, &warm);
    }
    for (int k = 0; k < SLICES; k++) {
        bool ceiling_first = with_ceiling && k % 2;
        if (ceiling_first) slice(c, p, seconds / SLICES, ref);
        slice(c, p, seconds / SLICES, mine);
        if (with_ceiling && !ceiling_first) slice(c, p, seconds / SLICES, ref);
    }
}

static double rate_of(const struct side *s)
{
    return s->us > 0 ? (double)s->done / ((double)s->us / 1e6) : -1;
}

int bench_normalize(const struct bench_opts *o)
{
    for (const struct oh_connector *const *cp = oh_connectors; *cp; cp++) {
        const struct oh_connector *c = *cp;
        if (!c->normalize) continue;
        if (o->channel && strcmp(o->channel, "api") != 0 && strcmp(o->channel, c->name) != 0)
            continue;
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", o->data_root, c->name);
        struct payloads p;
        if (load(c, dir, &p)) {
            payloads_free(&p);
            continue; /* no fixtures for this channel */
        }
        bool is_json = strcmp(c->name, "email") != 0;
        static struct side mine, ref; /* static: two histograms are 80 KiB */
        memset(&mine, 0, sizeof mine);
        memset(&ref, 0, sizeof ref);
        ref.ceiling = true;
        bench_hist_reset(&mine.h);
        bench_hist_reset(&ref.h);
        measure(c, &p, o->normalize_s, is_json && !o->no_ceiling, &mine, &ref);
        double rate = rate_of(&mine);
        double crate = ref.done ? rate_of(&ref) : -1;
        double ratio = crate > 0 ? rate / crate : -1;
        double mb = rate * (double)p.bytes / (double)p.n / 1e6;
        char name[48];
        snprintf(name, sizeof name, "normalize:%s", c->name);
        struct bench_row row = {.scenario = name,
                                .variant = "in-process",
                                .unit = "payload/s",
                                .rate = rate,
                                .lat = &mine.h,
                                .ceiling_rate = crate,
                                .ceiling_name = "jansson json_loadb + json_dumps of the payload",
                                .ratio = ratio,
                                .target = is_json ? "normalize/parse+dump >= 0.6" : "",
                                .pass = ratio < 0 ? -1 : ratio >= 0.6,
                                .cpu_s = -1,
                                .hwm_kb = -1,
                                /* every pass gave the events the payloads gave at load */
                                .acked = (long)mine.expected,
                                .found = (long)mine.events,
                                .dups = 0};
        /* what each side dumps per pass: the ceiling one document per payload,
         * omnihub every event (p.total_events) */
        double mine_passes = (double)mine.done / (double)p.n;
        double ref_passes = ref.done ? (double)ref.done / (double)p.n : 0;
        bench_report_row(&row, json_pack("{s:i, s:i, s:f, s:f, s:f, s:f, s:i}", "fixtures",
                                         (int)p.n, "events", (int)p.total_events, "mb_per_s", mb,
                                         "mean_payload_bytes", (double)p.bytes / (double)p.n,
                                         "dumped_bytes_per_pass", (double)mine.dumped / mine_passes,
                                         "ceiling_dumped_bytes_per_pass",
                                         ref_passes > 0 ? (double)ref.dumped / ref_passes : 0.0,
                                         "slices", SLICES));
        fprintf(stderr,
                "  normalize %s: %.0f payloads/s (%zu fixtures, %zu events), ceiling %.0f\n",
                c->name, rate, p.n, p.total_events, crate);
        payloads_free(&p);
    }
    return 0;
}
