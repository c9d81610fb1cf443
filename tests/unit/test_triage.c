/* test_triage.c - the triage scorer on the hard cases of issue 18 (sarcasm,
 * negation, emoji, masked profanity, capitals, quoted mail, the ways to ask
 * for a person), the accuracy floors on the development set, and its CPU. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/triage.h"
#include "tap.h"
#include "tools/triage_eval.h"

static struct oh_triage score(const char *text)
{
    struct oh_triage t;
    ck_assert_int_eq(oh_triage_classify(text, strlen(text), NULL, &t), 0);
    return t;
}

#define FRUSTRATED(text, want)                                                                     \
    ck_assert_msg(score(text).frustrated == (want), "frustrated should be %d: %s", (want), (text))
#define HUMAN(text, want)                                                                          \
    ck_assert_msg(score(text).wants_human == (want), "wants_human should be %d: %s", (want), (text))
#define PRIORITY(text, want)                                                                       \
    ck_assert_msg(score(text).priority == (want), "priority should be %s, is %s: %s",              \
                  oh_triage_priority_name(want), oh_triage_priority_name(score(text).priority),    \
                  (text))
#define LANGUAGE(text, want)                                                                       \
    ck_assert_msg(!strcmp(score(text).language, (want)), "language should be %s, is %s: %s",       \
                  (want), score(text).language, (text))

START_TEST(sarcasm_is_frustration)
{
    FRUSTRATED("great, another week of waiting, love it", 1);
    FRUSTRATED("Oh wonderful, the app logged me out again.", 1);
    FRUSTRATED("genial, otra vez retrasado. Gracias por nada.", 1);
    FRUSTRATED("Na toll, schon wieder verspätet.", 1);
    /* the same words without a complaint are praise */
    FRUSTRATED("Great, the jacket fits perfectly, love it!", 0);
    FRUSTRATED("génial, merci beaucoup !", 0);
}
END_TEST

START_TEST(negation)
{
    FRUSTRATED("not happy at all, the blender arrived with a cracked jug", 1);
    FRUSTRATED("No estoy nada contento con el pedido.", 1);
    FRUSTRATED("Ich bin überhaupt nicht zufrieden.", 1);
    FRUSTRATED("not bad, thanks", 0);
    FRUSTRATED("Pas mal, merci pour votre retour", 0);
    FRUSTRATED("No está nada mal, gracias", 0);
    /* negation stops at a clause break: "danke" is not negated */
    FRUSTRATED("Nicht schlecht, danke für die schnelle Antwort.", 0);
    ck_assert_double_gt(score("not bad, thanks").sentiment, 0);
    ck_assert_double_lt(score("not happy at all").sentiment, 0);
}
END_TEST

START_TEST(emoji)
{
    FRUSTRATED("still no package \xf0\x9f\x98\xa1", 1);         /* 😡 */
    FRUSTRATED("\xf0\x9f\xa4\xac where is my parcel", 1);       /* 🤬 */
    FRUSTRATED("lol my cat loves the box \xf0\x9f\x98\x82", 0); /* 😂 */
    FRUSTRATED("haha the packaging is so cute \xf0\x9f\x98\x82", 0);
    ck_assert_double_gt(score("thanks \xf0\x9f\x98\x8a").sentiment, 0);
}
END_TEST

START_TEST(masked_profanity)
{
    FRUSTRATED("Where the f**k is my refund?", 1);
    FRUSTRATED("m*rde, le colis est perdu", 1);
    FRUSTRATED("sh*t service", 1);
    FRUSTRATED("Sch***e, das Paket ist weg.", 1);
    /* a bare asterisk is not a swear word */
    FRUSTRATED("Is the * on the price about VAT?", 0);
}
END_TEST

START_TEST(capitals)
{
    /* an order number, a reference in capitals: not anger */
    FRUSTRATED("My ORDER NUMBER IS KX7731QP, can you tell me the status?", 0);
    FRUSTRATED("Order REF: UK-4410-BRT. Has it left the warehouse?", 0);
    FRUSTRATED("Please confirm the ETA for PO NUMBER 4471-AC.", 0);
    /* shouting is */
    FRUSTRATED("DO YOU EVEN READ MY MESSAGES? WHERE IS MY ORDER?", 1);
    FRUSTRATED("NO ME HA LLEGADO NADA Y YA PAGUÉ HACE UN MES", 1);
}
END_TEST

START_TEST(polite_but_urgent)
{
    const char *t = "I think I was charged twice, could you check?";
    FRUSTRATED(t, 0);
    PRIORITY(t, OH_TRIAGE_URGENT);
    PRIORITY("Me habéis cobrado dos veces el mismo pedido, ¿podéis revisarlo?", OH_TRIAGE_URGENT);
    PRIORITY("Mir wurde der Betrag doppelt abgebucht.", OH_TRIAGE_URGENT);
    PRIORITY("My son's toy car battery got really hot and started smoking.", OH_TRIAGE_URGENT);
    PRIORITY("Someone logged into my account and changed my email.", OH_TRIAGE_URGENT);
    PRIORITY("I need the dress today, the wedding is tomorrow morning.", OH_TRIAGE_URGENT);
}
END_TEST

START_TEST(priority_rubric)
{
    PRIORITY("My parcel shows delivered but it's not here.", OH_TRIAGE_HIGH);
    PRIORITY("The headphones arrived with the left earcup broken.", OH_TRIAGE_HIGH);
    PRIORITY("My refund was approved 20 days ago but I still don't see it", OH_TRIAGE_HIGH);
    PRIORITY("Hi, can you tell me when order 48213 will ship?", OH_TRIAGE_NORMAL);
    PRIORITY("Can I change the colour of my order before it ships?", OH_TRIAGE_NORMAL);
    PRIORITY("Do you ship to Canada?", OH_TRIAGE_LOW);
    PRIORITY("Thanks so much, the jacket fits perfectly!", OH_TRIAGE_LOW);
    /* "urgent" in a question does not make it urgent */
    ck_assert_int_ne(score("URGENT question: do I need to be home for the delivery?").priority,
                     OH_TRIAGE_URGENT);
}
END_TEST

START_TEST(asking_for_a_person)
{
    HUMAN("human please", 1);
    HUMAN("stop the bot", 1);
    HUMAN("agent", 1);
    HUMAN("Can I talk to a real person please?", 1);
    HUMAN("transfer me to a live agent", 1);
    HUMAN("I don't want to talk to a bot. Get me someone.", 1);
    HUMAN("Pásame con una persona, por favor", 1);
    HUMAN("Ich möchte mit einem Menschen sprechen.", 1);
    HUMAN("Je voudrais parler à un conseiller, s'il vous plaît.", 1);
    HUMAN("Quero falar com um atendente, por favor.", 1);
    HUMAN("Соедините меня с оператором, пожалуйста.", 1);
    HUMAN("オペレーターと話したいです。", 1);
    /* a person instead of the bot: asked for, without anger */
    HUMAN("My package is late. Could a person look into it instead of the bot?", 1);
    FRUSTRATED("My package is late. Could a person look into it instead of the bot?", 0);
}
END_TEST

START_TEST(mentioning_an_agent)
{
    HUMAN("The agent I spoke with yesterday said I'd get an email, just checking.", 0);
    HUMAN("I talked to a human yesterday who said I'd get a code. Did you send it?", 0);
    HUMAN("Thanks to your agent Maria, she was great.", 0);
    HUMAN("Hablé ayer con una persona de atención al cliente y me dijo que me mandarían un código.",
          0);
    HUMAN("Ich habe gestern mit einem Mitarbeiter gesprochen.", 0);
    HUMAN("The bot was helpful but I still need the invoice.", 0);
}
END_TEST

START_TEST(quoted_mail_does_not_count)
{
    const char *calm_reply =
        "Hi,\n\nThanks for your reply. Could you tell me which courier will deliver it?\n\n"
        "On Mon, Mar 3, 2025 at 9:10 AM Me wrote:\n> THIS IS RIDICULOUS WHERE IS MY ORDER\n"
        "> I want a human NOW";
    FRUSTRATED(calm_reply, 0);
    HUMAN(calm_reply, 0);
    FRUSTRATED("> You are all useless and I want my money back!!!\n\nHi again, the refund "
               "arrived. Will the points be restored?",
               0);
    FRUSTRATED("Gracias.\n\nEl mié, 5 mar 2025, Soporte escribió:\n> > ES UNA VERGÜENZA", 0);
    FRUSTRATED("Danke.\n\nAm 3. März 2025 schrieb Kundenservice:\n> Das ist eine Frechheit!", 0);
    FRUSTRATED("Merci.\n\nLe mar. 4 mars 2025, Service client a écrit :\n> C'est scandaleux !", 0);
    /* a reply under the quote (bottom-posting) is the customer's */
    const char *below =
        "On Mon, 3 Mar 2025 at 10:02, Support wrote:\n> We are sorry for the delay.\n\n"
        "Sorry? That's all you have? It's been a month and the sofa never came. "
        "Ridiculous.";
    FRUSTRATED(below, 1);
    PRIORITY(below, OH_TRIAGE_HIGH);
    LANGUAGE("Am 3. März 2025 schrieb Kundenservice:\n> Ihre Rücksendung ist angekommen.\n\n"
             "Danke. Wann wird das Geld zurückgebucht?",
             "de");
    /* Outlook: the unquoted mail under "-----Original Message-----" is not */
    FRUSTRATED("Thanks!\n\n-----Original Message-----\nFrom: me\nWHERE IS MY PACKAGE?? this is a "
               "scam, ridiculous",
               0);
    /* the customer's own anger above the quote counts */
    FRUSTRATED("Sorry? That's all you have? It's been a month. Ridiculous.\n\n"
               "On Mon, 3 Mar 2025 at 10:02, Support wrote:\n> We are sorry for the delay.",
               1);
}
END_TEST

START_TEST(languages)
{
    LANGUAGE("Where is my parcel?", "en");
    LANGUAGE("¿Dónde está mi pedido?", "es");
    LANGUAGE("Wo ist mein Paket?", "de");
    LANGUAGE("Cadê meu pedido?", "pt");
    LANGUAGE("Où est mon colis ?", "fr");
    LANGUAGE("荷物がまだ届いていません。", "ja");
    LANGUAGE("Где мой заказ?", "ru");
    LANGUAGE("refund?", "en");
}
END_TEST

START_TEST(subject_counts_for_priority_only)
{
    struct oh_triage t;
    const char *body = "Please have a look.";
    ck_assert_int_eq(oh_triage_classify(body, strlen(body), "Charged twice for order 5512", &t), 0);
    ck_assert_int_eq(t.priority, OH_TRIAGE_URGENT);
    ck_assert_int_eq(oh_triage_classify(body, strlen(body), "WHY IS THIS SO BAD!!!", &t), 0);
    ck_assert(!t.frustrated);
    ck_assert_int_eq(oh_triage_classify(NULL, 0, NULL, &t), -1);
    ck_assert_int_eq(oh_triage_classify("", 0, NULL, &t), 0);
    ck_assert_int_eq(t.priority, OH_TRIAGE_LOW);
    ck_assert_str_eq(t.language, "en");
}
END_TEST

START_TEST(hostile_input)
{
    /* binary, truncated UTF-8, a text far over the bound: bounded, no crash */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7919 % 256);
    struct oh_triage t;
    ck_assert_int_eq(oh_triage_classify(big, sizeof big, NULL, &t), 0);
    ck_assert_int_eq(oh_triage_classify("\xe3\x81", 2, "\xf0\x9f", &t), 0);
    memset(big, '!', sizeof big);
    ck_assert_int_eq(oh_triage_classify(big, sizeof big, NULL, &t), 0);
    ck_assert(t.sentiment >= -1 && t.sentiment <= 1);
}
END_TEST

/* The floors of issue 18, on the development set (the held-out set is only
 * reported, in docs/triage.md). */
START_TEST(dev_set_floors)
{
    char *path = oh_test_src("tests/data/triage/dev.tsv");
    struct oh_triage_metrics m;
    char err[256] = "";
    ck_assert_msg(oh_triage_eval_file(path, &m, NULL, err, sizeof err) == 0, "%s", err);
    free(path);
    ck_assert_int_ge(m.messages, 500);
    oh_triage_metrics_print(&m, stderr);
    ck_assert_double_ge(m.frustrated.f1, 0.85);
    ck_assert_double_ge(m.priority[OH_TRIAGE_URGENT].recall, 0.90);
    ck_assert_double_ge(m.priority[OH_TRIAGE_URGENT].precision, 0.70);
    ck_assert_double_ge(m.priority_macro_f1, 0.70);
    ck_assert_double_ge(m.wants_human.f1, 0.90);
    ck_assert_double_ge(m.language_accuracy, 0.95);
}
END_TEST

/* CPU per message: the dev set's texts, each scored 50 times; the figure is
 * printed for docs/performance.md, and only a gross regression fails (a
 * shared 2-core machine under a sanitizer must not flake this). */
START_TEST(cpu_per_message)
{
    char *path = oh_test_src("tests/data/triage/dev.tsv");
    char *all = oh_test_read(path, NULL);
    free(path);
    ck_assert_ptr_nonnull(all);
    struct timespec a, b;
    int msgs = 0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    for (int r = 0; r < 50; r++)
        for (char *l = all; *l;) {
            char *tab = strchr(l, '\t'), *nl = strchr(l, '\n');
            if (!nl) nl = l + strlen(l);
            if (tab && tab < nl) {
                struct oh_triage t;
                oh_triage_classify(l, (size_t)(tab - l), NULL, &t);
                msgs++;
            }
            l = *nl ? nl + 1 : nl;
        }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3) / msgs;
    fprintf(stderr, "triage: %.2f us CPU per message (mean over %d)\n", us, msgs);
    ck_assert_double_lt(us, 2000);
    free(all);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("triage");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sarcasm_is_frustration);
    tcase_add_test(tc, negation);
    tcase_add_test(tc, emoji);
    tcase_add_test(tc, masked_profanity);
    tcase_add_test(tc, capitals);
    tcase_add_test(tc, polite_but_urgent);
    tcase_add_test(tc, priority_rubric);
    tcase_add_test(tc, asking_for_a_person);
    tcase_add_test(tc, mentioning_an_agent);
    tcase_add_test(tc, quoted_mail_does_not_count);
    tcase_add_test(tc, languages);
    tcase_add_test(tc, subject_counts_for_priority_only);
    tcase_add_test(tc, hostile_input);
    tcase_add_test(tc, dev_set_floors);
    tcase_add_test(tc, cpu_per_message);
    suite_add_tcase(s, tc);
    return oh_test_run(s);
}
