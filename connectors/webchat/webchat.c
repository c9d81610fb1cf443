/* webchat.c - the in-app chat, a channel the gateway itself serves:
 * customers connect with their own token to the REST API and the
 * WebSocket. A customer owns exactly one conversation, derived from their
 * sub and webchat.account; agents' replies get a
 * `delivered` status once queued to one of the customer's devices and a
 * `read` status once the customer's read cursor passes them (unless
 * webchat.receipts is false). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/connector.h"

#define WC_NAME      "webchat"
#define WC_MAX_QUEUE 10000   /* pending hook calls; past it they are dropped */
#define WC_MARKS     4096    /* conversations whose progress is remembered */
#define WC_PAGE      256     /* history rows per read */
#define WC_KV_READ   "read:" /* kv key prefix: the read cursor already handled */

enum wc_kind { WC_PUSHED, WC_READ };

/* One hook call waiting for the worker. */
struct wc_job {
    struct wc_job *next;
    enum wc_kind kind;
    char conv[OH_ID_MAX];
    int64_t after, upto; /* events after < seq <= upto */
};

/* What was already handled in one conversation (a cache: the store's
 * message states decide). */
struct wc_mark {
    char conv[OH_ID_MAX];
    int64_t delivered; /* events up to here were checked for `delivered` */
    int64_t read;      /* events up to here were checked for `read` */
};

static const struct oh_config_key wc_keys[] = {
    {"webchat.account", OH_CFG_STR, "default",
     "account of customers' conversations; part of their ids (changing it gives every "
     "customer a new conversation)"},
    {"webchat.receipts", OH_CFG_BOOL, "true",
     "record delivered and read statuses of agents' replies (extra events in the history)"},
    {NULL, 0, NULL, NULL},
};

/* The webchat.* keys, filled by wc_map. */
struct wc_conf {
    char *account; /* webchat.account, 1..255 bytes */
    bool receipts; /* webchat.receipts */
};

static const struct oh_config_field wc_map[] = {
    OH_CFG_FIELD("webchat.account", struct wc_conf, account),
    OH_CFG_FIELD("webchat.receipts", struct wc_conf, receipts),
    {NULL, 0},
};

struct wc {
    const struct oh_conn_env *env;
    struct wc_conf conf;
    pthread_t worker;
    bool running;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    bool stop;
    struct wc_job *jobs, **tail, *last; /* a FIFO; LAST is NULL when empty */
    size_t njobs;
    struct wc_mark marks[WC_MARKS];
};

static struct wc_mark *mark_of(struct wc *w, const char *conv)
{
    uint32_t h = 2166136261u;
    for (const char *p = conv; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    struct wc_mark *m = &w->marks[h % WC_MARKS];
    if (strcmp(m->conv, conv) != 0) { /* empty, or another conversation's: start over */
        snprintf(m->conv, sizeof m->conv, "%s", conv);
        m->delivered = m->read = 0;
    }
    return m;
}

/* ---- the hooks (gateway threads) ---- */

static int wc_customer_conversation(void *ctx, const char *sub, struct oh_owned *out)
{
    struct wc *w = ctx;
    oh_conversation_id(out->conversation_id, WC_NAME, w->conf.account, sub);
    snprintf(out->account, sizeof out->account, "%s", w->conf.account);
    return OH_OK;
}

/* Queues a job unless the marks say it is done or the queue is full (a
 * later push or read covers what a dropped job would have done). */
static void wc_queue(struct wc *w, enum wc_kind kind, const char *conv, int64_t after, int64_t upto)
{
    if (!w->conf.receipts || upto <= after) return;
    pthread_mutex_lock(&w->mu);
    struct wc_mark *m = mark_of(w, conv);
    struct wc_job *last = w->last;
    int64_t done = kind == WC_PUSHED ? m->delivered : m->read;
    if (!w->running || upto <= done || w->njobs >= WC_MAX_QUEUE) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    /* one live event pushed to several devices, or page after page of a
     * replay: the last job grows instead */
    if (last && last->kind == kind && strcmp(last->conv, conv) == 0 && after <= last->upto) {
        if (upto > last->upto) last->upto = upto;
        if (after < last->after) last->after = after;
        pthread_mutex_unlock(&w->mu);
        return;
    }
    struct wc_job *j = calloc(1, sizeof *j);
    if (j) {
        j->kind = kind;
        snprintf(j->conv, sizeof j->conv, "%s", conv);
        j->after = after > done ? after : done;
        j->upto = upto;
        *w->tail = j;
        w->tail = &j->next;
        w->last = j;
        w->njobs++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
}

/* runs on the gateway's service thread: only queues */
static void wc_on_pushed(void *ctx, const char *conv, int64_t after, int64_t upto)
{
    wc_queue(ctx, WC_PUSHED, conv, after, upto);
}

/* runs on a gateway worker: only queues. An agent reading changes nothing
 * the customer sees. */
static void wc_on_read(void *ctx, const char *conv, const char *role, int64_t seq)
{
    if (strcmp(role, "customer") == 0) wc_queue(ctx, WC_READ, conv, 0, seq);
}

/* ---- the worker: statuses from the history ---- */

struct scan {
    struct wc *w;
    enum wc_kind kind;
    struct oh_event_list out;
    int64_t last; /* highest seq seen */
    int rows;
    int err;
};

/* The state already shown for MESSAGE_ID: 0 none (or sent/failed),
 * 1 delivered, 2 read. */
static int shown(const struct oh_conn_env *env, const char *conv, const char *message_id)
{
    char state[16];
    if (oh_env_message_state(env, conv, message_id, state) != OH_OK) return 0;
    return strcmp(state, "read") == 0 ? 2 : strcmp(state, "delivered") == 0 ? 1 : 0;
}

static int scan_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    static const char outbound[] = "\"" OH_EV_OUTBOUND "\"";
    struct scan *s = opaque;
    s->last = seq;
    s->rows++;
    if (!memmem(json, len, outbound, sizeof outbound - 1)) return 0; /* not worth parsing */
    json_t *ev = json_loadb(json, len, 0, NULL);
    const char *type = ev ? oh_event_get_type(ev) : NULL;
    const char *channel = ev ? oh_event_data_str(ev, "channel") : NULL;
    const char *msgid = ev ? oh_event_data_str(ev, "message_id") : NULL;
    const char *author = ev ? json_string_value(json_object_get(
                                  json_object_get(oh_event_data(ev), "author"), "kind"))
                            : NULL;
    /* agents' replies on this channel; what the customer sent has no states */
    /* (a private note never reached the customer: no state of its own) */
    if (type && strcmp(type, OH_EV_OUTBOUND) == 0 && channel && strcmp(channel, WC_NAME) == 0 &&
        msgid && author && strcmp(author, "agent") == 0 && !oh_event_internal(ev)) {
        int have = shown(s->w->env, conv, msgid);
        /* read implies delivered: both go in one batch, in that order, so
         * no history shows delivered after read (a repeated state has the
         * same event id and is stored once) */
        if (have < 1)
            oh_event_list_push(&s->out, oh_status_event(ev, "delivered", NULL, NULL, NULL));
        if (s->kind == WC_READ && have < 2)
            oh_event_list_push(&s->out, oh_status_event(ev, "read", NULL, NULL, NULL));
    }
    json_decref(ev);
    return 0;
}

/* The read cursor already handled in CONV, kept across restarts (so that
 * a read after a restart does not walk the whole history again). */
static int64_t read_done(const struct oh_conn_env *env, const char *conv)
{
    char key[OH_ID_MAX + 8], val[32];
    snprintf(key, sizeof key, WC_KV_READ "%s", conv);
    return oh_env_kv_get(env, NULL, key, val, sizeof val) == OH_OK ? atoll(val) : 0;
}

/* oh_env_kv_change_fn: the cursor stored (CUR) moved up to *(int64_t *)CTX */
static int cursor_up(void *ctx, const char *cur, char **next)
{
    int64_t seq = *(const int64_t *)ctx;
    char val[32];
    if (cur && atoll(cur) >= seq) return OH_OK; /* never back */
    snprintf(val, sizeof val, "%lld", (long long)seq);
    return (*next = strdup(val)) ? OH_OK : OH_ENOMEM;
}

/* Moves the cursor up to SEQ, never back: gateways of several processes
 * may handle reads of one conversation at once. */
static void read_done_put(const struct oh_conn_env *env, const char *conv, int64_t seq)
{
    char key[OH_ID_MAX + 8];
    snprintf(key, sizeof key, WC_KV_READ "%s", conv);
    oh_env_kv_update(env, NULL, key, 31, cursor_up, &seq);
}

/* Records the statuses job J calls for; false when they could not be
 * made durable (the job's range stays open for a later push or read). */
static bool wc_run(struct wc *w, struct wc_job *j)
{
    if (!oh_env_has_store(w->env)) return true; /* a gateway without a store: nothing to check */
    int64_t after = j->after;
    if (j->kind == WC_READ) {
        int64_t done = read_done(w->env, j->conv);
        if (done > after) after = done;
    }
    while (after < j->upto) {
        struct scan s = {.w = w, .kind = j->kind, .last = after};
        int64_t want = j->upto - after;
        int rc = oh_env_history(w->env, j->conv, after, want < WC_PAGE ? (int)want : WC_PAGE,
                                scan_row, &s);
        if (rc == OH_ENOTFOUND) return true;
        if (rc == OH_OK && s.out.n) rc = oh_env_ingest_wait(w->env, &s.out);
        oh_event_list_clear(&s.out);
        if (rc != OH_OK) {
            OH_WARN(WC_NAME, "cannot record delivery states in %s: %s", j->conv, oh_strerror(rc));
            return false;
        }
        if (s.rows == 0) break; /* the history ends before UPTO */
        after = s.last;
    }
    if (j->kind == WC_READ) read_done_put(w->env, j->conv, after);
    pthread_mutex_lock(&w->mu);
    struct wc_mark *m = mark_of(w, j->conv);
    int64_t *done = j->kind == WC_PUSHED ? &m->delivered : &m->read;
    if (after > *done && j->after <= *done) *done = after;
    pthread_mutex_unlock(&w->mu);
    return true;
}

static void *wc_worker(void *arg)
{
    struct wc *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct wc_job *j = w->jobs;
        if (!j) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        w->jobs = j->next;
        if (!w->jobs) {
            w->tail = &w->jobs;
            w->last = NULL;
        }
        w->njobs--;
        pthread_mutex_unlock(&w->mu);
        wc_run(w, j);
        free(j);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- lifetime ---- */

static void wc_destroy(void *ctx);

static int wc_init(const struct oh_conn_env *env, const oh_config *cfg, void **ctx, char *err,
                   size_t errlen)
{
    struct wc *w = calloc(1, sizeof *w);
    if (!w) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    w->env = env;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (oh_config_map(cfg, wc_keys, wc_map, &w->conf) != OH_OK) {
        wc_destroy(w);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    const char *account = w->conf.account;
    if (!account || !*account || strlen(account) > 255) {
        wc_destroy(w);
        oh_errf(err, errlen, "webchat.account must be a string of 1..255 bytes");
        return OH_EINVAL;
    }
    w->tail = &w->jobs;
    *ctx = w;
    return OH_OK;
}

static int wc_start(void *ctx)
{
    struct wc *w = ctx;
    if (!w->conf.receipts) return OH_OK;
    if (pthread_create(&w->worker, NULL, wc_worker, w)) return OH_EIO;
    pthread_setname_np(w->worker, "oh-webchat");
    pthread_mutex_lock(&w->mu);
    w->running = true;
    pthread_mutex_unlock(&w->mu);
    return OH_OK;
}

static void wc_stop(void *ctx)
{
    struct wc *w = ctx;
    pthread_mutex_lock(&w->mu);
    bool running = w->running;
    pthread_mutex_unlock(&w->mu);
    if (!running) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->worker, NULL);
    pthread_mutex_lock(&w->mu);
    w->running = false;
    pthread_mutex_unlock(&w->mu);
}

static void wc_destroy(void *ctx)
{
    struct wc *w = ctx;
    if (!w) return;
    wc_stop(w);
    while (w->jobs) {
        struct wc_job *j = w->jobs;
        w->jobs = j->next;
        free(j);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    oh_config_map_free(wc_keys, wc_map, &w->conf);
    free(w);
}

const struct oh_connector oh_connector_webchat = {
    .name = WC_NAME,
    .config_keys = wc_keys,
    .init = wc_init,
    .start = wc_start,
    .stop = wc_stop,
    .destroy = wc_destroy,
    .enabled_by_default = true,
    .customer_conversation = wc_customer_conversation,
    .on_pushed = wc_on_pushed,
    .on_read = wc_on_read,
};
