/* fuzz_convstate.c - the desk's state reducer over what an agent may send:
 * the bytes as a PATCH body, checked as the gateway checks it and, when
 * accepted, applied by sync to conversations in every status; and as a
 * whole command, applied unchecked. Whatever the reducer accepts leaves a
 * state that is consistent and that reads back the same from the store's
 * columns (oh_store_state_get, oh_convstate_make). */
#include "core/convstate.h"
#include "core/event.h"
#include "fuzz.h"
#include "store/store_fields.h"

#define NOW_MS 1767225600000 /* 2026-01-01 */

static void consistent(const json_t *state)
{
    const char *st = json_string_value(json_object_get(state, "status"));
    const json_t *until = json_object_get(state, "snoozed_until"),
                 *labels = json_object_get(state, "labels");
    if (!st || json_object_size(state) != 8 ||
        (strcmp(st, "snoozed") == 0) != json_is_string(until) || !json_is_array(labels) ||
        json_array_size(labels) > OH_LABELS_MAX)
        abort();
    for (size_t i = 1; i < json_array_size(labels); i++)
        if (strcmp(json_string_value(json_array_get(labels, i - 1)),
                   json_string_value(json_array_get(labels, i))) >= 0)
            abort(); /* a sorted set */
    /* what the store keeps of it gives it back */
    json_t *ev =
        json_pack("{s:s, s:{s:O}}", "type", "omnihub.conversation.updated", "data", "state", state);
    struct oh_store_state s;
    oh_store_state_get(ev, &s);
    const json_t *cid = json_object_get(state, "contact_id");
    json_t *back = oh_convstate_make(s.status, s.assignee, s.team, s.priority, s.labels,
                                     s.snoozed_until_ms, json_string_value(cid), s.episode);
    if (!s.set || !json_equal(back, state)) {
        char *a = json_dumps(state, JSON_COMPACT), *b = json_dumps(back, JSON_COMPACT);
        fprintf(stderr, "state %s\nreads back as %s\n", a, b);
        abort();
    }
    json_decref(back);
    json_decref(ev);
}

static json_t *state_of(int i)
{
    static const char *const st[] = {"bot", "open", "pending", "snoozed", "resolved"};
    json_t *s = oh_convstate_make(st[i % 5], i & 1 ? "agent-1" : "", i & 2 ? "team-a" : "",
                                  i & 4 ? "urgent" : "normal", "[\"vip\"]",
                                  i % 5 == 3 ? NOW_MS + 60000 : 0, "p_1", 1 + i % 3);
    if (!s) abort();
    return s;
}

static void apply(json_t *state, const json_t *cmd, bool checked)
{
    struct oh_convstate_result r;
    oh_convstate_command(state, 7, cmd, &r);
    if (!r.body || (r.code == 200) != !json_object_get(r.body, "error") ||
        (r.code != 200 && r.code != 400 && r.code != 409 && r.code != 412) ||
        (checked && r.code != 200) || (r.changes && r.code != 200))
        abort();
    if (r.code == 200 && !r.reason) abort();
    consistent(state);
    oh_convstate_result_clear(&r);
}

/* a customer writes again */
static void inbound(json_t *state)
{
    json_t *changes = oh_convstate_inbound(state);
    consistent(state);
    json_decref(changes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!body) return 0;
    char why[256];
    bool ok = oh_convstate_check_patch(body, NOW_MS, why, sizeof why) == 0;
    if (!ok && !why[0]) abort();
    /* the gateway's command: {op: patch, set: BODY, author} */
    json_t *cmd = json_pack("{s:s, s:O, s:{s:s, s:s}}", "op", "patch", "set", body, "author",
                            "kind", "agent", "id", "agent-2");
    for (int i = 0; ok && i < 16; i++) {
        json_t *s = state_of(i);
        apply(s, cmd, true);
        /* the same change again changes nothing more */
        struct oh_convstate_result r;
        oh_convstate_command(s, 7, cmd, &r);
        if (r.code != 200 || r.changes) abort();
        oh_convstate_result_clear(&r);
        inbound(s);
        json_decref(s);
    }
    json_decref(cmd);
    /* the bytes as a command of any kind (sync's input from the log) */
    if (json_is_object(body))
        for (int i = 0; i < 10; i += 3) {
            json_t *s = state_of(i);
            apply(s, body, false);
            inbound(s);
            json_decref(s);
        }
    json_decref(body);
    return 0;
}
