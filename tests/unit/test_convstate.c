/* test_convstate.c - the desk's state reducer (core/convstate.c): PATCH
 * checks, status rules, claims, If-Match, snooze wakes, re-opening and
 * triage's priority raises. */
#include <stdio.h>
#include <string.h>
#include "core/convstate.h"
#include "core/event.h"
#include "tap.h"

static json_t *parse(const char *s)
{
    json_t *v = json_loads(s, 0, NULL);
    ck_assert_ptr_nonnull(v);
    return v;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Runs command TEXT (its data) against STATE at HEAD; returns the code. */
static int run(json_t *state, int64_t head, const char *text, struct oh_convstate_result *out)
{
    json_t *cmd = parse(text);
    oh_convstate_command(state, head, cmd, out);
    json_decref(cmd);
    return out->code;
}

START_TEST(new_state_is_open)
{
    json_t *s = oh_convstate_new("u1");
    ck_assert_str_eq(str(s, "status"), "open");
    ck_assert_str_eq(str(s, "priority"), "normal");
    ck_assert(json_is_null(json_object_get(s, "assignee")));
    ck_assert(json_is_null(json_object_get(s, "snoozed_until")));
    ck_assert_int_eq(json_array_size(json_object_get(s, "labels")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "episode")), 1);
    json_decref(s);
}
END_TEST

START_TEST(patch_checks)
{
    static const char *bad[] = {
        "{}",
        "[]",
        "{\"colour\": \"red\"}",
        "{\"status\": \"closed\"}",
        "{\"status\": \"snoozed\"}",
        "{\"priority\": \"HIGH\"}",
        "{\"assignee\": 3}",
        "{\"assignee\": \"\"}",
        "{\"team\": \"a\\u0001b\"}",
        "{\"labels\": \"vip\"}",
        "{\"labels\": [\"\"]}",
        "{\"labels\": [\"a\\\"b\"]}",
        "{\"labels\": [1]}",
        "{\"snoozed_until\": \"tomorrow\"}",
        "{\"snoozed_until\": \"2000-01-01T00:00:00Z\"}",
        "{\"status\": \"open\", \"snoozed_until\": \"2100-01-01T00:00:00Z\"}",
    };
    char why[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *b = parse(bad[i]);
        ck_assert_msg(oh_convstate_check_patch(b, oh_now_ms(), why, sizeof why) == 400, "%s",
                      bad[i]);
        json_decref(b);
    }
    json_t *many = parse("{\"labels\": []}");
    char l[80];
    for (int i = 0; i < 33; i++) {
        snprintf(l, sizeof l, "l%d", i);
        json_array_append_new(json_object_get(many, "labels"), json_string(l));
    }
    ck_assert_int_eq(oh_convstate_check_patch(many, 0, why, sizeof why), 400);
    json_array_remove(json_object_get(many, "labels"), 0);
    ck_assert_int_eq(oh_convstate_check_patch(many, 0, why, sizeof why), 0);
    json_decref(many);
    json_t *ok = parse("{\"status\": \"snoozed\", \"snoozed_until\": \"2100-01-01T00:00:00Z\","
                       " \"assignee\": null, \"team\": \"billing\", \"priority\": \"low\","
                       " \"labels\": [\"b\", \"a\", \"b\"]}");
    ck_assert_int_eq(oh_convstate_check_patch(ok, oh_now_ms(), why, sizeof why), 0);
    json_decref(ok);
    /* sync decides without a clock (NOW 0), but a time at or before 1970 is
     * no snooze's end: the conversation would be snoozed for ever, with
     * snoozed_until null */
    json_t *s = oh_convstate_new("");
    struct oh_convstate_result r;
    ck_assert_int_eq(
        run(s, 1, "{\"op\": \"patch\", \"set\": {\"snoozed_until\": \"1969-12-31T23:59:59Z\"}}",
            &r),
        400);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(
        run(s, 1, "{\"op\": \"patch\", \"set\": {\"snoozed_until\": \"1970-01-01T00:00:00Z\"}}",
            &r),
        400);
    oh_convstate_result_clear(&r);
    ck_assert_str_eq(str(s, "status"), "open");
    json_decref(s);
}
END_TEST

START_TEST(patch_applies_and_reports_changes)
{
    json_t *s = oh_convstate_new("u1");
    struct oh_convstate_result r;
    ck_assert_int_eq(run(s, 1,
                         "{\"op\": \"patch\", \"set\": {\"labels\": [\"b\", \"a\", \"b\"],"
                         " \"priority\": \"high\"}}",
                         &r),
                     200);
    char *c = json_dumps(r.changes, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(c, "{\"labels\":[\"a\",\"b\"],\"priority\":\"high\"}");
    free(c);
    ck_assert_str_eq(r.reason, "patch");
    ck_assert(json_equal(r.body, s));
    oh_convstate_result_clear(&r);
    /* the same again: accepted, nothing changed */
    ck_assert_int_eq(run(s, 2, "{\"op\": \"patch\", \"set\": {\"priority\": \"high\"}}", &r), 200);
    ck_assert_ptr_null(r.changes);
    oh_convstate_result_clear(&r);
    /* snoozed_until alone snoozes; null wakes; another status clears it */
    ck_assert_int_eq(
        run(s, 2,
            "{\"op\": \"patch\", \"set\": {\"snoozed_until\": \"2100-01-01T00:00:00+01:00\"}}", &r),
        200);
    ck_assert_str_eq(str(s, "status"), "snoozed");
    ck_assert_str_eq(str(s, "snoozed_until"), "2099-12-31T23:00:00.000Z");
    ck_assert_int_eq(oh_convstate_snoozed_until(s), 4102441200000LL);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 3, "{\"op\": \"patch\", \"set\": {\"snoozed_until\": null}}", &r), 200);
    ck_assert_str_eq(str(s, "status"), "open");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 4,
                         "{\"op\": \"patch\", \"set\": {\"snoozed_until\": "
                         "\"2100-01-01T00:00:00Z\"}}",
                         &r),
                     200);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 5, "{\"op\": \"patch\", \"set\": {\"status\": \"resolved\"}}", &r),
                     200);
    ck_assert(json_is_null(json_object_get(s, "snoozed_until")));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "episode")), 1);
    oh_convstate_result_clear(&r);
    /* leaving resolved starts a new episode */
    ck_assert_int_eq(run(s, 6, "{\"op\": \"patch\", \"set\": {\"status\": \"pending\"}}", &r), 200);
    ck_assert_int_eq(json_integer_value(json_object_get(r.changes, "episode")), 2);
    oh_convstate_result_clear(&r);
    /* a bad patch that reached the log anyway is refused, state untouched */
    json_t *before = json_deep_copy(s);
    ck_assert_int_eq(run(s, 7, "{\"op\": \"patch\", \"set\": {\"colour\": 1}}", &r), 400);
    ck_assert_str_eq(str(json_object_get(r.body, "error"), "code"), "bad_request");
    ck_assert(json_equal(before, s));
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 7, "{\"op\": \"explode\"}", &r), 400);
    oh_convstate_result_clear(&r);
    json_decref(before);
    json_decref(s);
}
END_TEST

START_TEST(claims_and_if_match)
{
    json_t *s = oh_convstate_new("u1");
    struct oh_convstate_result r;
    ck_assert_int_eq(run(s, 3,
                         "{\"op\": \"claim\", \"author\": {\"kind\": \"agent\", \"id\": "
                         "\"alice\"}}",
                         &r),
                     200);
    ck_assert_str_eq(str(r.changes, "assignee"), "alice");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 4,
                         "{\"op\": \"claim\", \"author\": {\"kind\": \"agent\", \"id\": "
                         "\"alice\"}}",
                         &r),
                     200);
    ck_assert_ptr_null(r.changes);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 4,
                         "{\"op\": \"claim\", \"author\": {\"kind\": \"agent\", \"id\": "
                         "\"bob\"}}",
                         &r),
                     409);
    json_t *e = json_object_get(r.body, "error");
    ck_assert_str_eq(str(e, "code"), "conflict");
    ck_assert_str_eq(str(e, "assignee"), "alice");
    ck_assert_str_eq(str(s, "assignee"), "alice");
    oh_convstate_result_clear(&r);
    /* If-Match: the head, else 412 with the head */
    ck_assert_int_eq(
        run(s, 4, "{\"op\": \"patch\", \"if_match\": 3, \"set\": {\"priority\": \"low\"}}", &r),
        412);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r.body, "error"), "head")),
                     4);
    ck_assert_str_eq(str(s, "priority"), "normal");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(
        run(s, 4, "{\"op\": \"patch\", \"if_match\": 4, \"set\": {\"priority\": \"low\"}}", &r),
        200);
    oh_convstate_result_clear(&r);
    json_decref(s);
}
END_TEST

/* A person who takes a conversation from the bot takes it over: a claim,
 * or a patch that assigns it without a status, opens it (the bot answers
 * only in status bot); a patch of anything else, or one that names the
 * status, leaves the status as it says. */
START_TEST(taking_a_conversation_from_the_bot)
{
    static const char claim[] = "{\"op\": \"claim\", \"author\": {\"kind\": \"agent\", \"id\": "
                                "\"alice\"}}";
    struct oh_convstate_result r;
    json_t *s = oh_convstate_make("bot", "", "", "normal", "[]", 0, "u1", 1);
    ck_assert_int_eq(run(s, 2, claim, &r), 200);
    ck_assert_str_eq(str(r.changes, "assignee"), "alice");
    ck_assert_str_eq(str(r.changes, "status"), "open");
    ck_assert_str_eq(str(s, "status"), "open");
    oh_convstate_result_clear(&r);
    json_decref(s);

    s = oh_convstate_make("bot", "", "", "normal", "[]", 0, "u1", 1);
    ck_assert_int_eq(run(s, 2, "{\"op\": \"patch\", \"set\": {\"priority\": \"high\"}}", &r), 200);
    ck_assert_str_eq(str(s, "status"), "bot");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(
        run(s, 3, "{\"op\": \"patch\", \"set\": {\"assignee\": \"bob\", \"status\": \"pending\"}}",
            &r),
        200);
    ck_assert_str_eq(str(s, "status"), "pending");
    oh_convstate_result_clear(&r);
    json_decref(s);

    s = oh_convstate_make("bot", "", "", "normal", "[]", 0, "u1", 1);
    ck_assert_int_eq(run(s, 2, "{\"op\": \"patch\", \"set\": {\"assignee\": \"bob\"}}", &r), 200);
    ck_assert_str_eq(str(r.changes, "status"), "open");
    ck_assert_str_eq(str(s, "assignee"), "bob");
    oh_convstate_result_clear(&r);
    json_decref(s);
}
END_TEST

START_TEST(wake_and_inbound)
{
    json_t *s = oh_convstate_make("snoozed", "", "", "normal", "[]", 5000, "u1", 1);
    struct oh_convstate_result r;
    /* a wake for another snooze (snoozed again meanwhile) changes nothing */
    ck_assert_int_eq(run(s, 1, "{\"op\": \"wake\", \"until\": 4000}", &r), 200);
    ck_assert_ptr_null(r.changes);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 1, "{\"op\": \"wake\", \"until\": 5000}", &r), 200);
    ck_assert_str_eq(r.reason, "snooze_expired");
    ck_assert_str_eq(str(s, "status"), "open");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 1, "{\"op\": \"wake\", \"until\": 5000}", &r), 200); /* again */
    ck_assert_ptr_null(r.changes);
    oh_convstate_result_clear(&r);
    /* open stays open; pending re-opens in the episode; resolved starts one */
    ck_assert_ptr_null(oh_convstate_inbound(s));
    json_object_set_new(s, "status", json_string("pending"));
    json_t *c = oh_convstate_inbound(s);
    ck_assert_str_eq(str(c, "status"), "open");
    ck_assert_ptr_null(json_object_get(c, "episode"));
    json_decref(c);
    json_object_set_new(s, "status", json_string("resolved"));
    c = oh_convstate_inbound(s);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "episode")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(s, "episode")), 2);
    json_decref(c);
    json_decref(s);
}
END_TEST

START_TEST(router_assign_only_against_the_state_decided_on)
{
    json_t *s = oh_convstate_new("u1");
    struct oh_convstate_result r;
    const char *route = "{\"op\": \"assign\", \"assignee\": \"alice\", \"expect\": null, "
                        "\"reason\": \"routed\"}";
    ck_assert_int_eq(run(s, 1, route, &r), 200);
    ck_assert_str_eq(r.reason, "routed");
    ck_assert_str_eq(str(r.changes, "assignee"), "alice");
    oh_convstate_result_clear(&r);
    /* the same decision again (a replay, a second router): refused, no change */
    ck_assert_int_eq(run(s, 2, route, &r), 409);
    ck_assert_ptr_null(r.changes);
    ck_assert_str_eq(str(json_object_get(r.body, "error"), "assignee"), "alice");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 2,
                         "{\"op\": \"assign\", \"assignee\": \"bob\", \"expect\": null, "
                         "\"reason\": \"routed\"}",
                         &r),
                     409);
    ck_assert_str_eq(str(s, "assignee"), "alice");
    oh_convstate_result_clear(&r);
    /* requeue: only from the holder the router saw */
    ck_assert_int_eq(run(s, 2,
                         "{\"op\": \"assign\", \"assignee\": null, \"expect\": \"bob\", "
                         "\"reason\": \"requeued\"}",
                         &r),
                     409);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 2,
                         "{\"op\": \"assign\", \"assignee\": null, \"expect\": \"alice\", "
                         "\"reason\": \"requeued\"}",
                         &r),
                     200);
    ck_assert_str_eq(r.reason, "requeued");
    ck_assert(json_is_null(json_object_get(r.changes, "assignee")));
    oh_convstate_result_clear(&r);
    /* never while not open; bad values are 400 */
    json_object_set_new(s, "status", json_string("pending"));
    ck_assert_int_eq(run(s, 3, route, &r), 409);
    oh_convstate_result_clear(&r);
    json_object_set_new(s, "status", json_string("open"));
    ck_assert_int_eq(run(s, 3,
                         "{\"op\": \"assign\", \"assignee\": \"a\", \"reason\": \"because\"}",
                         &r),
                     400);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 3, "{\"op\": \"assign\", \"assignee\": 7, \"reason\": \"routed\"}", &r),
                     400);
    oh_convstate_result_clear(&r);
    json_decref(s);
}
END_TEST

START_TEST(sla_breach_only_while_the_clock_runs)
{
    json_t *s = oh_convstate_new("u1");
    struct oh_convstate_result r;
    const char *frt = "{\"op\": \"breach\", \"kind\": \"frt\", \"episode\": 1, \"sla\": "
                      "{\"breached\": [\"frt\"]}}";
    ck_assert_int_eq(run(s, 1, frt, &r), 200);
    ck_assert_str_eq(r.reason, "sla_breach:frt");
    json_t *br = json_object_get(json_object_get(r.changes, "sla"), "breached");
    ck_assert_str_eq(json_string_value(json_array_get(br, 0)), "frt");
    ck_assert_str_eq(str(s, "status"), "open"); /* the state itself is unchanged */
    oh_convstate_result_clear(&r);
    /* another episode, a paused clock: refused */
    ck_assert_int_eq(run(s, 2,
                         "{\"op\": \"breach\", \"kind\": \"nrt\", \"episode\": 2, \"sla\": {}}",
                         &r),
                     409);
    ck_assert_ptr_null(r.changes);
    oh_convstate_result_clear(&r);
    json_object_set_new(s, "status", json_string("snoozed"));
    ck_assert_int_eq(run(s, 2, frt, &r), 409);
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 2, "{\"op\": \"breach\", \"kind\": \"aht\", \"episode\": 1}", &r),
                     400);
    oh_convstate_result_clear(&r);
    json_decref(s);
}
END_TEST

START_TEST(raise_priority_never_lowers)
{
    json_t *s = oh_convstate_make("resolved", "bob", "", "low", "[\"vip\"]", 0, "u1", 3);
    struct oh_convstate_result r;
    /* low -> high: the one change, reason triage, nothing else touched */
    ck_assert_int_eq(run(s, 7, "{\"op\": \"raise_priority\", \"priority\": \"high\"}", &r), 200);
    ck_assert_str_eq(r.reason, "triage");
    ck_assert_int_eq(json_object_size(r.changes), 1);
    ck_assert_str_eq(str(r.changes, "priority"), "high");
    ck_assert_str_eq(str(s, "priority"), "high");
    ck_assert_str_eq(str(s, "status"), "resolved");
    ck_assert_str_eq(str(s, "assignee"), "bob");
    ck_assert_int_eq(json_integer_value(json_object_get(s, "episode")), 3);
    ck_assert_str_eq(str(r.body, "priority"), "high");
    oh_convstate_result_clear(&r);
    /* equal or lower: accepted, changes nothing */
    static const char *const same_or_lower[] = {"high", "normal", "low"};
    for (int i = 0; i < 3; i++) {
        char cmd[96];
        snprintf(cmd, sizeof cmd, "{\"op\": \"raise_priority\", \"priority\": \"%s\"}",
                 same_or_lower[i]);
        ck_assert_int_eq(run(s, 8, cmd, &r), 200);
        ck_assert_ptr_null(r.changes);
        ck_assert_str_eq(str(s, "priority"), "high");
        oh_convstate_result_clear(&r);
    }
    ck_assert_int_eq(run(s, 8, "{\"op\": \"raise_priority\", \"priority\": \"urgent\"}", &r), 200);
    ck_assert_str_eq(str(r.changes, "priority"), "urgent");
    oh_convstate_result_clear(&r);
    /* a state without a priority counts as normal */
    json_object_del(s, "priority");
    ck_assert_int_eq(run(s, 8, "{\"op\": \"raise_priority\", \"priority\": \"normal\"}", &r), 200);
    ck_assert_ptr_null(json_object_get(s, "priority"));
    oh_convstate_result_clear(&r);
    /* no or an unknown priority: 400, state untouched */
    ck_assert_int_eq(run(s, 8, "{\"op\": \"raise_priority\"}", &r), 400);
    ck_assert_str_eq(str(json_object_get(r.body, "error"), "code"), "bad_request");
    oh_convstate_result_clear(&r);
    ck_assert_int_eq(run(s, 8, "{\"op\": \"raise_priority\", \"priority\": \"URGENT\"}", &r),
                     400);
    oh_convstate_result_clear(&r);
    ck_assert_ptr_null(json_object_get(s, "priority"));
    json_decref(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("convstate");
    TCase *tc = tcase_create("reducer");
    tcase_add_test(tc, new_state_is_open);
    tcase_add_test(tc, patch_checks);
    tcase_add_test(tc, patch_applies_and_reports_changes);
    tcase_add_test(tc, claims_and_if_match);
    tcase_add_test(tc, taking_a_conversation_from_the_bot);
    tcase_add_test(tc, wake_and_inbound);
    tcase_add_test(tc, router_assign_only_against_the_state_decided_on);
    tcase_add_test(tc, sla_breach_only_while_the_clock_runs);
    tcase_add_test(tc, raise_priority_never_lowers);
    suite_add_tcase(s, tc);
    return oh_test_run(s);
}
