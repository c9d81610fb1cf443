/* test_email.c - the email connector without servers: every fixture in
 * tests/data/email normalized and checked field by field, the text
 * helpers, malformed input, and composing a reply that threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tap.h"
#include "fixture.h"
#include "hub_fixture.h"
#include "oh_build_config.h"
#include "core/connector.h"

#ifdef OH_HAVE_GMIME
#include <pthread.h>
#include "../../connectors/email/email_int.h"
#include "core/conn_env.h"
#include "core/hub_int.h"
#include "store/store.h"

static const struct oh_connector *conn(void)
{
    const struct oh_connector *c = oh_connector_find("email");
    ck_assert_ptr_nonnull(c);
    return c;
}

static int norm(const char *raw, size_t len, const char *account, struct oh_event_list *out,
                char *err, size_t errlen)
{
    struct oh_norm_ctx nc = {.account = account, .now_ms = 1700000000000};
    return conn()->normalize(&nc, (const uint8_t *)raw, len, out, err, errlen);
}

/* one message, one event */
static void one_event(const char *channel, const char *name, const struct oh_event_list *out)
{
    (void)channel;
    ck_assert_msg(out->n == 1, "%s: %zu events", name, out->n);
}

START_TEST(fixtures)
{
    ck_assert_int_ge(oh_fixture_check_dir("email", ".eml", NULL, one_event), 25);
}
END_TEST

START_TEST(malformed)
{
    struct oh_event_list out = {0};
    char err[256];
    ck_assert_int_eq(norm("", 0, "a@b.c", &out, err, sizeof err), OH_EINVAL);
    const char *junk = "just some words without any header\n";
    ck_assert_int_eq(norm(junk, strlen(junk), "a@b.c", &out, err, sizeof err), OH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "RFC 5322"));
    const char *nofrom = "To: a@b.c\r\nSubject: x\r\n\r\nbody\r\n";
    ck_assert_int_eq(norm(nofrom, strlen(nofrom), NULL, &out, err, sizeof err), OH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "From"));
    const char *noacct = "From: x@y.z\r\nSubject: x\r\n\r\nbody\r\n";
    ck_assert_int_eq(norm(noacct, strlen(noacct), NULL, &out, err, sizeof err), OH_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "account"));
    ck_assert_uint_eq(out.n, 0);
    /* binary garbage after headers still parses into something sane */
    char bin[300] = "From: x@y.z\r\nTo: a@b.c\r\n\r\n";
    size_t l = strlen(bin);
    for (int i = 0; i < 200; i++)
        bin[l + (size_t)i] = (char)(i * 37 + 1);
    ck_assert_int_eq(norm(bin, l + 200, NULL, &out, err, sizeof err), 0);
    const char *text = oh_event_data_str(out.ev[0], "text");
    ck_assert(oh_utf8_valid(text, strlen(text)));
    oh_event_list_clear(&out);
}
END_TEST

START_TEST(stable_ids)
{
    const char *a = "From: x@y.z\r\nTo: a@b.c\r\nMessage-ID: <m1@y.z>\r\n\r\nhi\r\n";
    const char *b = "From: x@y.z\r\nTo: a@b.c\r\nMessage-ID: <m1@y.z>\r\n\r\nhi again\r\n";
    const char *c = "From: x@y.z\r\nTo: a@b.c\r\n\r\nno id\r\n";
    const char *d = "From: x@y.z\r\nTo: a@b.c\r\n\r\nno id either\r\n";
    struct oh_event_list out = {0};
    char err[256];
    ck_assert_int_eq(norm(a, strlen(a), NULL, &out, err, sizeof err), 0);
    ck_assert_int_eq(norm(b, strlen(b), NULL, &out, err, sizeof err), 0);
    ck_assert_int_eq(norm(c, strlen(c), NULL, &out, err, sizeof err), 0);
    ck_assert_int_eq(norm(c, strlen(c), NULL, &out, err, sizeof err), 0);
    ck_assert_int_eq(norm(d, strlen(d), NULL, &out, err, sizeof err), 0);
    ck_assert_str_eq(oh_event_get_id(out.ev[0]), oh_event_get_id(out.ev[1]));
    ck_assert_str_eq(oh_event_get_id(out.ev[2]), oh_event_get_id(out.ev[3]));
    ck_assert_str_ne(oh_event_get_id(out.ev[2]), oh_event_get_id(out.ev[4]));
    ck_assert_str_ne(oh_event_get_id(out.ev[0]), oh_event_get_id(out.ev[2]));
    ck_assert(strncmp(oh_event_data_str(out.ev[2], "message_id"), "sha256:", 7) == 0);
    /* same sender, same account: same default conversation */
    ck_assert_str_eq(oh_event_subject(out.ev[0]), oh_event_subject(out.ev[4]));
    /* --account overrides the To address */
    struct oh_event_list o2 = {0};
    ck_assert_int_eq(norm(a, strlen(a), "Other@Example.com", &o2, err, sizeof err), 0);
    ck_assert_str_eq(oh_event_data_str(o2.ev[0], "account"), "other@example.com");
    ck_assert_str_ne(oh_event_subject(o2.ev[0]), oh_event_subject(out.ev[0]));
    oh_event_list_clear(&o2);
    oh_event_list_clear(&out);
}
END_TEST

static void trims(const char *in, const char *want)
{
    char *got = email_trim_quotes(in);
    ck_assert_msg(strcmp(got, want) == 0, "trim of [%s]: got [%s], want [%s]", in, got, want);
    free(got);
}

START_TEST(quotes)
{
    trims("Thanks!\n\nOn Mon, 1 Jan 2024, Bob <b@x.y> wrote:\n> hello\n", "Thanks!");
    trims("Danke\n\nAm 01.01.2024 um 10:00 schrieb Bob <b@x.y>:\n> hallo\n", "Danke");
    trims("Merci\n\nLe lun. 1 janv. 2024 à 10:00, Bob <b@x.y> a écrit :\n> salut\n", "Merci");
    trims("ok\n-----Original Message-----\nFrom: a\nSent: b\nTo: c\n", "ok");
    trims("ok\n\nFrom: Support <s@x.y>\nSent: Monday\nTo: me\nSubject: x\n\nold\n", "ok");
    trims("> only a quote\n> nothing new\n", "> only a quote\n> nothing new");
    trims("line\n> quoted in the middle\nmore\n", "line\nmore");
    trims("From: is just a word here\nno header block\n",
          "From: is just a word here\nno header block");
}
END_TEST

static void unflows(const char *in, bool delsp, const char *want)
{
    char *got = email_unflow(in, delsp);
    ck_assert_msg(strcmp(got, want) == 0, "unflow of [%s]: got [%s], want [%s]", in, got, want);
    free(got);
}

START_TEST(flowed)
{
    unflows("one \r\ntwo\r\n", false, "one two\n");
    unflows("wo \r\nrd\r\n", true, "word\n");
    unflows(" From here\n", false, "From here\n");                  /* stuffing */
    unflows("> a \n> b\n>> c \n>>d\n", false, "> a b\n>> c d\n");   /* by depth */
    unflows("> open \nnew depth\n", false, "> open \nnew depth\n"); /* no join */
    unflows("text\n-- \nsig\n", false, "text\n-- \nsig\n");         /* signature */
    unflows("no end \n", true, "no end");
}
END_TEST

/* a text/plain in a multipart nested inside a multipart/alternative whose
 * text is taken already is another rendering of the same text: not joined */
START_TEST(alternative_with_nested_text)
{
    const char *raw = "From: ann@example.com\r\nTo: desk@example.com\r\nSubject: s\r\n"
                      "Message-ID: <alt1@example.com>\r\nMIME-Version: 1.0\r\n"
                      "Content-Type: multipart/alternative; boundary=A\r\n\r\n"
                      "--A\r\nContent-Type: text/plain\r\n\r\nHello there\r\n"
                      "--A\r\nContent-Type: multipart/related; boundary=R\r\n\r\n"
                      "--R\r\nContent-Type: text/plain\r\n\r\nHello there\r\n"
                      "--R\r\nContent-Type: text/html\r\n\r\n<p>Hello there</p>\r\n"
                      "--R--\r\n--A--\r\n";
    struct oh_event_list out = {0};
    char err[256];
    ck_assert_int_eq(norm(raw, strlen(raw), "desk@example.com", &out, err, sizeof err), OH_OK);
    ck_assert_uint_eq(out.n, 1);
    const char *text = oh_event_data_str(out.ev[0], "text");
    ck_assert_msg(text && strcmp(text, "Hello there") == 0, "text [%s]", text ? text : "(null)");
    oh_event_list_clear(&out);
}
END_TEST

START_TEST(html)
{
    const char *h = "<p>Hi&nbsp;<b>you</b></p><blockquote>old<br>text</blockquote>"
                    "<p>new &amp; more &#x1F600;</p><style>x{}</style><!-- c -->";
    char *t = email_html_to_text(h, strlen(h));
    ck_assert_str_eq(t, "Hi you\n\n> old\n> text\n\nnew & more \xf0\x9f\x98\x80");
    char *n = email_trim_quotes(t);
    ck_assert_str_eq(n, "Hi you\n\n\nnew & more \xf0\x9f\x98\x80");
    free(n);
    free(t);
    char *e = email_text_to_html("a < b & \"c\"\nline\n\npara");
    ck_assert_ptr_nonnull(strstr(e, "a &lt; b &amp; &quot;c&quot;<br>"));
    ck_assert_ptr_nonnull(strstr(e, "para"));
    free(e);
}
END_TEST

START_TEST(charsets)
{
    char *s = email_to_utf8("utf-8", "ok \xff\xfe bad", 10);
    ck_assert(oh_utf8_valid(s, strlen(s)));
    ck_assert_ptr_nonnull(strstr(s, "\xef\xbf\xbd"));
    free(s);
    s = email_to_utf8("no-such-charset", "caf\xe9", 4);
    ck_assert_str_eq(s, "caf\xc3\xa9");
    free(s);
    s = email_to_utf8("iso-8859-1", "\x80", 1); /* read as Windows-1252: the euro */
    ck_assert_str_eq(s, "\xe2\x82\xac");
    free(s);
    s = email_to_utf8("shift_jis", "\x82\xa0", 2);
    ck_assert_str_eq(s, "\xe3\x81\x82");
    free(s);
    s = email_to_utf8(NULL, "a\0b", 3); /* NUL bytes never reach an event */
    ck_assert_str_eq(s, "ab");
    free(s);
}
END_TEST

START_TEST(compose_threads)
{
    struct email_ctx c = {.address = "support@example.com",
                          .local = "support",
                          .domain = "example.com",
                          .from_name = "Support Team"};
    json_t *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:s, s:s}", "conversation_id", "c_abc",
                  "channel", "email", "account", "support@example.com", "direction", "outbound",
                  "kind", "text", "contact", "id", "carla@example.org", "name", "Carla Gómez",
                  "message_id", "m_1", "text", "Grüße,\nyour refund is on its way.");
    json_t *ev = oh_event_new(OH_EV_OUTBOUND, "e_1", 0, data);
    json_t *thread = json_pack("{s:s, s:s, s:[s]}", "subject", "Rückerstattung", "last",
                               "cust-2@example.org", "refs", "cust-1@example.org");
    char *raw, msgid[256], err[256];
    size_t len;
    ck_assert_int_eq(
        email_compose(&c, ev, thread, &raw, &len, msgid, sizeof msgid, err, sizeof err), 0);
    char token[17];
    email_conv_token("c_abc", token);
    char want[128];
    snprintf(want, sizeof want, "oh.%s.", token);
    ck_assert(strncmp(msgid, want, strlen(want)) == 0);
    ck_assert_ptr_nonnull(strstr(raw, "\r\nIn-Reply-To: <cust-2@example.org>\r\n"));
    ck_assert_ptr_nonnull(strstr(raw, "References: <cust-1@example.org> <cust-2@example.org>"));
    ck_assert_ptr_nonnull(strstr(raw, "multipart/alternative"));
    ck_assert_ptr_nonnull(strstr(raw, "text/html"));
    ck_assert_ptr_null(strstr(raw, "Rückerstattung")); /* RFC 2047 encoded */
    snprintf(want, sizeof want, "support+%s@example.com", token);
    ck_assert_ptr_nonnull(strstr(raw, want));

    /* read back as the customer would */
    struct oh_event_list out = {0};
    ck_assert_int_eq(norm(raw, len, "carla@example.org", &out, err, sizeof err), 0);
    json_t *d = oh_event_data(out.ev[0]);
    ck_assert_str_eq(json_string_value(json_object_get(d, "subject")), "Re: Rückerstattung");
    ck_assert_str_eq(json_string_value(json_object_get(d, "text")),
                     "Grüße,\nyour refund is on its way.");
    ck_assert_str_eq(json_string_value(json_object_get(d, "message_id")), msgid);
    json_t *em = json_object_get(d, "email");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(em, "from"), "name")),
                     "Support Team");
    ck_assert_str_eq(json_string_value(json_object_get(em, "in_reply_to")), "cust-2@example.org");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(em, "reply_to"), "address")),
                     want);
    oh_event_list_clear(&out);

    /* the same outbound message composes to the same Message-ID */
    char *raw2, msgid2[256];
    ck_assert_int_eq(
        email_compose(&c, ev, thread, &raw2, &len, msgid2, sizeof msgid2, err, sizeof err), 0);
    ck_assert_str_eq(msgid, msgid2);
    free(raw2);
    free(raw);
    json_decref(thread);
    json_decref(ev);
}
END_TEST

/* ---- the remembered thread, noted by two processes at once ---- */

struct noter {
    struct email_ctx c; /* its own lock: another process */
    const char *prefix;
};

static void *note_ten(void *arg)
{
    struct noter *n = arg;
    for (int i = 0; i < 10; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d@example.org", n->prefix, i);
        email_thread_note(&n->c, "c_race", "Subject", id, NULL, NULL);
    }
    return NULL;
}

START_TEST(thread_noted_at_once)
{
    char *dir = oh_test_tmpdir();
    oh_hub hub = {0};
    hub.cfg = oh_test_cfg(dir, NULL);
    hub.store = oh_test_store_open(hub.cfg);
    struct oh_conn_env *env = oh_conn_env_new(&hub, conn());
    ck_assert_ptr_nonnull(env);
    struct noter n[2] = {{.c = {.env = env}, .prefix = "in"}, {.c = {.env = env}, .prefix = "out"}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        pthread_mutex_init(&n[i].c.thread_mu, NULL);
        ck_assert_int_eq(pthread_create(&t[i], NULL, note_ten, &n[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* 20 ids fit (20 references and the last): every one is remembered */
    json_t *th = email_thread_get(&n[0].c, "c_race");
    ck_assert_ptr_nonnull(th);
    char *all = json_dumps(th, JSON_COMPACT);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 10; i++) {
            char id[64];
            snprintf(id, sizeof id, "\"%s-%d@example.org\"", n[k].prefix, i);
            ck_assert_msg(strstr(all, id) != NULL, "%s lost: %s", id, all);
        }
    free(all);
    json_decref(th);
    for (int i = 0; i < 2; i++)
        pthread_mutex_destroy(&n[i].c.thread_mu);
    oh_conn_env_free(env);
    oh_store_close(hub.store);
    oh_config_free(hub.cfg);
    free(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("email");
    TCase *t = tcase_create("email");
    tcase_add_test(t, fixtures);
    tcase_add_test(t, malformed);
    tcase_add_test(t, stable_ids);
    tcase_add_test(t, quotes);
    tcase_add_test(t, flowed);
    tcase_add_test(t, alternative_with_nested_text);
    tcase_add_test(t, html);
    tcase_add_test(t, charsets);
    tcase_add_test(t, compose_threads);
    tcase_add_test(t, thread_noted_at_once);
    suite_add_tcase(s, t);
    return s;
}

#else /* built without GMime: nothing to test */

START_TEST(skipped)
{
    ck_assert_ptr_null(oh_connector_find("email"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("email");
    TCase *t = tcase_create("email");
    tcase_add_test(t, skipped);
    suite_add_tcase(s, t);
    return s;
}
#endif

int main(void)
{
    return oh_test_run(suite());
}
