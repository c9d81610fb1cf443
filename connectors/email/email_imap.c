/* email_imap.c - the IMAP poller: fetches new UIDs of each mailbox with
 * libcurl, turns them into events and remembers (UIDVALIDITY, last UID)
 * only once the events are durable. Never deletes or moves mail. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "email_int.h"
#include "core/metrics.h"

/* spaces of the connector's key-value store: "email" (UIDVALIDITY and
 * last UID per mailbox), "email.deadletter" */
#define STATE_NS    NULL
#define DEADLTR_NS  "deadletter"
#define MAX_LISTING (16u << 20) /* SEARCH and STATUS answers */

struct ibuf {
    char *p;
    size_t len, cap, max;
    bool too_big;
};

static size_t write_cb(char *d, size_t sz, size_t n, void *u)
{
    struct ibuf *b = u;
    size_t k = sz * n;
    if (b->len + k > b->max) {
        b->too_big = true;
        return 0;
    }
    if (oh_grow(&b->p, &b->cap, b->len + k + 1, 1, 65536)) return 0;
    memcpy(b->p + b->len, d, k);
    b->len += k;
    b->p[b->len] = 0;
    return k;
}

static bool stopping(struct email_ctx *c)
{
    return __atomic_load_n(&c->stop, __ATOMIC_ACQUIRE);
}

static int progress_cb(void *u, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return stopping(u) ? 1 : 0;
}

static CURL *imap_handle(struct email_ctx *c, char *errbuf)
{
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    curl_easy_setopt(h, CURLOPT_USERNAME, c->conf.username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, c->conf.password);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (c->tls == EMAIL_TLS_STARTTLS || c->tls == EMAIL_TLS_TLS)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    else if (c->tls == EMAIL_TLS_NONE)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
    if (c->conf.ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->conf.ca_file);
    return h;
}

/* Base URL, "imaps://" when email.tls is "tls" on an imap:// URL. */
static void base_url(struct email_ctx *c, char *out, size_t outlen)
{
    if (c->tls == EMAIL_TLS_TLS && strncasecmp(c->imap_base, "imap://", 7) == 0)
        snprintf(out, outlen, "imaps://%s", c->imap_base + 7);
    else
        snprintf(out, outlen, "%s", c->imap_base);
}

static int imap_do(struct email_ctx *c, CURL *h, const char *url, const char *custom,
                   struct ibuf *b, char *errbuf, char *err, size_t errlen)
{
    errbuf[0] = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, custom);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK) return 0;
    if (b->too_big) return OH_ETOOBIG;
    oh_errf(err, errlen, "%s%s%s", curl_easy_strerror(cc), errbuf[0] ? ": " : "", errbuf);
    if (cc == CURLE_ABORTED_BY_CALLBACK) return OH_ECLOSED;
    if (cc == CURLE_REMOTE_FILE_NOT_FOUND) return OH_ENOTFOUND;
    return OH_EIO;
}

static char *mailbox_url(struct email_ctx *c, CURL *h, const char *box, const char *suffix)
{
    char base[1024];
    base_url(c, base, sizeof base);
    char *esc = curl_easy_escape(h, box, 0);
    size_t n = strlen(base) + strlen(esc ? esc : "") + strlen(suffix) + 4;
    char *u = malloc(n);
    snprintf(u, n, "%s/%s%s", base, esc ? esc : "", suffix);
    curl_free(esc);
    return u;
}

static int64_t field_num(const char *s, const char *name)
{
    const char *p = s ? strcasestr(s, name) : NULL;
    return p ? strtoll(p + strlen(name), NULL, 10) : -1;
}

static int imap_status(struct email_ctx *c, CURL *h, const char *box, uint32_t *uv,
                       uint32_t *uidnext, char *errbuf, char *err, size_t errlen)
{
    char base[1024], cmd[700];
    base_url(c, base, sizeof base);
    strcat(base, "/");
    snprintf(cmd, sizeof cmd, "STATUS \"%s\" (UIDVALIDITY UIDNEXT)", box);
    struct ibuf b = {.max = MAX_LISTING};
    int rc = imap_do(c, h, base, cmd, &b, errbuf, err, errlen);
    if (rc == 0) {
        int64_t v = field_num(b.p, "UIDVALIDITY "), n = field_num(b.p, "UIDNEXT ");
        if (v <= 0) {
            oh_errf(err, errlen, "STATUS %s: no UIDVALIDITY in the answer", box);
            rc = OH_EIO;
        } else {
            *uv = (uint32_t)v;
            *uidnext = n > 0 ? (uint32_t)n : 0;
        }
    }
    free(b.p);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* UIDs above LAST, ascending. Caller frees *UIDS. */
static int imap_search(struct email_ctx *c, CURL *h, const char *box, uint32_t last,
                       uint32_t **uids, size_t *n, char *errbuf, char *err, size_t errlen)
{
    char *url = mailbox_url(c, h, box, "");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "UID SEARCH UID %u:*", last + 1);
    struct ibuf b = {.max = MAX_LISTING};
    int rc = imap_do(c, h, url, cmd, &b, errbuf, err, errlen);
    free(url);
    *uids = NULL;
    *n = 0;
    if (rc == 0 && b.p) {
        size_t cap = 0;
        for (char *line = b.p; rc == 0 && line && *line;) {
            char *nl = strchr(line, '\n');
            if (strncasecmp(line, "* SEARCH", 8) == 0) {
                char *p = line + 8;
                while (rc == 0 && p && *p && *p != '\r' && *p != '\n') {
                    char *e;
                    unsigned long u = strtoul(p, &e, 10);
                    if (e == p) break;
                    p = e;
                    /* "n:*" also matches the highest UID when it is below n */
                    if (u <= last || u > UINT32_MAX) continue;
                    if ((rc = oh_grow(uids, &cap, *n + 1, sizeof **uids, 64)) == 0)
                        (*uids)[(*n)++] = (uint32_t)u;
                }
            }
            line = nl ? nl + 1 : NULL;
        }
        if (rc != 0) { /* out of memory: nothing listed */
            free(*uids);
            *uids = NULL;
            *n = 0;
            oh_errf(err, errlen, "UID SEARCH %s: %s", box, oh_strerror(rc));
        }
        if (*n) qsort(*uids, *n, sizeof **uids, cmp_u32);
    }
    free(b.p);
    return rc;
}

/* ---- one message ---- */

static void dead_letter(struct email_ctx *c, const char *box, uint32_t uv, uint32_t uid,
                        const char *reason)
{
    char key[600], labels[600];
    snprintf(key, sizeof key, "%s/%u/%u", box, uv, uid);
    if (oh_env_has_store(c->env)) oh_env_kv_put(c->env, DEADLTR_NS, key, reason);
    snprintf(labels, sizeof labels, "mailbox=\"%s\"", box);
    oh_metrics_inc("omnihub_email_deadletters_total", labels, 1);
    OH_WARN("email", "dead letter %s: %s", key, reason);
}

static int write_file(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return OH_EIO;
    bool ok = fwrite(data, 1, len, f) == len;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) < 0) {
        unlink(tmp);
        return OH_EIO;
    }
    return 0;
}

static int mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0750) < 0 && errno != EEXIST) return OH_EIO;
            *s = '/';
        }
    return mkdir(p, 0750) < 0 && errno != EEXIST ? OH_EIO : 0;
}

/* Writes each blob and its sidecar (type, name, owning conversation). */
static int store_blobs(struct email_ctx *c, struct email_blobs *bl, const char *conv)
{
    if (bl->n && mkdirs(c->media_dir) < 0) return OH_EIO;
    for (size_t i = 0; i < bl->n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", c->media_dir, bl->b[i].ref);
        if (write_file(path, bl->b[i].data, bl->b[i].len) < 0) return OH_EIO;
        json_t *meta = json_pack("{s:s, s:s, s:s}", "content_type", bl->b[i].content_type,
                                 "filename", bl->b[i].filename, "conversation_id", conv);
        char *s = json_dumps(meta, JSON_COMPACT);
        json_decref(meta);
        snprintf(path, sizeof path, "%s/%s.json", c->media_dir, bl->b[i].ref);
        int rc = s ? write_file(path, s, strlen(s)) : OH_ENOMEM;
        free(s);
        if (rc < 0) return rc;
    }
    return 0;
}

/* 0 when the message is durable or dead-lettered (move on); < 0 to retry
 * it on the next poll. Blocks. */
static int process(struct email_ctx *c, const char *box, uint32_t uv, uint32_t uid,
                   const uint8_t *raw, size_t len)
{
    struct oh_norm_ctx nc = {.account = c->address, .now_ms = oh_now_ms()};
    struct oh_event_list list = {0};
    struct email_blobs blobs = {0};
    char err[256];
    int rc = email_parse(&nc, raw, len, c->max_message, &list, &blobs, err, sizeof err);
    if (rc == OH_EINVAL) {
        dead_letter(c, box, uv, uid, err);
        return 0;
    }
    if (rc < 0 || list.n == 0) {
        email_blobs_clear(&blobs);
        oh_event_list_clear(&list);
        return rc < 0 ? rc : 0;
    }
    json_t *ev = list.ev[0];
    json_t *data = oh_event_data(ev);
    json_t *em = json_object_get(data, "email");
    const char *from = json_string_value(json_object_get(json_object_get(em, "from"), "address"));
    if (from && strcasecmp(from, c->address) == 0) {
        /* our own mail (a copy in a polled folder): not a customer message */
        oh_metrics_inc("omnihub_email_skipped_total", "reason=\"own\"", 1);
        email_blobs_clear(&blobs);
        oh_event_list_clear(&list);
        return 0;
    }
    email_thread_resolve(c, ev);
    bool inbound = strcmp(oh_event_get_type(ev), OH_EV_INBOUND) == 0;
    char conv[OH_ID_MAX];
    snprintf(conv, sizeof conv, "%s", json_string_value(json_object_get(data, "conversation_id")));
    char *subject = strdup(email_or(json_string_value(json_object_get(data, "subject")), ""));
    char *msgid = strdup(email_or(json_string_value(json_object_get(data, "message_id")), ""));
    json_t *reply = json_object_get(em, "reply_to");
    json_t *reply_who = reply ? reply : json_object_get(em, "from");
    char *reply_addr =
        strdup(email_or(json_string_value(json_object_get(reply_who, "address")), ""));
    /* the events belong to the log after ingest: keep copies of what we need */
    char *sender = strdup(email_or(from, ""));
    json_t *refs = json_copy(json_object_get(em, "references"));
    const char *irt = json_string_value(json_object_get(em, "in_reply_to"));
    if (!json_array_size(refs) && irt) json_array_append_new(refs, json_string(irt));

    rc = store_blobs(c, &blobs, conv);
    email_blobs_clear(&blobs);
    if (rc == 0) {
        rc = oh_env_ingest_wait(c->env, &list);
        if (rc == OH_EINVAL || rc == OH_ETOOBIG) {
            dead_letter(c, box, uv, uid,
                        rc == OH_EINVAL ? "the normalized event was refused by the log"
                                        : "the normalized event is larger than the log takes");
            rc = 0;
        } else if (rc == 0) {
            char labels[600];
            snprintf(labels, sizeof labels, "mailbox=\"%s\",type=\"%s\"", box,
                     inbound ? "message" : "status");
            oh_metrics_inc("omnihub_email_messages_total", labels, 1);
            if (inbound) {
                /* replies go to the conversation's customer (their Reply-To),
                 * not to whoever else joined the thread */
                char contact[256];
                bool theirs = oh_env_contact(c->env, conv, contact, sizeof contact) < 0 ||
                              strcasecmp(contact, sender) == 0;
                email_thread_note(c, conv, subject, msgid, refs, theirs ? reply_addr : NULL);
            }
        }
    }
    oh_event_list_clear(&list);
    json_decref(refs);
    free(subject);
    free(msgid);
    free(reply_addr);
    free(sender);
    return rc;
}

/* ---- one mailbox, one cycle ---- */

static int poll_mailbox(struct email_ctx *c, CURL *h, const char *box, char *errbuf, char *err,
                        size_t errlen)
{
    uint32_t uv = 0, uidnext = 0;
    int rc = imap_status(c, h, box, &uv, &uidnext, errbuf, err, errlen);
    if (rc < 0) return rc;
    if (!oh_env_has_store(c->env)) {
        oh_errf(err, errlen, "no store in this role");
        return OH_EUNAVAIL;
    }
    char state[64];
    unsigned long suv = 0, slast = 0;
    if (oh_env_kv_get(c->env, STATE_NS, box, state, sizeof state) == 0)
        sscanf(state, "%lu %lu", &suv, &slast);
    uint32_t last = (uint32_t)slast;
    if (suv != uv) {
        if (suv)
            OH_WARN("email", "mailbox %s: UIDVALIDITY %lu -> %u, fetching it again", box, suv, uv);
        if (suv) oh_metrics_inc("omnihub_email_uidvalidity_resets_total", "", 1);
        last = 0;
        snprintf(state, sizeof state, "%u 0", uv);
        if ((rc = oh_env_kv_put(c->env, STATE_NS, box, state)) < 0) {
            oh_errf(err, errlen, "store: %s", oh_strerror(rc));
            return rc;
        }
    }
    if (uidnext && uidnext <= last + 1) return 0; /* nothing new */
    uint32_t *uids;
    size_t n;
    if ((rc = imap_search(c, h, box, last, &uids, &n, errbuf, err, errlen)) < 0) return rc;
    for (size_t i = 0; i < n && !stopping(c); i++) {
        char suffix[64];
        snprintf(suffix, sizeof suffix, ";UIDVALIDITY=%u;UID=%u", uv, uids[i]);
        char *url = mailbox_url(c, h, box, suffix);
        struct ibuf b = {.max = c->max_message};
        rc = imap_do(c, h, url, NULL, &b, errbuf, err, errlen);
        free(url);
        if (rc == OH_ETOOBIG) {
            char reason[128];
            snprintf(reason, sizeof reason, "message larger than email.max_message (%zu bytes)",
                     c->max_message);
            dead_letter(c, box, uv, uids[i], reason);
            rc = 0;
        } else if (rc == OH_ENOTFOUND) {
            /* expunged meanwhile, or UIDVALIDITY moved: the next cycle's
             * STATUS and SEARCH see which; advance nothing now */
            free(b.p);
            rc = 0;
            break;
        } else if (rc == 0) {
            rc = process(c, box, uv, uids[i], (const uint8_t *)(b.p ? b.p : ""), b.len);
            if (rc < 0) oh_errf(err, errlen, "ingest: %s", oh_strerror(rc));
        }
        free(b.p);
        if (rc < 0) break;
        snprintf(state, sizeof state, "%u %u", uv, uids[i]);
        if ((rc = oh_env_kv_put(c->env, STATE_NS, box, state)) < 0) {
            oh_errf(err, errlen, "store: %s", oh_strerror(rc));
            break;
        }
    }
    free(uids);
    return rc;
}

/* ---- the thread ---- */

/* runs on the poller thread */
static void *poller(void *arg)
{
    struct email_ctx *c = arg;
    char errbuf[CURL_ERROR_SIZE];
    while (!stopping(c)) {
        CURL *h = imap_handle(c, errbuf);
        int failed = 0;
        char first_err[256] = "";
        for (size_t i = 0; h && i < c->nmbox && !stopping(c); i++) {
            char err[256] = "";
            int rc = poll_mailbox(c, h, c->mbox[i].name, errbuf, err, sizeof err);
            char st[300], labels[600];
            snprintf(labels, sizeof labels, "mailbox=\"%s\",result=\"%s\"", c->mbox[i].name,
                     rc < 0 ? "error" : "ok");
            oh_metrics_inc("omnihub_email_polls_total", labels, 1);
            if (rc < 0 && rc != OH_ECLOSED) {
                failed++;
                snprintf(st, sizeof st, "error: %s", err);
                if (!first_err[0])
                    snprintf(first_err, sizeof first_err, "%s: %s", c->mbox[i].name, err);
                OH_WARN("email", "poll of %s failed: %s", c->mbox[i].name, err);
            } else {
                snprintf(st, sizeof st, "ok");
            }
            pthread_mutex_lock(&c->mu);
            free(c->mbox[i].status);
            c->mbox[i].status = strdup(st);
            pthread_mutex_unlock(&c->mu);
        }
        if (h)
            curl_easy_cleanup(h);
        else
            failed++, snprintf(first_err, sizeof first_err, "curl_easy_init failed");
        pthread_mutex_lock(&c->mu);
        c->last_poll_ms = oh_now_ms();
        c->failures = failed ? c->failures + 1 : 0;
        if (failed)
            snprintf(c->imap_state, sizeof c->imap_state, "error: %s", first_err);
        else
            snprintf(c->imap_state, sizeof c->imap_state, "ok");
        oh_metrics_set("omnihub_email_imap_up", "", failed ? 0 : 1);
        /* back off on failures: interval * 2^n, at most max(60 s, interval) */
        int64_t delay = c->poll_ms;
        int64_t cap = c->poll_ms > 60000 ? c->poll_ms : 60000;
        for (int k = 0; k < c->failures && delay < cap; k++)
            delay *= 2;
        if (delay > cap) delay = cap;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += delay / 1000;
        ts.tv_nsec += (delay % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
            ;
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

int email_imap_start(struct email_ctx *c)
{
    if (!c->imap_base || c->started) return 0;
    c->stop = false;
    oh_metrics_describe("omnihub_email_polls_total", "IMAP polls per mailbox and result");
    oh_metrics_describe("omnihub_email_deadletters_total",
                        "messages that could not be turned into events");
    oh_metrics_describe("omnihub_email_messages_total", "messages fetched over IMAP, by result");
    oh_metrics_describe("omnihub_email_skipped_total", "messages skipped (our own), by reason");
    oh_metrics_describe("omnihub_email_uidvalidity_resets_total",
                        "mailboxes whose UIDVALIDITY changed (re-read from the start)");
    oh_metrics_describe("omnihub_email_imap_up", "1 when the last IMAP poll of every box worked");
    if (pthread_create(&c->thread, NULL, poller, c) != 0) return OH_ENOMEM;
    c->started = true;
    return 0;
}

void email_imap_stop(struct email_ctx *c)
{
    if (!c || !c->started) return;
    pthread_mutex_lock(&c->mu);
    __atomic_store_n(&c->stop, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    c->started = false;
}
