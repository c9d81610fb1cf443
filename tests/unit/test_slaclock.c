/* test_slaclock.c - the SLA clocks of one conversation (core/slaclock.c):
 * first and next response, pause while pending or snoozed, priority
 * changes, episodes, breaches; their saved text against what the jansson
 * version of the clocks saved (tests/data/sla/saved_before_struct.jsonl). */
#include <string.h>
#include "core/slaclock.h"
#include "tap.h"

/* targets in ms: urgent 1 s, high 2 s, normal 5 s, low 60 s (both kinds) */
static const struct oh_sla_targets tg = {{1000, 2000, 5000, 60000}, {1000, 2000, 5000, 60000}};

static void updated(struct oh_slaclock *c, const char *status, const char *priority,
                    int64_t episode, const char *reason, int64_t t)
{
    oh_slaclock_updated(c, episode, status, priority, reason, t);
}

START_TEST(first_response_runs_from_the_first_message_to_an_agent_reply)
{
    struct oh_slaclock c;
    ck_assert_int_eq(oh_slaclock_init(&c, "api:shop", "acme"), OH_OK);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 0);
    oh_slaclock_inbound(&c, 10000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 15000);
    oh_slaclock_inbound(&c, 12000); /* a second message does not restart it */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 15000);
    oh_slaclock_outbound(&c, false, 13000); /* a bot's message is no agent reply */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 15000);
    oh_slaclock_outbound(&c, true, 14000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 0);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_NRT, &tg), 0);
    json_t *pub = oh_slaclock_public(&c, &tg);
    ck_assert(json_is_null(json_object_get(pub, "first_response_due")));
    ck_assert_int_eq(json_array_size(json_object_get(pub, "breached")), 0);
    json_decref(pub);
    oh_slaclock_clear(&c);
}
END_TEST

START_TEST(next_response_after_a_reply_only)
{
    struct oh_slaclock c;
    ck_assert_int_eq(oh_slaclock_init(&c, "api:shop", "acme"), OH_OK);
    oh_slaclock_inbound(&c, 0);
    oh_slaclock_outbound(&c, true, 1000);
    oh_slaclock_inbound(&c, 3000); /* after a reply: next response clock */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_NRT, &tg), 8000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 0);
    oh_slaclock_inbound(&c, 4000); /* not after a reply: the same clock */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_NRT, &tg), 8000);
    oh_slaclock_outbound(&c, true, 5000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_NRT, &tg), 0);
    ck_assert_int_eq(c.nn, 1);
    oh_slaclock_clear(&c);
}
END_TEST

START_TEST(pending_and_snoozed_pause_priority_moves_the_deadline)
{
    struct oh_slaclock c;
    ck_assert_int_eq(oh_slaclock_init(&c, "api:shop", "acme"), OH_OK);
    oh_slaclock_inbound(&c, 0);
    updated(&c, "pending", "normal", 1, "patch", 1000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 0); /* paused: no deadline */
    updated(&c, "open", "normal", 1, "patch", 4000);           /* 3 s paused */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 8000);
    updated(&c, "snoozed", "normal", 1, "patch", 5000);
    oh_slaclock_inbound(&c, 7000); /* a message wakes it: 2 s more */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 10000);
    updated(&c, "open", "urgent", 1, "triage", 7000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 6000); /* start + paused + 1 s */
    updated(&c, "", "", 0, "", 8000); /* a state without those fields changes nothing */
    ck_assert_str_eq(c.st, "open");
    ck_assert_str_eq(c.pr, "urgent");
    oh_slaclock_clear(&c);
}
END_TEST

START_TEST(breaches_are_listed_and_a_new_episode_clears_them)
{
    struct oh_slaclock c;
    ck_assert_int_eq(oh_slaclock_init(&c, "api:shop", "acme"), OH_OK);
    oh_slaclock_inbound(&c, 0);
    updated(&c, "open", "normal", 1, "sla_breach:frt", 5000);
    updated(&c, "open", "normal", 1, "sla_breach:bogus", 5000); /* ignored */
    ck_assert(c.clk[OH_SLA_FRT].b);
    json_t *pub = oh_slaclock_public(&c, &tg);
    ck_assert_int_eq(json_array_size(json_object_get(pub, "breached")), 1);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(pub, "breached"), 0)), "frt");
    ck_assert_str_eq(json_string_value(json_object_get(pub, "first_response_due")),
                     "1970-01-01T00:00:05.000Z");
    json_decref(pub);
    /* resolved ends the clocks; the next message opens episode 2 afresh */
    updated(&c, "resolved", "normal", 1, "patch", 6000);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 0);
    oh_slaclock_inbound(&c, 9000);
    ck_assert_int_eq(c.ep, 2);
    ck_assert_int_eq(c.nbr, 0);
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 14000);
    updated(&c, "open", "normal", 2, "inbound", 9000); /* the re-open that follows */
    ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg), 14000);
    oh_slaclock_clear(&c);
}
END_TEST

/* ---- the saved text ----
 * Each scenario's line of tests/data/sla/saved_before_struct.jsonl is what
 * the jansson clocks (slaclock.c and services/sla.c before the struct,
 * commit 13ee641) saved after these steps: json_pack("{s:o, s:O}", "sla",
 * oh_slaclock_public(), "v", clocks) dumped by oh_json_dump, with the
 * service's pt, seq and f set as here, under the targets below. */
static const struct oh_sla_targets tg2 = {{1000, 2000, 5000, 60000}, {1500, 2500, 5500, 60500}};

struct step {
    char op; /* i inbound, o outbound by an agent, b by a bot, u updated, n updated EPISODE
                times (episode 1), f breach decided at T on clock REASON */
    int64_t t;
    const char *status, *priority;
    int64_t episode;
    const char *reason;
};
struct scenario {
    const char *ch, *ac;
    int64_t pt, seq;
    int nsteps;
    struct step steps[12];
};
static const struct scenario scenarios[] = {
    {"api:shop", "acme", 0, 0, 0, {{0}}},
    {"api:shop", "acme", 3, 7, 1, {{'i', 10000, 0, 0, 0, 0}}},
    {"we\"ird\\ch/an\n\t\x01\x1f",
     "\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80 \x7f'<>&",
     1,
     4,
     3,
     {{'i', 1000, 0, 0, 0, 0}, {'o', 2000, 0, 0, 0, 0}, {'i', 3000, 0, 0, 0, 0}}},
    {"whatsapp",
     "+15550001",
     2,
     9,
     6,
     {{'i', 0, 0, 0, 0, 0},
      {'u', 5000, "open", "normal", 1, "sla_breach:frt"},
      {'f', 5001, 0, 0, 0, "frt"},
      {'u', 5002, "open", "normal", 1, "sla_breach:frt"},
      {'u', 5003, "open", "normal", 1, "sla_breach:nrt"},
      {'u', 5004, "open", "normal", 1, "sla_breach:bogus"}}},
    {"email",
     "support@example.com",
     0,
     2,
     2,
     {{'i', 0, 0, 0, 0, 0}, {'u', 1000, "pending", "high", 1, "patch"}}},
    {"email",
     "",
     5,
     3,
     3,
     {{'i', 0, 0, 0, 0, 0},
      {'u', 1000, "pending", "normal", 1, "patch"},
      {'u', 4000, "open", "urgent", 1, "triage"}}},
    {"telegram",
     "bot1",
     0,
     11,
     5,
     {{'i', 0, 0, 0, 0, 0},
      {'u', 5000, "open", "normal", 1, "sla_breach:frt"},
      {'u', 6000, "resolved", "normal", 1, "patch"},
      {'i', 9000, 0, 0, 0, 0},
      {'u', 9000, "open", "normal", 2, "inbound"}}},
    {"line",
     "acc",
     7,
     12,
     6,
     {{'i', 100, 0, 0, 0, 0},
      {'o', 200, 0, 0, 0, 0},
      {'b', 250, 0, 0, 0, 0},
      {'i', 300, 0, 0, 0, 0},
      {'f', 400, 0, 0, 0, "nrt"},
      {'u', 500, "snoozed", "low", 1, "patch"}}},
    {"line",
     "acc",
     7,
     13,
     7,
     {{'i', 100, 0, 0, 0, 0},
      {'o', 200, 0, 0, 0, 0},
      {'b', 250, 0, 0, 0, 0},
      {'i', 300, 0, 0, 0, 0},
      {'f', 400, 0, 0, 0, "nrt"},
      {'u', 500, "snoozed", "low", 1, "patch"},
      {'u', 700, "bot", "low", 3, "handoff:x"}}},
    {"messenger",
     "page",
     4,
     20,
     4,
     {{'i', 0, 0, 0, 0, 0},
      {'o', 10, 0, 0, 0, 0},
      {'i', 20, 0, 0, 0, 0},
      {'u', 9000, "resolved", "high", 1, "sla_breach:nrt"}}},
    {"api",
     "many",
     0,
     70,
     2,
     {{'i', 0, 0, 0, 0, 0}, {'n', 1000, "open", "normal", 70, "sla_breach:frt"}}},
    {"x",
     "y",
     1023,
     9007199254740993LL,
     2,
     {{'i', 253402300799000LL, 0, 0, 0, 0}, {'u', 253402300800000LL, "open", "low", 1, "patch"}}},
    {"api", "neg", 0, 1, 1, {{'i', -5000000, 0, 0, 0, 0}}},
};

static void run(struct oh_slaclock *c, const struct scenario *sc)
{
    ck_assert_int_eq(oh_slaclock_init(c, sc->ch, sc->ac), OH_OK);
    for (int k = 0; k < sc->nsteps; k++) {
        const struct step *s = &sc->steps[k];
        if (s->op == 'i') oh_slaclock_inbound(c, s->t);
        if (s->op == 'o' || s->op == 'b') oh_slaclock_outbound(c, s->op == 'o', s->t);
        if (s->op == 'u')
            oh_slaclock_updated(c, s->episode, s->status, s->priority, s->reason, s->t);
        for (int r = 0; s->op == 'n' && r < s->episode; r++)
            oh_slaclock_updated(c, 1, s->status, s->priority, s->reason, s->t);
        if (s->op == 'f') c->clk[strcmp(s->reason, "frt") == 0 ? OH_SLA_FRT : OH_SLA_NRT].f = s->t;
    }
    c->pt = sc->pt;
    c->seq = sc->seq;
}

/* The saved texts of the jansson version, one a line. */
static char **before(size_t *n)
{
    char *path = oh_test_src("tests/data/sla/saved_before_struct.jsonl");
    char *all = oh_test_read(path, NULL);
    ck_assert_ptr_nonnull(all);
    free(path);
    char **lines = calloc(64, sizeof *lines);
    *n = 0;
    for (char *save = NULL, *l = strtok_r(all, "\n", &save); l && *n < 64;
         l = strtok_r(NULL, "\n", &save))
        lines[(*n)++] = strdup(l);
    free(all);
    return lines;
}

static void free_lines(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

/* TEXT (LEN bytes, not NUL-terminated) parses to the same JSON as WANT. */
static void same_json(const char *text, size_t len, const char *want, size_t i)
{
    json_error_t e;
    json_t *got = json_loadb(text, len, 0, &e), *exp = json_loads(want, 0, NULL);
    ck_assert_msg(got, "scenario %zu: %s in %.*s", i, e.text, (int)len, text);
    ck_assert_ptr_nonnull(exp);
    ck_assert_msg(json_equal(got, exp), "scenario %zu:\n got %.*s\nwant %s", i, (int)len, text,
                  want);
    json_decref(got);
    json_decref(exp);
}

START_TEST(the_saved_text_is_what_the_jansson_clocks_saved)
{
    size_t n;
    char **want = before(&n);
    ck_assert_uint_eq(n, sizeof scenarios / sizeof *scenarios);
    struct oh_json_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        struct oh_slaclock c;
        run(&c, &scenarios[i]);
        b.len = 0;
        ck_assert_int_eq(oh_slaclock_write(&c, &tg2, &b), OH_OK);
        same_json(b.p, b.len, want[i], i);
        /* the same members in the same order: the same bytes */
        ck_assert_uint_eq(b.len, strlen(want[i]));
        ck_assert(memcmp(b.p, want[i], b.len) == 0);
        oh_slaclock_clear(&c);
    }
    /* a second write appends */
    size_t one = b.len;
    struct oh_slaclock c;
    run(&c, &scenarios[2]);
    ck_assert_int_eq(oh_slaclock_write(&c, &tg2, &b), OH_OK);
    ck_assert_uint_eq(b.len, one + strlen(want[2]));
    oh_slaclock_clear(&c);
    free(b.p);
    free_lines(want, n);
}
END_TEST

START_TEST(either_version_reads_what_the_other_saved)
{
    size_t n;
    char **want = before(&n);
    struct oh_json_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        /* the old text into the struct, and back */
        struct oh_slaclock c, d;
        ck_assert_int_eq(oh_slaclock_read(&c, want[i]), OH_OK);
        b.len = 0;
        ck_assert_int_eq(oh_slaclock_write(&c, &tg2, &b), OH_OK);
        same_json(b.p, b.len, want[i], i);
        /* what the jansson version read of the new text: its "v" object,
         * member for member the one it saved */
        run(&d, &scenarios[i]);
        b.len = 0;
        ck_assert_int_eq(oh_slaclock_write(&d, &tg2, &b), OH_OK);
        json_t *got = json_loadb(b.p, b.len, 0, NULL), *old = json_loads(want[i], 0, NULL);
        ck_assert(json_is_object(json_object_get(got, "v")));
        ck_assert(json_equal(json_object_get(got, "v"), json_object_get(old, "v")));
        ck_assert(json_equal(json_object_get(got, "sla"), json_object_get(old, "sla")));
        json_decref(got);
        json_decref(old);
        /* and what was read runs on as the original does */
        oh_slaclock_inbound(&c, 20000000);
        oh_slaclock_inbound(&d, 20000000);
        ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_FRT, &tg2),
                         oh_slaclock_due(&d, OH_SLA_FRT, &tg2));
        ck_assert_int_eq(oh_slaclock_due(&c, OH_SLA_NRT, &tg2),
                         oh_slaclock_due(&d, OH_SLA_NRT, &tg2));
        ck_assert_int_eq(c.ep, d.ep);
        oh_slaclock_clear(&c);
        oh_slaclock_clear(&d);
    }
    free(b.p);
    free_lines(want, n);
}
END_TEST

START_TEST(bad_saved_text_and_bad_names_are_refused)
{
    struct oh_slaclock c;
    ck_assert_int_eq(oh_slaclock_read(&c, "not json"), OH_EINVAL);
    ck_assert_int_eq(oh_slaclock_read(&c, "{\"sla\":{}}"), OH_EINVAL);
    ck_assert_int_eq(oh_slaclock_read(&c, "{\"v\":[]}"), OH_EINVAL);
    /* members missing or of another type read as zero, false, "" */
    ck_assert_int_eq(oh_slaclock_read(&c, "{\"v\":{\"ep\":\"2\",\"frt\":{\"s\":\"x\"},"
                                          "\"br\":[\"nrt\",1,\"bogus\",\"frt\"]}}"),
                     OH_OK);
    ck_assert_int_eq(c.ep, 0);
    ck_assert_str_eq(c.ch, "");
    ck_assert_str_eq(c.st, "");
    ck_assert(c.clk[OH_SLA_FRT].on);
    ck_assert_int_eq(c.clk[OH_SLA_FRT].s, 0);
    ck_assert_int_eq(c.nbr, 2);
    ck_assert_int_eq(c.br[0], OH_SLA_NRT);
    ck_assert_int_eq(c.br[1], OH_SLA_FRT);
    oh_slaclock_clear(&c);
    /* names are written as JSON strings: no invalid UTF-8, no NUL */
    ck_assert_int_eq(oh_slaclock_init(&c, "ab\xff", "x"), OH_EINVAL);
    ck_assert_int_eq(oh_slaclock_init(&c, "ab", "\xc3("), OH_EINVAL);
    ck_assert_int_eq(oh_slaclock_init(&c, NULL, NULL), OH_OK);
    ck_assert_str_eq(c.ch, "");
    ck_assert_str_eq(c.ac, "");
    /* an over-long status is cut whole characters first */
    oh_slaclock_updated(&c, 0, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                        NULL, NULL, 1);
    ck_assert_str_eq(c.st, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    struct oh_json_buf b = {0};
    ck_assert_int_eq(oh_slaclock_write(&c, &tg, &b), OH_OK);
    free(b.p);
    oh_slaclock_clear(&c);
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
    TCase *tt = tcase_create("saved text");
    tcase_add_test(tt, the_saved_text_is_what_the_jansson_clocks_saved);
    tcase_add_test(tt, either_version_reads_what_the_other_saved);
    tcase_add_test(tt, bad_saved_text_and_bad_names_are_refused);
    suite_add_tcase(s, tt);
    return oh_test_run(s);
}
