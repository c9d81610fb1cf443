/* normalize.c - the normalize scenario: each connector's pure parser over its
 * fixture payloads (tests/data/<channel>/), plus the dump the daemon does
 * before appending, next to jansson parsing and dumping the same bytes. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
#include "connector.h"

struct payloads {
    char **buf;
    size_t *len;
    size_t n, bytes;
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
        oh_event_list_clear(&out);
        if (rc) {
            free(b);
            continue;
        }
        char **nb = realloc(p->buf, (p->n + 1) * sizeof *nb);
        size_t *nlen = realloc(p->len, (p->n + 1) * sizeof *nlen);
        if (nb) p->buf = nb;
        if (nlen) p->len = nlen;
        if (!nb || !nlen) {
            free(b);
            break;
        }
        p->buf[p->n] = b;
        p->len[p->n++] = len;
        p->bytes += len;
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
}

/* Runs for about SECONDS; returns payloads per second, latency in H. */
static double run(const struct oh_connector *c, const struct payloads *p, double seconds,
                  bool ceiling, struct bench_hist *h)
{
    bench_hist_reset(h);
    size_t done = 0;
    int64_t t0 = bench_now_us(), end = t0 + (int64_t)(seconds * 1e6);
    volatile size_t sink = 0;
    do {
        for (size_t i = 0; i < p->n; i++) {
            int64_t a = bench_now_us();
            if (ceiling) {
                json_t *j = json_loadb(p->buf[i], p->len[i], 0, NULL);
                char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
                sink += s ? strlen(s) : 0;
                free(s);
                json_decref(j);
            } else {
                struct oh_event_list out = {0};
                struct oh_norm_ctx nc = {NULL, 1700000000000};
                char err[256];
                c->normalize(&nc, (const uint8_t *)p->buf[i], p->len[i], &out, err, sizeof err);
                for (size_t k = 0; k < out.n; k++) {
                    char *s = json_dumps(out.ev[k], JSON_COMPACT);
                    sink += s ? strlen(s) : 0;
                    free(s);
                }
                oh_event_list_clear(&out);
            }
            bench_hist_record(h, bench_now_us() - a);
            done++;
        }
    } while (bench_now_us() < end);
    return (double)done / ((double)(bench_now_us() - t0) / 1e6);
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
        struct bench_hist h, hc;
        double rate = run(c, &p, o->normalize_s, false, &h);
        double crate = is_json && !o->no_ceiling ? run(c, &p, o->normalize_s, true, &hc) : -1;
        double ratio = crate > 0 ? rate / crate : -1;
        double mb = rate * (double)p.bytes / (double)p.n / 1e6;
        char name[48];
        snprintf(name, sizeof name, "normalize:%s", c->name);
        struct bench_row row = {.scenario = name,
                                .variant = "in-process",
                                .unit = "payload/s",
                                .rate = rate,
                                .lat = &h,
                                .ceiling_rate = crate,
                                .ceiling_name = "jansson json_loadb + json_dumps of the payload",
                                .ratio = ratio,
                                .target = is_json ? "normalize/parse+dump >= 0.6" : "",
                                .pass = ratio < 0 ? -1 : ratio >= 0.6,
                                .cpu_s = -1,
                                .hwm_kb = -1,
                                .acked = -1};
        bench_report_row(&row, json_pack("{s:i, s:f, s:f}", "fixtures", (int)p.n, "mb_per_s", mb,
                                         "mean_payload_bytes", (double)p.bytes / (double)p.n));
        fprintf(stderr, "  normalize %s: %.0f payloads/s (%zu fixtures), ceiling %.0f\n", c->name,
                rate, p.n, crate);
        payloads_free(&p);
    }
    return 0;
}
