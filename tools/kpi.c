/* kpi.c - `omnihubctl kpi`: asks a running daemon for GET /v1/reports/kpis
 * (the figures live in its store, kept by the kpi service) and prints them
 * as a table, or the answer itself with --json. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include "core/http_client.h"
#include "kpi.h"

/* "-" for null, else seconds with one decimal / a ratio / a count */
static void cell(FILE *out, const json_t *v, int width, const char *fmt)
{
    char buf[64];
    if (json_is_integer(v))
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    else if (json_is_number(v))
        snprintf(buf, sizeof buf, fmt, json_number_value(v));
    else
        snprintf(buf, sizeof buf, "-");
    fprintf(out, " %*s", width, buf);
}

int oh_kpi_table(const json_t *report, FILE *out)
{
    const json_t *rows = json_object_get(report, "rows");
    if (!json_is_array(rows)) return -1;
    static const struct {
        const char *field, *title, *fmt;
    } cols[] = {
        {"episodes_resolved", "EPISODES", "%.0f"},
        {"frt_avg_s", "FRT_AVG", "%.1f"},
        {"frt_p50_s", "FRT_P50", "%.1f"},
        {"frt_p90_s", "FRT_P90", "%.1f"},
        {"nrt_avg_s", "NRT_AVG", "%.1f"},
        {"aht_avg_s", "AHT_AVG", "%.1f"},
        {"resolution_avg_s", "RESOLUTION", "%.1f"},
        {"sla_met_ratio", "SLA_MET", "%.3f"},
        {"bot_involved", "BOT", "%.0f"},
        {"bot_resolved", "BOT_RES", "%.0f"},
    };
    int keyw = 3;
    size_t i;
    const json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *k = json_string_value(json_object_get(row, "key"));
        int len = (int)strlen(k ? k : "-");
        if (len > keyw) keyw = len > 40 ? 40 : len;
    }
    fprintf(out, "%-*s", keyw, "KEY");
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        fprintf(out, " %10s", cols[c].title);
    fputc('\n', out);
    json_array_foreach(rows, i, row)
    {
        const char *k = json_string_value(json_object_get(row, "key"));
        fprintf(out, "%-*.*s", keyw, keyw, k ? k : "-");
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
            cell(out, json_object_get(row, cols[c].field), 10, cols[c].fmt);
        fputc('\n', out);
    }
    if (json_array_size(rows) == 0) fprintf(out, "(no episodes resolved in the range)\n");
    return 0;
}

/* Appends "&NAME=VALUE" to Q, escaping VALUE ('+' of an offset and the like). */
static void param(char *q, size_t len, const char *name, const char *value)
{
    size_t at = strlen(q);
    at += (size_t)snprintf(q + at, at < len ? len - at : 0, "%s%s=", at ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)value; *p && at + 4 < len; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~:", *p))
            q[at++] = (char)*p;
        else
            at += (size_t)snprintf(q + at, len - at, "%%%02X", *p);
    }
    q[at < len ? at : len - 1] = '\0';
}

int oh_kpi_cmd(int argc, char **argv)
{
    static const struct option opts[] = {{"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"group-by", required_argument, NULL, 'g'},
                                         {"url", required_argument, NULL, 'u'},
                                         {"token", required_argument, NULL, 'k'},
                                         {"json", no_argument, NULL, 'j'},
                                         {NULL, 0, NULL, 0}};
    const char *from = NULL, *to = NULL, *group_by = "none", *url = "http://127.0.0.1:8080";
    const char *token = getenv("OMNIHUB_TOKEN");
    bool json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'g': group_by = optarg; break;
        case 'u': url = optarg; break;
        case 'k': token = optarg; break;
        case 'j': json = true; break;
        default: return 2;
        }
    }
    if (optind < argc || !token || !*token) {
        fprintf(stderr, "omnihubctl kpi: %s\n",
                optind < argc ? "unexpected argument"
                              : "--token (or OMNIHUB_TOKEN) is required: an agent's or admin's");
        return 2;
    }
    char query[512] = "", target[1024], auth[4096];
    param(query, sizeof query, "group_by", group_by);
    if (from) param(query, sizeof query, "from", from);
    if (to) param(query, sizeof query, "to", to);
    int ulen = (int)strlen(url);
    while (ulen > 0 && url[ulen - 1] == '/') /* "http://host:8080/" */
        ulen--;
    snprintf(target, sizeof target, "%.*s/v1/reports/kpis?%s", ulen, url, query);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Accept: application/json", NULL};
    struct oh_http_request req = {
        .method = "GET", .url = target, .headers = headers, .timeout_ms = 30000};
    struct oh_http_response resp = {0};
    char err[256];
    int rc = oh_http_do(&req, &resp, err, sizeof err);
    if (rc) {
        fprintf(stderr, "omnihubctl kpi: %s: %s\n", url, err);
        oh_http_response_free(&resp);
        return 2;
    }
    json_t *body = json_loadb(resp.body ? resp.body : "", resp.len, 0, NULL);
    int status = 0;
    if (resp.status != 200) {
        const char *msg =
            json_string_value(json_object_get(json_object_get(body, "error"), "message"));
        fprintf(stderr, "omnihubctl kpi: HTTP %ld: %s\n", resp.status, msg ? msg : "no report");
        status = 1;
    } else if (json) {
        fwrite(resp.body, 1, resp.len, stdout);
        fputc('\n', stdout);
    } else if (oh_kpi_table(body, stdout)) {
        fprintf(stderr, "omnihubctl kpi: the answer is not a report\n");
        status = 2;
    }
    json_decref(body);
    oh_http_response_free(&resp);
    return status;
}
