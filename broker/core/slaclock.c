/* slaclock.c - the SLA clocks of one conversation: pure functions of its
 * timeline (core/slaclock.h); no I/O, no clock of its own. */
#include <string.h>
#include "core/slaclock.h"
#include "core/event.h"

static int prio_rank(const char *p)
{
    static const char *const prios[] = {"urgent", "high", "normal", "low"};
    for (int i = 0; p && i < 4; i++)
        if (strcmp(p, prios[i]) == 0) return i;
    return 2;
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

static void iset(json_t *o, const char *k, int64_t v)
{
    json_object_set_new(o, k, json_integer(v));
}

static bool paused_status(const char *st)
{
    return strcmp(st, "pending") == 0 || strcmp(st, "snoozed") == 0;
}

static bool flag(const json_t *c, const char *k)
{
    return json_is_true(json_object_get(c, k));
}

static bool running(const json_t *c, const char *k)
{
    return json_is_object(json_object_get(c, k));
}

json_t *oh_slaclock_new(const char *channel, const char *account)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:b, s:b, s:I, s:[], s:n, s:n}", "ch",
                     channel ? channel : "", "ac", account ? account : "", "ep", (json_int_t)1,
                     "st", "open", "pr", "normal", "out", 0, "fd", 0, "nn", (json_int_t)0, "br",
                     "frt", "nrt");
}

/* A new episode: no clock, nothing breached. */
static void new_episode(json_t *c, int64_t ep)
{
    iset(c, "ep", ep);
    json_object_set_new(c, "out", json_false());
    json_object_set_new(c, "fd", json_false());
    iset(c, "nn", 0);
    json_object_set_new(c, "br", json_array());
    json_object_set_new(c, "frt", json_null());
    json_object_set_new(c, "nrt", json_null());
}

static void start_clock(json_t *c, const char *k, int64_t t)
{
    json_object_set_new(c, k,
                        json_pack("{s:I, s:I, s:I, s:b}", "s", (json_int_t)t, "p", (json_int_t)0,
                                  "ps", (json_int_t)0, "b", 0));
}

/* Moves C to status ST at T: pauses, resumes or ends its clocks. */
static void set_status(json_t *c, const char *st, int64_t t)
{
    bool was = paused_status(sget(c, "st")), now = paused_status(st);
    static const char *const ks[] = {"frt", "nrt"};
    for (int i = 0; i < 2; i++) {
        json_t *clk = json_object_get(c, ks[i]);
        if (!json_is_object(clk)) continue;
        if (!was && now) iset(clk, "ps", t);
        if (was && !now && iget(clk, "ps")) {
            iset(clk, "p", iget(clk, "p") + (t > iget(clk, "ps") ? t - iget(clk, "ps") : 0));
            iset(clk, "ps", 0);
        }
    }
    if (strcmp(st, "resolved") == 0) { /* the episode's clocks end with it */
        json_object_set_new(c, "frt", json_null());
        json_object_set_new(c, "nrt", json_null());
    }
    json_object_set_new(c, "st", json_string(st));
}

void oh_slaclock_inbound(json_t *c, int64_t t)
{
    const char *st = sget(c, "st");
    if (strcmp(st, "resolved") == 0) new_episode(c, iget(c, "ep") + 1);
    if (strcmp(st, "open") != 0 && strcmp(st, "bot") != 0) set_status(c, "open", t);
    if (!running(c, "frt") && !flag(c, "fd")) {
        start_clock(c, "frt", t);
    } else if (flag(c, "fd") && flag(c, "out") && !running(c, "nrt")) {
        start_clock(c, "nrt", t);
        iset(c, "nn", iget(c, "nn") + 1);
    }
    json_object_set_new(c, "out", json_false());
}

void oh_slaclock_outbound(json_t *c, bool by_agent, int64_t t)
{
    if (by_agent) {
        if (running(c, "frt")) json_object_set_new(c, "fd", json_true());
        json_object_set_new(c, "frt", json_null());
        json_object_set_new(c, "nrt", json_null());
    }
    json_object_set_new(c, "out", json_true());
}

void oh_slaclock_updated(json_t *c, const json_t *state, const char *reason, int64_t t)
{
    int64_t ep = iget(state, "episode");
    if (ep > iget(c, "ep")) new_episode(c, ep);
    if (*sget(state, "status")) set_status(c, sget(state, "status"), t);
    if (*sget(state, "priority")) json_object_set(c, "pr", json_object_get(state, "priority"));
    if (reason && strncmp(reason, "sla_breach:", 11) == 0 &&
        (strcmp(reason + 11, "frt") == 0 || strcmp(reason + 11, "nrt") == 0)) {
        const char *k = reason + 11;
        json_t *clk = json_object_get(c, k);
        if (json_is_object(clk)) json_object_set_new(clk, "b", json_true());
        json_t *br = json_object_get(c, "br");
        if (json_is_array(br) && json_array_size(br) < OH_SLA_BREACHES_MAX)
            json_array_append_new(br, json_string(k));
    }
}

int64_t oh_slaclock_due(const json_t *c, const char *kind, const struct oh_sla_targets *tg)
{
    const json_t *clk = json_object_get(c, kind);
    if (!json_is_object(clk) || iget(clk, "ps")) return 0;
    int p = prio_rank(sget(c, "pr"));
    int64_t target = strcmp(kind, "frt") == 0 ? tg->frt_ms[p] : tg->nrt_ms[p];
    return iget(clk, "s") + iget(clk, "p") + target;
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (ms <= 0) return json_null();
    oh_time_rfc3339(t, ms);
    return json_string(t);
}

json_t *oh_slaclock_public(const json_t *c, const struct oh_sla_targets *tg)
{
    json_t *br = json_object_get(c, "br");
    return json_pack("{s:o, s:o, s:o}", "first_response_due",
                     time_or_null(oh_slaclock_due(c, "frt", tg)), "next_response_due",
                     time_or_null(oh_slaclock_due(c, "nrt", tg)), "breached",
                     json_is_array(br) ? json_copy(br) : json_array());
}
