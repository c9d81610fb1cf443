/* email_thread.c - keeps email conversations together: plus-address and
 * Message-ID tokens, known In-Reply-To/References, and the remembered
 * thread (subject, last Message-ID, references) replies continue. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/crypto.h"
#include "email_int.h"

/* spaces of the connector's key-value store: "email.thread", "email.token" */
#define THREAD_NS   "thread"
#define TOKEN_NS    "token"
#define THREAD_REFS 20 /* references kept, the most recent ones */

void email_conv_token(const char *conv, char out[17])
{
    uint8_t h[OH_SHA256_LEN];
    char buf[OH_ID_MAX + 16];
    snprintf(buf, sizeof buf, "email-token:%s", conv);
    oh_sha256(buf, strlen(buf), h);
    oh_hex(h, 8, out);
}

static bool conv_of_token(struct email_ctx *c, const char *token, char conv[OH_ID_MAX])
{
    if (strlen(token) != 16 || strspn(token, "0123456789abcdef") != 16) return false;
    return oh_env_kv_get(c->env, TOKEN_NS, token, conv, OH_ID_MAX) == 0;
}

/* local+TOKEN@domain with our local part and domain. */
static bool token_of_address(struct email_ctx *c, const char *addr, char token[17])
{
    size_t ll = strlen(c->local);
    const char *at = strrchr(addr, '@');
    if (!at || strcasecmp(at + 1, c->domain) != 0 || strncasecmp(addr, c->local, ll) != 0 ||
        addr[ll] != '+' || (size_t)(at - addr) != ll + 17)
        return false;
    for (int i = 0; i < 16; i++)
        token[i] = (char)tolower((unsigned char)addr[ll + 1 + i]);
    token[16] = 0;
    return true;
}

/* oh.TOKEN.xxx@domain: the Message-IDs we generate. */
static bool token_of_msgid(struct email_ctx *c, const char *id, char token[17])
{
    const char *at = strrchr(id, '@');
    if (strncmp(id, "oh.", 3) != 0 || strlen(id) < 3 + 17 || id[19] != '.' || !at ||
        strcasecmp(at + 1, c->domain) != 0)
        return false;
    memcpy(token, id + 3, 16);
    token[16] = 0;
    return true;
}

static bool by_addresses(struct email_ctx *c, json_t *arr, char conv[OH_ID_MAX])
{
    size_t i;
    json_t *a;
    char token[17];
    json_array_foreach(arr, i, a)
    {
        const char *addr = json_string_value(json_object_get(a, "address"));
        if (addr && token_of_address(c, addr, token) && conv_of_token(c, token, conv)) return true;
    }
    return false;
}

static bool by_msgid(struct email_ctx *c, const char *account, const char *id, char conv[OH_ID_MAX])
{
    char found[OH_ID_MAX];
    if (!id) return false;
    if (oh_env_ref_get(c->env, account, id, found, NULL, 0) == 0 && found[0]) {
        memcpy(conv, found, OH_ID_MAX);
        return true;
    }
    char token[17];
    return token_of_msgid(c, id, token) && conv_of_token(c, token, conv);
}

void email_thread_resolve(struct email_ctx *c, json_t *ev)
{
    json_t *data = oh_event_data(ev);
    json_t *em = json_object_get(data, "email");
    const char *account = json_string_value(json_object_get(data, "account"));
    char conv[OH_ID_MAX];
    bool found = false;
    if (!em || !account) return;
    /* 1. replies to our plus-addressed Reply-To carry the conversation */
    found = by_addresses(c, json_object_get(em, "to"), conv) ||
            by_addresses(c, json_object_get(em, "cc"), conv) ||
            by_addresses(c, json_object_get(em, "delivered_to"), conv);
    /* 2. any known message this one answers; In-Reply-To first, then the
     * References from the most recent backwards */
    if (!found)
        found = by_msgid(c, account, json_string_value(json_object_get(em, "in_reply_to")), conv);
    json_t *refs = json_object_get(em, "references");
    for (size_t i = json_array_size(refs); !found && i > 0; i--)
        found = by_msgid(c, account, json_string_value(json_array_get(refs, i - 1)), conv);
    if (!found) return;
    /* a bounce: name our own message, as the sync service would */
    json_t *status = json_object_get(data, "status");
    const char *pid = json_string_value(json_object_get(status, "message_id"));
    char ours[512];
    if (pid && oh_env_ref_get(c->env, account, pid, NULL, ours, sizeof ours) == 0 &&
        strcmp(ours, pid) != 0) {
        json_object_set_new(status, "provider_message_id", json_string(pid));
        json_object_set_new(status, "message_id", json_string(ours));
    }
    json_object_set_new(data, "conversation_id", json_string(conv));
    json_object_set_new(ev, "subject", json_string(conv));
}

#define THREAD_MAX (64 * 1024) /* a remembered thread's text, at most */

json_t *email_thread_get(struct email_ctx *c, const char *conv)
{
    char *buf = oh_env_has_store(c->env) ? malloc(THREAD_MAX) : NULL;
    json_t *t = buf && oh_env_kv_get(c->env, THREAD_NS, conv, buf, THREAD_MAX) == 0
                    ? json_loads(buf, 0, NULL)
                    : NULL;
    free(buf);
    return t;
}

/* T with MSGID noted as the thread's last message: the references it had,
 * then its last message, then what this message cites, each once and the
 * most recent THREAD_REFS of them (clients that drop or rewrite References
 * must not make the thread forget its history). */
static void note_into(json_t *t, const char *subject, const char *msgid, json_t *refs,
                      const char *reply_addr)
{
    json_t *all = json_array();
    json_t *old = json_object_get(t, "refs");
    for (int pass = 0; pass < 3; pass++) {
        json_t *src = pass == 0 ? old : pass == 2 ? refs : NULL;
        if (pass == 1) {
            src = json_array();
            if (json_string_value(json_object_get(t, "last")))
                json_array_append(src, json_object_get(t, "last"));
        }
        size_t i;
        json_t *r;
        json_array_foreach(src, i, r)
        {
            const char *id = json_string_value(r);
            bool dup = !id || strcmp(id, msgid) == 0;
            size_t k;
            json_t *x;
            json_array_foreach(all, k, x) dup |= id && strcmp(json_string_value(x), id) == 0;
            if (!dup) json_array_append(all, r);
        }
        if (pass == 1) json_decref(src);
    }
    while (json_array_size(all) > THREAD_REFS)
        json_array_remove(all, 0);
    json_object_set_new(t, "refs", all);
    json_object_set_new(t, "last", json_string(msgid));
    if (subject && *subject) json_object_set_new(t, "subject", json_string(subject));
    if (reply_addr && *reply_addr) json_object_set_new(t, "reply_to", json_string(reply_addr));
}

struct note {
    const char *subject, *msgid, *reply_addr;
    json_t *refs;
};

/* oh_env_kv_change_fn: the thread stored (CUR) with the message noted */
static int noted(void *ctx, const char *cur, char **next)
{
    const struct note *n = ctx;
    json_t *t = cur ? json_loads(cur, 0, NULL) : NULL;
    if (!t) t = json_object(); /* none, or unreadable: written anew */
    note_into(t, n->subject, n->msgid, n->refs, n->reply_addr);
    *next = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    return *next ? OH_OK : OH_ENOMEM;
}

/* The poller (inbound mail) and the dispatcher (our replies) may note one
 * conversation at once, in two processes: each note is read, changed and
 * swapped in only if the stored thread is still what it read. */
void email_thread_note(struct email_ctx *c, const char *conv, const char *subject,
                       const char *msgid, json_t *refs, const char *reply_addr)
{
    if (!oh_env_has_store(c->env) || !conv || !msgid) return;
    struct note n = {subject, msgid, reply_addr, refs};
    pthread_mutex_lock(&c->thread_mu);
    int rc = oh_env_kv_update(c->env, THREAD_NS, conv, THREAD_MAX - 1, noted, &n);
    pthread_mutex_unlock(&c->thread_mu);
    if (rc < 0)
        oh_env_log(c->env, OH_LVL_WARN, "could not remember the thread of %s: %s", conv,
                   oh_strerror(rc));
}
