/* email_parse.c - one RFC 5322 message into an omnihub event with GMime:
 * addresses, decoded headers, the new text, attachments, bounces. Pure. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <gmime/gmime.h>
#include "core/crypto.h"
#include "email_int.h"

#define EMAIL_MAX_DEPTH 32
#define EMAIL_MAX_PARTS 256
#define EMAIL_MAX_REFS  50

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_boot(void)
{
    g_mime_init();
}

void email_gmime_init(void)
{
    pthread_once(&gmime_once, gmime_boot);
}

void email_blobs_clear(struct email_blobs *bl)
{
    if (!bl) return;
    for (size_t i = 0; i < bl->n; i++)
        free(bl->b[i].data);
    free(bl->b);
    memset(bl, 0, sizeof *bl);
}

/* Everything the MIME walk collects. */
struct walk {
    const char *event_id;
    size_t max_blob;
    struct email_blobs *blobs;
    char *plain;   /* the inline text/plain bodies, joined, UTF-8 */
    char *html;    /* the first inline text/html body, UTF-8 */
    int nplain;    /* text/plain bodies in plain */
    bool alt_done; /* in a multipart/alternative whose text is taken */
    json_t *atts;
    int nparts;
    bool report; /* inside multipart/report; report-type=delivery-status */
    char *dsn;   /* message/delivery-status text */
    char *orig_msgid;
};

static char *lower(const char *s)
{
    char *d = strdup(s ? s : "");
    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* Decoded content of a leaf part (transfer encoding undone). */
static GByteArray *part_bytes(GMimePart *part)
{
    GMimeDataWrapper *w = g_mime_part_get_content(part);
    GByteArray *ba = g_byte_array_new();
    if (!w) return ba;
    GMimeStream *mem = g_mime_stream_mem_new_with_byte_array(ba);
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    g_mime_data_wrapper_write_to_stream(w, mem);
    g_object_unref(mem);
    return ba;
}

static char *part_text(GMimePart *part)
{
    GByteArray *ba = part_bytes(part);
    const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
    char *s = email_to_utf8(cs, (const char *)ba->data, ba->len);
    g_byte_array_free(ba, TRUE);
    const char *format = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "format");
    if (s && format && strcasecmp(format, "flowed") == 0) {
        const char *delsp = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "delsp");
        char *u = email_unflow(s, delsp && strcasecmp(delsp, "yes") == 0);
        free(s);
        s = u;
    }
    return s;
}

static void blob_add(struct walk *w, const char *ref, const char *ctype, const char *filename,
                     const uint8_t *data, size_t len)
{
    if (!w->blobs || len > w->max_blob) return;
    struct email_blobs *bl = w->blobs;
    for (size_t i = 0; i < bl->n; i++)
        if (strcmp(bl->b[i].ref, ref) == 0) return;
    if (oh_grow(&bl->b, &bl->cap, bl->n + 1, sizeof *bl->b, 4)) return;
    struct email_blob *b = &bl->b[bl->n];
    memset(b, 0, sizeof *b);
    b->data = malloc(len ? len : 1);
    if (!b->data) return;
    memcpy(b->data, data, len);
    b->len = len;
    snprintf(b->ref, sizeof b->ref, "%s", ref);
    snprintf(b->content_type, sizeof b->content_type, "%s", ctype);
    snprintf(b->filename, sizeof b->filename, "%s", filename ? filename : "");
    bl->n++;
}

/* The media ref of a part: hex SHA-256 over the event id, the part's index
 * and its bytes - stable for the same message, distinct across messages. */
static void make_ref(struct walk *w, int index, const uint8_t *data, size_t len, char ref[65])
{
    size_t idlen = strlen(w->event_id);
    size_t n = idlen + 16 + len;
    uint8_t *buf = malloc(n);
    if (!buf) {
        ref[0] = 0;
        return;
    }
    memcpy(buf, w->event_id, idlen);
    int k = snprintf((char *)buf + idlen, 16, "/%d/", index);
    if (len) memcpy(buf + idlen + (size_t)k, data, len);
    uint8_t h[OH_SHA256_LEN];
    oh_sha256(buf, idlen + (size_t)k + len, h);
    free(buf);
    oh_hex(h, sizeof h, ref);
}

static const char *kind_of(GMimeContentType *ct)
{
    const char *t = g_mime_content_type_get_media_type(ct);
    if (t && strcasecmp(t, "image") == 0) return "image";
    if (t && strcasecmp(t, "audio") == 0) return "audio";
    if (t && strcasecmp(t, "video") == 0) return "video";
    return "document";
}

static const char *ext_of(const char *mime)
{
    static const struct {
        const char *mime, *ext;
    } map[] = {
        {"application/pdf", ".pdf"}, {"image/png", ".png"},      {"image/jpeg", ".jpg"},
        {"image/gif", ".gif"},       {"text/plain", ".txt"},     {"text/html", ".html"},
        {"text/calendar", ".ics"},   {"message/rfc822", ".eml"}, {"application/zip", ".zip"},
        {"text/csv", ".csv"},        {"audio/mpeg", ".mp3"},     {"video/mp4", ".mp4"},
    };
    for (size_t i = 0; i < OH_ARRAY_SIZE(map); i++)
        if (strcasecmp(mime, map[i].mime) == 0) return map[i].ext;
    return ".bin";
}

static void add_attachment(struct walk *w, GMimeObject *obj, const uint8_t *data, size_t len,
                           const char *filename)
{
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    char *gm = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
    char *mime = lower(gm ? gm : "application/octet-stream");
    g_free(gm);
    char ref[65], gen[64];
    int index = w->nparts;
    make_ref(w, index, data, len, ref);
    if (!filename || !*filename) {
        snprintf(gen, sizeof gen, "attachment-%d%s", (int)json_array_size(w->atts) + 1,
                 ext_of(mime));
        filename = gen;
    }
    char *fname = email_to_utf8("utf-8", filename, strlen(filename));
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:I, s:s}", "kind", ct ? kind_of(ct) : "document", "mime_type",
                  mime, "filename", fname, "size", (json_int_t)len, "media_ref", ref);
    const char *cid = g_mime_object_get_content_id(obj);
    const char *disp = g_mime_object_get_disposition(obj);
    if (cid && (!disp || strcasecmp(disp, "attachment") != 0)) {
        json_object_set_new(a, "inline", json_true());
        char *c = email_to_utf8(NULL, cid, strlen(cid));
        json_object_set_new(a, "content_id", json_string(c));
        free(c);
    }
    if (len > w->max_blob) json_object_set_new(a, "too_big", json_true());
    json_array_append_new(w->atts, a);
    blob_add(w, ref, mime, fname, data, len);
    free(fname);
    free(mime);
}

/* Message-ID of the headers in a text/rfc822-headers part. */
static char *msgid_from_headers(const char *text)
{
    for (const char *p = text; p && *p;) {
        if (strncasecmp(p, "Message-ID:", 11) == 0) {
            const char *v = p + 11;
            const char *lt = strchr(v, '<');
            const char *nl = strchr(v, '\n');
            if (lt && (!nl || lt < nl)) {
                const char *gt = strchr(lt, '>');
                if (gt) return strndup(lt + 1, (size_t)(gt - lt - 1));
            }
        }
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NULL;
}

static void walk(struct walk *w, GMimeObject *obj, int depth)
{
    if (!obj || depth > EMAIL_MAX_DEPTH || w->nparts >= EMAIL_MAX_PARTS) return;
    w->nparts++;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (GMIME_IS_MULTIPART(obj)) {
        if (ct && g_mime_content_type_is_type(ct, "multipart", "report")) {
            const char *rt = g_mime_content_type_get_parameter(ct, "report-type");
            if (rt && strcasecmp(rt, "delivery-status") == 0) w->report = true;
        }
        /* The parts of multipart/mixed (Apple Mail: text, picture, text)
         * all belong to the body; of an alternative, one text is the body,
         * and so a multipart inside it after that text adds none. */
        bool alt = ct && g_mime_content_type_is_type(ct, "multipart", "alternative");
        bool outer = w->alt_done;
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++) {
            int before = w->nplain;
            walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
            if (alt && w->nplain > before) w->alt_done = true;
        }
        w->alt_done = outer;
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (w->report) {
            if (inner && g_mime_message_get_message_id(inner) && !w->orig_msgid)
                w->orig_msgid = strdup(g_mime_message_get_message_id(inner));
            return;
        }
        /* a forwarded message: kept whole as an .eml attachment */
        GMimeStream *mem = g_mime_stream_mem_new();
        if (inner) g_mime_object_write_to_stream(GMIME_OBJECT(inner), NULL, mem);
        GByteArray *ba = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        const char *subj = inner ? g_mime_message_get_subject(inner) : NULL;
        char name[200];
        snprintf(name, sizeof name, "%.180s.eml", subj && *subj ? subj : "message");
        for (char *p = name; *p; p++)
            if (*p == '/' || *p == '\\') *p = '_';
        add_attachment(w, obj, ba->data, ba->len, name);
        g_object_unref(mem);
        return;
    }
    if (!GMIME_IS_PART(obj)) return;
    GMimePart *part = GMIME_PART(obj);
    const char *disp = g_mime_object_get_disposition(obj);
    bool attach = disp && strcasecmp(disp, "attachment") == 0;
    const char *filename = g_mime_part_get_filename(part);
    if (ct && g_mime_content_type_is_type(ct, "message", "delivery-status")) {
        if (!w->dsn) w->dsn = part_text(part);
        return;
    }
    if (ct && w->report && g_mime_content_type_is_type(ct, "text", "rfc822-headers")) {
        char *h = part_text(part);
        if (!w->orig_msgid) w->orig_msgid = msgid_from_headers(h);
        free(h);
        return;
    }
    bool is_text = !ct || g_mime_content_type_is_type(ct, "text", "plain");
    bool is_html = ct && g_mime_content_type_is_type(ct, "text", "html");
    if (!attach && !filename && is_text && !w->alt_done) {
        char *t = part_text(part);
        if (w->plain && t) {
            size_t n = strlen(w->plain) + strlen(t) + 2;
            char *joined = malloc(n);
            if (joined) snprintf(joined, n, "%s\n%s", w->plain, t);
            free(t);
            t = joined;
        }
        if (t) {
            free(w->plain);
            w->plain = t;
            w->nplain++;
        }
        return;
    }
    if (!attach && !filename && is_html && !w->html) {
        w->html = part_text(part);
        return;
    }
    if (!attach && !filename && (is_text || is_html)) return; /* further alternatives of the body */
    GByteArray *ba = part_bytes(part);
    add_attachment(w, obj, ba->data, ba->len, filename);
    g_byte_array_free(ba, TRUE);
}

/* ---- headers ---- */

static json_t *addr_json(InternetAddressMailbox *mb)
{
    const char *name = internet_address_get_name(INTERNET_ADDRESS(mb));
    char *addr = lower(internet_address_mailbox_get_addr(mb));
    char *a = email_to_utf8(NULL, addr, strlen(addr));
    char *n = email_to_utf8(NULL, name ? name : "", name ? strlen(name) : 0);
    json_t *j = json_pack("{s:s, s:s}", "address", a, "name", n);
    free(addr);
    free(a);
    free(n);
    return j;
}

static void addr_list(InternetAddressList *l, json_t *arr, int depth)
{
    int n = l ? internet_address_list_length(l) : 0;
    for (int i = 0; i < n && json_array_size(arr) < 200; i++) {
        InternetAddress *ia = internet_address_list_get_address(l, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia))
            json_array_append_new(arr, addr_json(INTERNET_ADDRESS_MAILBOX(ia)));
        else if (INTERNET_ADDRESS_IS_GROUP(ia) && depth < 2)
            addr_list(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), arr,
                      depth + 1);
    }
}

static json_t *header_addrs(GMimeMessage *m, GMimeAddressType t)
{
    json_t *arr = json_array();
    addr_list(g_mime_message_get_addresses(m, t), arr, 0);
    return arr;
}

static json_t *msgid_list(GMimeParserOptions *opts, const char *value)
{
    json_t *arr = json_array();
    if (!value) return arr;
    GMimeReferences *refs = g_mime_references_parse(opts, value);
    int n = refs ? g_mime_references_length(refs) : 0;
    /* keep the most recent ones: a thread's tail matters for routing */
    for (int i = n > EMAIL_MAX_REFS ? n - EMAIL_MAX_REFS : 0; i < n; i++) {
        const char *id = g_mime_references_get_message_id(refs, i);
        if (id && *id && oh_utf8_valid(id, strlen(id)) && strlen(id) < 500)
            json_array_append_new(arr, json_string(id));
    }
    if (refs) g_mime_references_free(refs);
    return arr;
}

static const char *hdr(GMimeMessage *m, const char *name)
{
    return g_mime_object_get_header(GMIME_OBJECT(m), name);
}

static bool is_auto_reply(GMimeMessage *m, bool report)
{
    const char *as = hdr(m, "Auto-Submitted");
    if (as) {
        char v[64];
        snprintf(v, sizeof v, "%s", as);
        email_strip(v);
        if (*v && strncasecmp(v, "no", 2) != 0) return true;
    }
    const char *prec = hdr(m, "Precedence");
    if (prec) {
        char v[64];
        snprintf(v, sizeof v, "%s", prec);
        email_strip(v);
        if (strcasecmp(v, "bulk") == 0 || strcasecmp(v, "auto_reply") == 0 ||
            strcasecmp(v, "junk") == 0)
            return true;
    }
    if (hdr(m, "X-Autoreply") || hdr(m, "X-Autorespond") || hdr(m, "X-Auto-Reply")) return true;
    return report;
}

/* ---- delivery status reports ---- */

struct dsn {
    char action[32], status[32], recipient[320], diag[512];
};

/* The first failed recipient of a message/delivery-status body. */
static bool dsn_parse(const char *text, struct dsn *d)
{
    memset(d, 0, sizeof *d);
    struct dsn cur = {0};
    char field[32] = "";
    const char *p = text;
    bool found = false;
    while (p && !found) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        email_strip(line);
        if (!*line || !nl) {
            /* end of a recipient block */
            if ((strcasecmp(cur.action, "failed") == 0 || cur.status[0] == '5') && cur.status[0])
                *d = cur, found = true;
            memset(&cur, 0, sizeof cur);
            if (!nl) break;
        } else if ((*p == ' ' || *p == '\t') && strcasecmp(field, "Diagnostic-Code") == 0) {
            size_t l = strlen(cur.diag);
            const char *cont = line;
            while (*cont == ' ' || *cont == '\t')
                cont++;
            snprintf(cur.diag + l, sizeof cur.diag - l, " %s", cont);
        } else {
            char *colon = strchr(line, ':');
            if (colon) {
                *colon = 0;
                snprintf(field, sizeof field, "%s", line);
                char *v = colon + 1;
                while (*v == ' ')
                    v++;
                char *semi = strchr(v, ';');
                if (strcasecmp(field, "Action") == 0)
                    snprintf(cur.action, sizeof cur.action, "%s", v);
                else if (strcasecmp(field, "Status") == 0)
                    snprintf(cur.status, sizeof cur.status, "%.20s", v);
                else if (strcasecmp(field, "Final-Recipient") == 0)
                    snprintf(cur.recipient, sizeof cur.recipient, "%s", semi ? semi + 1 : v);
                else if (strcasecmp(field, "Diagnostic-Code") == 0)
                    snprintf(cur.diag, sizeof cur.diag, "%s", semi ? semi + 1 : v);
            }
        }
        p = nl ? nl + 1 : NULL;
    }
    for (char *s = d->recipient; *s; s++)
        *s = (char)tolower((unsigned char)*s);
    email_strip(d->recipient);
    char *r = d->recipient;
    while (*r == ' ')
        memmove(r, r + 1, strlen(r));
    char *dg = d->diag;
    while (*dg == ' ')
        memmove(dg, dg + 1, strlen(dg));
    return found;
}

/* ---- the event ---- */

static int64_t date_ms(GMimeMessage *m)
{
    GDateTime *dt = g_mime_message_get_date(m);
    if (!dt) return 0;
    int64_t ms = (int64_t)g_date_time_to_unix(dt) * 1000 + g_date_time_get_microsecond(dt) / 1000;
    /* a Date before 1990 or far in the future is a broken clock */
    if (ms < 631152000000LL || ms > oh_now_ms() + 366LL * 86400000) return 0;
    return ms;
}

static int build(const struct oh_norm_ctx *nc, GMimeMessage *m, GMimeParserOptions *opts,
                 const uint8_t *raw, size_t len, size_t max_blob, struct oh_event_list *out,
                 struct email_blobs *blobs, char *err, size_t errlen)
{
    json_t *from = header_addrs(m, GMIME_ADDRESS_TYPE_FROM);
    if (json_array_size(from) == 0) {
        json_decref(from);
        from = header_addrs(m, GMIME_ADDRESS_TYPE_SENDER);
    }
    json_t *to = header_addrs(m, GMIME_ADDRESS_TYPE_TO);
    json_t *cc = header_addrs(m, GMIME_ADDRESS_TYPE_CC);
    json_t *reply_to = header_addrs(m, GMIME_ADDRESS_TYPE_REPLY_TO);
    const char *sender = json_string_value(json_object_get(json_array_get(from, 0), "address"));
    int rc = OH_EINVAL;
    char *account = NULL, *msgid = NULL, *subject = NULL;
    struct walk w = {0};
    if (!sender || !*sender || !strchr(sender, '@')) {
        oh_errf(err, errlen, "no usable From address");
        goto out;
    }
    const char *acct = nc->account && *nc->account
                           ? nc->account
                           : json_string_value(json_object_get(json_array_get(to, 0), "address"));
    if (!acct || !*acct) {
        oh_errf(err, errlen, "no account: give --account or a To address");
        goto out;
    }
    account = lower(acct);

    const char *mid = g_mime_message_get_message_id(m);
    if (mid && *mid && strlen(mid) < 500 && oh_utf8_valid(mid, strlen(mid))) {
        msgid = strdup(mid);
    } else {
        uint8_t h[OH_SHA256_LEN];
        char hex[2 * OH_SHA256_LEN + 1];
        oh_sha256(raw, len, h);
        oh_hex(h, sizeof h, hex);
        msgid = malloc(80);
        snprintf(msgid, 80, "sha256:%s", hex);
    }
    char id[OH_ID_MAX], conv[OH_ID_MAX];
    oh_event_id(id, "email", account, msgid, NULL);

    const char *subj = g_mime_message_get_subject(m);
    subject = email_to_utf8(NULL, subj ? subj : "", subj ? strlen(subj) : 0);
    email_strip(subject);
    oh_utf8_sanitize(subject);

    w.event_id = id;
    w.max_blob = max_blob;
    w.blobs = blobs;
    w.atts = json_array();
    walk(&w, g_mime_message_get_mime_part(m), 0);

    json_t *in_reply_to = msgid_list(opts, hdr(m, "In-Reply-To"));
    json_t *refs = msgid_list(opts, hdr(m, "References"));
    json_t *delivered = json_array();
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
    int nh = g_mime_header_list_get_count(hl);
    for (int i = 0; i < nh && json_array_size(delivered) < 8; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *hn = g_mime_header_get_name(h);
        const char *hv = g_mime_header_get_value(h);
        if (hn && hv &&
            (strcasecmp(hn, "Delivered-To") == 0 || strcasecmp(hn, "X-Original-To") == 0 ||
             strcasecmp(hn, "Envelope-To") == 0)) {
            InternetAddressList *l = internet_address_list_parse(opts, hv);
            if (l) {
                addr_list(l, delivered, 0);
                g_object_unref(l);
            }
        }
    }

    int64_t sent_ms = date_ms(m);
    char sent_at[32] = "";
    if (sent_ms) oh_time_rfc3339(sent_at, sent_ms);
    bool auto_reply = is_auto_reply(m, w.report);

    json_t *em = json_pack("{s:O, s:O, s:O, s:s, s:O, s:O, s:b}", "from", json_array_get(from, 0),
                           "to", to, "cc", cc, "message_id", msgid, "references", refs,
                           "delivered_to", delivered, "auto_reply", auto_reply);
    json_object_set_new(em, "in_reply_to",
                        json_array_size(in_reply_to) ? json_incref(json_array_get(in_reply_to, 0))
                                                     : json_null());
    json_object_set_new(em, "date", sent_ms ? json_string(sent_at) : json_null());
    if (json_array_size(reply_to)) json_object_set(em, "reply_to", json_array_get(reply_to, 0));

    struct dsn d;
    if (w.report && w.dsn && dsn_parse(w.dsn, &d)) {
        /* a bounce: the failed status of the message it bounces */
        char *orig = w.orig_msgid ? strdup(w.orig_msgid) : NULL;
        if (!orig && json_array_size(in_reply_to))
            orig = strdup(json_string_value(json_array_get(in_reply_to, 0)));
        if (orig) {
            /* report fields are raw bytes from a stranger: make them JSON-safe */
            oh_utf8_sanitize(orig);
            oh_utf8_sanitize(d.recipient);
            oh_utf8_sanitize(d.status);
            oh_utf8_sanitize(d.diag);
            const char *rcpt = *d.recipient ? d.recipient : sender;
            oh_conversation_id(conv, "email", account, rcpt);
            char sid[OH_ID_MAX];
            oh_event_id(sid, "email", account, orig, "status", "failed", NULL);
            /* status.message_id is the bounced Message-ID: the poller (or
             * the sync service) swaps in our own message id */
            json_t *status = json_pack("{s:s, s:s, s:{s:s, s:s}}", "message_id", orig, "state",
                                       "failed", "error", "code", *d.status ? d.status : "bounce",
                                       "message", *d.diag ? d.diag : "delivery failed");
            /* the thread lookup of the poller finds the bounced message */
            json_t *rt = json_array();
            json_array_append_new(rt, json_string(orig));
            json_object_set_new(em, "in_reply_to", json_string(orig));
            json_object_set_new(em, "references", rt);
            json_object_set_new(em, "bounce", json_true());
            json_t *data = json_pack(
                "{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:o, s:o}",
                "conversation_id", conv, "channel", "email", "account", account, "direction",
                "outbound", "kind", "email", "contact", "id", rcpt, "name", "", "author", "kind",
                "system", "id", sender, "status", status, "email", em);
            em = NULL;
            json_t *ev = oh_event_new(OH_EV_STATUS, sid, sent_ms ? sent_ms : nc->now_ms, data);
            free(orig);
            if (!ev || oh_event_list_push(out, ev) < 0) {
                oh_errf(err, errlen, "cannot build the bounce event");
                rc = OH_ENOMEM;
                goto out_refs;
            }
            rc = 0;
            goto out_refs;
        }
    }

    /* the body: text/plain, else the HTML converted */
    char *full = w.plain  ? strdup(w.plain)
                 : w.html ? email_html_to_text(w.html, strlen(w.html))
                          : strdup("");
    email_strip(full);
    oh_utf8_sanitize(full);
    char *text = email_trim_quotes(full);
    oh_utf8_sanitize(text);
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "conversation_id", "", "channel",
                  "email", "account", account, "direction", "inbound", "message_id", msgid, "kind",
                  "email", "subject", subject, "text", text);
    const char *cname = json_string_value(json_object_get(json_array_get(from, 0), "name"));
    oh_conversation_id(conv, "email", account, sender);
    json_object_set_new(data, "conversation_id", json_string(conv));
    /* a From address anyone can write: never verified, so it only ever
     * suggests a merge (core/contacts.h) */
    json_object_set_new(data, "contact",
                        json_pack("{s:s, s:s, s:[{s:s, s:s, s:b}]}", "id", sender, "name",
                                  cname ? cname : "", "identifiers", "type", "email", "value",
                                  sender, "verified", 0));
    json_object_set_new(
        data, "author",
        json_pack("{s:s, s:s}", "kind", auto_reply ? "system" : "customer", "id", sender));
    if (sent_ms) json_object_set_new(data, "sent_at", json_string(sent_at));
    if (json_array_size(in_reply_to))
        json_object_set(data, "reply_to", json_array_get(in_reply_to, 0));
    if (auto_reply) json_object_set_new(data, "auto_reply", json_true());
    if (json_array_size(w.atts)) json_object_set(data, "attachments", w.atts);
    if (w.html) {
        char ref[65];
        size_t hl2 = strlen(w.html);
        make_ref(&w, -1, (const uint8_t *)w.html, hl2, ref);
        json_object_set_new(data, "html_ref", json_string(ref));
        blob_add(&w, ref, "text/html; charset=utf-8", "message.html", (const uint8_t *)w.html, hl2);
    }
    if (strcmp(text, full) != 0) {
        char ref[65];
        size_t fl = strlen(full);
        make_ref(&w, -2, (const uint8_t *)full, fl, ref);
        json_object_set_new(data, "body_ref", json_string(ref));
        blob_add(&w, ref, "text/plain; charset=utf-8", "message.txt", (const uint8_t *)full, fl);
    }
    json_object_set_new(data, "email", em);
    em = NULL;
    free(text);
    free(full);
    json_t *ev = oh_event_new(OH_EV_INBOUND, id, sent_ms ? sent_ms : nc->now_ms, data);
    if (!ev || oh_event_list_push(out, ev) < 0) {
        oh_errf(err, errlen, "cannot build the event");
        rc = OH_ENOMEM;
        goto out_refs;
    }
    rc = 0;
out_refs:
    json_decref(em);
    json_decref(in_reply_to);
    json_decref(refs);
    json_decref(delivered);
out:
    json_decref(from);
    json_decref(to);
    json_decref(cc);
    json_decref(reply_to);
    json_decref(w.atts);
    free(w.plain);
    free(w.html);
    free(w.dsn);
    free(w.orig_msgid);
    free(account);
    free(msgid);
    free(subject);
    return rc;
}

int email_parse(const struct oh_norm_ctx *nc, const uint8_t *raw, size_t len, size_t max_blob,
                struct oh_event_list *out, struct email_blobs *blobs, char *err, size_t errlen)
{
    email_gmime_init();
    if (!raw || len == 0) {
        oh_errf(err, errlen, "empty message");
        return OH_EINVAL;
    }
    /* a header section needs at least one "name:" line */
    const uint8_t *colon = memchr(raw, ':', len < 1000 ? len : 1000);
    if (!colon) {
        oh_errf(err, errlen, "not an RFC 5322 message: no header fields");
        return OH_EINVAL;
    }
    GMimeParserOptions *opts = g_mime_parser_options_new();
    g_mime_parser_options_set_rfc2047_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_address_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(opts, GMIME_RFC_COMPLIANCE_LOOSE);
    const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    g_mime_parser_options_set_fallback_charsets(opts, fallback);

    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)raw, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, opts);
    int rc;
    if (!m) {
        oh_errf(err, errlen, "not an RFC 5322 message");
        rc = OH_EINVAL;
    } else {
        rc = build(nc, m, opts, raw, len, max_blob, out, blobs, err, errlen);
        g_object_unref(m);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    g_mime_parser_options_free(opts);
    return rc;
}
