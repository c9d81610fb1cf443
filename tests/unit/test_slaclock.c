/* test_slaclock.c - the SLA clocks of one conversation (core/slaclock.c):
 * first and next response, pause while pending or snoozed, priority
 * changes, episodes, breaches. */
#include <string.h>
#include "core/slaclock.h"
#include "tap.h"

/* targets in ms: urgent 1 s, high 2 s, normal 5 s, low 60 s (both kinds) */
static const struct oh_sla_targets tg = {{1000, 2000, 5000, 60000}, {1000, 2000, 5000, 60000}};

static json_t *state(const char *status, const char *priority, int64_t episode)
{
    return json_pack("{s:s, s:s, s:I}", "status", status, "priority", priority, "episode",
                     (json_int_t)episode);
}

static void updated(json_t *c, const char *status, const char *priority, int64_t episode,
                    const char *reason, int64_t t)
{
    json_t *s = state(status, priority, episode);
    oh_slaclock_updated(c, s, reason, t);
    json_decref(s);
}

START_TEST(first_response_runs_from_the_first_message_to_an_agent_reply)
{
    json_t *c = oh_slaclock_new("api:shop", "acme");
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 0);
    oh_slaclock_inbound(c, 10000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 15000);
    oh_slaclock_inbound(c, 12000); /* a second message does not restart it */
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 15000);
    oh_slaclock_outbound(c, false, 13000); /* a bot's message is no agent reply */
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 15000);
    oh_slaclock_outbound(c, true, 14000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 0);
    ck_assert_int_eq(oh_slaclock_due(c, "nrt", &tg), 0);
    json_t *pub = oh_slaclock_public(c, &tg);
    ck_assert(json_is_null(json_object_get(pub, "first_response_due")));
    ck_assert_int_eq(json_array_size(json_object_get(pub, "breached")), 0);
    json_decref(pub);
    json_decref(c);
}
END_TEST

START_TEST(next_response_after_a_reply_only)
{
    json_t *c = oh_slaclock_new("api:shop", "acme");
    oh_slaclock_inbound(c, 0);
    oh_slaclock_outbound(c, true, 1000);
    oh_slaclock_inbound(c, 3000); /* after a reply: next response clock */
    ck_assert_int_eq(oh_slaclock_due(c, "nrt", &tg), 8000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 0);
    oh_slaclock_inbound(c, 4000); /* not after a reply: the same clock */
    ck_assert_int_eq(oh_slaclock_due(c, "nrt", &tg), 8000);
    oh_slaclock_outbound(c, true, 5000);
    ck_assert_int_eq(oh_slaclock_due(c, "nrt", &tg), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "nn")), 1);
    json_decref(c);
}
END_TEST

START_TEST(pending_and_snoozed_pause_priority_moves_the_deadline)
{
    json_t *c = oh_slaclock_new("api:shop", "acme");
    oh_slaclock_inbound(c, 0);
    updated(c, "pending", "normal", 1, "patch", 1000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 0); /* paused: no deadline */
    updated(c, "open", "normal", 1, "patch", 4000);      /* 3 s paused */
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 8000);
    updated(c, "snoozed", "normal", 1, "patch", 5000);
    oh_slaclock_inbound(c, 7000); /* a message wakes it: 2 s more */
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 10000);
    updated(c, "open", "urgent", 1, "triage", 7000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 6000); /* start + paused + 1 s */
    json_decref(c);
}
END_TEST

START_TEST(breaches_are_listed_and_a_new_episode_clears_them)
{
    json_t *c = oh_slaclock_new("api:shop", "acme");
    oh_slaclock_inbound(c, 0);
    updated(c, "open", "normal", 1, "sla_breach:frt", 5000);
    updated(c, "open", "normal", 1, "sla_breach:bogus", 5000); /* ignored */
    json_t *clk = json_object_get(c, "frt");
    ck_assert(json_is_true(json_object_get(clk, "b")));
    json_t *pub = oh_slaclock_public(c, &tg);
    ck_assert_int_eq(json_array_size(json_object_get(pub, "breached")), 1);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(pub, "breached"), 0)), "frt");
    ck_assert_str_eq(json_string_value(json_object_get(pub, "first_response_due")),
                     "1970-01-01T00:00:05.000Z");
    json_decref(pub);
    /* resolved ends the clocks; the next message opens episode 2 afresh */
    updated(c, "resolved", "normal", 1, "patch", 6000);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 0);
    oh_slaclock_inbound(c, 9000);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "ep")), 2);
    ck_assert_int_eq(json_array_size(json_object_get(c, "br")), 0);
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 14000);
    updated(c, "open", "normal", 2, "inbound", 9000); /* the re-open that follows */
    ck_assert_int_eq(oh_slaclock_due(c, "frt", &tg), 14000);
    json_decref(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("slaclock");
    TCase *tc = tcase_create("clocks");
    tcase_add_test(tc, first_response_runs_from_the_first_message_to_an_agent_reply);
    tcase_add_test(tc, next_response_after_a_reply_only);
    tcase_add_test(tc, pending_and_snoozed_pause_priority_moves_the_deadline);
    tcase_add_test(tc, breaches_are_listed_and_a_new_episode_clears_them);
    suite_add_tcase(s, tc);
    return oh_test_run(s);
}
