/* feed.c - signed deliveries as a channel sends them: POST /v1/inbound for
 * the api channel, WhatsApp Cloud API webhooks for whatsapp; remembers what
 * was acknowledged and where it went. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "bench.h"
#include "core/crypto.h"

/* A WhatsApp Cloud API "messages" change, as tests/data/whatsapp/text.json. */
static const char wa_tpl[] =
    "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"102290129340398\","
    "\"changes\":[{\"value\":{\"messaging_product\":\"whatsapp\",\"metadata\":{"
    "\"display_phone_number\":\"15550783881\",\"phone_number_id\":\"%s\"},"
    "\"contacts\":[{\"profile\":{\"name\":\"Bench Contact %d\"},\"wa_id\":\"%s\"}],"
    "\"messages\":[{\"from\":\"%s\",\"id\":\"wamid.%s%zu\",\"timestamp\":\"%lld\","
    "\"type\":\"text\",\"text\":{\"body\":\"%s\"}}]},\"field\":\"messages\"}]}]}";

static const char api_tpl[] =
    "{\"channel\":\"api:bench\",\"account\":\"%s\",\"contact\":{\"id\":\"u%d\","
    "\"name\":\"Bench Contact %d\"},\"message_id\":\"%s%zu\",\"text\":\"%s\"}";

static void build(struct bench_feed *f, size_t i)
{
    int c = (int)(i % (size_t)f->contacts);
    char text[160];
    if (f->stamp)
        snprintf(text, sizeof text, "t=%lld message %zu of the benchmark",
                 (long long)bench_now_us(), i);
    else
        snprintf(text, sizeof text, "Hello, this is message %zu of the benchmark run %s", i,
                 f->prefix);
    free(f->body[i]);
    int n;
    if (strcmp(f->channel, "whatsapp") == 0) {
        char wa[32];
        snprintf(wa, sizeof wa, "1650555%05d", c);
        n = asprintf(&f->body[i], wa_tpl, f->account, c, wa, wa, f->prefix, i,
                     (long long)(1749416383 + (long long)i), text);
    } else {
        n = asprintf(&f->body[i], api_tpl, f->account, c, c, f->prefix, i, text);
    }
    if (n < 0) {
        f->body[i] = NULL;
        n = 0;
    }
    f->len[i] = (size_t)n;
    char sig[72];
    const char *secret =
        strcmp(f->channel, "whatsapp") == 0 ? BENCH_WA_SECRET : BENCH_INBOUND_SECRET;
    oh_sig_make_hex(secret, f->body[i] ? f->body[i] : "", f->len[i], sig);
    free(f->sig[i]);
    if (asprintf(&f->sig[i], "%s: %s",
                 strcmp(f->channel, "whatsapp") == 0 ? "X-Hub-Signature-256"
                                                     : "X-Omnihub-Signature",
                 sig) < 0)
        f->sig[i] = NULL;
}

int bench_feed_init(struct bench_feed *f, const char *channel, size_t n, int contacts, bool stamp)
{
    memset(f, 0, sizeof *f);
    f->channel = strcmp(channel, "whatsapp") == 0 ? "whatsapp" : "api";
    f->n = n;
    f->contacts = contacts > 0 ? contacts : 1;
    f->stamp = stamp;
    char run[16];
    bench_run_id(run);
    snprintf(f->prefix, sizeof f->prefix, "%s-", run);
    if (strcmp(f->channel, "whatsapp") == 0) /* a phone number id: digits */
        snprintf(f->account, sizeof f->account, "1065%08lu",
                 strtoul(run + 1, NULL, 16) % 100000000);
    else
        snprintf(f->account, sizeof f->account, "bench-%s", run);
    f->body = calloc(n ? n : 1, sizeof *f->body);
    f->len = calloc(n ? n : 1, sizeof *f->len);
    f->sig = calloc(n ? n : 1, sizeof *f->sig);
    f->acked = calloc(n ? n : 1, 1);
    f->conv = calloc((size_t)f->contacts, sizeof *f->conv);
    f->rkey = calloc((size_t)f->contacts, sizeof *f->rkey);
    if (!f->body || !f->len || !f->sig || !f->acked || !f->conv || !f->rkey) return -1;
    for (int c = 0; c < f->contacts; c++)
        if (asprintf(&f->rkey[c], "bench:%s%d", f->prefix, c) < 0) {
            f->rkey[c] = NULL;
            return -1;
        }
    if (!stamp)
        for (size_t i = 0; i < n; i++)
            build(f, i);
    return 0;
}

void bench_feed_free(struct bench_feed *f)
{
    for (size_t i = 0; f->body && i < f->n; i++) {
        free(f->body[i]);
        free(f->sig[i]);
    }
    for (int c = 0; f->conv && c < f->contacts; c++)
        free(f->conv[c]);
    for (int c = 0; f->rkey && c < f->contacts; c++)
        free(f->rkey[c]);
    free(f->rkey);
    free(f->body);
    free(f->len);
    free(f->sig);
    free(f->acked);
    free(f->conv);
    memset(f, 0, sizeof *f);
}

void bench_feed_gen(void *opaque, size_t i, struct bench_http_req *req)
{
    struct bench_feed *f = opaque;
    if (f->stamp) build(f, i);
    req->path = strcmp(f->channel, "whatsapp") == 0 ? "/webhooks/whatsapp" : "/v1/inbound";
    req->body = f->body[i];
    req->len = f->len[i];
    req->hdr[0] = f->sig[i];
    req->hdr[1] = NULL;
}

void bench_feed_gen_redis(void *opaque, size_t i, struct bench_http_req *req)
{
    struct bench_feed *f = opaque;
    if (f->stamp) build(f, i);
    req->path = f->rkey[i % (size_t)f->contacts];
    req->body = f->body[i];
    req->len = f->len[i];
}

void bench_feed_done(void *opaque, size_t i, long status, const char *body, size_t len,
                     int64_t sent_us, int64_t lat_us)
{
    struct bench_feed *f = opaque;
    if (status < 200 || status >= 300) return;
    f->acked[i] = 1;
    f->nacked++;
    int c = (int)(i % (size_t)f->contacts);
    if (f->conv[c] || strcmp(f->channel, "api") != 0) return;
    /* {"event_id":"...","conversation_id":"..."}: a cheap scan, not a parse */
    const char *p = strstr(body, "\"conversation_id\"");
    if (!p || !(p = strchr(p + 17, '"'))) return;
    const char *q = strchr(p + 1, '"');
    if (q) f->conv[c] = strndup(p + 1, (size_t)(q - p - 1));
}

const char *const *bench_feed_convs(struct bench_feed *f, const char *base_url, size_t *n)
{
    if (strcmp(f->channel, "whatsapp") == 0) {
        /* WhatsApp's answer carries no ids: find ours in the directory, which
         * sync may still be filling when the last answer is in (a fast
         * client outruns it): listed again until every contact that was
         * acknowledged is there, for up to a minute */
        int want = 0;
        for (int c = 0; c < f->contacts; c++)
            for (size_t i = (size_t)c; i < f->n; i += (size_t)f->contacts)
                if (f->acked[i]) {
                    want++;
                    break;
                }
        char url[512], *tok = bench_agent_token();
        snprintf(url, sizeof url, "%s/v1/conversations?limit=1000", base_url);
        int64_t deadline = bench_now_us() + 60 * 1000000LL;
        for (int have = -1; have < want && bench_now_us() < deadline;) {
            if (have >= 0) usleep(100000);
            char *body = NULL;
            long st = bench_http_get(url, tok, &body);
            json_t *j = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
            free(body);
            size_t k;
            json_t *c;
            have = 0;
            json_array_foreach(json_object_get(j, "conversations"), k, c)
            {
                const char *acc = json_string_value(json_object_get(c, "account"));
                const char *id = json_string_value(json_object_get(c, "conversation_id"));
                if (acc && id && strcmp(acc, f->account) == 0 && have < f->contacts) {
                    free(f->conv[have]);
                    f->conv[have++] = strdup(id);
                }
            }
            json_decref(j);
        }
        free(tok);
    }
    /* pack the known ones to the front */
    size_t m = 0;
    for (int c = 0; c < f->contacts; c++)
        if (f->conv[c]) {
            char *id = f->conv[c];
            f->conv[c] = NULL;
            f->conv[m++] = id;
        }
    *n = m;
    return (const char *const *)f->conv;
}

const char *const *bench_feed_warm(struct bench_feed *warm, const char *base_url, int nconv,
                                   int wait_s)
{
    if (bench_feed_init(warm, "api", (size_t)nconv, nconv, false)) return NULL;
    struct bench_http_run wr = {.base_url = base_url,
                                .n = (size_t)nconv,
                                .concurrency = 32,
                                .gen = bench_feed_gen,
                                .done = bench_feed_done,
                                .opaque = warm};
    bench_http_load(&wr);
    size_t have = 0;
    const char *const *convs = bench_feed_convs(warm, base_url, &have);
    if (!convs || have != (size_t)nconv) {
        fprintf(stderr, "omnihub-bench: %zu of %d conversations created\n", have, nconv);
        return NULL;
    }
    /* acknowledged is durable, not yet materialized: wait for the store */
    struct bench_check chk = {0};
    if (bench_check_history(base_url, convs, have, warm->prefix, (size_t)nconv, warm->acked, wait_s,
                            &chk) ||
        chk.found != nconv) {
        fprintf(stderr, "omnihub-bench: %ld of %d conversations materialized\n", chk.found, nconv);
        return NULL;
    }
    return convs;
}
