/* dispatch.c - sends agents' replies out through their channel's connector.
 * Consumes the timeline (group omnihub-dispatch); each outbound message is
 * remembered in the store until it is sent or has failed, retried with
 * exponential backoff and jitter, and its outcome recorded as a status
 * event on the stream. A service (service.h): routes on the records'
 * metadata on the thread "oh-dispatch"; sends on its worker threads.
 * Members of the group share the work by partition: a pending message
 * belongs to whoever holds its timeline partition, which takes it from the
 * store when the partition is assigned (a member killed with jobs queued
 * loses none) and gives it up when it is revoked (no two members send it).
 * A conversation's replies go out one at a time in their seq order: a
 * worker takes only a conversation's lowest held seq (its lane's head), so
 * two quick replies never overtake each other, and one backing off holds
 * back the ones after it. A reply that comes to the queue's top while an
 * earlier one of its conversation is still held is parked in its lane,
 * off the queue, until that one is done: taking a job stays O(log n) however
 * many wait behind heads that back off through an outage. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/conn_env.h"
#include "core/crypto.h"
#include "core/hub_int.h"
#include "core/map.h"
#include "services/service.h"
#include "core/metrics.h"

#define KV_NS     "dispatch"
#define MAX_PARTS 4096 /* partitions tracked; a job of a higher one is always ours */
/* A finished message's entry stays this long as "done <ms>": a timeline
 * record read again meanwhile (sync forwards its last stored events again
 * after a takeover, before the outcome is in the store) is not sent again. */
#define GRAVE_MS 60000

struct grave {
    struct grave *next;
    int64_t at;
    char key[];
};

/* The seqs of one conversation's held jobs, ascending: the first is the
 * only one a worker may take. */
struct lane {
    struct oh_map_node node;
    size_t n, cap;
    int64_t *seqs;
    struct job *parked; /* its queued jobs off the heap, by seq: none is the head */
    char conv[];        /* the node's key */
};

struct job {
    uint64_t order;    /* when queued: first come, first served at one due time */
    json_t *event;     /* the sequenced outbound event */
    int64_t seq;       /* its seq in the conversation */
    struct lane *lane; /* under MU, while held; NULL: no lane (out of memory) */
    int attempt;       /* attempts made so far */
    int32_t partition; /* of the timeline record: who owns the job */
    int64_t due_ms;
    /* the provider took it (its id, possibly ""): only the outcome is left
     * to record */
    char *sent;
    struct job *next_parked; /* in its lane's parked list */
};

struct oh_dispatch {
    oh_hub *hub;
    pthread_t *workers;
    int nworkers, max_attempts;
    int64_t backoff_ms, backoff_max_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a job was queued (workers wait for one) */
    pthread_cond_t drained; /* a send ended (a revoke waits for its partitions') */
    /* the queued jobs, a binary min-heap on (due_ms, order): a send retried
     * until it is taken can leave many waiting through a long outage, and
     * each retry is queued again (O(log n), where a sorted list was O(n)) */
    struct job **jobs;
    size_t queued, capjobs;
    size_t parked; /* queued jobs parked in their lanes, not in JOBS */
    uint64_t orders;
    int sending;
    /* under MU: the timeline partitions this member holds, and the jobs of
     * each being sent now (a revoke waits for them) */
    bool owned[MAX_PARTS];
    int inflight[MAX_PARTS];
    struct grave *graves, **graves_end; /* entries of finished messages, oldest first */
    json_t *held;                       /* under MU: ids of the jobs this member holds */
    oh_map lanes;                       /* under MU: struct lane by conversation */
    /* a scan of the pending entries failed, or a job could not be queued
     * (out of memory): the service thread scans again */
    atomic_bool rescan;
    /* retries are logged one line a second at most, with how many were not */
    _Atomic int64_t retry_logged_ms;
    atomic_long retries_unlogged;
};

/* Keeps KEY's "done" entry until AT + GRAVE_MS. */
static void bury(struct oh_dispatch *d, const char *key, int64_t at)
{
    size_t n = strlen(key) + 1;
    struct grave *g = malloc(sizeof *g + n);
    if (!g) return; /* the next assignment's scan removes it */
    g->next = NULL;
    g->at = at;
    memcpy(g->key, key, n);
    pthread_mutex_lock(&d->mu);
    *d->graves_end = g;
    d->graves_end = &g->next;
    pthread_mutex_unlock(&d->mu);
}

/* Removes the "done" entries past GRAVE_MS; under MU, released meanwhile. */
static void reap(struct oh_dispatch *d)
{
    enum { AT_ONCE = 256 }; /* deleted in one store transaction */
    int64_t now = oh_now_ms();
    while (d->graves && now - d->graves->at > GRAVE_MS && !atomic_load(&d->hub->stopping)) {
        struct grave *gone[AT_ONCE];
        const char *keys[AT_ONCE], *none[AT_ONCE] = {0};
        size_t n = 0;
        for (struct grave *g; n < AT_ONCE && (g = d->graves) && now - g->at > GRAVE_MS; n++) {
            d->graves = g->next;
            gone[n] = g;
            keys[n] = g->key;
        }
        if (!d->graves) d->graves_end = &d->graves;
        pthread_mutex_unlock(&d->mu);
        oh_store_kv_write(d->hub->store, KV_NS, keys, none, n);
        for (size_t i = 0; i < n; i++)
            free(gone[i]);
        pthread_mutex_lock(&d->mu);
    }
}

static bool owns(const struct oh_dispatch *d, int32_t p)
{
    return p < 0 || p >= MAX_PARTS || d->owned[p];
}

/* under MU: what this member holds (waiting, backing off, being sent) */
static void depth(struct oh_dispatch *d)
{
    oh_metrics_set("omnihub_dispatch_queue_depth", "",
                   (double)(d->queued + d->parked) + d->sending);
}

static void labels(char *out, size_t len, const char *channel, const char *result)
{
    snprintf(out, len, "channel=\"%.*s\",result=\"%s\"", (int)strcspn(channel, ":\""), channel,
             result);
}

/* Under MU: J is held from now on, its seq in its conversation's lane. */
static void hold(struct oh_dispatch *d, struct job *j)
{
    json_object_set_new(d->held, oh_event_get_id(j->event), json_true());
    const char *conv = oh_event_subject(j->event);
    size_t len = strlen(conv);
    struct lane *l = oh_map_entry(oh_map_get(&d->lanes, conv, len), struct lane, node);
    if (!l) {
        if (!(l = calloc(1, sizeof *l + len + 1))) return; /* sent out of order at worst */
        memcpy(l->conv, conv, len + 1);
        if (oh_map_put(&d->lanes, &l->node, l->conv, len)) {
            free(l);
            return;
        }
    }
    if (oh_grow(&l->seqs, &l->cap, l->n + 1, sizeof *l->seqs, 4)) {
        if (!l->n) {
            oh_map_del(&d->lanes, &l->node);
            free(l);
        }
        return;
    }
    size_t i = l->n++;
    for (; i > 0 && l->seqs[i - 1] > j->seq; i--)
        l->seqs[i] = l->seqs[i - 1];
    l->seqs[i] = j->seq;
    j->lane = l;
}

/* Under MU: J is no longer held (sent, failed for good, or given up).
 * Returns the parked job that is its lane's head now, off the lane's list
 * (the caller queues it), or NULL. */
static struct job *unhold(struct oh_dispatch *d, struct job *j)
{
    json_object_del(d->held, oh_event_get_id(j->event));
    struct lane *l = j->lane;
    j->lane = NULL;
    if (!l) return NULL;
    size_t i = 0;
    while (i < l->n && l->seqs[i] != j->seq)
        i++;
    if (i < l->n) memmove(&l->seqs[i], &l->seqs[i + 1], (l->n - i - 1) * sizeof *l->seqs);
    if (i < l->n && --l->n == 0) { /* a parked job is held: none is left */
        oh_map_del(&d->lanes, &l->node);
        free(l->seqs);
        free(l);
        return NULL;
    }
    struct job *next = l->parked;
    if (!next || next->seq != l->seqs[0]) return NULL;
    l->parked = next->next_parked;
    next->next_parked = NULL;
    d->parked--;
    return next;
}

/* Under MU: whether J is its conversation's next to send. */
static bool is_head(const struct job *j)
{
    return !j->lane || j->lane->seqs[0] == j->seq;
}

static void free_job(struct job *j)
{
    json_decref(j->event);
    free(j->sent);
    free(j);
}

static bool before(const struct job *a, const struct job *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->order < b->order);
}

static void sift_down(struct oh_dispatch *d, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < d->queued && before(d->jobs[l], d->jobs[m])) m = l;
        if (l + 1 < d->queued && before(d->jobs[l + 1], d->jobs[m])) m = l + 1;
        if (m == i) return;
        struct job *t = d->jobs[i];
        d->jobs[i] = d->jobs[m];
        d->jobs[m] = t;
        i = m;
    }
}

static void sift_up(struct oh_dispatch *d, size_t i)
{
    struct job *j = d->jobs[i];
    for (; i > 0 && before(j, d->jobs[(i - 1) / 2]); i = (i - 1) / 2)
        d->jobs[i] = d->jobs[(i - 1) / 2];
    d->jobs[i] = j;
}

/* Under MU: the heap's top, taken off it. */
static struct job *take_top(struct oh_dispatch *d)
{
    struct job *top = d->jobs[0];
    d->jobs[0] = d->jobs[--d->queued];
    if (d->queued) sift_down(d, 0);
    return top;
}

/* Under MU: J, not its lane's head, waits in the lane (by seq) until the
 * jobs before it are done (unhold gives it back). */
static void park(struct oh_dispatch *d, struct job *j)
{
    struct job **at = &j->lane->parked;
    while (*at && (*at)->seq < j->seq)
        at = &(*at)->next_parked;
    j->next_parked = *at;
    *at = j;
    d->parked++;
}

/* Under MU: every parked job back in JOBS, not yet a heap (the caller
 * restores it); JOBS has room for them (they were in it before). */
static void unpark_all(struct oh_dispatch *d)
{
    for (struct oh_map_node *node = d->lanes.first; node; node = node->next) {
        struct lane *l = oh_map_entry(node, struct lane, node);
        for (struct job *j = l->parked, *next; j; j = next) {
            next = j->next_parked;
            j->next_parked = NULL;
            d->jobs[d->queued++] = j;
        }
        l->parked = NULL;
    }
    d->parked = 0;
}

/* Under MU: the job due first that heads its conversation's lane, taken
 * off the heap; NULL with *WAIT_MS set when none is due. A later reply of
 * a conversation on top (due before its head, which backs off or is being
 * sent) is parked on the way. */
static struct job *pop_job(struct oh_dispatch *d, int64_t now, int64_t *wait_ms)
{
    while (d->queued && !is_head(d->jobs[0]))
        park(d, take_top(d));
    struct job *best = d->queued ? d->jobs[0] : NULL;
    if (!best || best->due_ms > now) {
        *wait_ms = best ? best->due_ms - now : 200;
        return NULL;
    }
    return take_top(d);
}

/* Under MU: J on the heap (room made by the caller). */
static void push_job(struct oh_dispatch *d, struct job *j)
{
    d->jobs[d->queued++] = j;
    sift_up(d, d->queued - 1);
}

/* Queues J, or drops it when its partition moved to another member (which
 * takes it from the store) or, out of memory, leaves it to the store's next
 * scan. Under MU; the caller wakes the workers. */
static void enqueue_locked(struct oh_dispatch *d, struct job *j)
{
    /* room for every job held, parked ones included (unpark_all) */
    bool room =
        oh_grow(&d->jobs, &d->capjobs, d->queued + d->parked + 1, sizeof *d->jobs, 64) == OH_OK;
    if (!owns(d, j->partition) || !room) {
        if (owns(d, j->partition)) {
            OH_WARN("dispatch", "out of memory: %s waits for the next scan of pending sends",
                    oh_event_get_id(j->event));
            atomic_store(&d->rescan, true);
        }
        struct job *next = unhold(d, j);
        if (next) push_job(d, next); /* it was counted in the room */
        free_job(j);
        return;
    }
    if (!json_object_get(d->held, oh_event_get_id(j->event))) hold(d, j);
    j->order = d->orders++;
    push_job(d, j);
    depth(d);
}

/* Queues J and wakes one worker when WAKE (a worker queueing its own
 * retry takes the queue's next job itself, right after). */
static void enqueue(struct oh_dispatch *d, struct job *j, bool wake)
{
    pthread_mutex_lock(&d->mu);
    enqueue_locked(d, j);
    if (wake) pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Persists a pending job so a restart resumes it: "<attempt> <partition>
 * [sent <provider id>]\n@<seq> <conv>", where the store keeps the event's
 * text (sync stored it before it reached the timeline). "sent": the provider
 * took it, its outcome is not recorded yet (whoever resumes the job records
 * it, and sends nothing). Entries of older versions hold "<attempt>\n@<seq>
 * <conv>" or "<attempt>\n<event>" (no partition: the holder of partition 0
 * takes them). */
#define ENTRY_MAX (96 + OH_ID_MAX + sizeof((struct oh_send_result *)0)->provider_message_id)

static void entry_of(const struct job *j, char val[ENTRY_MAX])
{
    snprintf(val, ENTRY_MAX, "%d %d%s%s\n@%lld %s", j->attempt, (int)j->partition,
             j->sent ? " sent " : "", j->sent ? j->sent : "", (long long)j->seq,
             oh_event_subject(j->event));
}

static int remember(struct oh_dispatch *d, struct job *j)
{
    char val[ENTRY_MAX];
    entry_of(j, val);
    return oh_store_kv_put(d->hub->store, KV_NS, oh_event_get_id(j->event), val);
}

/* Writes the N entries of KEYS in one store transaction, again every
 * 200 ms until it is taken; false when the hub stopped first. */
static bool write_until_kept(struct oh_dispatch *d, const char **keys, const char **vals, size_t n)
{
    for (;;) {
        if (oh_store_kv_write(d->hub->store, KV_NS, keys, vals, n) == OH_OK) return true;
        if (atomic_load(&d->hub->stopping)) return false;
        usleep(200000);
    }
}

/* Persists a batch's N new jobs in one store transaction (a commit per
 * reply was the dispatcher's main cost in the store); false when the hub
 * stopped first. Out of memory: one by one. */
static bool remember_all(struct oh_dispatch *d, struct job *const *jobs, size_t n)
{
    const char **keys = calloc(n, sizeof *keys), **vals = calloc(n, sizeof *vals);
    char(*text)[ENTRY_MAX] = malloc(n * sizeof *text);
    bool kept = true;
    if (keys && vals && text) {
        for (size_t i = 0; i < n; i++) {
            entry_of(jobs[i], text[i]);
            keys[i] = oh_event_get_id(jobs[i]->event);
            vals[i] = text[i];
        }
        kept = write_until_kept(d, keys, vals, n);
    } else {
        char one[ENTRY_MAX];
        for (size_t i = 0; i < n; i++) {
            const char *key = oh_event_get_id(jobs[i]->event), *val = one;
            entry_of(jobs[i], one);
            kept &= write_until_kept(d, &key, &val, 1);
        }
    }
    free(keys);
    free(vals);
    free(text);
    return kept;
}

static void finish(struct oh_dispatch *d, struct job *j, const char *state,
                   const struct oh_send_result *res)
{
    const char *channel = oh_event_data_str(j->event, "channel");
    char lab[160];
    labels(lab, sizeof lab, channel, state);
    oh_metrics_inc("omnihub_outbound_total", lab, 1);
    struct oh_event_list l = {0};
    bool failed = strcmp(state, "failed") == 0;
    oh_event_list_push(&l, oh_status_event(j->event, state, res->provider_message_id,
                                           failed ? res->error_code : NULL,
                                           failed ? res->error : NULL));
    int delay = 100;
    while (oh_hub_ingest_wait(d->hub, &l) != OH_OK && !atomic_load(&d->hub->stopping)) {
        /* the status must reach the stream before the job is forgotten */
        usleep((useconds_t)delay * 1000);
        delay = delay < 5000 ? delay * 2 : delay;
        oh_event_list_push(&l, oh_status_event(j->event, state, res->provider_message_id,
                                               failed ? res->error_code : NULL,
                                               failed ? res->error : NULL));
    }
    oh_event_list_clear(&l);
    if (!atomic_load(&d->hub->stopping)) {
        char done[32];
        int64_t now = oh_now_ms();
        snprintf(done, sizeof done, "done %lld", (long long)now);
        if (oh_store_kv_put(d->hub->store, KV_NS, oh_event_get_id(j->event), done) == OH_OK)
            bury(d, oh_event_get_id(j->event), now);
    }
    pthread_mutex_lock(&d->mu);
    struct job *next = unhold(d, j);
    if (next) push_job(d, next); /* JOBS has room; this worker takes it next */
    pthread_mutex_unlock(&d->mu);
    free_job(j);
}

static int64_t backoff(struct oh_dispatch *d, int attempt, int hint_ms)
{
    int64_t b = d->backoff_ms;
    for (int i = 1; i < attempt && b < d->backoff_max_ms; i++)
        b *= 2;
    if (b > d->backoff_max_ms) b = d->backoff_max_ms;
    uint32_t r = 0;
    oh_random(&r, sizeof r);
    b = b / 2 + (int64_t)(r % (uint32_t)(b / 2 + 1)); /* jitter: [b/2, b] */
    return hint_ms > b ? hint_ms : b;
}

/* A retry's warning: at most one line a second, which counts the retries
 * since the last line (an outage retries thousands a second). */
static void log_retry(struct oh_dispatch *d, const struct job *j, const char *error, int64_t wait)
{
    int64_t now = oh_mono_ms(), last = atomic_load(&d->retry_logged_ms);
    if (now - last < 1000 || !atomic_compare_exchange_strong(&d->retry_logged_ms, &last, now)) {
        atomic_fetch_add(&d->retries_unlogged, 1);
        return;
    }
    long more = atomic_exchange(&d->retries_unlogged, 0);
    char tail[96] = "";
    if (more)
        snprintf(tail, sizeof tail, " (and %ld other retries since the last such line)", more);
    OH_WARN("dispatch", "send of %s failed (%s); attempt %d, retrying in %lld ms%s",
            oh_event_get_id(j->event), error, j->attempt, (long long)wait, tail);
}

/* runs on a dispatcher worker */
static void attempt_send(struct oh_dispatch *d, struct job *j)
{
    const char *channel = oh_event_data_str(j->event, "channel");
    struct oh_instance *in = oh_hub_connector(d->hub, channel);
    struct oh_send_result res = {0};
    char lab[160];
    labels(lab, sizeof lab, channel, "attempt");
    oh_metrics_inc("omnihub_outbound_attempts_total", lab, 1);
    if (j->sent) { /* taken over after the provider took it */
        snprintf(res.provider_message_id, sizeof res.provider_message_id, "%s", j->sent);
        finish(d, j, "sent", &res);
        return;
    }
    j->attempt++;
    int rc = oh_conn_send(in, j->event, &res);
    if (rc == OH_OK) {
        /* noted before the outcome is appended: a member that takes the job
         * over after a kill -9 records the outcome and sends nothing again.
         * (Only a kill between the provider's answer and this write sends
         * twice, under the same Idempotency-Key / event id.) */
        size_t n = strcspn(res.provider_message_id, " \t\r\n");
        j->sent = strndup(res.provider_message_id, n);
        if (j->sent && remember(d, j) != OH_OK)
            OH_WARN("dispatch", "cannot note %s as sent", oh_event_get_id(j->event));
        finish(d, j, "sent", &res);
        return;
    }
    bool again = d->max_attempts == 0 || j->attempt < d->max_attempts ||
                 (in && in->vt->retry_until_sent);
    if (rc == OH_ERETRY && again) {
        int64_t wait = backoff(d, j->attempt, res.retry_after_ms);
        log_retry(d, j, res.error, wait);
        labels(lab, sizeof lab, channel, "retry");
        oh_metrics_inc("omnihub_outbound_total", lab, 1);
        j->due_ms = oh_now_ms() + wait;
        /* the count is saved at attempts 1, 2, 4, 8...: through an outage
         * that is a few store commits per message, not one per attempt
         * (a restart goes on from the last count saved) */
        if ((j->attempt & (j->attempt - 1)) == 0) remember(d, j);
        enqueue(d, j, false);
        return;
    }
    if (rc == OH_ERETRY)
        snprintf(res.error + strlen(res.error), sizeof res.error - strlen(res.error),
                 " (gave up after %d attempts)", j->attempt);
    if (!res.error_code[0])
        snprintf(res.error_code, sizeof res.error_code, "%s",
                 rc == OH_ERETRY ? "retries_exhausted" : "send_failed");
    OH_WARN("dispatch", "send of %s failed for good: %s %s", oh_event_get_id(j->event),
            res.error_code, res.error);
    finish(d, j, "failed", &res);
}

static void *worker(void *arg)
{
    struct oh_dispatch *d = arg;
    pthread_mutex_lock(&d->mu);
    while (!atomic_load(&d->hub->stopping)) {
        reap(d);
        int64_t wait = 200;
        struct job *j = pop_job(d, oh_now_ms(), &wait);
        if (!j) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            if (wait > 200) wait = 200;
            ts.tv_nsec += (long)wait * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&d->cv, &d->mu, &ts);
            continue;
        }
        int32_t p = j->partition;
        bool tracked = p >= 0 && p < MAX_PARTS;
        if (tracked) d->inflight[p]++;
        d->sending++;
        pthread_mutex_unlock(&d->mu);
        attempt_send(d, j);
        pthread_mutex_lock(&d->mu);
        if (tracked) d->inflight[p]--;
        d->sending--;
        depth(d);
        pthread_cond_broadcast(&d->drained); /* a revoke may wait for this one */
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static struct job *job_new(json_t *ev, int attempt, int32_t partition)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(ev);
        return NULL;
    }
    j->event = ev;
    j->seq = json_integer_value(json_object_get(ev, "seq"));
    j->attempt = attempt;
    j->partition = partition;
    j->due_ms = oh_now_ms();
    return j;
}

bool oh_dispatch_wants(const struct oh_log_record *r)
{
    if (r->meta.type)
        return strcmp(r->meta.type, OH_EV_OUTBOUND) == 0 && r->meta.author &&
               (strcmp(r->meta.author, "agent") == 0 || strcmp(r->meta.author, "bot") == 0);
    /* written before records had metadata: the body decides (consider) */
    static const char outbound[] = "\"" OH_EV_OUTBOUND "\"";
    return memmem(r->value, r->len, outbound, sizeof outbound - 1) != NULL;
}

/* A job for one timeline record when it is an agent's outbound message on
 * a channel that sends, not pending already (SEEN: the batch's so far) and
 * without an outcome; else NULL. Only those records are parsed. */
static struct job *consider(struct oh_dispatch *d, const struct oh_log_record *r, json_t *seen)
{
    if (!oh_dispatch_wants(r)) return NULL; /* most of the timeline */
    json_t *ev = json_loadb(r->value, r->len, 0, NULL);
    const char *type = ev ? oh_event_get_type(ev) : NULL;
    const char *channel = ev ? oh_event_data_str(ev, "channel") : NULL;
    struct oh_instance *in = channel ? oh_hub_connector(d->hub, channel) : NULL;
    const char *author = ev ? json_string_value(json_object_get(
                                  json_object_get(oh_event_data(ev), "author"), "kind"))
                            : NULL;
    /* only agents' (and the bot's) replies go out; echoes of what a platform sent are
     * history, and a private note (data.internal) never leaves the desk */
    if (!type || strcmp(type, OH_EV_OUTBOUND) != 0 || !in || !in->vt->send || !author ||
        (strcmp(author, "agent") != 0 && strcmp(author, "bot") != 0) ||
        json_is_true(json_object_get(oh_event_data(ev), "internal")) ||
        json_object_get(seen, oh_event_get_id(ev))) { /* the batch has it twice */
        json_decref(ev);
        return NULL;
    }
    char state[64];
    int rc = oh_store_kv_get(d->hub->store, KV_NS, oh_event_get_id(ev), state, sizeof state);
    if (rc == OH_OK || rc == OH_ETOOBIG) {
        json_decref(ev); /* already pending: taken when the partition was assigned */
        return NULL;
    }
    char msgstate[16];
    if (oh_store_message_state(d->hub->store, oh_event_subject(ev),
                               oh_event_data_str(ev, "message_id"), msgstate) == OH_OK) {
        json_decref(ev); /* already has an outcome: a replayed timeline record */
        return NULL;
    }
    json_object_set_new(seen, oh_event_get_id(ev), json_true());
    return job_new(ev, 0, r->partition);
}

static int stored_row(void *opaque, const char *conv, int64_t seq, const char *json, size_t len)
{
    *(json_t **)opaque = json_loadb(json, len, 0, NULL);
    return 1;
}

/* A pending job's event: from the store, or from an older entry itself. */
static json_t *pending_event(struct oh_dispatch *d, const char *value)
{
    const char *nl = strchr(value, '\n');
    if (!nl) return NULL;
    if (nl[1] != '@') return json_loads(nl + 1, 0, NULL);
    char *end;
    long long seq = strtoll(nl + 2, &end, 10);
    json_t *ev = NULL;
    if (seq < 1 || *end != ' ') return NULL;
    int rc;
    while ((rc = oh_store_history(d->hub->store, end + 1, seq - 1, 1, stored_row, &ev)) != OH_OK &&
           rc != OH_ENOTFOUND && !atomic_load(&d->hub->stopping)) {
        OH_WARN("dispatch", "store unavailable while resuming; retrying");
        sleep(1);
    }
    if (ev && json_integer_value(json_object_get(ev, "seq")) != seq) {
        json_decref(ev);
        ev = NULL;
    }
    return ev;
}

/* The partition a pending entry names; -1 for an older entry without one. */
static int32_t entry_partition(const char *value)
{
    const char *sp = strchr(value, ' '), *nl = strchr(value, '\n');
    return sp && nl && sp < nl ? (int32_t)atoi(sp + 1) : -1;
}

struct taking {
    struct oh_dispatch *d;
    const int32_t *parts; /* just assigned */
    int n, taken;
    json_t *done; /* keys of entries with an outcome already: deleted after the scan */
    /* the jobs found, queued together after the scan: the store lists them
     * in key order, and a conversation's later reply queued alone would be
     * its lane's head until the earlier one came */
    struct job **jobs;
    size_t njobs, cap;
};

static bool in_parts(const struct taking *t, int32_t p)
{
    for (int i = 0; i < t->n; i++)
        if (t->parts[i] == p) return true;
    return false;
}

/* One pending entry of the store: queued when its partition was just
 * assigned here and this member does not hold it already. */
static int take(void *opaque, const char *key, const char *value)
{
    struct taking *t = opaque;
    struct oh_dispatch *d = t->d;
    if (strncmp(value, "done ", 5) == 0) { /* a finished message's: removed in time */
        int64_t at = strtoll(value + 5, NULL, 10);
        if (oh_now_ms() - at > GRAVE_MS)
            json_array_append_new(t->done, json_string(key));
        else
            bury(d, key, at);
        return 0;
    }
    int32_t p = entry_partition(value);
    if (!in_parts(t, p < 0 ? 0 : p)) return 0;
    pthread_mutex_lock(&d->mu);
    bool have = json_object_get(d->held, key) != NULL;
    pthread_mutex_unlock(&d->mu);
    if (have) return 0;
    json_t *ev = pending_event(d, value);
    if (!ev) {
        OH_ERROR("dispatch", "dropping unreadable pending entry %s", key);
        return 0;
    }
    /* the member that had it may have sent it and recorded the outcome,
     * and been stopped before it noted that */
    char msgstate[16];
    if (oh_store_message_state(d->hub->store, oh_event_subject(ev),
                               oh_event_data_str(ev, "message_id"), msgstate) == OH_OK) {
        json_array_append_new(t->done, json_string(key));
        json_decref(ev);
        return 0;
    }
    struct job *j = job_new(ev, atoi(value), p < 0 ? 0 : p);
    const char *nl = strchr(value, '\n'), *mark = strstr(value, " sent ");
    if (j && mark && mark < nl) j->sent = strndup(mark + 6, (size_t)(nl - mark - 6));
    if (j && oh_grow(&t->jobs, &t->cap, t->njobs + 1, sizeof *t->jobs, 16) == OH_OK) {
        t->jobs[t->njobs++] = j;
        t->taken++;
    } else if (j) {
        free_job(j);
        atomic_store(&d->rescan, true); /* out of memory: the next scan takes it */
    }
    return 0;
}

/* Takes the pending entries of PARTS; on the service's thread. A failed
 * scan is done again (for every partition held) after the next poll. */
static void take_pending(struct oh_dispatch *d, const int32_t *parts, int n)
{
    struct taking t = {d, parts, n, 0, json_array(), NULL, 0, 0};
    atomic_store(&d->rescan, false); /* (a job dropped meanwhile sets it again) */
    int rc = t.done ? oh_store_kv_scan(d->hub->store, KV_NS, take, &t) : OH_ENOMEM;
    if (rc != OH_OK) atomic_store(&d->rescan, true);
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < t.njobs; i++)
        enqueue_locked(d, t.jobs[i]);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(t.jobs);
    if (rc) OH_WARN("dispatch", "reading pending messages: %s; again shortly", oh_strerror(rc));
    size_t i;
    json_t *key;
    json_array_foreach(t.done, i, key)
        oh_store_kv_del(d->hub->store, KV_NS, json_string_value(key));
    json_decref(t.done);
    if (t.taken) OH_INFO("dispatch", "resuming %d pending outbound message(s)", t.taken);
}

/* The scan again, after it failed: every partition this member holds. */
static void rescan(struct oh_dispatch *d)
{
    int32_t *parts = malloc(MAX_PARTS * sizeof *parts);
    int n = 0;
    if (!parts) return;
    pthread_mutex_lock(&d->mu);
    for (int32_t p = 0; p < MAX_PARTS; p++)
        if (d->owned[p]) parts[n++] = p;
    pthread_mutex_unlock(&d->mu);
    take_pending(d, parts, n);
    free(parts);
}

/* The service's thread, partitions assigned: their pending messages (left
 * by this member's last run, or by a member that died) are this member's. */
static void assigned(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct oh_dispatch *d = state;
    (void)c;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < MAX_PARTS) d->owned[parts[i]] = true;
    pthread_mutex_unlock(&d->mu);
    if (d->rescan)
        rescan(d); /* the partitions held before as well */
    else
        take_pending(d, parts, n);
}

/* The service's thread, partitions revoked: their queued jobs are dropped
 * (they stay in the store for the next holder) and the ones being sent are
 * waited for, so that the next holder never sends what this one is sending. */
static void revoked(void *state, oh_log_consumer *c, const int32_t *parts, int n)
{
    struct oh_dispatch *d = state;
    (void)c;
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < n; i++)
        if (parts[i] >= 0 && parts[i] < MAX_PARTS) d->owned[parts[i]] = false;
    unpark_all(d); /* so unhold gives none back below */
    size_t kept = 0;
    for (size_t i = 0; i < d->queued; i++) {
        struct job *j = d->jobs[i];
        if (owns(d, j->partition)) {
            d->jobs[kept++] = j;
            continue;
        }
        unhold(d, j);
        free_job(j);
    }
    d->queued = kept;
    for (size_t i = kept / 2; i-- > 0;)
        sift_down(d, i);
    depth(d);
    for (;;) {
        bool busy = false;
        for (int i = 0; i < n && !busy; i++)
            busy = parts[i] >= 0 && parts[i] < MAX_PARTS && d->inflight[parts[i]] > 0;
        if (!busy || atomic_load(&d->hub->stopping)) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&d->drained, &d->mu, &ts);
    }
    pthread_mutex_unlock(&d->mu);
}

/* The service's thread: a batch is committed once each of its jobs is
 * remembered in the store. */
static int process(void *state, struct oh_service_batch *b, const struct oh_log_record *recs, int n)
{
    struct oh_dispatch *d = state;
    (void)b;
    if (d->rescan) rescan(d);
    json_t *seen = json_object();
    if (!seen) return OH_ECLOSED; /* out of memory: the batch is read again */
    struct job **jobs = NULL;
    size_t njobs = 0, cap = 0;
    bool kept = true;
    for (int i = 0; i < n; i++) {
        struct job *j = consider(d, &recs[i], seen);
        if (j && oh_grow(&jobs, &cap, njobs + 1, sizeof *jobs, 16) == OH_OK) {
            jobs[njobs++] = j;
        } else if (j) { /* out of memory: this one alone */
            kept &= remember_all(d, &j, 1);
            enqueue(d, j, true);
        }
    }
    if (njobs) kept &= remember_all(d, jobs, njobs);
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < njobs; i++)
        enqueue_locked(d, jobs[i]);
    if (njobs) pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    free(jobs);
    json_decref(seen);
    /* committed once each job is remembered */
    return kept ? OH_OK : OH_ECLOSED;
}

static void tick(void *state)
{
    struct oh_dispatch *d = state;
    if (d->rescan) rescan(d);
}

static void free_jobs(struct oh_dispatch *d)
{
    unpark_all(d);
    for (size_t i = 0; i < d->queued; i++)
        free_job(d->jobs[i]);
    free(d->jobs);
    d->jobs = NULL;
    d->queued = d->capjobs = 0;
}

/* Call after hub->stopping is set; pending jobs stay in the store. */
static void stop(void *state)
{
    struct oh_dispatch *d = state;
    pthread_mutex_lock(&d->mu);
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nworkers; i++)
        pthread_join(d->workers[i], NULL);
    free_jobs(d);
    for (struct oh_map_node *n = d->lanes.first, *next; n; n = next) {
        next = n->next;
        struct lane *l = oh_map_entry(n, struct lane, node);
        free(l->seqs);
        free(l);
    }
    oh_map_clear(&d->lanes);
    for (struct grave *g = d->graves, *next; g; g = next) {
        next = g->next;
        free(g);
    }
    json_decref(d->held);
    free(d->workers);
    free(d);
}

static int init(oh_hub *hub, void **state, char *err, size_t errlen)
{
    struct oh_dispatch *d = calloc(1, sizeof *d);
    if (!d) {
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    d->hub = hub;
    d->max_attempts = (int)oh_config_int(hub->cfg, "dispatch.max_attempts");
    d->backoff_ms = oh_config_int(hub->cfg, "dispatch.backoff_ms");
    d->backoff_max_ms = oh_config_int(hub->cfg, "dispatch.backoff_max_ms");
    d->nworkers = (int)oh_config_int(hub->cfg, "dispatch.workers");
    if (d->max_attempts < 0) d->max_attempts = 0; /* 0: until it is taken */
    if (d->backoff_ms < 1) d->backoff_ms = 1;
    if (d->backoff_max_ms < d->backoff_ms) d->backoff_max_ms = d->backoff_ms;
    if (d->nworkers < 1 || d->nworkers > 64) d->nworkers = 4;
    d->graves_end = &d->graves;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->drained, NULL);
    oh_metrics_set("omnihub_dispatch_queue_depth", "", 0);
    /* pending messages are taken when their partitions are assigned */
    if (!(d->held = json_object()) ||
        !(d->workers = calloc((size_t)d->nworkers, sizeof *d->workers))) {
        json_decref(d->held);
        free(d);
        oh_errf(err, errlen, "out of memory");
        return OH_ENOMEM;
    }
    int started = 0;
    while (started < d->nworkers && !pthread_create(&d->workers[started], NULL, worker, d))
        pthread_setname_np(d->workers[started++], "oh-send");
    d->nworkers = started;
    *state = d;
    return OH_OK;
}

static bool wanted(const oh_hub *hub)
{
    return hub->run_dispatch;
}

const struct oh_service oh_service_dispatch = {
    .name = "dispatch",
    .group = OH_GROUP_DISPATCH,
    .topic = OH_TOPIC_TIMELINE,
    .batch = 256,
    .wanted = wanted,
    .init = init,
    .process = process,
    .tick = tick,
    .assigned = assigned,
    .revoked = revoked,
    .stop = stop,
    .lingers = true,
};
