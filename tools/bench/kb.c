/* kb.c - the kb scenario (issue 22): GET /v1/kb/search over a knowledge
 * base of N articles (default 10,000: the development help center's 47
 * articles, each in N/47 variants with other words mixed in), GET
 * /v1/conversations/{id}/suggestions without an LLM, and the bot's inbound
 * -> answer latency. The articles are written through the store's API
 * before the daemon starts, which builds its index from them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "core/crypto.h"
#include "core/daemon.h"
#include "store/store.h"

#define KB_SEARCHES    4000
#define KB_SUGGESTIONS 2000
#define KB_CONVS       200
#define KB_BOT_SAMPLES 40

struct kb_run {
    json_t *queries; /* strings, URL-encoded */
    char *auth;
    char path[1024];
    char (*conv)[OH_ID_MAX];
    size_t nconv;
    long errors;
};

static char *urlencode(const char *s)
{
    char *o = malloc(strlen(s) * 3 + 1), *p = o;
    for (; o && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            *p++ = (char)c;
        else
            p += sprintf(p, "%%%02X", c);
    }
    if (o) *p = '\0';
    return o;
}

/* The development queries (tests/data/kb/queries.tsv), URL-encoded. */
static json_t *load_queries(const struct bench_opts *o)
{
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/kb/queries.tsv", o->data_root);
    FILE *f = fopen(path, "r");
    json_t *q = json_array();
    bool first = true;
    while (f && q && fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t');
        if (first || !tab) {
            first = false;
            continue;
        }
        *tab = '\0';
        char *e = urlencode(line);
        if (e) json_array_append_new(q, json_string(e));
        free(e);
    }
    if (f) fclose(f);
    if (!f) fprintf(stderr, "omnihub-bench: kb: cannot read %s\n", path);
    return f && json_array_size(q) ? q : (json_decref(q), NULL);
}

/* N articles into the store under DATA_DIR. */
static int kb_fill(const char *data_dir, long n)
{
    char err[512], dd[400], path[512];
    snprintf(dd, sizeof dd, "OMNIHUB_DATA_DIR=%s", data_dir);
    char *envp[] = {dd, NULL};
    snprintf(path, sizeof path, "%s/data/kb/helpcenter.json", OH_SOURCE_ROOT);
    json_error_t je;
    json_t *help = json_load_file(path, 0, &je);
    oh_config *cfg = oh_config_load(NULL, oh_config_tables(), envp, err, sizeof err);
    oh_store *st = cfg && help ? oh_store_open(cfg, err, sizeof err) : NULL;
    size_t nh = json_array_size(help);
    int rc = st && nh ? 0 : -1;
    if (!help) fprintf(stderr, "omnihub-bench: kb: %s: %s\n", path, je.text);
    if (help && !st) fprintf(stderr, "omnihub-bench: kb: %s\n", err);
    for (long i = 0; rc == 0 && i < n; i++) {
        const json_t *a = json_array_get(help, (size_t)i % nh);
        const json_t *b = json_array_get(help, (size_t)(i * 7 + 3) % nh); /* words mixed in */
        const char *btext = json_string_value(json_object_get(b, "body"));
        char id[160], title[600], body[16384];
        snprintf(id, sizeof id, "%s-%ld", json_string_value(json_object_get(a, "id")), i);
        snprintf(title, sizeof title, "%s (%ld)", json_string_value(json_object_get(a, "title")),
                 i / (long)nh);
        snprintf(body, sizeof body, "%s %.*s", json_string_value(json_object_get(a, "body")),
                 (int)(strlen(btext) / 4), btext);
        char *tags = json_dumps(json_object_get(a, "tags"), JSON_COMPACT);
        struct oh_store_article art = {.id = id,
                                       .title = title,
                                       .body = body,
                                       .locale = "en",
                                       .tags = tags ? tags : "[]",
                                       .updated_ms = 1700000000000};
        int64_t v;
        rc = oh_store_article_put(st, &art, &v);
        free(tags);
    }
    oh_store_close(st);
    oh_config_free(cfg);
    json_decref(help);
    return rc;
}

static void search_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct kb_run *k = opaque;
    snprintf(k->path, sizeof k->path, "/v1/kb/search?q=%s&limit=5",
             json_string_value(json_array_get(k->queries, i % json_array_size(k->queries))));
    req->path = k->path;
    req->hdr[0] = k->auth;
}

static void sugg_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct kb_run *k = opaque;
    snprintf(k->path, sizeof k->path, "/v1/conversations/%s/suggestions", k->conv[i % k->nconv]);
    req->path = k->path;
    req->hdr[0] = k->auth;
}

static void count_done(void *opaque, size_t i, long status, const char *body, size_t len,
                       int64_t sent_us, int64_t lat_us)
{
    struct kb_run *k = opaque;
    if (status != 200) k->errors++;
}

/* POSTs one inbound message; the conversation id into CONV. */
static int post_inbound(const char *url, const char *run, size_t i, const char *text,
                        char conv[OH_ID_MAX])
{
    char *body = NULL, sig[96], full[256], hdr[140];
    json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:s, s:s, s:s}", "channel", "api:bench", "account",
                          run, "contact", "id", "", "message_id", "", "text", text, "sent_at",
                          "2026-01-01T00:00:00Z");
    char cid[64], mid[64];
    snprintf(cid, sizeof cid, "%s-c%zu", run, i);
    snprintf(mid, sizeof mid, "%s-m%zu", run, i);
    json_object_set_new(json_object_get(o, "contact"), "id", json_string(cid));
    json_object_set_new(o, "message_id", json_string(mid));
    body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body) return -1;
    oh_sig_make_hex(BENCH_INBOUND_SECRET, body, strlen(body), sig);
    snprintf(hdr, sizeof hdr, "X-Omnihub-Signature: %s", sig);
    snprintf(full, sizeof full, "%s/v1/inbound", url);
    char *answer = NULL;
    long st = bench_http_post(full, hdr, body, &answer);
    json_t *a = answer ? json_loads(answer, 0, NULL) : NULL;
    const char *c = json_string_value(json_object_get(a, "conversation_id"));
    if (c) snprintf(conv, OH_ID_MAX, "%s", c);
    json_decref(a);
    free(answer);
    free(body);
    return st == 202 && c ? 0 : -1;
}

static void row(const char *variant, const struct bench_hist *h, double target_ms, long errors,
                long articles)
{
    double p99 = (double)bench_hist_pct(h, 99) / 1000.0;
    char target[48];
    snprintf(target, sizeof target, "p99<=%.0fms", target_ms);
    struct bench_row r = {.scenario = "kb",
                          .variant = variant,
                          .unit = "req",
                          .rate = -1,
                          .lat = h,
                          .ceiling_rate = -1,
                          .ceiling_name = "",
                          .ratio = -1,
                          .target = target_ms > 0 ? target : "",
                          .pass = target_ms > 0 ? p99 <= target_ms && errors == 0 : -1,
                          .cpu_s = -1,
                          .hwm_kb = -1,
                          .acked = -1};
    bench_report_row(&r, json_pack("{s:I, s:I}", "articles", (json_int_t)articles, "errors",
                                   (json_int_t)errors));
}

/* Polls the conversation until the bot's message is there; -1 after 10 s. */
static int64_t wait_bot(const char *url, const char *bearer, const char *conv)
{
    char full[512];
    snprintf(full, sizeof full, "%s/v1/conversations/%s/events?after=0&limit=10", url, conv);
    int64_t t0 = bench_now_us();
    while (bench_now_us() - t0 < 10000000) {
        char *body = NULL;
        long st = bench_http_get(full, bearer, &body);
        bool found = st == 200 && body && strstr(body, "\"kind\":\"bot\"");
        free(body);
        if (found) return bench_now_us();
        usleep(2000);
    }
    return -1;
}

int bench_kb(const struct bench_opts *o)
{
    if (o->url) {
        fprintf(stderr, "omnihub-bench: kb starts its own daemon (no --url)\n");
        return 2;
    }
    long n = o->conversations > 0 ? o->conversations : 10000; /* --conversations: articles */
    struct kb_run k = {.queries = load_queries(o)};
    char dir[] = "/tmp/omnihub-bench-kb-XXXXXX", err[512], run[16];
    struct bench_daemon d = {0};
    struct bench_hist search, sugg, bot;
    bench_hist_reset(&search);
    bench_hist_reset(&sugg);
    bench_hist_reset(&bot);
    bench_run_id(run);
    if (!k.queries || !mkdtemp(dir)) return 1;
    int64_t t0 = bench_now_us();
    if (kb_fill(dir, n)) {
        bench_rmtree(dir);
        return 1;
    }
    fprintf(stderr, "  kb: %ld articles stored in %.1f s\n", n,
            (double)(bench_now_us() - t0) / 1e6);
    const char *kv[] = {"bot.enabled", "true", NULL};
    t0 = bench_now_us();
    if (bench_daemon_start(&d, o, kv, dir, err, sizeof err)) {
        fprintf(stderr, "omnihub-bench: kb: omnihubd: %s\n", err);
        bench_rmtree(dir);
        return 1;
    }
    fprintf(stderr, "  kb: omnihubd ready (index of %ld articles built) in %.1f s\n", n,
            (double)(bench_now_us() - t0) / 1e6);
    char *tok = bench_agent_token();
    if (!tok || asprintf(&k.auth, "Authorization: Bearer %s", tok) < 0) k.auth = NULL;
    /* search: warm-up, then measured */
    struct bench_http_run r = {.base_url = d.url,
                               .n = 200,
                               .concurrency = 2,
                               .gen = search_gen,
                               .done = count_done,
                               .opaque = &k};
    bench_http_load(&r);
    k.errors = 0;
    r.n = KB_SEARCHES;
    bench_http_load(&r);
    bench_hist_merge(&search, &r.lat);
    row("search", &search, 20, k.errors, n);
    /* suggestions over KB_CONVS conversations, each asked one question */
    k.conv = calloc(KB_CONVS, sizeof *k.conv);
    for (size_t i = 0; k.conv && i < KB_CONVS; i++) {
        char *q = NULL;
        const char *e =
            json_string_value(json_array_get(k.queries, i % json_array_size(k.queries)));
        /* the queries file's text, decoded back by the encoded form's rules */
        q = strdup(e);
        char *w = q, *p = q;
        for (; q && *p; p++) {
            if (*p == '%' && p[1] && p[2]) {
                char hx[3] = {p[1], p[2], 0};
                *w++ = (char)strtol(hx, NULL, 16);
                p += 2;
            } else {
                *w++ = *p;
            }
        }
        if (q) *w = '\0';
        if (q && post_inbound(d.url, run, i, q, k.conv[k.nconv]) == 0) k.nconv++;
        free(q);
    }
    if (k.nconv) {
        /* every conversation exists (materialized) before it is asked about */
        for (size_t i = 0; i < k.nconv; i++)
            wait_bot(d.url, tok, k.conv[i]);
        k.errors = 0;
        r = (struct bench_http_run){.base_url = d.url,
                                    .n = KB_SUGGESTIONS,
                                    .concurrency = 2,
                                    .gen = sugg_gen,
                                    .done = count_done,
                                    .opaque = &k};
        bench_http_load(&r);
        bench_hist_merge(&sugg, &r.lat);
        row("suggestions (no LLM)", &sugg, 50, k.errors, n);
    }
    /* the bot: inbound accepted -> its message in the history (polled every 2 ms) */
    long bot_err = 0;
    for (size_t i = 0; i < KB_BOT_SAMPLES; i++) {
        char conv[OH_ID_MAX];
        int64_t s = bench_now_us();
        if (post_inbound(d.url, run, 10000 + i,
                         "how long does it take to get my refund after I send a return back?",
                         conv)) {
            bot_err++;
            continue;
        }
        int64_t e = wait_bot(d.url, tok, conv);
        if (e < 0)
            bot_err++;
        else
            bench_hist_record(&bot, e - s);
    }
    row("bot inbound -> answer", &bot, 0, bot_err, n);
    free(tok);
    free(k.auth);
    free(k.conv);
    json_decref(k.queries);
    bench_daemon_stop(&d);
    bench_rmtree(dir);
    return 0;
}
