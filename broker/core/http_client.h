/* http_client.h - blocking outbound HTTP over libcurl for connectors and
 * the dispatcher: bounded time, bounded response size. */
#ifndef OH_HTTP_CLIENT_H
#define OH_HTTP_CLIENT_H

#include <jansson.h>
#include "core/oh.h"

struct oh_http_response {
    long status; /* HTTP status, 0 when no answer */
    char *body;  /* malloc'd, NUL-terminated */
    size_t len;
    char content_type[128];
    int retry_after_ms; /* from Retry-After, 0 none */
};

struct oh_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated */
    const void *body;           /* may be NULL */
    size_t body_len;
    long timeout_ms;     /* whole transfer; 0 = 10 s */
    size_t max_response; /* 0 = 4 MiB */
};

/* Reads the certificate authorities every outbound HTTPS connection of
 * the process trusts from CA_FILE (PEM), or, NULL, from libcurl's default
 * bundle, once: libcurl would parse the bundle again for each new
 * connection (about 20 ms of CPU for Debian's 145 certificates). Call once
 * before the threads that send start. OH_EINVAL (ERR filled) when CA_FILE
 * cannot be read; without a default bundle, connections verify as libcurl
 * does by itself. */
int oh_http_init(const char *ca_file, char *err, size_t errlen);
/* The file oh_http_init read the CAs from, with *COUNT set to how many
 * certificates it holds; NULL when libcurl verifies by itself. */
const char *oh_http_ca_source(int *count);
/* Frees what oh_http_init read, once no request runs. */
void oh_http_cleanup(void);

/* Performs REQ. Returns 0 when an HTTP answer arrived (any status; look at
 * RESP->status), OH_ETIMEOUT or OH_EIO (message in ERR) when none did,
 * OH_ETOOBIG when the answer exceeded max_response. Frees nothing of REQ.
 * Caller frees RESP with oh_http_response_free(). */
int oh_http_do(const struct oh_http_request *req, struct oh_http_response *resp, char *err,
               size_t errlen);
void oh_http_response_free(struct oh_http_response *resp);

/* Classifies an HTTP status for retry: 429 and 5xx (and no answer) are
 * retryable. */
bool oh_http_retryable(long status);

/* One POST of a connector's send: the shape every provider API takes. */
struct oh_http_post {
    const char *url;
    const json_t *json;          /* body, written compact; or NULL and BODY: */
    const char *body;            /* a ready text (a body that is signed), NUL-terminated */
    const char *content_type;    /* NULL: "application/json" */
    const char *bearer;          /* "Authorization: Bearer <bearer>"; NULL: none */
    const char *const *headers;  /* more "Name: value", NULL-terminated; may be NULL */
    long timeout_ms;             /* whole transfer; 0 = 10 s */
    size_t max_response;         /* answer bound; 0 = 4 MiB */
};

/* POSTs P with oh_http_do(): same results and ERR (OH_ENOMEM when the body
 * cannot be written). Caller frees RESP with oh_http_response_free(), also
 * on failure. Blocks: dispatcher and worker threads only. */
int oh_http_post(const struct oh_http_post *p, struct oh_http_response *resp, char *err,
                 size_t errlen);

struct oh_send_result;

/* The outcome of one attempt to send through a provider's HTTP API, for a
 * connector's send(). RC is oh_http_do()'s result: when it failed, RES gets
 * error code "transport" with WHY and the result is OH_ERETRY. Otherwise a
 * 2xx RESP is OH_OK and leaves RES alone (the caller names what was sent);
 * any other status sets RES's error code to the status, its error to WHY (the
 * provider's explanation) and its retry hint to RESP's, and returns OH_ERETRY
 * when oh_http_retryable(), OH_EAUTH for 401, OH_EFORBIDDEN for 403, else
 * OH_EINVAL. RESP (may be NULL when RC failed) and WHY are borrowed. */
int oh_http_send_outcome(const struct oh_http_response *resp, int rc, const char *why,
                         struct oh_send_result *res);

#endif
