/* ws_int.h - shared by ws.c (the WebSocket protocol) and ws_out.c (its
 * outgoing side: frames, each connection's queue, writes). Service thread
 * unless marked otherwise. */
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
    int close_code; /* non-zero: close at the next writable */
    char close_reason[64];
    enum oh_presence_status presence; /* this agent connection's own (signals.c) */
    uint64_t mark;                    /* the last fan-out that reached it (ws.c) */
};

/* ---- ws_out.c ---- */

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
void gw_ws_queue_free(struct wsconn *c);
/* The writable callback: a pending close or ping, then queued frames. */
int gw_ws_writable(struct wsconn *c);

/* ws.c: calls FN once for each open connection watching CONV: subscribed
 * to it, or to "*" (ALL tells which); CONV NULL: the "*" subscribers only.
 * signals.c, below ws.c, reaches it through gw->ws_each_watcher. */
typedef void (*gw_ws_watcher_fn)(struct wsconn *c, bool all, void *opaque);
void gw_ws_each_watcher(struct oh_gateway *gw, const char *conv, gw_ws_watcher_fn fn, void *opaque);

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
