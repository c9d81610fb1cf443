/* slaclock.c - the SLA clocks of one conversation: pure functions of its
 * timeline (core/slaclock.h) and their saved text; no I/O, no clock of its
 * own. */
#include <stdlib.h>
#include <string.h>
#include "core/slaclock.h"
#include "core/event.h"

const char *const oh_sla_kind_name[2] = {"frt", "nrt"};

static int prio_rank(const char *p)
{
    static const char *const prios[] = {"urgent", "high", "normal", "low"};
    for (int i = 0; i < 4; i++)
        if (strcmp(p, prios[i]) == 0) return i;
    return 2;
}

/* Copies S into a status or priority field; a longer value (none the
 * reducer makes) is cut before a UTF-8 sequence so it is still written. */
static void set_word(char dst[16], const char *s)
{
    size_t n = strlen(s);
    if (n > 15) {
        n = 15;
        while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static bool paused_status(const char *st)
{
    return strcmp(st, "pending") == 0 || strcmp(st, "snoozed") == 0;
}

int oh_slaclock_init(struct oh_slaclock *c, const char *channel, const char *account)
{
    if (!channel) channel = "";
    if (!account) account = "";
    size_t cl = strlen(channel), al = strlen(account);
    memset(c, 0, sizeof *c);
    if (!oh_utf8_valid(channel, cl) || !oh_utf8_valid(account, al)) return OH_EINVAL;
    if (!(c->ch = malloc(cl + al + 2))) return OH_ENOMEM;
    memcpy(c->ch, channel, cl + 1);
    c->ac = c->ch + cl + 1;
    memcpy(c->ac, account, al + 1);
    c->ep = 1;
    set_word(c->st, "open");
    set_word(c->pr, "normal");
    return OH_OK;
}

void oh_slaclock_clear(struct oh_slaclock *c)
{
    free(c->ch);
    c->ch = c->ac = NULL;
}

/* A new episode: no clock, nothing breached. */
static void new_episode(struct oh_slaclock *c, int64_t ep)
{
    c->ep = ep;
    c->out = c->fd = false;
    c->nn = 0;
    c->nbr = 0;
    memset(c->clk, 0, sizeof c->clk);
}

static void start_clock(struct oh_slaclock *c, enum oh_sla_kind k, int64_t t)
{
    c->clk[k] = (struct oh_sla_clock){.on = true, .s = t};
}

/* Moves C to status ST at T: pauses, resumes or ends its clocks. */
static void set_status(struct oh_slaclock *c, const char *st, int64_t t)
{
    bool was = paused_status(c->st), now = paused_status(st);
    for (int i = 0; i < 2; i++) {
        struct oh_sla_clock *clk = &c->clk[i];
        if (!clk->on) continue;
        if (!was && now) clk->ps = t;
        if (was && !now && clk->ps) {
            clk->p += t > clk->ps ? t - clk->ps : 0;
            clk->ps = 0;
        }
    }
    if (strcmp(st, "resolved") == 0) /* the episode's clocks end with it */
        memset(c->clk, 0, sizeof c->clk);
    set_word(c->st, st);
}

void oh_slaclock_inbound(struct oh_slaclock *c, int64_t t)
{
    if (strcmp(c->st, "resolved") == 0) new_episode(c, c->ep + 1);
    if (strcmp(c->st, "open") != 0 && strcmp(c->st, "bot") != 0) set_status(c, "open", t);
    if (!c->clk[OH_SLA_FRT].on && !c->fd) {
        start_clock(c, OH_SLA_FRT, t);
    } else if (c->fd && c->out && !c->clk[OH_SLA_NRT].on) {
        start_clock(c, OH_SLA_NRT, t);
        c->nn++;
    }
    c->out = false;
}

void oh_slaclock_outbound(struct oh_slaclock *c, bool by_agent, int64_t t)
{
    (void)t;
    if (by_agent) {
        if (c->clk[OH_SLA_FRT].on) c->fd = true;
        memset(c->clk, 0, sizeof c->clk);
    }
    c->out = true;
}

void oh_slaclock_updated(struct oh_slaclock *c, int64_t episode, const char *status,
                         const char *priority, const char *reason, int64_t t)
{
    if (episode > c->ep) new_episode(c, episode);
    if (status && *status) set_status(c, status, t);
    if (priority && *priority) set_word(c->pr, priority);
    if (reason && strncmp(reason, "sla_breach:", 11) == 0)
        for (int k = 0; k < 2; k++) {
            if (strcmp(reason + 11, oh_sla_kind_name[k]) != 0) continue;
            if (c->clk[k].on) c->clk[k].b = true;
            if (c->nbr < OH_SLA_BREACHES_MAX) c->br[c->nbr++] = (uint8_t)k;
        }
}

int64_t oh_slaclock_due(const struct oh_slaclock *c, enum oh_sla_kind kind,
                        const struct oh_sla_targets *tg)
{
    const struct oh_sla_clock *clk = &c->clk[kind];
    if (!clk->on || clk->ps) return 0;
    int p = prio_rank(c->pr);
    int64_t target = kind == OH_SLA_FRT ? tg->frt_ms[p] : tg->nrt_ms[p];
    return clk->s + clk->p + target;
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (ms <= 0) return json_null();
    oh_time_rfc3339(t, ms);
    return json_string(t);
}

json_t *oh_slaclock_public(const struct oh_slaclock *c, const struct oh_sla_targets *tg)
{
    json_t *br = json_array();
    for (int i = 0; br && i < c->nbr; i++)
        json_array_append_new(br, json_string(oh_sla_kind_name[c->br[i]]));
    return json_pack("{s:o, s:o, s:o}", "first_response_due",
                     time_or_null(oh_slaclock_due(c, OH_SLA_FRT, tg)), "next_response_due",
                     time_or_null(oh_slaclock_due(c, OH_SLA_NRT, tg)), "breached", br);
}

/* ---- the saved text ---- */

#define LIT(b, s) oh_json_buf_put(b, s, sizeof s - 1)

static int put_time(struct oh_json_buf *b, int64_t ms)
{
    char t[34];
    if (ms <= 0) return LIT(b, "null");
    t[0] = '"';
    oh_time_rfc3339(t + 1, ms);
    size_t n = strlen(t);
    t[n] = '"';
    return oh_json_buf_put(b, t, n + 1);
}

static int put_bool(struct oh_json_buf *b, bool v)
{
    return v ? LIT(b, "true") : LIT(b, "false");
}

static int put_breached(struct oh_json_buf *b, const struct oh_slaclock *c)
{
    int rc = LIT(b, "[");
    for (int i = 0; !rc && i < c->nbr; i++)
        rc = (i && LIT(b, ",")) || (c->br[i] == OH_SLA_FRT ? LIT(b, "\"frt\"") : LIT(b, "\"nrt\""));
    return rc || LIT(b, "]");
}

static int put_clock(struct oh_json_buf *b, const struct oh_sla_clock *k)
{
    if (!k->on) return LIT(b, "null");
    int rc = LIT(b, "{\"s\":") || oh_json_buf_int(b, k->s) || LIT(b, ",\"p\":") ||
             oh_json_buf_int(b, k->p) || LIT(b, ",\"ps\":") || oh_json_buf_int(b, k->ps) ||
             LIT(b, ",\"b\":") || put_bool(b, k->b);
    /* f appears once a breach was decided, as the service added it */
    if (!rc && k->f) rc = LIT(b, ",\"f\":") || oh_json_buf_int(b, k->f);
    return rc || LIT(b, "}");
}

int oh_slaclock_write(const struct oh_slaclock *c, const struct oh_sla_targets *tg,
                      struct oh_json_buf *out)
{
    size_t start = out->len;
    const char *ch = c->ch ? c->ch : "", *ac = c->ac ? c->ac : "";
    int rc = LIT(out, "{\"sla\":{\"first_response_due\":") ||
             put_time(out, oh_slaclock_due(c, OH_SLA_FRT, tg)) ||
             LIT(out, ",\"next_response_due\":") ||
             put_time(out, oh_slaclock_due(c, OH_SLA_NRT, tg)) || LIT(out, ",\"breached\":") ||
             put_breached(out, c) || LIT(out, "},\"v\":{\"ch\":") ||
             oh_json_buf_string(out, ch, strlen(ch)) || LIT(out, ",\"ac\":") ||
             oh_json_buf_string(out, ac, strlen(ac)) || LIT(out, ",\"ep\":") ||
             oh_json_buf_int(out, c->ep) || LIT(out, ",\"st\":") ||
             oh_json_buf_string(out, c->st, strlen(c->st)) || LIT(out, ",\"pr\":") ||
             oh_json_buf_string(out, c->pr, strlen(c->pr)) || LIT(out, ",\"out\":") ||
             put_bool(out, c->out) || LIT(out, ",\"fd\":") || put_bool(out, c->fd) ||
             LIT(out, ",\"nn\":") || oh_json_buf_int(out, c->nn) || LIT(out, ",\"br\":") ||
             put_breached(out, c) || LIT(out, ",\"frt\":") || put_clock(out, &c->clk[OH_SLA_FRT]) ||
             LIT(out, ",\"nrt\":") || put_clock(out, &c->clk[OH_SLA_NRT]) || LIT(out, ",\"pt\":") ||
             oh_json_buf_int(out, c->pt) || LIT(out, ",\"seq\":") || oh_json_buf_int(out, c->seq) ||
             LIT(out, "}}");
    if (rc) {
        out->len = start;
        return OH_ENOMEM;
    }
    return OH_OK;
}

static int64_t iget(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static const char *sget(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The rare path (a conversation not in memory, a restart): jansson. */
int oh_slaclock_read(struct oh_slaclock *c, const char *text)
{
    memset(c, 0, sizeof *c);
    json_t *doc = json_loads(text, 0, NULL), *v = json_object_get(doc, "v");
    int rc = json_is_object(v) ? oh_slaclock_init(c, sget(v, "ch"), sget(v, "ac")) : OH_EINVAL;
    if (rc) {
        json_decref(doc);
        return rc;
    }
    c->ep = iget(v, "ep");
    set_word(c->st, sget(v, "st"));
    set_word(c->pr, sget(v, "pr"));
    c->out = json_is_true(json_object_get(v, "out"));
    c->fd = json_is_true(json_object_get(v, "fd"));
    c->nn = iget(v, "nn");
    const json_t *br = json_object_get(v, "br"), *kind;
    size_t i;
    json_array_foreach(br, i, kind)
    {
        const char *s = json_string_value(kind);
        for (int k = 0; s && k < 2 && c->nbr < OH_SLA_BREACHES_MAX; k++)
            if (strcmp(s, oh_sla_kind_name[k]) == 0) c->br[c->nbr++] = (uint8_t)k;
    }
    for (int k = 0; k < 2; k++) {
        const json_t *o = json_object_get(v, oh_sla_kind_name[k]);
        if (!json_is_object(o)) continue;
        c->clk[k] = (struct oh_sla_clock){.on = true,
                                          .b = json_is_true(json_object_get(o, "b")),
                                          .s = iget(o, "s"),
                                          .p = iget(o, "p"),
                                          .ps = iget(o, "ps"),
                                          .f = iget(o, "f")};
    }
    c->pt = iget(v, "pt");
    c->seq = iget(v, "seq");
    json_decref(doc);
    return OH_OK;
}
