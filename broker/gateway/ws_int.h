/* ws_int.h - shared by ws.c (the WebSocket protocol), ws_live.c (live
 * events to subscriptions) and ws_out.c (the outgoing side: frames, each
 * connection's queue, writes). Service thread unless marked otherwise. */
#ifndef OH_WS_INT_H
#define OH_WS_INT_H

#include "core/presence.h"
#include "gateway/gateway_int.h"

#define OUT_CHUNK 65536 /* bytes per lws_write and per queue chunk */

/* Outgoing bytes: whole WebSocket frames, framed here and written raw in
 * large slices (one lws_write per frame, each a send() and a poll() for
 * lws_send_pipe_choked(), was most of the daemon's share of a replay). */
struct outbuf {
    struct outbuf *next;
    size_t off, len, cap; /* written, queued, allocated */
    unsigned char data[];
};

struct sub;

struct wsconn {
    struct wsconn *next, *prev;
    struct oh_gateway *gw;
    struct lws *wsi; /* NULL once closed */
    atomic_bool left; /* closed: a held job stops waiting */
    int refs;
    struct oh_principal who;
    bool authed;
    struct sub *subs;
    int nsubs;
    struct outbuf *out, *out_last;
    size_t out_bytes; /* queued and not yet written */
    char *rx;
    size_t rx_len;
    bool rx_binary;
    int64_t last_rx_ms;
    int64_t ping_ms; /* last ping sent */
    bool want_ping;  /* send a ping at the next writable */
    double tokens;
    int64_t tokens_ms;
    bool expired;     /* told its token expired: closed once its jobs are done (gw_ws_tick) */
    int close_code;   /* non-zero: close at the next writable */
    bool close_flush; /* ... once the queue has been written */
    char close_reason[64];
    enum oh_presence_status presence; /* this agent connection's own (signals.c) */
    uint64_t mark;                    /* the last fan-out that reached it (ws_live.c) */
};

/* ---- ws_out.c ---- */

/* How long a flushed close may wait for its peer to read, and an expired
 * token's close for the answers of requests made in time (ws.c). */
#define GW_WS_CLOSE_FLUSH_S 10

/* A buffer for CAP bytes of frames; NULL when out of memory. Any thread. */
struct outbuf *gw_ws_outbuf_new(size_t cap);
/* Appends one unmasked text frame of the concatenated pieces to *BUF,
 * growing it (*BUF may move); false when out of memory. Any thread. */
bool gw_ws_frame_put(struct outbuf **buf, const char *a, size_t alen, const char *b, size_t blen,
                     const char *z, size_t zlen);
/* Whether LEN more bytes may be queued to C; closes C as a slow consumer
 * when they would pass ws.max_queue. */
bool gw_ws_queue_ok(struct wsconn *c, size_t len);
/* Puts M (frames; taken) at the end of C's queue; M's bytes are counted by
 * the caller in out_bytes. */
void gw_ws_queue_link(struct wsconn *c, struct outbuf *m);
/* Queues one text message made of the concatenated pieces. */
void gw_ws_send(struct wsconn *c, const char *a, size_t alen, const char *b, size_t blen,
                const char *z, size_t zlen);
/* Queues O (stolen) as a message; an error message. */
void gw_ws_send_json(struct wsconn *c, json_t *o);
void gw_ws_send_error(struct wsconn *c, const char *code, const char *msg);
/* Closes C with CODE and REASON from its next writable callback. */
void gw_ws_close(struct wsconn *c, int code, const char *reason);
/* The same once what is queued to C has been written (the error frame
 * that says why goes out first), within CLOSE_FLUSH_S: a peer that stops
 * reading is then dropped. Nothing more is queued meanwhile. */
void gw_ws_close_after(struct wsconn *c, int code, const char *reason);
void gw_ws_queue_free(struct wsconn *c);
/* The writable callback: a pending close or ping, then queued frames. */
int gw_ws_writable(struct wsconn *c);

/* ---- ws_live.c ---- */

/* A live event as the feed queued it (gw->live), for the service thread. */
struct live_item {
    struct live_item *next;
    char conv[OH_ID_MAX];
    int64_t seq;
    int64_t at_us; /* when materialized, for push latency */
    size_t len;
    /* what customers get instead (visibility.c), after the text's NUL:
     * ALT_LEN bytes when ALT */
    bool alt;
    size_t alt_len;
    char json[];
};

/* One subscription of a connection: to a conversation (in gw->subs) or to
 * "*" (gw->all_subs); ws.c makes, replays and ends it, ws_live.c delivers
 * to it. */
struct pend; /* a live event held back while S catches up (ws_live.c) */
struct sub {
    struct sub *next_conn; /* in its connection */
    struct sub *next_hash; /* in gw->subs / gw->all_subs */
    struct wsconn *c;
    char conv[OH_ID_MAX];
    bool all, live, dead, paused, page_busy, overflow;
    int64_t last;     /* highest seq written to the client */
    size_t row_bytes; /* per event in the last replay page */
    struct pend *pend, **pend_tail;
    size_t npend;
    bool resume, recovered; /* "*" with a cursor */
    int jobs;               /* jobs in flight that point here: a dead sub is freed at 0 */
    /* "*" only (OH_STORE_POS_MAX bytes, allocated for "*" alone: a
     * conversation's subscription, one per idle connection, has none): the
     * store position its catch-up has reached */
    char pos[];
};

/* The start of an event frame: {"type":"event","event":<event>} */
static const char event_pre[] = "{\"type\":\"event\",\"event\":";

/* The slot of CONV's subscriptions in gw->subs. */
unsigned gw_ws_slot_of(const char *conv);
/* Frees the live events held back for S. */
void gw_ws_pend_clear(struct sub *s);
/* IT to S: queued when S is live, else held back (bounded: past that S
 * reads its replay again). */
void gw_ws_deliver(struct sub *s, const struct live_item *it);
/* IT with what customers get instead appended; IT itself when they see it
 * whole, NULL when out of memory (IT freed). */
struct live_item *gw_ws_with_alt(struct live_item *it);
/* S's replay reached the store's head: what was held back goes out, and
 * S is live. */
void gw_ws_go_live(struct sub *s);
/* Events of S's conversation after AFTER up to UPTO were queued to S's
 * device (connectors that track delivery hear of it). */
void gw_ws_pushed(const struct sub *s, int64_t after, int64_t upto);

/* Calls FN once for each open connection watching CONV: subscribed
 * to it, or to "*" (ALL tells which); CONV NULL: the "*" subscribers only.
 * signals.c, below ws_live.c, reaches it through gw->ws_each_watcher. */
typedef void (*gw_ws_watcher_fn)(struct wsconn *c, bool all, void *opaque);
void gw_ws_each_watcher(struct oh_gateway *gw, const char *conv, gw_ws_watcher_fn fn, void *opaque);

/* ---- jobs: a client's request on its way through the pool ---- */

/* JOB_CHUNK: the first frames of a JOB_PAGE still being read, handed to
 * the service thread as each OUT_CHUNK fills (ws_work.c, page_frame) */
enum job_kind { JOB_SUBSCRIBE, JOB_PAGE, JOB_SEND, JOB_READ, JOB_CHANGES, JOB_CHUNK };

struct wsjob {
    struct wsjob *next;
    enum job_kind kind;
    struct wsconn *c;
    struct sub *sub;
    struct gw_job job; /* its step on the pool (ws.c, submit) */
    /* in */
    char conv[OH_ID_MAX];
    char epoch[64];
    bool has_epoch;
    bool recovered; /* out: the client's position is one of the current epoch */
    int64_t after, seq;
    json_t *body;
    char key[130];
    /* out */
    int status;
    char err[256];
    char cur_epoch[64];
    int64_t head;
    json_t *event;
    /* a replay page, framed on the worker: event frames in PAGE */
    struct outbuf *page;
    int64_t *seqs; /* of each frame, ascending */
    size_t *offs;  /* where each frame starts in PAGE */
    int nrows;
    int sent;             /* rows handed over in chunks; JOB_CHUNK: its first row */
    size_t sent_bytes;    /* their bytes */
    struct wsjob *parent; /* JOB_CHUNK: the page it is of (its seqs, offs) */
    bool more;            /* the page stopped short of the end */
    size_t budget;
    int limit;  /* rows asked for */
    int expect; /* rows likely to come, for the page's first allocation */
    /* JOB_CHANGES: conversation frames in PAGE, from POS to NEXT_POS */
    char pos[OH_STORE_POS_MAX], next_pos[OH_STORE_POS_MAX];
};

/* ws_work.c, run on the pool's workers: each completes its job with
 * gw_ws_job_done(), which hands it back to the service thread (ws.c,
 * drain_jobs). OPAQUE is the struct wsjob. */
void gw_ws_subscribe_work(void *opaque); /* head, epoch and the first page */
void gw_ws_page_work(void *opaque);      /* the next replay page */
void gw_ws_changes_work(void *opaque);   /* a batch of "*"'s catch-up */
void gw_ws_send_work(void *opaque);      /* a client's message, made durable */
void gw_ws_read_work(void *opaque);      /* a read cursor */
void gw_ws_job_done(struct wsjob *j);

/* ---- signals.c (never stored) ---- */

/* Client messages "typing" and "presence". */
void gw_signal_typing(struct wsconn *c, json_t *msg);
void gw_signal_presence(struct wsconn *c, json_t *msg);
/* C was established / closed: an agent is known, a closing connection
 * counts as offline for its device. */
void gw_signal_connected(struct wsconn *c);
void gw_signal_closed(struct wsconn *c);

/* ws.c: C's queue fell to half of ws.max_queue; paused replays go on. */
/* Reached from ws_out.c through gw->ws_drained. */
void gw_ws_drained(struct wsconn *c);

#endif
