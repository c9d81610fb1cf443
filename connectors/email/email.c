/* email.c - the email connector's vtable: configuration, the pure
 * normalizer, media served from the data directory, readiness. */
#include <ctype.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "email_int.h"
#include "core/metrics.h"

static const struct oh_config_key email_keys[] = {
    {"email.imap_url", OH_CFG_STR, NULL,
     "mailbox to poll: imap://host:port/INBOX or imaps://...; unset: no polling"},
    {"email.mailboxes", OH_CFG_LIST, NULL, "further mailbox names polled on the same server"},
    {"email.smtp_url", OH_CFG_STR, NULL, "where replies go out: smtp://host:port or smtps://"},
    {"email.username", OH_CFG_STR, NULL, "IMAP (and SMTP AUTH) user name"},
    {"email.password", OH_CFG_SECRET, NULL, "IMAP (and SMTP AUTH) password"},
    {"email.address", OH_CFG_STR, NULL, "our address: the account, From of replies"},
    {"email.from_name", OH_CFG_STR, NULL, "display name in From of replies"},
    {"email.poll_interval", OH_CFG_INT, "10", "seconds between IMAP polls"},
    {"email.max_message", OH_CFG_SIZE, "25m", "largest message fetched; bigger: dead letter"},
    {"email.tls", OH_CFG_STR, NULL, "none|starttls|tls (default: from the URL scheme)"},
    {"email.ca_file", OH_CFG_STR, NULL, "CA bundle to verify the mail servers with"},
    {NULL, 0, NULL, NULL},
};

static const struct oh_config_field email_map[] = {
    OH_CFG_FIELD("email.imap_url", struct email_conf, imap_url),
    OH_CFG_FIELD("email.mailboxes", struct email_conf, mailboxes),
    OH_CFG_FIELD("email.smtp_url", struct email_conf, smtp_url),
    OH_CFG_FIELD("email.username", struct email_conf, username),
    OH_CFG_FIELD("email.password", struct email_conf, password),
    OH_CFG_FIELD("email.address", struct email_conf, address),
    OH_CFG_FIELD("email.from_name", struct email_conf, from_name),
    OH_CFG_FIELD("email.poll_interval", struct email_conf, poll_interval),
    OH_CFG_FIELD("email.max_message", struct email_conf, max_message),
    OH_CFG_FIELD("email.tls", struct email_conf, tls),
    OH_CFG_FIELD("email.ca_file", struct email_conf, ca_file),
    {NULL, 0},
};

static void email_destroy(void *vctx)
{
    struct email_ctx *c = vctx;
    if (!c) return;
    email_imap_stop(c);
    for (size_t i = 0; i < c->nmbox; i++) {
        free(c->mbox[i].name);
        free(c->mbox[i].status);
    }
    free(c->mbox);
    free(c->imap_base);
    free(c->address);
    free(c->local);
    free(c->domain);
    free(c->media_dir);
    oh_config_map_free(email_keys, email_map, &c->conf);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->thread_mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* An empty string in the file means unset, as for a secret. */
static void unset_empty(char **s)
{
    if (*s && !**s) {
        free(*s);
        *s = NULL;
    }
}

static int add_mailbox(struct email_ctx *c, const char *name)
{
    /* the name is quoted into IMAP commands */
    if (strpbrk(name, "\"\\\r\n")) return OH_EINVAL;
    for (size_t i = 0; i < c->nmbox; i++)
        if (strcmp(c->mbox[i].name, name) == 0) return 0;
    struct email_mailbox *m = realloc(c->mbox, (c->nmbox + 1) * sizeof *m);
    if (!m) return OH_ENOMEM;
    c->mbox = m;
    c->mbox[c->nmbox].name = strdup(name);
    c->mbox[c->nmbox].status = strdup("not polled yet");
    c->nmbox++;
    return 0;
}

/* Splits "imap://host:port/Box%20Name" into the base and the mailbox. */
static int split_imap_url(struct email_ctx *c, const char *url, char *err, size_t errlen)
{
    const char *s = strstr(url, "://");
    if (!s || (strncasecmp(url, "imap://", 7) != 0 && strncasecmp(url, "imaps://", 8) != 0)) {
        oh_errf(err, errlen, "email.imap_url must start with imap:// or imaps://");
        return OH_EINVAL;
    }
    const char *path = strchr(s + 3, '/');
    c->imap_base = path ? strndup(url, (size_t)(path - url)) : strdup(url);
    char box[512] = "INBOX";
    if (path && path[1]) {
        size_t n = 0;
        for (const char *p = path + 1; *p && *p != ';' && *p != '?' && n < sizeof box - 1; p++) {
            if (*p == '%' && isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])) {
                char hex[3] = {p[1], p[2], 0};
                box[n++] = (char)strtol(hex, NULL, 16);
                p += 2;
            } else {
                box[n++] = *p;
            }
        }
        box[n] = 0;
        if (n && box[n - 1] == '/') box[n - 1] = 0;
    }
    if (add_mailbox(c, box) < 0) {
        oh_errf(err, errlen, "email.imap_url: bad mailbox name");
        return OH_EINVAL;
    }
    return 0;
}

static int email_init(const struct oh_conn_env *env, const oh_config *cfg, void **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    struct email_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory"); /* main has no fallback: never an empty reason */
        return OH_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->thread_mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->env = env;
    int rc = OH_EINVAL;
    if (oh_config_require(cfg, "email.address", "the email connector needs our address", err,
                          errlen) < 0)
        goto fail;
    struct email_conf *cf = &c->conf;
    if ((rc = oh_config_map(cfg, email_keys, email_map, cf)) != OH_OK) {
        oh_errf(err, errlen, "out of memory");
        goto fail;
    }
    rc = OH_EINVAL;
    /* empty strings mean unset, as they did; not imap_url: an empty one is a bad URL */
    char **strs[] = {&cf->smtp_url, &cf->username, &cf->from_name, &cf->ca_file};
    for (size_t i = 0; i < OH_ARRAY_SIZE(strs); i++)
        unset_empty(strs[i]);
    const char *addr = cf->address;
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || !at[1] || strchr(addr, ' ') || strchr(addr, '+')) {
        oh_errf(err, errlen, "email.address must be a plain local@domain address (no '+')");
        goto fail;
    }
    c->address = strdup(addr);
    for (char *p = c->address; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    c->local = strndup(c->address, (size_t)(strrchr(c->address, '@') - c->address));
    c->domain = strdup(strrchr(c->address, '@') + 1);
    c->from_name = cf->from_name;
    oh_metrics_describe("omnihub_email_sent_total", "SMTP submissions, by result");
    if (!cf->imap_url && !cf->smtp_url) {
        oh_errf(err, errlen, "set email.imap_url and/or email.smtp_url");
        goto fail;
    }
    if (cf->smtp_url && strncasecmp(cf->smtp_url, "smtp://", 7) != 0 &&
        strncasecmp(cf->smtp_url, "smtps://", 8) != 0) {
        oh_errf(err, errlen, "email.smtp_url must start with smtp:// or smtps://");
        goto fail;
    }
    if (cf->imap_url) {
        if ((rc = split_imap_url(c, cf->imap_url, err, errlen)) < 0) goto fail;
        rc = OH_EINVAL;
        if (oh_config_require(cfg, "email.username", "IMAP login of email.imap_url", err, errlen) <
                0 ||
            oh_config_require(cfg, "email.password", "IMAP login of email.imap_url", err, errlen) <
                0)
            goto fail;
        for (size_t i = 0; cf->mailboxes && cf->mailboxes[i]; i++)
            if (cf->mailboxes[i][0] && add_mailbox(c, cf->mailboxes[i]) < 0) {
                oh_errf(err, errlen, "email.mailboxes: bad mailbox name \"%s\"", cf->mailboxes[i]);
                goto fail;
            }
    }
    const char *tls = cf->tls;
    if (!tls || !*tls)
        c->tls = EMAIL_TLS_URL;
    else if (strcasecmp(tls, "none") == 0)
        c->tls = EMAIL_TLS_NONE;
    else if (strcasecmp(tls, "starttls") == 0)
        c->tls = EMAIL_TLS_STARTTLS;
    else if (strcasecmp(tls, "tls") == 0)
        c->tls = EMAIL_TLS_TLS;
    else {
        oh_errf(err, errlen, "email.tls must be none, starttls or tls");
        goto fail;
    }
    if (cf->poll_interval <= 0 || cf->max_message <= 0) {
        oh_errf(err, errlen, "email.%s must be positive",
                cf->poll_interval <= 0 ? "poll_interval" : "max_message");
        goto fail;
    }
    c->poll_ms = cf->poll_interval * 1000;
    c->max_message = (size_t)cf->max_message;
    /* data_dir is the hub's key, not one of email.*: outside the map */
    const char *dd = oh_config_str(cfg, "data_dir");
    size_t n = strlen(dd ? dd : ".") + 32;
    c->media_dir = malloc(n);
    snprintf(c->media_dir, n, "%s/media/email", dd ? dd : ".");
    snprintf(c->imap_state, sizeof c->imap_state, "%s", c->imap_base ? "starting" : "disabled");
    *out = c;
    return 0;
fail:
    email_destroy(c);
    return rc;
}

static int email_normalize(const struct oh_norm_ctx *nc, const uint8_t *body, size_t len,
                           struct oh_event_list *out, char *err, size_t errlen)
{
    return email_parse(nc, body, len, 0, out, NULL, err, errlen);
}

/* runs on a dispatcher thread */
static int email_send(void *vctx, const json_t *event, struct oh_send_result *res)
{
    return email_smtp_send(vctx, event, res);
}

/* The <ref>.json sidecar of a media ref; NULL when REF is not one we wrote. */
static json_t *media_meta(const struct email_ctx *c, const char *ref)
{
    if (strlen(ref) != 64 || strspn(ref, "0123456789abcdef") != 64) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", c->media_dir, ref);
    json_error_t je;
    return json_load_file(path, 0, &je);
}

/* The sidecar names the owning conversation: the gateway authorizes from it. */
static bool email_media_owner(void *vctx, const char *ref, char conv[OH_ID_MAX])
{
    json_t *meta = media_meta(vctx, ref);
    const char *owner = json_string_value(json_object_get(meta, "conversation_id"));
    bool found = owner && *owner && strlen(owner) < OH_ID_MAX;
    if (found) snprintf(conv, OH_ID_MAX, "%s", owner);
    json_decref(meta);
    return found;
}

/* A person's erasure: the attachment and its sidecar leave the media cache. */
static int email_media_erase(void *vctx, const char *ref)
{
    struct email_ctx *c = vctx;
    if (strlen(ref) != 64 || strspn(ref, "0123456789abcdef") != 64) return OH_OK; /* not ours */
    char path[4096];
    int rc = OH_OK;
    snprintf(path, sizeof path, "%s/%s", c->media_dir, ref);
    if (unlink(path) != 0 && errno != ENOENT) rc = OH_EIO;
    snprintf(path, sizeof path, "%s/%s.json", c->media_dir, ref);
    if (unlink(path) != 0 && errno != ENOENT) rc = OH_EIO;
    return rc;
}

/* Serves <media_dir>/<ref> with the metadata of its <ref>.json sidecar. */
static int email_media(void *vctx, const char *ref, size_t max_bytes, struct oh_media *out,
                       char *err, size_t errlen)
{
    struct email_ctx *c = vctx;
    json_t *meta = media_meta(c, ref);
    if (!meta) {
        oh_errf(err, errlen, "unknown media ref");
        return OH_ENOTFOUND;
    }
    snprintf(out->content_type, sizeof out->content_type, "%s",
             email_or(json_string_value(json_object_get(meta, "content_type")),
                      "application/octet-stream"));
    snprintf(out->filename, sizeof out->filename, "%s",
             email_or(json_string_value(json_object_get(meta, "filename")), ""));
    snprintf(out->conversation_id, sizeof out->conversation_id, "%s",
             email_or(json_string_value(json_object_get(meta, "conversation_id")), ""));
    json_decref(meta);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", c->media_dir, ref);
    FILE *f = fopen(path, "rb");
    if (!f) {
        oh_errf(err, errlen, "media %s: %s", ref, strerror(errno));
        return errno == ENOENT ? OH_ENOTFOUND : OH_EIO;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) < 0 || (size_t)sb.st_size > max_bytes) {
        fclose(f);
        oh_errf(err, errlen, "media object larger than %zu bytes", max_bytes);
        return OH_ETOOBIG;
    }
    out->len = (size_t)sb.st_size;
    out->data = malloc(out->len ? out->len : 1);
    if (!out->data || fread(out->data, 1, out->len, f) != out->len) {
        fclose(f);
        free(out->data);
        out->data = NULL;
        oh_errf(err, errlen, "media %s: short read", ref);
        return OH_EIO;
    }
    fclose(f);
    return 0;
}

/* runs on the main thread: starts the poller thread */
static int email_start(void *vctx)
{
    return email_imap_start(vctx);
}

/* runs on the main thread */
static void email_stop(void *vctx)
{
    email_imap_stop(vctx);
}

/* runs on a worker thread (/readyz) */
static void email_ready(void *vctx, json_t *details)
{
    struct email_ctx *c = vctx;
    json_t *boxes = json_object();
    pthread_mutex_lock(&c->mu);
    json_t *e = json_pack("{s:s}", "imap", c->imap_state);
    if (c->last_poll_ms) {
        char t[32];
        oh_time_rfc3339(t, c->last_poll_ms);
        json_object_set_new(e, "last_poll", json_string(t));
    } else {
        json_object_set_new(e, "last_poll", json_null());
    }
    for (size_t i = 0; i < c->nmbox; i++)
        json_object_set_new(boxes, c->mbox[i].name, json_string(c->mbox[i].status));
    pthread_mutex_unlock(&c->mu);
    json_object_set_new(e, "mailboxes", boxes);
    json_object_set_new(e, "smtp", json_string(c->conf.smtp_url ? "configured" : "disabled"));
    json_object_set_new(details, "email", e);
}

const struct oh_connector oh_connector_email = {
    .name = "email",
    .config_keys = email_keys,
    .init = email_init,
    .normalize = email_normalize,
    .send = email_send,
    .media = email_media,
    .media_owner = email_media_owner,
    .media_erase = email_media_erase,
    .start = email_start,
    .stop = email_stop,
    .ready = email_ready,
    .destroy = email_destroy,
};
