/* report.c - what a run found: a table on stdout (omnihub next to the
 * machine's ceiling, targets, correctness) and the same as a JSON file,
 * with the machine it ran on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"
#include "core/oh.h"

static json_t *rows;
static json_t *machine;

static json_t *num_or_null(double v)
{
    return v < 0 ? json_null() : json_real(v);
}

static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p += 2;
                p[strcspn(p, "\n")] = '\0';
                snprintf(out, len, "%s", p);
            }
            break;
        }
    fclose(f);
}

void bench_report_init(const struct bench_opts *o)
{
    rows = json_array();
    struct utsname u;
    uname(&u);
    char model[256];
    cpu_model(model, sizeof model);
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    machine = json_pack("{s:i, s:s, s:f, s:s, s:s, s:s}", "cpus",
                        (int)sysconf(_SC_NPROCESSORS_ONLN), "cpu_model", model, "memory_gib",
                        (double)pages * (double)psz / (1024.0 * 1024 * 1024), "kernel", u.release,
                        "started", when, "daemon", o->url ? o->url : o->daemon_bin);
}

void bench_report_row(const struct bench_row *r, json_t *extra)
{
    json_t *j = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o, s:o}", "scenario", r->scenario,
        "variant", r->variant ? r->variant : "", "unit", r->unit ? r->unit : "", "throughput",
        num_or_null(r->rate), "latency", r->lat ? bench_hist_json(r->lat) : json_null(),
        "ceiling_throughput", num_or_null(r->ceiling_rate), "ceiling",
        r->ceiling_name ? r->ceiling_name : "", "ratio", num_or_null(r->ratio), "target",
        r->target ? r->target : "", "target_met", r->pass < 0 ? json_null() : json_boolean(r->pass),
        "daemon_cpu_s", num_or_null(r->cpu_s), "daemon_peak_rss_kib",
        r->hwm_kb < 0 ? json_null() : json_integer(r->hwm_kb));
    if (r->acked >= 0)
        json_object_set_new(j, "correctness",
                            json_pack("{s:I, s:I, s:I, s:I, s:b}", "acknowledged",
                                      (json_int_t)r->acked, "found", (json_int_t)r->found,
                                      "missing", (json_int_t)(r->acked - r->found), "duplicates",
                                      (json_int_t)r->dups, "ok",
                                      r->found == r->acked && r->dups == 0));
    else
        json_object_set_new(j, "correctness", json_null());
    if (extra) {
        json_object_update(j, extra);
        json_decref(extra);
    }
    json_array_append_new(rows, j);
}

static double dget(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : -1;
}

static void fmt_num(char *out, size_t len, double v)
{
    if (v < 0)
        snprintf(out, len, "-");
    else if (v >= 100)
        snprintf(out, len, "%.0f", v);
    else
        snprintf(out, len, "%.2f", v);
}

int bench_report_finish(const struct bench_opts *o)
{
    int bad = 0;
    printf("\nomnihub-bench on %d CPU(s), %s\n\n",
           (int)json_integer_value(json_object_get(machine, "cpus")),
           json_string_value(json_object_get(machine, "cpu_model")));
    printf("%-18s %-12s %10s %-9s %7s %7s %7s %8s %10s %6s %-26s %-4s %7s %8s %s\n", "scenario",
           "variant", "rate", "unit", "p50ms", "p90ms", "p99ms", "maxms", "ceiling", "ratio",
           "target", "met", "cpu s", "peakMiB", "correctness");
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
    {
        json_t *lat = json_object_get(r, "latency");
        char rate[32], ceil[32], ratio[32], p50[16], p90[16], p99[16], mx[16], cpu[16], rss[16];
        fmt_num(rate, sizeof rate, dget(r, "throughput"));
        fmt_num(ceil, sizeof ceil, dget(r, "ceiling_throughput"));
        fmt_num(ratio, sizeof ratio, dget(r, "ratio"));
        fmt_num(p50, sizeof p50, lat ? dget(lat, "p50_ms") : -1);
        fmt_num(p90, sizeof p90, lat ? dget(lat, "p90_ms") : -1);
        fmt_num(p99, sizeof p99, lat ? dget(lat, "p99_ms") : -1);
        fmt_num(mx, sizeof mx, lat ? dget(lat, "max_ms") : -1);
        fmt_num(cpu, sizeof cpu, dget(r, "daemon_cpu_s"));
        double kib = dget(r, "daemon_peak_rss_kib");
        fmt_num(rss, sizeof rss, kib < 0 ? -1 : kib / 1024);
        json_t *met = json_object_get(r, "target_met");
        json_t *c = json_object_get(r, "correctness");
        char corr[96] = "-";
        if (json_is_object(c)) {
            bool ok = json_is_true(json_object_get(c, "ok"));
            snprintf(corr, sizeof corr, "%s %lld/%lld once, %lld dup", ok ? "OK" : "FAIL",
                     (long long)json_integer_value(json_object_get(c, "found")),
                     (long long)json_integer_value(json_object_get(c, "acknowledged")),
                     (long long)json_integer_value(json_object_get(c, "duplicates")));
            if (!ok) bad = 1;
        }
        printf("%-18s %-12s %10s %-9s %7s %7s %7s %8s %10s %6s %-26s %-4s %7s %8s %s\n",
               json_string_value(json_object_get(r, "scenario")),
               json_string_value(json_object_get(r, "variant")), rate,
               json_string_value(json_object_get(r, "unit")), p50, p90, p99, mx, ceil, ratio,
               json_string_value(json_object_get(r, "target")),
               json_is_null(met)   ? "-"
               : json_is_true(met) ? "yes"
                                   : "NO",
               cpu, rss, corr);
    }
    printf("\nrate: omnihub's throughput; ceiling: the same work done by the reference "
           "(see each row's \"ceiling\" in the JSON); ratio as the target defines it.\n");
    if (o->json_path) {
        json_t *doc = json_pack("{s:s, s:O, s:O}", "tool", "omnihub-bench " OH_VERSION, "machine",
                                machine, "scenarios", rows);
        if (json_dump_file(doc, o->json_path, JSON_INDENT(2)) != 0) {
            fprintf(stderr, "omnihub-bench: cannot write %s\n", o->json_path);
            bad = 1;
        }
        json_decref(doc);
    }
    json_decref(rows);
    json_decref(machine);
    return bad;
}
