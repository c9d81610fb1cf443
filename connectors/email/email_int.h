/* email_int.h - what the email connector's files share: the instance
 * state, MIME parsing into events, text helpers, threading, IMAP and SMTP. */
#ifndef OH_EMAIL_INT_H
#define OH_EMAIL_INT_H

#include <pthread.h>
#include <jansson.h>
#include "core/connector.h"

enum email_tls { EMAIL_TLS_URL, EMAIL_TLS_NONE, EMAIL_TLS_STARTTLS, EMAIL_TLS_TLS };

/* One mailbox the poller watches, with its last poll outcome. */
struct email_mailbox {
    char *name;   /* IMAP mailbox name, e.g. "INBOX" */
    char *status; /* "ok" | "error: ..." (malloc'd, under ctx->mu) */
};

/* The email.* keys, filled by email_map (email.c). Strings the file
 * leaves empty are NULL. */
struct email_conf {
    char *imap_url;
    char **mailboxes; /* NULL-terminated, NULL when none */
    char *smtp_url;   /* NULL: no sending */
    char *username, *password;
    char *address; /* as configured; email_ctx.address is lower case */
    char *from_name;
    int64_t poll_interval; /* seconds */
    int64_t max_message;   /* bytes */
    char *tls;
    char *ca_file;
};

struct email_ctx {
    const struct oh_conn_env *env;
    struct email_conf conf;
    /* derived from conf by email_init */
    char *imap_base; /* "imap://host:port" without the mailbox, NULL: no poller */
    struct email_mailbox *mbox;
    size_t nmbox;
    char *address;         /* our address, lower case */
    char *local;           /* its local part */
    char *domain;          /* its domain */
    const char *from_name; /* display name of outgoing mail (conf's), may be NULL */
    char *media_dir;       /* <data_dir>/media/email */
    enum email_tls tls;
    int64_t poll_ms;
    size_t max_message;

    pthread_t thread;
    bool started;
    pthread_mutex_t thread_mu; /* serializes read-modify-write of thread state */
    pthread_mutex_t mu;        /* guards everything below (never held over I/O) */
    pthread_cond_t cv;
    bool stop;
    char imap_state[256];
    int64_t last_poll_ms;
    int failures; /* consecutive failed polls, for backoff */
};

/* S, or DEF when S is NULL. */
static inline const char *email_or(const char *s, const char *def)
{
    return s ? s : def;
}

/* ---- email_parse.c ---- */

/* A decoded MIME part kept as a media object (attachment, HTML body). */
struct email_blob {
    char ref[65]; /* hex SHA-256 */
    char content_type[128];
    char filename[256];
    uint8_t *data; /* malloc'd */
    size_t len;
};
struct email_blobs {
    struct email_blob *b;
    size_t n, cap;
};
void email_blobs_clear(struct email_blobs *bl);

/* Parses one RFC 5322 message into events (one inbound message, or one
 * status for a delivery failure report). When BLOBS is not NULL, the bytes
 * of every media ref the events name are appended to it (parts larger than
 * MAX_BLOB are described but not kept). Pure otherwise. OH_EINVAL with a
 * one-line reason in ERR for input that is not a usable message. */
int email_parse(const struct oh_norm_ctx *nc, const uint8_t *raw, size_t len, size_t max_blob,
                struct oh_event_list *out, struct email_blobs *blobs, char *err, size_t errlen);

/* Initializes GMime once per process; any thread. */
void email_gmime_init(void);

/* ---- email_text.c (pure; results malloc'd, caller frees) ---- */

/* IN (LEN bytes) in CHARSET (NULL/unknown: UTF-8 when valid, else
 * Windows-1252) as valid UTF-8 without NUL bytes. */
char *email_to_utf8(const char *charset, const char *in, size_t len);
/* Readable text of an HTML document: tags stripped, block structure kept
 * as line breaks, entities decoded, blockquotes prefixed with "> ". */
char *email_html_to_text(const char *html, size_t len);
/* TEXT sent as RFC 3676 format=flowed (DELSP: delsp=yes) as the lines its
 * writer meant: soft breaks joined, space-stuffing removed, quoted lines
 * as "> " lines. Caller frees. */
char *email_unflow(const char *text, bool delsp);
/* What is new in a reply: quoted history removed. Never empty unless
 * TEXT is blank. */
char *email_trim_quotes(const char *text);
/* Escaped HTML for plain TEXT, paragraphs and line breaks kept. */
char *email_text_to_html(const char *text);
/* Removes leading/trailing blank space in place; returns S. */
char *email_strip(char *s);

/* ---- email_thread.c: threading state in the store ---- */

/* Hex token naming conversation CONV in plus addresses; OUT >= 17. */
void email_conv_token(const char *conv, char out[17]);
/* Moves the inbound event EV into the conversation its headers point to
 * (plus address, our Message-IDs, known In-Reply-To/References). Store
 * calls; blocks. */
void email_thread_resolve(struct email_ctx *c, json_t *ev);
/* Remembers the last message of CONV's thread: its SUBJECT, MSGID, the
 * REFS (borrowed) it cited (merged after the thread's earlier ones) and,
 * unless NULL, the address replies go to. Store calls. */
void email_thread_note(struct email_ctx *c, const char *conv, const char *subject,
                       const char *msgid, json_t *refs, const char *reply_addr);
/* The remembered thread of CONV as a JSON object (new reference) or NULL. */
json_t *email_thread_get(struct email_ctx *c, const char *conv);

/* ---- email_imap.c: the poller ---- */
int email_imap_start(struct email_ctx *c);
void email_imap_stop(struct email_ctx *c);

/* ---- email_smtp.c ---- */

/* Builds the outgoing message of EVENT; caller frees *OUT. MSGID gets the
 * Message-ID (without brackets). Pure apart from THREAD. */
int email_compose(struct email_ctx *c, const json_t *event, json_t *thread, char **out,
                  size_t *outlen, char *msgid, size_t msgidlen, char *err, size_t errlen);
int email_smtp_send(struct email_ctx *c, const json_t *event, struct oh_send_result *res);

#endif
