/* gateway_int.h - shared by gateway.c (HTTP plumbing), http_api.c (the
 * REST API) and ws.c (the WebSocket protocol). Everything here runs on the
 * service thread unless marked otherwise. */
#ifndef OH_GATEWAY_INT_H
#define OH_GATEWAY_INT_H

#include <libwebsockets.h>
#include <pthread.h>
#include "core/auth.h"
#include "core/hub_int.h"
#include "core/connector.h"
#include "gateway/gateway.h"
#include "core/workq.h"

#define GW_MAX_HDRS     24
#define GW_TYPING_SLOTS 1024  /* signals.c: typing rate windows */
#define GW_MAX_AGENTS   10000 /* agents the presence directory remembers */
/* The largest request head the gateway reads (request line and header
 * block, in bytes), and the most header lines and query parameters
 * together: over them it answers 431 (414 for the request line), from
 * http_guard.c. A bearer token of 4 KB fits, which auth.c answers 401. */
#define GW_HEAD_MAX    8192
#define GW_HEAD_FIELDS 88
/* lws's header buffer per request (max_http_header_data). lws 4.1.6 closes
 * the connection of a head that overflows it, or its 95 fragments, with no
 * callback in which to answer; every head within the limits above fits:
 * lws stores a head's bytes less its line ends, plus at most 9 bytes per
 * line (a speculative 8-byte record while it reads a name) and a NUL per
 * query parameter (lib/roles/http/parsers.c, lws_parse). */
#define GW_HEADER_SPACE (GW_HEAD_MAX + 9 * (GW_HEAD_FIELDS + 2) + GW_HEAD_FIELDS + 256)

struct req;
typedef void (*gw_after_fn)(struct req *r);

/* What a request's step on the pool is (gw_async, ws.c's submit): a step
 * that waits for sync queues it again a little later and returns, so the
 * wait holds no worker (conversation.c). The times are when each wait
 * began, 0 until it does. */
struct gw_job {
    oh_work_fn fn;
    void *arg;
    const atomic_bool *left; /* the owner's: set when its client went away */
    int fd;                  /* an HTTP request's socket, else -1 (conversation.c) */
    int64_t settle_since_ms; /* gw_settle_later */
    int64_t fresh_since_ms;  /* gw_conversation_later */
    bool waiting;            /* counted in omnihub_gateway_sync_waits */
};
/* gw_conversation_later, gw_build_message: the step was queued again; the
 * caller returns at once, without answering. */
#define GW_LATER 1

/* One HTTP request. It may outlive its connection: async work holds a
 * reference, and wsi becomes NULL when the client goes away. */
struct req {
    struct oh_gateway *gw;
    struct lws *wsi;
    atomic_bool left; /* its client went away (a held job stops waiting) */
    int refs;
    struct req *next_done; /* completion list */
    char method[8];
    char path[512];
    char query[GW_HEAD_MAX]; /* the whole request line fits (kb search questions) */
    const char *hdr_name[GW_MAX_HDRS];
    char *hdr_val[GW_MAX_HDRS];
    int nhdr;
    char *body;
    size_t body_len;
    bool too_big;
    bool has_auth;
    struct oh_principal who;
    /* the answer */
    int status;
    char ctype[64];
    char *resp;
    size_t resp_len;
    int retry_after;
    bool ready;        /* answer complete, waiting for writable */
    bool close_after;  /* drop the connection once answered */
    gw_after_fn after; /* runs on the service thread when async work is done */
    struct gw_job job; /* the async work (gw_async) */
    /* request-specific state of an async handler */
    void *state;
    void (*state_free)(void *state);
    int64_t started_us;
    char channel[64];
    /* the metrics' route label: a pattern, never the path itself, so the
     * label's values stay few ("/v1/conversations/{id}/events", "other") */
    char route[96];
    bool admin; /* arrived on http.admin_listen */
};

struct wsconn;
struct wsjob;
struct ev_loop;
struct sub;
struct live_item;

struct oh_gateway {
    oh_hub *hub;
    struct lws_context *ctx;
    struct ev_loop *loop; /* the service thread's libev loop (epoll), lws's "foreign" loop */
    void *foreign_loops[1];
    oh_workq *work;
    int sync_waits; /* jobs waiting for sync (conversation.c), under mu */
    oh_auth *auth; /* bearer token verifier (auth.*) */
    /* Calls up the layers, set by oh_gateway_new(): the REST routes and the
     * outgoing queues reach the WebSocket layer only through these. */
    void (*read_fanout)(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                        int64_t seq);
    void (*ws_drained)(struct wsconn *c);
    /* desk_api.c answers a decided contact command through this
     * (gw_contact_reply of contacts_api.c, which sits above it) */
    void (*contact_reply)(struct req *r, const char *id);
    /* signals.c reaches the subscriptions through this (gw_ws_each_watcher) */
    void (*ws_each_watcher)(struct oh_gateway *gw, const char *conv,
                            void (*fn)(struct wsconn *c, bool all, void *opaque), void *opaque);
    /* and a read cursor's fan-out on this gateway through this
     * (gw_ws_read_fanout) */
    void (*ws_read_fanout)(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                           int64_t seq);
    size_t max_body;
    size_t max_page; /* http.max_page: bytes of events in a history page */
    volatile int stop;
    pthread_mutex_t mu; /* guards done, live, ws_done, wake_pending, attach */
    /* start-up (oh_gateway_attach): the start-up thread asks, the service
     * thread attaches (DONE or FAILED) and signals ATTACHED; CLOSED when
     * the loop ended first. READY: oh_gateway_ready() was called. */
    enum {
        GW_ATTACH_IDLE,
        GW_ATTACH_ASKED,
        GW_ATTACH_DONE,
        GW_ATTACH_FAILED,
        GW_ATTACH_CLOSED
    } attach;
    pthread_cond_t attached;
    atomic_bool ready;
    bool wake_pending;                   /* a wake-up of the service thread is on its way */
    struct req *done;                    /* completed async requests */
    struct live_item *live, **live_tail; /* events from the feed */
    size_t live_len;
    struct wsconn *conns;   /* every WebSocket connection */
    struct wsjob *ws_done;  /* finished WebSocket work, guarded by mu */
    struct sub *subs[4096]; /* live subscriptions by conversation hash */
    struct sub *all_subs;   /* agents' "*" subscriptions */
    char *header_names[64]; /* lower-case names connectors read */
    int nheader_names;
    struct lws_http_mount mount;  /* /app/: http.static_dir */
    struct lws_http_mount wmount; /* /workspace/: http.workspace_dir */
    struct lws_vhost *admin_vh; /* http.admin_listen's, or NULL */
    lws_retry_bo_t retry;
    int64_t started_ms;
    /* ws settings */
    size_t ws_max_frame, ws_max_queue;
    int ws_rate, ws_ping, ws_idle;
    struct gw_desk *desk; /* desk_api.c: requests waiting for a command's outcome */
    struct gw_kb *kb;     /* kb_api.c: index rebuilds */
    oh_workq *ai;         /* suggest_api.c: LLM calls (ai.llm_url), NULL without */
    atomic_int ai_pending; /* LLM calls queued or running */
    /* http.rate_limit and http.rate_limit_token buckets; NULL = off */
    struct oh_ratelimit *rl_ip, *rl_token;
    /* signals.c: the agents known here and their presence (also
     * hub->presence), the last typing signal of each sender and
     * conversation, the fan-out counter of wsconn.mark */
    struct oh_presence *presence;
    struct gw_typing_slot {
        uint64_t key;
        int64_t ms;     /* when the last one was forwarded */
        bool last_stop; /* what it said */
        /* a later state held back by the window, forwarded when it ends
         * if it differs (signals.c); NULL none */
        struct gw_typing_held *held;
    } typing[GW_TYPING_SLOTS];
    uint64_t mark;
    /* signals.c: sharing signals with the other gateways (Kafka): on, the
     * presence refresh period and when it last ran, and the signals heard
     * from them waiting for the service thread (guarded by mu) */
    bool share;
    int64_t refresh_ms, refreshed_ms;
    struct gw_sig *sig_in, **sig_tail;
    size_t sig_len;
};

/* The contract's error code for an HTTP status ("not_found" for 404 ...;
 * "bad_request" for anything unlisted). */
const char *gw_error_code(int status);
/* Drops one reference to R; the last frees it (service thread). */
void gw_req_release(struct req *r);
/* Answers (service thread). Body strings are copied; json is stolen. */
void gw_reply(struct req *r, int status, const char *ctype, const char *body, size_t len);
/* Same as gw_reply, taking ownership of BUF (malloc'd): LWS_PRE bytes, then
 * the LEN bytes of the body, then at least one more byte. */
void gw_reply_take(struct req *r, int status, const char *ctype, char *buf, size_t len);
void gw_reply_json(struct req *r, int status, json_t *obj);
void gw_reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The request's own state: SIZE zeroed bytes, freed with STATE_FREE when
 * the request is released; NULL (answered 500) when memory ran out. */
void *gw_state_new(struct req *r, size_t size, void (*state_free)(void *));
/* A store failure RC: 500 when memory ran out, else 503 (retry later). */
void gw_reply_store_error(struct req *r, int rc);
/* Same, from any thread, then hands the request back to the service
 * thread; releases the async reference. */
void gw_complete(struct req *r);
/* With mu held: true when the caller must lws_cancel_service(). */
bool gw_wake_locked(struct oh_gateway *gw);
/* Takes a reference for async work and runs FN on the work queue (R->job). */
int gw_async(struct req *r, oh_work_fn fn);

/* Authenticates the bearer token (header or ?access_token=); false after
 * answering 401. */
bool gw_authenticate(struct req *r);

/* Channels the gateway serves itself (connector.h: customer_conversation
 * and the hooks). Any thread. */
/* The conversation customer SUB owns, from the first connector that
 * declares customer-owned conversations; CHANNEL (may be NULL) gets that
 * connector's name. 0, or OH_ENOTFOUND when there is none. */
int gw_customer_conversation(struct oh_gateway *gw, const char *sub, struct oh_owned *out,
                             const char **channel);
/* Fills WHO->owns (customers; "" for agents and when nothing is owned). */
void gw_principal_owns(struct oh_gateway *gw, struct oh_principal *who);
/* Events of CONV with AFTER < seq <= UPTO were queued to a customer's
 * device: tells every connector with on_pushed. Service thread. */
void gw_notify_pushed(struct oh_gateway *gw, const char *conv, int64_t after, int64_t upto);
/* A read cursor of ROLE in CONV was stored at SEQ: tells every connector
 * with on_read. Worker thread. */
void gw_notify_read(struct oh_gateway *gw, const char *conv, enum oh_role role, int64_t seq);
/* Copies query parameter NAME; false when absent, and when its value is
 * over LEN - 1 bytes: a route that must not take such a parameter for an
 * absent one asks gw_query_has() too and refuses it (400). */
bool gw_query(const struct req *r, const char *name, char *out, size_t len);
/* Whether parameter NAME is in R's query at all (with or without a value). */
bool gw_query_has(const struct req *r, const char *name);
/* Each of the N parameters NAMES is in R's query at most once (a repeated
 * one has no single value: first-wins would hide the client's mistake);
 * with ONLY, no other parameter is there either. False after answering 400. */
bool gw_query_once(struct req *r, const char *const *names, size_t n, bool only);
const char *gw_header(const struct req *r, const char *lname);

/* http_pipeline.c: lws 4.1.6 cannot read the body of a request it took
 * from the bytes it stashed with an earlier request of the connection.
 * gw_pipeline_mark() notes where the socket's reading stands once a
 * request is answered (body read); gw_pipeline_stashed() tells whether the
 * request being announced came from that stash (nothing read since). */
void gw_pipeline_mark(struct lws *wsi);
bool gw_pipeline_stashed(struct lws *wsi);
/* The bytes lws has read from the socket of WSI (a count that only grows
 * while the connection lives), or -1 when the kernel does not say. */
long long gw_socket_bytes_read(struct lws *wsi);
/* http_guard.c: request heads lws 4.1.6 drops without an answer ("%00" in
 * the target, a head over GW_HEAD_MAX or GW_HEAD_FIELDS), seen before lws
 * reads them. gw_guard_open() starts watching a new HTTP connection
 * (LWS_CALLBACK_HTTP_BIND_PROTOCOL); gw_guard_verdict() is called once per
 * LWS_CALLBACK_HTTP and returns 0, the status to answer (reason in WHY) or
 * -1 (close); gw_guard_dropped() answers from
 * LWS_CALLBACK_HTTP_DROP_PROTOCOL when lws closes on the bad head
 * (REQUEST_OPEN: an earlier request is still unanswered); gw_guard_resume()
 * restarts a watcher paused while lws did not read (ANSWERED: after
 * lws_http_transaction_completed(), lws reads the next head); gw_guard_stop() (no
 * longer HTTP, closing) and gw_guard_free() (LWS_CALLBACK_WSI_DESTROY). */
void gw_guard_open(struct oh_gateway *gw, struct lws *wsi);
int gw_guard_verdict(struct lws *wsi, char *why, size_t whylen);
void gw_guard_dropped(struct lws *wsi, bool request_open, const char *caller);
void gw_guard_resume(struct lws *wsi, bool answered);
/* At LWS_CALLBACK_ESTABLISHED: the watcher goes on following the client's
 * frames (RFC 6455 5.1 wants a frame without a mask refused; lws 4.1.6
 * does not check); gw_guard_unmasked() says when one was seen: the
 * connection is then closed with 1002 (the guard asks for a writable
 * callback to get there). */
void gw_guard_websocket(struct lws *wsi);
bool gw_guard_unmasked(struct lws *wsi);
void gw_guard_stop(struct lws *wsi);
void gw_guard_free(struct lws *wsi);
/* The connection's word for http_pipeline.c, or NULL (no guard). */
uintptr_t *gw_guard_pipeline_mark(struct lws *wsi);
/* gw_socket_bytes_read() in one system call while the guard's scanner is
 * ahead of lws on WSI (scanned less the SO_PEEK_OFF offset), else by it. */
long long gw_guard_bytes_read(struct lws *wsi);
/* http_hygiene.c: RFC 9110/9112 rules lws 4.1.6 does not apply.
 * gw_hygiene_check() reads the parsed header block of WSI's request and
 * returns 0, or the status to answer (400, 411) with a reason in WHY: NUL
 * in a header, whitespace before a colon, a missing or repeated Host, a
 * repeated header the daemon relies on (Authorization, Content-Length,
 * Transfer-Encoding, connectors' signature headers), a body-bearing method
 * without a length. */
int gw_hygiene_check(const struct oh_gateway *gw, struct lws *wsi, char *why, size_t whylen);
/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: makes lws ignore "Upgrade: h2c". */
void gw_hygiene_ignore_h2c(char *upgrade);

/* Routes of http_api.c: true when it took the request. */
bool gw_api_route(struct req *r);

/* ws.c */
/* Answers a refused WebSocket upgrade with a plain HTTP/1.1 status and a
 * JSON error (lws's own status pages say HTTP/1.0, which WebSocket clients
 * reject); returns -1 for the callback to close the connection. */
int gw_refuse_upgrade(struct lws *wsi, int status, const char *code, const char *msg,
                      int retry_after);
/* The bearer token of an upgrade request (Authorization or ?access_token=). */
int gw_ws_token(struct lws *wsi, char *out, size_t len);
int gw_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len);
void gw_ws_deliver_live(struct oh_gateway *gw);
void gw_ws_tick(struct oh_gateway *gw);
/* The daemon stops: every open connection is closed with 1001 (going
 * away) once what is queued to it is written. True while any is open. */
bool gw_ws_bye(struct oh_gateway *gw);
void gw_ws_free_all(struct oh_gateway *gw);
/* Parses one client message: a JSON object with a string "type". Pure (the
 * fuzzers call it). Returns the object, which the caller releases, and its
 * type in *TYPE (borrowed from it); NULL with a reason in *WHY. */
json_t *gw_ws_parse(const char *buf, size_t len, const char **type, const char **why);

/* ws_live.c */
/* The hub's live feed: a copy of the event queued for the service thread.
 * Runs on the thread that materialized it. */
void gw_ws_feed(void *opaque, const char *conv, int64_t seq, const char *json, size_t len);
/* Tells WHO's other connected devices (same role and sub) that may see
 * CONV about a read cursor. The REST read route reaches it through
 * gw->read_fanout. */
void gw_ws_read_fanout(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                       int64_t seq);

/* signals.c: a customer's read cursor of CONV was stored at SEQ: the
 * agents watching CONV (subscribed to it or to "*") are told. */
void gw_signal_read(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                    int64_t seq);
/* signals.c: WHO's read cursor of CONV was stored at SEQ: gw_ws_read_fanout
 * here, and the same on every other gateway (gw->read_fanout). */
void gw_signal_read_fanout(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                           int64_t seq);
/* signals.c: sharing with the other gateways when the log is Kafka and
 * this process is a gateway (sets hub->origin and hub->signal_in); its
 * tick (every second: the presence refresh), the drain of what they said
 * (on a wake-up), the farewell (before the log closes) and the free. */
void gw_signals_init(struct oh_gateway *gw);
void gw_signals_tick(struct oh_gateway *gw);
void gw_signals_drain(struct oh_gateway *gw);
void gw_signals_bye(struct oh_gateway *gw);
void gw_signals_free(struct oh_gateway *gw);

/* kb_api.c: /v1/kb/..., /v1/canned..., /v1/conversations/{id}/suggestions,
 * /v1/reports/bot; true when it took the request. Init/drain/free as the
 * desk's (free after the work queue drained). */
bool gw_kb_route(struct req *r);
int gw_kb_init(struct oh_gateway *gw, char *err, size_t errlen);
void gw_kb_drain(struct oh_gateway *gw);
void gw_kb_free(struct oh_gateway *gw);

/* agents_api.c: GET /v1/agents; true when it took the request. */
bool gw_agents_route(struct req *r);
/* kpi_api.c: GET /v1/reports/kpis. */
bool gw_kpi_route(struct req *r);

/* contacts_api.c: /v1/contacts...; true when it took the request.
 * gw_contact_reply answers R with contact ID's object (a worker) and
 * completes it. */
bool gw_contacts_route(struct req *r);
void gw_contact_reply(struct req *r, const char *id);

/* desk_api.c: PATCH /v1/conversations/{id} and POST .../claim (agents),
 * answered once sync decided the command; gw_desk_tick (service thread,
 * each second) polls the outcomes nobody notified. Init sets the hub's
 * outcomes listener; free (after sync stopped and the work queue drained)
 * answers whoever still waits. */
void gw_desk_patch(struct req *r, const char *conv);
/* A contact command OP ("merge", "unmerge", "erase") on CONTACT with DATA
 * (the checked body; taken), answered with the contact once decided. */
void gw_desk_contact(struct req *r, const char *contact, const char *op, json_t *data);
void gw_desk_claim(struct req *r, const char *conv);
void gw_desk_tick(struct oh_gateway *gw);
int gw_desk_init(struct oh_gateway *gw);
void gw_desk_free(struct oh_gateway *gw);
/* conversation.c: the conversation object of the API (list, GET one,
 * answers to changes). UNREAD < 0 leaves "unread" out. Pure. */
json_t *gw_conversation_json(const struct oh_conversation *c, int64_t unread);
/* conversation.c: O (a conversation object) as its customer may see it:
 * the desk's internal state removed, the status only resolved or open (as
 * in their history). */
void gw_conversation_for_customer(json_t *o);
/* conversation.c: conversation ID from the store, or a wait for it without
 * a worker. Not there yet but appended by this process lately (the client
 * holds the 202 of its first event; sync has not stored it): queues JOB
 * again on the pool 5 ms later and returns GW_LATER, for up to 3 s from
 * JOB->fresh_since_ms (then OH_ENOTFOUND). Otherwise OH_OK or the store's
 * error. On a worker. */
int gw_conversation_later(struct oh_gateway *gw, const char *id, struct oh_conversation *c,
                          struct gw_job *job);
/* conversation.c: read your writes without holding a worker. When a
 * client's request through this process appended to ID lately and sync has
 * not stored past that append yet (its position in the store), queues JOB
 * again on the pool 5 ms later and returns true: the caller returns and
 * reads when the job runs again. After 1 s from JOB->settle_since_ms (a
 * stalled sync) it returns false and the read is served as is. So a GET or
 * a history page right after a 202 shows the event, and waiting reads leave
 * the pool to the others. On a worker. */
bool gw_settle_later(struct oh_gateway *gw, const char *id, struct gw_job *job);
/* JOB waits no longer (it is answered without looking again): out of
 * omnihub_gateway_sync_waits if it was counted. */
void gw_wait_over(struct oh_gateway *gw, struct gw_job *job);
/* conversation.c: events of C after the caller's read cursor (any device), -1
 * for a customer; on a worker (reads the store). */
int64_t gw_unread(struct req *r, const struct oh_conversation *c);
/* The sla object of CONV (CONTRACT part 2) as the SLA service saved it
 * (services/sla.c; none yet: no deadline, nothing breached). Reads the
 * store (a worker). New reference. */
json_t *gw_conversation_sla(oh_store *st, const char *conv);
/* The same from the SLA service's stored document VALUE (NULL: none). */
json_t *gw_sla_json(const char *value);

/* compose.c: the event a client or agent sends (REST or WebSocket): checks
 * and normalizes the body, builds the event from the conversation, and
 * refuses a client_msg_id the same author used for another body (409).
 * Runs on a worker (store lookups) as JOB. Returns 0 and the event (the
 * caller owns it), an HTTP status with a message in ERR, or GW_LATER when
 * the conversation is not stored yet (gw_conversation_later: JOB runs the
 * whole build again). */
int gw_build_message(struct oh_gateway *gw, const struct oh_principal *who, const char *conv,
                     const json_t *body, struct gw_job *job, json_t **out, char *err,
                     size_t errlen);
/* The send of EVENT (built by gw_build_message) failed before it was
 * durable: its client_msg_id may carry another body again. Any thread. */
void gw_message_forget(const json_t *event);
/* Counts a sent message (REST or WebSocket) in omnihub_ingest_total under
 * its conversation's channel, like a webhook's events: accepted once
 * durable, failed when ERR. Any thread. */
void gw_message_count(const json_t *event, int err);

#endif
