/* email_smtp.c - agent replies as multipart/alternative mail that
 * continues the customer's thread, sent over SMTP with libcurl. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <gmime/gmime.h>
#include "core/crypto.h"
#include "email_int.h"
#include "core/metrics.h"

static bool has_re_prefix(const char *s)
{
    return strncasecmp(s, "re:", 3) == 0 || strncasecmp(s, "aw:", 3) == 0 ||
           strncasecmp(s, "sv:", 3) == 0 || strncasecmp(s, "antw:", 5) == 0;
}

/* A UTF-8 text part in quoted-printable or base64, whichever is shorter. */
static GMimeObject *text_part(const char *subtype, const char *text)
{
    GMimePart *p = g_mime_part_new_with_type("text", subtype);
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(p), "charset", "utf-8");
    GMimeStream *s = g_mime_stream_mem_new_with_buffer(text, strlen(text));
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(s, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content(p, w);
    g_object_unref(w);
    g_object_unref(s);
    g_mime_part_set_content_encoding(
        p, g_mime_part_get_best_content_encoding(p, GMIME_ENCODING_CONSTRAINT_7BIT));
    return GMIME_OBJECT(p);
}

/* "<id>" for each message id, space separated, for In-Reply-To/References. */
static char *angle_list(json_t *ids)
{
    size_t n = 1, i;
    json_t *v;
    json_array_foreach(ids, i, v) n += strlen(email_or(json_string_value(v), "")) + 3;
    char *s = malloc(n);
    s[0] = 0;
    size_t len = 0;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(v);
        if (id && *id) len += (size_t)snprintf(s + len, n - len, "%s<%s>", len ? " " : "", id);
    }
    return s;
}

int email_compose(struct email_ctx *c, const json_t *event, json_t *thread, char **out,
                  size_t *outlen, char *msgid, size_t msgidlen, char *err, size_t errlen)
{
    email_gmime_init();
    json_t *data = oh_event_data(event);
    const char *conv = json_string_value(json_object_get(data, "conversation_id"));
    const char *ours = json_string_value(json_object_get(data, "message_id"));
    const char *text = json_string_value(json_object_get(data, "text"));
    json_t *contact = json_object_get(data, "contact");
    const char *to = json_string_value(json_object_get(thread, "reply_to"));
    if (!to || !*to) to = json_string_value(json_object_get(contact, "id"));
    const char *to_name = json_string_value(json_object_get(contact, "name"));
    if (!conv || !ours || !to || !strchr(to, '@')) {
        oh_errf(err, errlen, "outbound email needs conversation_id, message_id and an address");
        return OH_EINVAL;
    }
    if (!text || !*text) {
        oh_errf(err, errlen, "outbound email needs text");
        return OH_EINVAL;
    }
    char token[17];
    email_conv_token(conv, token);
    uint8_t h[OH_SHA256_LEN];
    char hex[2 * OH_SHA256_LEN + 1];
    oh_sha256(ours, strlen(ours), h);
    oh_hex(h, sizeof h, hex);
    /* stable across dispatcher retries: the same reply keeps its id */
    snprintf(msgid, msgidlen, "oh.%s.%.24s@%s", token, hex, c->domain);

    const char *subj = json_string_value(json_object_get(thread, "subject"));
    if (!subj || !*subj) subj = json_string_value(json_object_get(data, "subject"));
    char subject[1024];
    if (subj && *subj)
        snprintf(subject, sizeof subject, "%s%s", has_re_prefix(subj) ? "" : "Re: ", subj);
    else
        snprintf(subject, sizeof subject, "Message from %s", email_or(c->from_name, c->address));

    /* threading: answer the remembered last message (or the one named) */
    json_t *refs = json_array();
    json_t *trefs = json_object_get(thread, "refs");
    size_t i;
    json_t *v;
    json_array_foreach(trefs, i, v) json_array_append(refs, v);
    const char *last = json_string_value(json_object_get(thread, "last"));
    const char *reply_to = json_string_value(json_object_get(data, "reply_to"));
    const char *parent = reply_to && *reply_to ? reply_to : last;
    if (last && *last) json_array_append_new(refs, json_string(last));
    if (parent && (!last || strcmp(parent, last) != 0))
        json_array_append_new(refs, json_string(parent));

    GMimeMessage *m = g_mime_message_new(TRUE);
    g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_FROM, email_or(c->from_name, ""), c->address);
    g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_TO, email_or(to_name, ""), to);
    char plus[512];
    snprintf(plus, sizeof plus, "%s+%s@%s", c->local, token, c->domain);
    g_mime_message_add_mailbox(m, GMIME_ADDRESS_TYPE_REPLY_TO, email_or(c->from_name, ""), plus);
    g_mime_message_set_subject(m, subject, "utf-8");
    GDateTime *now = g_date_time_new_now_utc();
    g_mime_message_set_date(m, now);
    g_date_time_unref(now);
    g_mime_message_set_message_id(m, msgid);
    if (parent && *parent) {
        char ref[600];
        snprintf(ref, sizeof ref, "<%s>", parent);
        g_mime_object_set_header(GMIME_OBJECT(m), "In-Reply-To", ref, NULL);
    }
    if (json_array_size(refs)) {
        char *r = angle_list(refs);
        g_mime_object_set_header(GMIME_OBJECT(m), "References", r, NULL);
        free(r);
    }
    g_mime_object_set_header(GMIME_OBJECT(m), "Auto-Submitted", "no", NULL);
    g_mime_object_set_header(GMIME_OBJECT(m), "X-Omnihub-Message-Id", ours, NULL);

    GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
    GMimeObject *plain = text_part("plain", text);
    char *html_s = email_text_to_html(text);
    GMimeObject *html = text_part("html", html_s);
    free(html_s);
    g_mime_multipart_add(alt, plain);
    g_mime_multipart_add(alt, html);
    g_object_unref(plain);
    g_object_unref(html);
    g_mime_message_set_mime_part(m, GMIME_OBJECT(alt));
    g_object_unref(alt);

    GMimeFormatOptions *fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_object_write_to_stream(GMIME_OBJECT(m), fo, mem);
    GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    *out = malloc(ba->len + 1);
    memcpy(*out, ba->data, ba->len);
    (*out)[ba->len] = 0;
    *outlen = ba->len;
    g_object_unref(mem);
    g_mime_format_options_free(fo);
    g_object_unref(m);
    json_decref(refs);
    return 0;
}

/* ---- SMTP over libcurl ---- */

struct upload {
    const char *p;
    size_t left;
};

static size_t read_cb(char *buf, size_t size, size_t n, void *u)
{
    struct upload *up = u;
    size_t k = size * n < up->left ? size * n : up->left;
    memcpy(buf, up->p, k);
    up->p += k;
    up->left -= k;
    return k;
}

/* Keeps the last reply line of the server: the reason of a refusal. */
static int debug_cb(CURL *h, curl_infotype type, char *data, size_t size, void *u)
{
    char *last = u;
    /* only refusals: the QUIT exchange after one must not replace it */
    if (type != CURLINFO_HEADER_IN || size < 3 || (data[0] != '4' && data[0] != '5')) return 0;
    size_t n = size < 511 ? size : 511;
    memcpy(last, data, n);
    last[n] = 0;
    for (char *p = last; *p; p++)
        if (*p == '\r' || *p == '\n') *p = ' ';
    email_strip(last);
    return 0;
}

static void apply_tls(struct email_ctx *c, CURL *h)
{
    if (c->tls == EMAIL_TLS_STARTTLS || c->tls == EMAIL_TLS_TLS)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
    else if (c->tls == EMAIL_TLS_NONE)
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE);
    if (c->conf.ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->conf.ca_file);
}

/* "smtps://" when email.tls is "tls" and the URL says smtp://. */
static char *smtp_url(struct email_ctx *c)
{
    const char *u = c->conf.smtp_url;
    if (c->tls == EMAIL_TLS_TLS && strncasecmp(u, "smtp://", 7) == 0) {
        size_t n = strlen(u) + 2;
        char *s = malloc(n);
        snprintf(s, n, "smtps://%s", u + 7);
        return s;
    }
    return strdup(u);
}

int email_smtp_send(struct email_ctx *c, const json_t *event, struct oh_send_result *res)
{
    if (!c->conf.smtp_url) {
        snprintf(res->error_code, sizeof res->error_code, "not_configured");
        snprintf(res->error, sizeof res->error, "email.smtp_url is not set");
        return OH_EINVAL;
    }
    json_t *data = oh_event_data(event);
    const char *conv = json_string_value(json_object_get(data, "conversation_id"));
    const char *account = json_string_value(json_object_get(data, "account"));
    const char *ours = json_string_value(json_object_get(data, "message_id"));
    json_t *thread = conv ? email_thread_get(c, conv) : NULL;
    char *msg = NULL, msgid[512], err[256];
    size_t len = 0;
    int rc = email_compose(c, event, thread, &msg, &len, msgid, sizeof msgid, err, sizeof err);
    if (rc < 0) {
        json_decref(thread);
        snprintf(res->error_code, sizeof res->error_code, "invalid");
        snprintf(res->error, sizeof res->error, "%s", err);
        return rc;
    }
    const char *to = json_string_value(json_object_get(thread, "reply_to"));
    if (!to || !*to)
        to = json_string_value(json_object_get(json_object_get(data, "contact"), "id"));

    /* before sending: an instant reply must already find its thread */
    char token[17];
    email_conv_token(conv, token);
    if (oh_env_has_store(c->env)) {
        oh_env_kv_put(c->env, "token", token, conv);
        oh_env_ref_put(c->env, account ? account : c->address, msgid, conv, ours);
    }

    CURL *h = curl_easy_init();
    char from[600], rcpt[600], last[512] = "";
    snprintf(from, sizeof from, "<%s>", c->address);
    snprintf(rcpt, sizeof rcpt, "<%s>", to);
    struct curl_slist *rcpts = curl_slist_append(NULL, rcpt);
    struct upload up = {msg, len};
    char *url = smtp_url(c);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, last);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    if (c->conf.username && c->conf.password) {
        curl_easy_setopt(h, CURLOPT_USERNAME, c->conf.username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->conf.password);
    }
    apply_tls(c, h);
    CURLcode cc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    /* the QUIT exchange of the cleanup must not overwrite the reason */
    curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
    curl_easy_cleanup(h);
    curl_slist_free_all(rcpts);
    free(url);
    free(msg);

    if (cc == CURLE_OK) {
        snprintf(res->provider_message_id, sizeof res->provider_message_id, "%s", msgid);
        json_t *refs = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(thread, "refs"), i, v) json_array_append(refs, v);
        const char *prev = json_string_value(json_object_get(thread, "last"));
        if (prev) json_array_append_new(refs, json_string(prev));
        const char *subj = json_string_value(json_object_get(thread, "subject"));
        email_thread_note(c, conv, subj, msgid, refs, to);
        json_decref(refs);
        json_decref(thread);
        oh_metrics_inc("omnihub_email_sent_total", "result=\"ok\"", 1);
        return 0;
    }
    json_decref(thread);
    if (code >= 500 && code < 600) {
        /* the enhanced status ("5.1.1") when the server gives one */
        const char *sp = strchr(last, ' ');
        if (sp && isdigit((unsigned char)sp[1]) && sp[2] == '.')
            snprintf(res->error_code, sizeof res->error_code, "%.*s", (int)strcspn(sp + 1, " "),
                     sp + 1);
        else
            snprintf(res->error_code, sizeof res->error_code, "%ld", code);
        snprintf(res->error, sizeof res->error, "%s", *last ? last : curl_easy_strerror(cc));
        oh_metrics_inc("omnihub_email_sent_total", "result=\"rejected\"", 1);
        return OH_EINVAL;
    }
    snprintf(res->error_code, sizeof res->error_code, "%ld", code);
    snprintf(res->error, sizeof res->error, "%s", code ? last : curl_easy_strerror(cc));
    OH_WARN("email", "SMTP send deferred: %s", res->error);
    oh_metrics_inc("omnihub_email_sent_total", "result=\"retry\"", 1);
    return OH_ERETRY;
}
