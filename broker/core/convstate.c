/* convstate.c - the desk's state reducer: pure functions from (state,
 * command or inbound message) to the change and the answer. No I/O: the
 * sync service feeds it in log order, the unit tests directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/convstate.h"
#include "core/event.h"

static const char *const statuses[] = {"bot", "open", "pending", "snoozed", "resolved"};
static const char *const priorities[] = {"urgent", "high", "normal", "low"};
static const char *const fields[] = {"status",   "assignee", "team",
                                     "priority", "labels",   "snoozed_until"};

static bool one_of(const char *v, const char *const *set, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        if (strcmp(v, set[i]) == 0) return true;
    return false;
}

/* P's place in priorities[] (0 = urgent: lower is more urgent), -1 when it
 * is none of them; a state without one counts as normal. */
static int rank(const char *p)
{
    for (int i = 0; p && i < (int)OH_ARRAY_SIZE(priorities); i++)
        if (strcmp(p, priorities[i]) == 0) return i;
    return -1;
}

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ms)
{
    char t[32];
    if (ms <= 0) return json_null();
    oh_time_rfc3339(t, ms);
    return json_string(t);
}

json_t *oh_convstate_make(const char *status, const char *assignee, const char *team,
                          const char *priority, const char *labels, int64_t snoozed_until_ms,
                          const char *contact_id, int64_t episode)
{
    json_t *l = labels && *labels ? json_loads(labels, 0, NULL) : NULL;
    if (!json_is_array(l)) {
        json_decref(l);
        l = json_array();
    }
    return json_pack("{s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:I}", "status",
                     one_of(status, statuses, OH_ARRAY_SIZE(statuses)) ? status : "open",
                     "assignee", str_or_null(assignee), "team", str_or_null(team), "priority",
                     one_of(priority, priorities, OH_ARRAY_SIZE(priorities)) ? priority : "normal",
                     "labels", l, "snoozed_until", time_or_null(snoozed_until_ms), "contact_id",
                     str_or_null(contact_id), "episode", (json_int_t)(episode > 0 ? episode : 1));
}

json_t *oh_convstate_new(const char *contact_id)
{
    return oh_convstate_make("open", "", "", "normal", "[]", 0, contact_id, 1);
}

int64_t oh_convstate_snoozed_until(const json_t *state)
{
    int64_t ms = 0;
    const char *s = json_string_value(json_object_get(state, "snoozed_until"));
    const char *st = json_string_value(json_object_get(state, "status"));
    if (!s || !st || strcmp(st, "snoozed") != 0 || oh_time_parse(s, &ms)) return 0;
    return ms;
}

/* An id-like value (assignee, team, label): 1..MAX bytes of UTF-8 without
 * control characters, so it prints and compares as the client sent it. */
static bool text_ok(const json_t *v, size_t max)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (!s || n == 0 || n > max || !oh_utf8_valid(s, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static int refuse(char *why, size_t len, const char *fmt, const char *what)
{
    if (why) snprintf(why, len, fmt, what);
    return 400;
}

int oh_convstate_check_patch(const json_t *body, int64_t now_ms, char *why, size_t whylen)
{
    const char *k;
    json_t *v;
    if (!json_is_object(body)) return refuse(why, whylen, "%s", "body must be a JSON object");
    if (json_object_size(body) == 0)
        return refuse(why, whylen, "%s", "body names no field to change");
    json_object_foreach((json_t *)body, k, v)
    {
        if (!one_of(k, fields, OH_ARRAY_SIZE(fields)))
            return refuse(why, whylen, "unknown field \"%.64s\"", k);
        if (strcmp(k, "status") == 0 && !one_of(json_string_value(v), statuses, 5))
            return refuse(why, whylen, "%s", "status must be bot|open|pending|snoozed|resolved");
        if (strcmp(k, "priority") == 0 && !one_of(json_string_value(v), priorities, 4))
            return refuse(why, whylen, "%s", "priority must be urgent|high|normal|low");
        if ((strcmp(k, "assignee") == 0 || strcmp(k, "team") == 0) && !json_is_null(v) &&
            !text_ok(v, OH_STATE_ID_MAX))
            return refuse(why, whylen, "%s must be null or an id of 1..127 printable bytes", k);
        if (strcmp(k, "labels") == 0) {
            size_t i;
            json_t *l;
            if (!json_is_array(v) || json_array_size(v) > OH_LABELS_MAX)
                return refuse(why, whylen, "%s", "labels must be an array of at most 32 strings");
            json_array_foreach(v, i, l)
            {
                const char *s = json_string_value(l);
                if (!text_ok(l, OH_LABEL_MAX) || strchr(s, '"') || strchr(s, '\\'))
                    return refuse(why, whylen, "%s",
                                  "a label is 1..64 printable bytes without quotes or "
                                  "backslashes");
            }
        }
        if (strcmp(k, "snoozed_until") == 0 && !json_is_null(v)) {
            int64_t ms;
            if (!json_is_string(v) || oh_time_parse(json_string_value(v), &ms))
                return refuse(why, whylen, "%s", "snoozed_until must be RFC 3339 or null");
            /* without a clock (sync), still after 1970: a snooze that ends
             * at 0 or before would have no end (snoozed_until null) */
            if (ms <= 0 || (now_ms && ms <= now_ms))
                return refuse(why, whylen, "%s", "snoozed_until must be in the future");
        }
    }
    const char *st = json_string_value(json_object_get(body, "status"));
    json_t *until = json_object_get(body, "snoozed_until");
    if (st && strcmp(st, "snoozed") == 0 && (!until || json_is_null(until)))
        return refuse(why, whylen, "%s", "status snoozed needs snoozed_until");
    if (json_is_string(until) && st && strcmp(st, "snoozed") != 0)
        return refuse(why, whylen, "%s", "snoozed_until goes with status snoozed only");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* LABELS as a sorted set (new reference). */
static json_t *label_set(const json_t *labels)
{
    size_t n = json_array_size(labels), k = 0;
    json_t *v[OH_LABELS_MAX], *out = json_array();
    for (size_t i = 0; i < n && i < OH_LABELS_MAX; i++)
        v[k++] = json_array_get(labels, i);
    qsort(v, k, sizeof *v, cmp_str);
    for (size_t i = 0; i < k; i++)
        if (i == 0 || strcmp(json_string_value(v[i]), json_string_value(v[i - 1])) != 0)
            json_array_append(out, v[i]);
    return out;
}

/* Leaving "resolved" starts a new episode. */
static void episode_rule(const char *old_status, json_t *next)
{
    const char *st = json_string_value(json_object_get(next, "status"));
    if (strcmp(old_status, "resolved") == 0 && st && strcmp(st, "resolved") != 0)
        json_object_set_new(next, "episode",
                            json_integer(json_integer_value(json_object_get(next, "episode")) + 1));
}

/* Moves STATE to NEXT and returns the fields that differ (NULL: none). */
static json_t *commit(json_t *state, json_t *next)
{
    json_t *changes = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(next, k, v)
    {
        if (!json_equal(v, json_object_get(state, k))) json_object_set(changes, k, v);
    }
    json_object_update(state, next);
    json_decref(next);
    if (json_object_size(changes) == 0) {
        json_decref(changes);
        return NULL;
    }
    return changes;
}

/* STATE with the fields of a checked PATCH body SET applied. */
static json_t *patched(const json_t *state, const json_t *set)
{
    json_t *next = json_deep_copy(state);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)set, k, v)
    {
        if (strcmp(k, "labels") == 0) {
            json_object_set_new(next, k, label_set(v));
        } else if (strcmp(k, "snoozed_until") == 0) {
            int64_t ms = 0;
            if (json_is_string(v)) oh_time_parse(json_string_value(v), &ms);
            json_object_set_new(next, k, time_or_null(ms)); /* one spelling: compares */
            if (ms > 0)
                json_object_set_new(next, "status", json_string("snoozed"));
            else if (!json_object_get(set, "status") &&
                     strcmp(json_string_value(json_object_get(next, "status")), "snoozed") == 0)
                json_object_set_new(next, "status", json_string("open"));
        } else if (strcmp(k, "status") == 0) {
            json_object_set(next, k, v);
            if (strcmp(json_string_value(v), "snoozed") != 0)
                json_object_set_new(next, "snoozed_until", json_null());
        } else {
            json_object_set(next, k, v);
        }
    }
    /* snoozed_until after status in the body's order must still win */
    if (json_is_string(json_object_get(set, "snoozed_until")))
        json_object_set_new(next, "status", json_string("snoozed"));
    return next;
}

/* A person who takes a conversation from the bot (a claim: SET NULL, or a
 * patch SET that assigns it and says nothing of the status) takes it over:
 * it is open, and the bot, which answers only in status bot, stops. */
static void take_from_bot(const char *old_status, const json_t *set, json_t *next)
{
    if (strcmp(old_status, "bot") == 0 && json_is_string(json_object_get(next, "assignee")) &&
        (!set || (json_is_string(json_object_get(set, "assignee")) &&
                  !json_object_get(set, "status") && !json_object_get(set, "snoozed_until"))))
        json_object_set_new(next, "status", json_string("open"));
}

static json_t *error_body(const char *code, const char *msg)
{
    return json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

void oh_convstate_command(json_t *state, int64_t head, const json_t *cmd,
                          struct oh_convstate_result *out)
{
    memset(out, 0, sizeof *out);
    const char *op = json_string_value(json_object_get(cmd, "op"));
    const char *author = json_string_value(json_object_get(json_object_get(cmd, "author"), "id"));
    const char *old_status = json_string_value(json_object_get(state, "status"));
    json_t *if_match = json_object_get(cmd, "if_match");
    char why[256];
    if (!old_status) old_status = "open";
    if (if_match && (!json_is_integer(if_match) || json_integer_value(if_match) != head)) {
        char msg[96];
        snprintf(msg, sizeof msg, "the conversation's head is %lld", (long long)head);
        out->code = 412;
        out->body = error_body("precondition_failed", msg);
        json_object_set_new(json_object_get(out->body, "error"), "head", json_integer(head));
        return;
    }
    json_t *next = NULL;
    if (op && strcmp(op, "patch") == 0) {
        const json_t *set = json_object_get(cmd, "set");
        if (oh_convstate_check_patch(set, 0, why, sizeof why)) {
            out->code = 400;
            out->body = error_body("bad_request", why);
            return;
        }
        next = patched(state, set);
        take_from_bot(old_status, set, next);
        /* the bot's handoff says why (services/bot.c) */
        const char *why_given = json_string_value(json_object_get(cmd, "reason"));
        out->reason = why_given && strncmp(why_given, "handoff:", 8) == 0 ? why_given : "patch";
    } else if (op && strcmp(op, "claim") == 0 && author && *author) {
        const char *holder = json_string_value(json_object_get(state, "assignee"));
        if (holder && strcmp(holder, author) != 0) {
            out->code = 409;
            out->body = error_body("conflict", "another agent holds the conversation");
            json_object_set_new(json_object_get(out->body, "error"), "assignee",
                                json_string(holder));
            return;
        }
        next = json_deep_copy(state);
        json_object_set_new(next, "assignee", json_string(author));
        take_from_bot(old_status, NULL, next);
        out->reason = "claim";
    } else if (op && strcmp(op, "assign") == 0) {
        /* the router's decision: only against the state it decided on */
        const char *to = json_string_value(json_object_get(cmd, "assignee"));
        const char *expect = json_string_value(json_object_get(cmd, "expect"));
        const char *holder = json_string_value(json_object_get(state, "assignee"));
        const char *why_r = json_string_value(json_object_get(cmd, "reason"));
        json_t *a = json_object_get(cmd, "assignee"), *x = json_object_get(cmd, "expect");
        if ((a && !json_is_null(a) && !text_ok(a, OH_STATE_ID_MAX)) ||
            (x && !json_is_null(x) && !text_ok(x, OH_STATE_ID_MAX)) || !why_r ||
            (strcmp(why_r, "routed") && strcmp(why_r, "requeued"))) {
            out->code = 400;
            out->body = error_body("bad_request", "assign needs an assignee and a reason");
            return;
        }
        if (strcmp(old_status, "open") != 0 || (holder ? !expect || strcmp(holder, expect) != 0
                                                       : expect != NULL)) {
            out->code = 409;
            out->body = error_body("conflict", "the conversation moved on since the decision");
            json_object_set_new(json_object_get(out->body, "error"), "assignee",
                                str_or_null(holder));
            return;
        }
        next = json_deep_copy(state);
        json_object_set_new(next, "assignee", str_or_null(to));
        out->reason = strcmp(why_r, "routed") == 0 ? "routed" : "requeued";
    } else if (op && strcmp(op, "breach") == 0) {
        /* an SLA clock's deadline passed: a change of its own (the clock is
         * the SLA service's), refused once the episode or the status moved */
        const char *kind = json_string_value(json_object_get(cmd, "kind"));
        json_t *ep = json_object_get(cmd, "episode"), *sla = json_object_get(cmd, "sla");
        if (!kind || (strcmp(kind, "frt") && strcmp(kind, "nrt")) || !json_is_integer(ep) ||
            !json_is_object(sla)) {
            out->code = 400;
            out->body = error_body("bad_request", "breach needs kind, episode and sla");
            return;
        }
        if (strcmp(old_status, "open") != 0 ||
            json_integer_value(ep) != json_integer_value(json_object_get(state, "episode"))) {
            out->code = 409;
            out->body = error_body("conflict", "the clock was paused or its episode ended");
            return;
        }
        out->code = 200;
        out->changes = json_pack("{s:O}", "sla", sla);
        out->body = json_deep_copy(state);
        out->reason = strcmp(kind, "frt") == 0 ? "sla_breach:frt" : "sla_breach:nrt";
        return;
    } else if (op && strcmp(op, "raise_priority") == 0) {
        /* triage's: raises, never lowers (a lower or equal one changes nothing) */
        int to = rank(json_string_value(json_object_get(cmd, "priority")));
        if (to < 0) {
            out->code = 400;
            out->body = error_body("bad_request", "priority must be urgent|high|normal|low");
            return;
        }
        int have = rank(json_string_value(json_object_get(state, "priority")));
        next = json_deep_copy(state);
        if (to < (have < 0 ? rank("normal") : have))
            json_object_set_new(next, "priority", json_string(priorities[to]));
        out->reason = "triage";
    } else if (op && strcmp(op, "wake") == 0) {
        json_t *until = json_object_get(cmd, "until");
        next = json_deep_copy(state);
        if (json_is_integer(until) &&
            oh_convstate_snoozed_until(state) == json_integer_value(until)) {
            json_object_set_new(next, "status", json_string("open"));
            json_object_set_new(next, "snoozed_until", json_null());
        }
        out->reason = "snooze_expired";
    } else {
        out->code = 400;
        out->body = error_body("bad_request", "unknown command");
        return;
    }
    episode_rule(old_status, next);
    out->code = 200;
    out->changes = commit(state, next);
    out->body = json_deep_copy(state);
}

void oh_convstate_result_clear(struct oh_convstate_result *out)
{
    json_decref(out->changes);
    json_decref(out->body);
    memset(out, 0, sizeof *out);
}

json_t *oh_convstate_inbound(json_t *state)
{
    const char *st = json_string_value(json_object_get(state, "status"));
    if (!st || (strcmp(st, "pending") && strcmp(st, "snoozed") && strcmp(st, "resolved")))
        return NULL;
    json_t *next = json_deep_copy(state);
    json_object_set_new(next, "status", json_string("open"));
    json_object_set_new(next, "snoozed_until", json_null());
    char old[16];
    snprintf(old, sizeof old, "%s", st);
    episode_rule(old, next);
    return commit(state, next);
}
