/* conversation.c - the conversation object of the desk's API (CONTRACT
 * part 2): the part 1 fields, the state, the last message and, for an agent,
 * the unread count. One builder for the list, GET one and the answers to
 * changes, so they never disagree. The builder is pure; gw_unread reads the
 * store (a worker). Also the requests' waits for sync, which hold no worker. */
#include <poll.h> /* POLLRDHUP: _GNU_SOURCE, meson.build */
#include <string.h>
#include "core/metrics.h"
#include "gateway/gateway_int.h"

#define FRESH_WINDOW_MS 10000 /* appended this long ago: sync may still be storing it */
#define FRESH_WAIT_MS   3000  /* how long a request waits for a new conversation, at most */
#define FRESH_POLL_MS   5
#define SETTLE_WAIT_MS  1000  /* read your writes: how long a read waits for sync, at most */

static json_t *string_or_null(const char *s)
{
    return *s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (!ms) return json_null();
    oh_time_rfc3339(t, ms);
    return json_string(t);
}

json_t *gw_conversation_json(const struct oh_conversation *c, int64_t unread)
{
    json_error_t e;
    json_t *labels = json_loads(c->labels, 0, &e);
    if (!json_is_array(labels)) {
        json_decref(labels);
        labels = json_array();
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:{s:s, s:s}, s:I, s:o, s:o, s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:I}",
        "conversation_id", c->id, "channel", c->channel, "account", c->account, "contact", "id",
        c->contact_id, "name", c->contact_name, "head", (json_int_t)c->head, "created_at",
        time_or_null(c->created_ms), "updated_at", time_or_null(c->updated_ms), "status",
        c->status[0] ? c->status : "open", "assignee", string_or_null(c->assignee), "team",
        string_or_null(c->team), "priority", c->priority[0] ? c->priority : "normal", "labels",
        labels, "contact_id", string_or_null(c->contact_ref[0] ? c->contact_ref : c->contact_id),
        "snoozed_until", time_or_null(c->snoozed_until_ms), "episode",
        (json_int_t)(c->episode ? c->episode : 1));
    if (!o) return NULL;
    if (c->last_inbound_ms)
        json_object_set_new(o, "last_inbound_at", time_or_null(c->last_inbound_ms));
    if (c->last_seq)
        json_object_set_new(o, "last_message",
                            json_pack("{s:I, s:s, s:s, s:s, s:o}", "seq", (json_int_t)c->last_seq,
                                      "direction", c->last_direction, "kind", c->last_kind, "text",
                                      c->last_text, "time", time_or_null(c->last_ms)));
    else
        json_object_set_new(o, "last_message", json_null());
    if (unread >= 0) json_object_set_new(o, "unread", json_integer(unread));
    return o;
}

void gw_conversation_for_customer(json_t *o)
{
    /* the desk's state travels in conversation.updated events, which are
     * internal: a customer sees none of it but whether it is resolved */
    static const char *const internal[] = {"assignee",      "team",    "priority", "labels",
                                           "contact_id",    "episode", "sla",      "unread",
                                           "snoozed_until", NULL};
    for (const char *const *k = internal; *k; k++)
        json_object_del(o, *k);
    const char *status = json_string_value(json_object_get(o, "status"));
    bool resolved = status && strcmp(status, "resolved") == 0;
    json_object_set_new(o, "status", json_string(resolved ? "resolved" : "open"));
}

json_t *gw_conversation_sla(oh_store *st, const char *conv)
{
    char buf[8192];
    return gw_sla_json(oh_store_kv_get(st, "sla", conv, buf, sizeof buf) == OH_OK ? buf : NULL);
}

json_t *gw_sla_json(const char *value)
{
    json_t *doc = value ? json_loads(value, 0, NULL) : NULL;
    json_t *sla = json_object_get(doc, "sla");
    sla = json_is_object(sla) ? json_incref(sla)
                              : json_pack("{s:n, s:n, s:[]}", "first_response_due",
                                          "next_response_due", "breached");
    json_decref(doc);
    return sla;
}

static int max_cursor(void *opaque, const char *device, int64_t seq)
{
    int64_t *max = opaque;
    if (seq > *max) *max = seq;
    return 0;
}

/* Counts JOB in or out of omnihub_gateway_sync_waits. */
static void count_wait(struct oh_gateway *gw, struct gw_job *job, bool waiting)
{
    if (job->waiting == waiting) return;
    job->waiting = waiting;
    pthread_mutex_lock(&gw->mu);
    gw->sync_waits += waiting ? 1 : -1;
    oh_metrics_set("omnihub_gateway_sync_waits", "", gw->sync_waits);
    pthread_mutex_unlock(&gw->mu);
}

void gw_wait_over(struct oh_gateway *gw, struct gw_job *job)
{
    count_wait(gw, job, false);
}

/* Whether JOB's client went away. A WebSocket's close is seen by lws; an
 * HTTP client's is not while its request is in progress (lws does not read
 * then), so its socket is asked whether the peer has shut down: as for
 * nginx's 499, a client that stops sending before it has its answer has
 * left. Asked from a worker: should the service thread have closed the
 * socket meanwhile, the flag was set first, and a descriptor reused since
 * can only make a client that left look present or gone, both true. */
static bool client_left(const struct gw_job *job)
{
    if (job->left && atomic_load(job->left)) return true;
    struct pollfd p = {.fd = job->fd, .events = POLLRDHUP};
    return job->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Queues JOB again on the pool FRESH_POLL_MS from now, unless its wait,
 * begun at *SINCE_MS (0: it begins now), has lasted LIMIT_MS; false then,
 * when its client went away (nobody reads the answer), or when the pool is
 * closing. */
static bool again(struct oh_gateway *gw, struct gw_job *job, int64_t *since_ms, int limit_ms)
{
    int64_t now = oh_mono_ms();
    if (!*since_ms)
        *since_ms = now;
    else if (now - *since_ms >= limit_ms)
        return false;
    /* counted before it is queued: once queued, another worker may run it,
     * answer, and the request (JOB within it) be freed before this returns */
    bool wait = !client_left(job);
    count_wait(gw, job, wait);
    if (wait && oh_workq_submit_after(gw->work, FRESH_POLL_MS, job->fn, job->arg) == OH_OK)
        return true;
    count_wait(gw, job, false);
    return false;
}

int gw_conversation_later(struct oh_gateway *gw, const char *id, struct oh_conversation *c,
                          struct gw_job *job)
{
    int rc = oh_store_conversation_get(gw->hub->store, id, c);
    /* a read that waited for sync first (gw_settle_later) has spent that
     * time of its 3 s already */
    if (!job->fresh_since_ms) job->fresh_since_ms = job->settle_since_ms;
    if (rc == OH_ENOTFOUND && oh_hub_appended_lately(id, FRESH_WINDOW_MS) &&
        !atomic_load(&gw->hub->stopping) && again(gw, job, &job->fresh_since_ms, FRESH_WAIT_MS))
        return GW_LATER;
    count_wait(gw, job, false);
    return rc;
}

/* True once sync's stored position on PART has passed OFF, or when it
 * cannot be read (the caller then reads what there is). Read before the
 * conversation: read the other way round, a store that moved in between
 * would answer with the older row. */
static bool sync_past(oh_store *st, int32_t part, int64_t off)
{
    int64_t next = 0, published;
    return oh_store_position_get(st, OH_GROUP_SYNC, OH_TOPIC_EVENTS, part, &next, &published) !=
               OH_OK ||
           next > off;
}

bool gw_settle_later(struct oh_gateway *gw, const char *id, struct gw_job *job)
{
    int32_t part;
    int64_t off;
    if (oh_hub_appended_at(id, FRESH_WINDOW_MS, &part, &off) &&
        !sync_past(gw->hub->store, part, off) && !atomic_load(&gw->hub->stopping) &&
        again(gw, job, &job->settle_since_ms, SETTLE_WAIT_MS))
        return true;
    count_wait(gw, job, false); /* serve what is stored */
    return false;
}

/* Events after the agent's read cursor (of any device); -1 for a customer
 * (the field is an agent's) or when the cursors cannot be read. */
int64_t gw_unread(struct req *r, const struct oh_conversation *c)
{
    int64_t read = 0;
    if (r->who.role == OH_ROLE_CUSTOMER ||
        oh_store_cursors(r->gw->hub->store, c->id, oh_auth_role_name(r->who.role), r->who.sub,
                         max_cursor, &read))
        return -1;
    return c->head > read ? c->head - read : 0;
}
