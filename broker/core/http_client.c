/* http_client.c - one blocking libcurl request with a deadline and a cap on
 * the answer's size; used from dispatcher and worker threads only. Each
 * thread keeps its libcurl handle between requests, and with it the
 * connections it opened (curl_easy_reset() keeps them, and the DNS and TLS
 * session caches): a provider's API is reached over a connection already
 * open, without a TCP and TLS handshake per message. A new connection
 * verifies its peer against one certificate store the process read once
 * (oh_http_init), not against the bundle parsed again. */
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "core/http_client.h"
#include "core/connector.h"

struct sink {
    struct oh_http_response *resp;
    size_t max;
    bool overflow;
};

static size_t on_body(char *p, size_t size, size_t n, void *opaque)
{
    struct sink *s = opaque;
    size_t len = size * n;
    if (s->resp->len + len > s->max) {
        s->overflow = true;
        return 0;
    }
    char *nb = realloc(s->resp->body, s->resp->len + len + 1);
    if (!nb) return 0;
    memcpy(nb + s->resp->len, p, len);
    s->resp->len += len;
    nb[s->resp->len] = '\0';
    s->resp->body = nb;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
    struct sink *s = opaque;
    size_t len = size * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0)
        s->resp->retry_after_ms = atoi(p + 12) * 1000;
    return len;
}

/* The CAs every connection trusts, read at start; NULL: libcurl's own. */
static X509_STORE *ca_store;
static char ca_source[1024];

int oh_http_init(const char *ca_file, char *err, size_t errlen)
{
    const char *path = ca_file;
    CURL *probe = path ? NULL : curl_easy_init();
    char *builtin = NULL;
    if (probe) curl_easy_getinfo(probe, CURLINFO_CAINFO, &builtin); /* libcurl's default */
    if (!path) path = builtin;
    X509_STORE *st = path ? X509_STORE_new() : NULL;
    int rc = OH_OK;
    if (st && X509_STORE_load_file(st, path) != 1) {
        X509_STORE_free(st);
        st = NULL;
        if (ca_file) {
            oh_errf(err, errlen, "http.ca_file: cannot read certificates from %s", ca_file);
            rc = OH_EINVAL;
        }
    }
    if (probe) curl_easy_cleanup(probe);
    if (rc == OH_OK) {
        X509_STORE_free(ca_store);
        ca_store = st;
        snprintf(ca_source, sizeof ca_source, "%s", st ? path : "");
    }
    return rc;
}

const char *oh_http_ca_source(int *count)
{
    *count = ca_store ? sk_X509_OBJECT_num(X509_STORE_get0_objects(ca_store)) : 0;
    return ca_store ? ca_source : NULL;
}

void oh_http_cleanup(void)
{
    X509_STORE_free(ca_store);
    ca_store = NULL;
}

/* libcurl's hook on each new TLS context: the store read at start (the
 * context takes a reference of its own). */
static CURLcode use_store(CURL *c, void *ssl_ctx, void *store)
{
    (void)c;
    SSL_CTX_set1_cert_store(ssl_ctx, store);
    return CURLE_OK;
}

static pthread_key_t handle_key;
static bool have_key;

static void handle_free(void *c)
{
    curl_easy_cleanup(c);
}

static void key_make(void)
{
    have_key = pthread_key_create(&handle_key, handle_free) == 0;
}

/* The calling thread's handle, reset (its connections kept), with *KEPT
 * true; or a new one for this request alone (*KEPT false: the caller
 * cleans it up) when it cannot be kept; NULL out of memory. */
static CURL *thread_handle(bool *kept)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, key_make);
    CURL *c = have_key ? pthread_getspecific(handle_key) : NULL;
    *kept = c != NULL;
    if (c) {
        curl_easy_reset(c);
        return c;
    }
    c = curl_easy_init();
    *kept = c && have_key && pthread_setspecific(handle_key, c) == 0;
    return c;
}

int oh_http_do(const struct oh_http_request *req, struct oh_http_response *resp, char *err,
               size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    bool kept;
    CURL *c = thread_handle(&kept);
    if (!c) {
        oh_errf(err, errlen, "curl_easy_init failed");
        return OH_ENOMEM;
    }
    struct curl_slist *hdrs = NULL;
    for (const char *const *h = req->headers; h && *h; h++)
        hdrs = curl_slist_append(hdrs, *h);
    hdrs = curl_slist_append(hdrs, "Expect:");
    struct sink sink = {resp, req->max_response ? req->max_response : 4u << 20, false};
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms ? req->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* libcurl loads no CA file of its own when the store read at start
     * replaces it (a TLS backend without the hook keeps its defaults) */
    if (ca_store && curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, use_store) == CURLE_OK) {
        curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, ca_store);
        curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
    if (req->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(c);
    int ret = OH_OK;
    if (sink.overflow) {
        oh_errf(err, errlen, "response larger than %zu bytes", sink.max);
        ret = OH_ETOOBIG;
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        oh_errf(err, errlen, "%s", curl_easy_strerror(rc));
        ret = OH_ETIMEOUT;
    } else if (rc != CURLE_OK) {
        oh_errf(err, errlen, "%s", curl_easy_strerror(rc));
        ret = OH_EIO;
    }
    if (ret == OH_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct) snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
        if (!resp->body) resp->body = calloc(1, 1);
    }
    curl_slist_free_all(hdrs);
    if (!kept) curl_easy_cleanup(c);
    return ret;
}

void oh_http_response_free(struct oh_http_response *resp)
{
    if (!resp) return;
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

bool oh_http_retryable(long status)
{
    return status == 0 || status == 429 || status >= 500;
}

int oh_http_send_outcome(const struct oh_http_response *resp, int rc, const char *why,
                         struct oh_send_result *res)
{
    if (rc != OH_OK || !resp) {
        snprintf(res->error_code, sizeof res->error_code, "transport");
        snprintf(res->error, sizeof res->error, "%s", why);
        return OH_ERETRY;
    }
    long status = resp->status;
    if (status >= 200 && status < 300) return OH_OK;
    snprintf(res->error_code, sizeof res->error_code, "%ld", status);
    snprintf(res->error, sizeof res->error, "%s", why);
    res->retry_after_ms = resp->retry_after_ms;
    if (oh_http_retryable(status)) return OH_ERETRY;
    return status == 401 ? OH_EAUTH : status == 403 ? OH_EFORBIDDEN : OH_EINVAL;
}

int oh_http_post(const struct oh_http_post *p, struct oh_http_response *resp, char *err,
                 size_t errlen)
{
    memset(resp, 0, sizeof *resp);
    char *own = p->json ? json_dumps(p->json, JSON_COMPACT) : NULL;
    const char *body = p->json ? own : p->body;
    char ctype[160], *auth = NULL;
    const char *headers[24];
    size_t n = 0;
    int rc = OH_ENOMEM;
    if (!body || (p->bearer && asprintf(&auth, "Authorization: Bearer %s", p->bearer) < 0)) {
        auth = NULL;
        oh_errf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(ctype, sizeof ctype, "Content-Type: %s",
             p->content_type ? p->content_type : "application/json");
    headers[n++] = ctype;
    if (auth) headers[n++] = auth;
    for (const char *const *h = p->headers; h && *h && n < OH_ARRAY_SIZE(headers) - 1; h++)
        headers[n++] = *h;
    headers[n] = NULL;
    struct oh_http_request req = {.method = "POST",
                                  .url = p->url,
                                  .headers = headers,
                                  .body = body,
                                  .body_len = strlen(body),
                                  .timeout_ms = p->timeout_ms,
                                  .max_response = p->max_response};
    rc = oh_http_do(&req, resp, err, errlen);
out:
    free(auth);
    free(own);
    return rc;
}
