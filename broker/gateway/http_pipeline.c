/* http_pipeline.c - which pipelined HTTP/1.1 requests libwebsockets 4.1.6
 * can read. It cannot read the body of a request whose header block it
 * takes from its own stash of already-received bytes (the "buflist"): the
 * loop at the end of lws_http_action() hands the stashed header bytes back
 * as the body and, once that "body" is complete, calls
 * LWS_CALLBACK_HTTP_BODY_COMPLETION forever without consuming anything
 * (the service thread spins and nothing else is served).
 *
 * lws only stashes bytes that came with an earlier request of the same
 * connection, and reads the socket again only once the stash is empty. So a
 * request was taken from the stash exactly when lws has read nothing from
 * the socket since the previous request was answered (after its body was
 * read). What the application has read of a TCP socket is the bytes the
 * kernel received minus those still queued for reading, which two ioctls
 * and a getsockopt tell without touching the data; while the head guard
 * (http_guard.c) peeks ahead of lws, it is what the guard scanned less its
 * peek offset, one getsockopt (gw_guard_bytes_read()). */
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include "gateway/gateway_int.h"

void gw_pipeline_mark(struct lws *wsi)
{
    long long n = gw_guard_bytes_read(wsi);
    /* kept with the connection (http_guard.c), which survives lws's reset
     * of the per-request user data between keep-alive requests; 0 means
     * "none" */
    uintptr_t *mark = gw_guard_pipeline_mark(wsi);
    if (mark) *mark = n < 0 ? 0 : (uintptr_t)(n + 1);
}

bool gw_pipeline_stashed(struct lws *wsi)
{
    uintptr_t *pm = gw_guard_pipeline_mark(wsi), mark = pm ? *pm : 0;
    if (!mark) return false; /* the first request of the connection */
    long long n = gw_guard_bytes_read(wsi);
    return n < 0 || (uintptr_t)(n + 1) == mark;
}
