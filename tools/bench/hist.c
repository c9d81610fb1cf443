/* hist.c - an HDR-style log-linear latency histogram: each power of two is
 * split into BENCH_HIST_SUB linear sub-buckets, so any recorded value is
 * reported within 1/BENCH_HIST_SUB of itself, from 1 us to ~12 days. */
#include <string.h>
#include <time.h>
#include "bench.h"

int64_t bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void bench_hist_reset(struct bench_hist *h)
{
    memset(h, 0, sizeof *h);
}

/* Bucket (e, s): e = 0 holds 0..SUB-1 exactly; e > 0 holds
 * [SUB << (e-1), SUB << e) in SUB steps of 1 << (e-1). */
static void locate(int64_t v, int *e, int *s)
{
    if (v < BENCH_HIST_SUB) {
        *e = 0;
        *s = (int)v;
        return;
    }
    int bits = 63 - __builtin_clzll((unsigned long long)v); /* v >= 2^bits */
    int ex = bits - 6;                                      /* SUB = 2^7 */
    if (ex >= BENCH_HIST_EXPS) {
        *e = BENCH_HIST_EXPS - 1;
        *s = BENCH_HIST_SUB - 1;
        return;
    }
    *e = ex;
    *s = (int)((v >> (ex - 1)) - BENCH_HIST_SUB);
}

/* Highest value of bucket (e, s): percentiles never understate. */
static int64_t bucket_top(int e, int s)
{
    if (e == 0) return s;
    return ((int64_t)(BENCH_HIST_SUB + s + 1) << (e - 1)) - 1;
}

void bench_hist_record(struct bench_hist *h, int64_t us)
{
    if (us < 0) us = 0;
    int e, s;
    locate(us, &e, &s);
    h->counts[e][s]++;
    if (h->n == 0 || us < h->min) h->min = us;
    if (us > h->max) h->max = us;
    h->n++;
    h->sum += (double)us;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (!src->n) return;
    for (int e = 0; e < BENCH_HIST_EXPS; e++)
        for (int s = 0; s < BENCH_HIST_SUB; s++)
            dst->counts[e][s] += src->counts[e][s];
    if (dst->n == 0 || src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    dst->n += src->n;
    dst->sum += src->sum;
}

int64_t bench_hist_pct(const struct bench_hist *h, double p)
{
    if (!h->n) return 0;
    if (p >= 100) return h->max;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->n + 0.5);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (int e = 0; e < BENCH_HIST_EXPS; e++)
        for (int s = 0; s < BENCH_HIST_SUB; s++) {
            seen += h->counts[e][s];
            if (seen >= rank) {
                int64_t v = bucket_top(e, s);
                return v > h->max ? h->max : v;
            }
        }
    return h->max;
}

json_t *bench_hist_json(const struct bench_hist *h)
{
    return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f}", "count", (json_int_t)h->n, "mean_ms",
                     h->n ? h->sum / (double)h->n / 1000.0 : 0.0, "p50_ms",
                     (double)bench_hist_pct(h, 50) / 1000.0, "p90_ms",
                     (double)bench_hist_pct(h, 90) / 1000.0, "p99_ms",
                     (double)bench_hist_pct(h, 99) / 1000.0, "max_ms", (double)h->max / 1000.0);
}
