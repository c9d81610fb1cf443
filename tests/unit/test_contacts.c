/* test_contacts.c - the contact directory (core/contacts.c): E.164, the
 * identifiers of an event, linking on verified identifiers only, merge and
 * unmerge round trips, erasure, and 10,000 synthetic contacts with no false
 * merge. The directory lives in a JSON object (memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../fuzz/contact_memdir.h"
#include "core/contacts.h"
#include "tap.h"

static void e164(const char *in, const char *region, const char *want)
{
    char out[24];
    int rc = oh_phone_e164(in, region, out, sizeof out);
    if (!want) {
        ck_assert_msg(rc != 0, "%s (%s) should be refused, got %s", in, region, out);
        return;
    }
    ck_assert_msg(rc == 0, "%s (%s) refused", in, region);
    ck_assert_str_eq(out, want);
}

START_TEST(phone_numbers)
{
    e164("+49 151 2345 6789", "US", "+4915123456789");
    e164("0151 2345-6789", "DE", "+4915123456789");
    e164("0049 (151) 23456789", "DE", "+4915123456789");
    e164("(415) 555-0100", "US", "+14155550100");
    e164("1 415 555 0100", "US", "+14155550100");
    e164("011 44 20 7946 0958", "US", "+442079460958");
    e164("020 7946 0958", "GB", "+442079460958");
    e164("06 12 34 56 78", "FR", "+33612345678");
    e164("06 12 34 56 78", "fr", "+33612345678");
    e164("02 1234 5678", "IT", "+390212345678"); /* Italy keeps its 0 */
    e164("8 (912) 345-67-89", "RU", "+79123456789");
    e164("+971 50 123 4567", NULL, "+971501234567");
    e164("0151 23456789", NULL, NULL); /* national without a region */
    e164("0151 23456789", "XX", NULL); /* unknown region */
    e164("+0049151", "DE", NULL);
    e164("+1 415 555", "US", NULL); /* NANP is 11 digits */
    e164("+49 151 2345 6789 12345", "DE", NULL);
    e164("call me", "DE", NULL);
    e164("+49 151 ext 2", "DE", NULL);
}
END_TEST

START_TEST(idents_of_events)
{
    struct oh_contact_ident id[OH_CONTACT_IDS_MAX];
    json_t *d = json_loads("{\"channel\":\"whatsapp\",\"contact\":{\"id\":\"4915123456789\","
                           "\"identifiers\":[{\"type\":\"phone\",\"value\":\"+49 151 23456789\","
                           "\"verified\":true},{\"type\":\"email\",\"value\":\"Ann@Example.ORG\"},"
                           "{\"type\":\"phone\",\"value\":\"nonsense\",\"verified\":true}]}}",
                           0, NULL);
    int n = oh_contact_idents(d, "DE", id, OH_CONTACT_IDS_MAX);
    ck_assert_int_eq(n, 3);
    ck_assert_str_eq(id[0].value, "+4915123456789");
    ck_assert(id[0].verified);
    ck_assert_str_eq(id[1].value, "ann@example.org");
    ck_assert(!id[1].verified);
    ck_assert_str_eq(id[2].type, "whatsapp");
    ck_assert(id[2].verified);
    json_decref(d);
    /* a connector listing its own channel's entry unverified (email From) */
    d = json_loads("{\"channel\":\"email\",\"contact\":{\"id\":\"a@b.c\",\"identifiers\":"
                   "[{\"type\":\"email\",\"value\":\"A@B.C\",\"verified\":false}]}}",
                   0, NULL);
    n = oh_contact_idents(d, "DE", id, OH_CONTACT_IDS_MAX);
    ck_assert_int_eq(n, 1);
    ck_assert(!id[0].verified);
    json_decref(d);
    /* ... and an entry of its that does not normalize (a From the email
     * connector takes, with an '@', that is no address) is dropped, not
     * replaced by the same value verified */
    d = json_loads("{\"channel\":\"email\",\"contact\":{\"id\":\"@example.org\",\"identifiers\":"
                   "[{\"type\":\"email\",\"value\":\"@example.org\",\"verified\":false}]}}",
                   0, NULL);
    ck_assert_int_eq(oh_contact_idents(d, "DE", id, OH_CONTACT_IDS_MAX), 0);
    json_decref(d);
    /* the channel's own id, when its type is one with a normal form, is in it */
    d = json_loads("{\"channel\":\"email\",\"contact\":{\"id\":\"Ann@Example.ORG\"}}", 0, NULL);
    ck_assert_int_eq(oh_contact_idents(d, "DE", id, OH_CONTACT_IDS_MAX), 1);
    ck_assert_str_eq(id[0].value, "ann@example.org");
    json_decref(d);
    d = json_loads("{\"channel\":\"email\",\"contact\":{\"id\":\"no-domain\"}}", 0, NULL);
    ck_assert_int_eq(oh_contact_idents(d, "DE", id, OH_CONTACT_IDS_MAX), 0);
    json_decref(d);
}
END_TEST

static void ident(struct oh_contact_ident *i, const char *t, const char *v, bool verified)
{
    snprintf(i->type, sizeof i->type, "%s", t);
    snprintf(i->value, sizeof i->value, "%s", v);
    i->verified = verified;
}

static char *dump_sorted(json_t *o)
{
    return json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
}

/* A name of any length (an email From's display name) leaves a record that
 * reads back: it is kept cut, on a character boundary. */
START_TEST(long_names_are_cut)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident a, b;
    char ca[OH_ID_MAX], cb[OH_ID_MAX], *big = malloc(70001), euro[301];
    ck_assert_ptr_nonnull(big);
    memset(big, 0x01, 70000); /* six bytes each in the record's JSON */
    big[70000] = '\0';
    for (int i = 0; i < 100; i++)
        memcpy(euro + 3 * i, "\xe2\x82\xac", 3);
    euro[300] = '\0';
    ident(&a, "telegram", "111", true);
    ident(&b, "telegram", "222", true);
    ck_assert_int_eq(oh_contact_link(&d, "c_1", &a, 1, big, ca), 0);
    ck_assert_int_eq(oh_contact_link(&d, "c_2", &a, 1, "x", cb), 0);
    ck_assert_str_eq(ca, cb);
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, ca, &got), 0);
    ck_assert_int_eq(strlen(json_string_value(json_object_get(got, "name"))), OH_CONTACT_NAME_MAX);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 2);
    json_decref(got);
    ck_assert_int_eq(oh_contact_link(&d, "c_3", &b, 1, euro, cb), 0);
    ck_assert_int_eq(oh_contact_get(&d, cb, &got), 0);
    ck_assert_int_eq(strlen(json_string_value(json_object_get(got, "name"))), 255); /* 85 x 3 */
    json_decref(got);
    free(big);
    json_decref(o);
}
END_TEST

START_TEST(verified_links_unverified_suggests)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident a[2], b[2], c[2];
    char ca[OH_ID_MAX], cb[OH_ID_MAX], cc[OH_ID_MAX];
    ident(&a[0], "phone", "+4915123456789", true);
    ident(&a[1], "whatsapp", "4915123456789", true);
    ident(&b[0], "phone", "+4915123456789", true);
    ident(&b[1], "webchat", "user-7", true);
    ident(&c[0], "email", "ann@example.org", false);
    ident(&c[1], "email", "ann@example.org", false);
    ck_assert_int_eq(oh_contact_link(&d, "c_wa", a, 2, "Ann", ca), 0);
    ck_assert_int_eq(oh_contact_link(&d, "c_web", b, 2, "user-7", cb), 0);
    ck_assert_str_eq(ca, cb);
    ck_assert_int_eq(oh_contact_link(&d, "c_mail", c, 1, "", cc), 0);
    ck_assert_str_ne(cc, ca);
    /* idempotent */
    ck_assert_int_eq(oh_contact_link(&d, "c_web", b, 2, "x", cb), 0);
    ck_assert_str_eq(ca, cb);
    /* the verified email on A's side makes the unverified one a suggestion */
    struct oh_contact_ident e;
    ident(&e, "email", "ann@example.org", true);
    ck_assert_int_eq(oh_contact_link(&d, "c_app", &e, 1, "", cb), 0);
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, cc, &got), 0);
    json_t *s = json_object_get(got, "suggestions");
    ck_assert_int_eq(json_array_size(s), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(s, 0), "contact_id")), cb);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 1);
    json_decref(got);
    ck_assert_int_eq(oh_contact_get(&d, ca, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 2);
    json_decref(got);
    char f[OH_ID_MAX];
    ck_assert_int_eq(oh_contact_find(&d, "phone", "0151 23456789", "DE", f), 0);
    ck_assert_str_eq(f, ca);
    json_decref(o);
}
END_TEST

/* One sync batch: links see each other's writes before anything is
 * written, and nothing is written when the batch is given up. */
START_TEST(batch_links_together)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident a[2], b[2];
    char ca[OH_ID_MAX], cb[OH_ID_MAX];
    ident(&a[0], "phone", "+4915123456789", true);
    ident(&a[1], "whatsapp", "4915123456789", true);
    ident(&b[0], "phone", "+4915123456789", true);
    ident(&b[1], "webchat", "w-1", true);
    struct oh_contact_batch bt;
    ck_assert_int_eq(oh_contact_batch_begin(&bt, &d), 0);
    ck_assert_int_eq(oh_contact_link(&bt.dir, "c_1", a, 2, "", ca), 0);
    ck_assert_int_eq(oh_contact_link(&bt.dir, "c_2", b, 2, "", cb), 0);
    ck_assert_str_eq(ca, cb);
    ck_assert_int_eq(json_object_size(o), 0); /* nothing written yet */
    ck_assert_int_eq(oh_contact_batch_end(&bt, true), 0);
    ck_assert_int_gt(json_object_size(o), 0);
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, ca, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 2);
    json_decref(got);
    /* given up: forgotten */
    size_t before = json_object_size(o);
    ck_assert_int_eq(oh_contact_batch_begin(&bt, &d), 0);
    ck_assert_int_eq(oh_contact_link(&bt.dir, "c_3", b + 1, 1, "", cb), 0);
    ck_assert_int_eq(oh_contact_batch_end(&bt, false), 0);
    ck_assert_int_eq(json_object_size(o), before);
    json_decref(o);
}
END_TEST

static void command(struct oh_contact_dir *d, const char *text, int code, bool changed,
                    struct oh_contact_result *r)
{
    json_t *cmd = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(cmd);
    oh_contact_command(d, cmd, "DE", NULL, r);
    ck_assert_msg(r->code == code, "%s: %d (%s)", text, r->code, r->why);
    ck_assert_int_eq(r->changed, changed);
    json_decref(cmd);
}

/* A directory with an atomic write that can be made to fail. */
static int write_fails, writes;

static int mwrite(void *o, const char *const *keys, const char *const *values, size_t n,
                  const struct oh_contact_seen *seen, const struct oh_contact_refs *refs)
{
    (void)seen;
    (void)refs;
    if (write_fails) return OH_EIO;
    writes++;
    for (size_t i = 0; i < n; i++)
        if (values[i])
            mput(o, keys[i], values[i]);
        else
            mdel(o, keys[i]);
    return 0;
}

static int then_calls;

static int note_decision(void *opaque, const struct oh_contact_dir *w,
                         const struct oh_contact_result *out)
{
    then_calls++;
    return opaque ? *(int *)opaque : w->put(w->opaque, "e:test", out->root);
}

/* What a decision's caller writes with it (sync: the contact event) goes in
 * the same write: a failed write keeps neither. */
START_TEST(then_writes_with_the_decision)
{
    json_t *o = json_object();
    struct oh_contact_dir d = {o, mget, mput, mdel, mwrite, NULL};
    struct oh_contact_ident a, b, c;
    char ca[OH_ID_MAX], cb[OH_ID_MAX], cc[OH_ID_MAX], cmd[256], root[OH_ID_MAX];
    ident(&a, "telegram", "111", true);
    ident(&b, "telegram", "222", true);
    ident(&c, "telegram", "333", true);
    oh_contact_link(&d, "c_a", &a, 1, "A", ca);
    oh_contact_link(&d, "c_b", &b, 1, "B", cb);
    oh_contact_link(&d, "c_c", &c, 1, "C", cc);
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", ca, cb);
    json_t *merge = json_loads(cmd, 0, NULL);
    struct oh_contact_then then = {note_decision, NULL};
    struct oh_contact_result r;
    write_fails = 1;
    oh_contact_command(&d, merge, "DE", &then, &r);
    ck_assert_int_eq(r.code, 503);
    oh_contact_result_clear(&r);
    ck_assert_ptr_null(json_object_get(o, "e:test"));
    ck_assert_int_eq(oh_contact_root(&d, cb, root), 0);
    ck_assert_str_eq(root, cb);
    write_fails = 0;
    int before = writes;
    oh_contact_command(&d, merge, "DE", &then, &r);
    ck_assert_int_eq(r.code, 200);
    ck_assert(r.changed);
    ck_assert_int_eq(writes, before + 1);
    ck_assert_str_eq(json_string_value(json_object_get(o, "e:test")), ca);
    oh_contact_result_clear(&r);
    int calls = then_calls;
    oh_contact_command(&d, merge, "DE", &then, &r); /* one person already */
    ck_assert_int_eq(r.code, 200);
    ck_assert(!r.changed);
    ck_assert_int_eq(then_calls, calls);
    oh_contact_result_clear(&r);
    json_decref(merge);
    /* a failing THEN writes nothing either */
    int enomem = OH_ENOMEM;
    then.opaque = &enomem;
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", ca, cc);
    merge = json_loads(cmd, 0, NULL);
    oh_contact_command(&d, merge, "DE", &then, &r);
    ck_assert_int_eq(r.code, 503);
    oh_contact_result_clear(&r);
    ck_assert_int_eq(oh_contact_root(&d, cc, root), 0);
    ck_assert_str_eq(root, cc);
    json_decref(merge);
    json_decref(o);
}
END_TEST

START_TEST(merge_unmerge_round_trip)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident a, b, c;
    char ca[OH_ID_MAX], cb[OH_ID_MAX], cc[OH_ID_MAX], cmd[512];
    ident(&a, "telegram", "111", true);
    ident(&b, "email", "bob@example.org", false);
    ident(&c, "line", "U33", true);
    oh_contact_link(&d, "c_a", &a, 1, "A", ca);
    oh_contact_link(&d, "c_b", &b, 1, "B", cb);
    oh_contact_link(&d, "c_c", &c, 1, "C", cc);
    char *before = dump_sorted(o);
    struct oh_contact_result r;
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", ca, cb);
    command(&d, cmd, 200, true, &r);
    ck_assert_int_eq(json_array_size(r.convs), 2);
    oh_contact_result_clear(&r);
    command(&d, cmd, 200, false, &r); /* idempotent */
    oh_contact_result_clear(&r);
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", cc, cb);
    command(&d, cmd, 200, true, &r); /* C takes A's family */
    ck_assert_int_eq(json_array_size(r.convs), 3);
    oh_contact_result_clear(&r);
    char root[OH_ID_MAX];
    oh_contact_root(&d, cb, root);
    ck_assert_str_eq(root, cc);
    /* undo in reverse order: A (with B under it) leaves C, then B leaves A */
    snprintf(cmd, sizeof cmd,
             "{\"op\":\"unmerge\",\"contact_id\":\"%s\",\"identifier\":{\"type\":\"telegram\","
             "\"value\":\"111\"}}",
             cc);
    command(&d, cmd, 200, true, &r);
    ck_assert_str_eq(r.other, ca);
    ck_assert_int_eq(json_array_size(r.convs), 2);
    oh_contact_result_clear(&r);
    snprintf(cmd, sizeof cmd,
             "{\"op\":\"unmerge\",\"contact_id\":\"%s\",\"identifier\":{\"type\":\"email\","
             "\"value\":\"Bob@Example.org\"}}",
             ca);
    command(&d, cmd, 200, true, &r);
    oh_contact_result_clear(&r);
    command(&d, cmd, 200, false, &r); /* again: nothing to undo */
    oh_contact_result_clear(&r);
    char *after = dump_sorted(o);
    ck_assert_str_eq(before, after);
    /* a contact's own identifier does not split off */
    snprintf(cmd, sizeof cmd,
             "{\"op\":\"unmerge\",\"contact_id\":\"%s\",\"identifier\":{\"type\":\"line\","
             "\"value\":\"U33\"}}",
             cc);
    command(&d, cmd, 409, false, &r);
    oh_contact_result_clear(&r);
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"p_nope\"}", ca);
    command(&d, cmd, 404, false, &r);
    oh_contact_result_clear(&r);
    free(before);
    free(after);
    json_decref(o);
}
END_TEST

START_TEST(erase_forgets_identifiers)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident a[2];
    char ca[OH_ID_MAX], cmd[256], f[OH_ID_MAX];
    ident(&a[0], "phone", "+4915123456789", true);
    ident(&a[1], "email", "ann@example.org", false);
    oh_contact_link(&d, "c_a", a, 2, "Ann", ca);
    struct oh_contact_result r;
    snprintf(cmd, sizeof cmd, "{\"op\":\"erase\",\"contact_id\":\"%s\"}", ca);
    command(&d, cmd, 200, true, &r);
    ck_assert_int_eq(json_array_size(r.convs), 1);
    oh_contact_result_clear(&r);
    ck_assert_int_eq(oh_contact_find(&d, "phone", "+4915123456789", "DE", f), OH_ENOTFOUND);
    char *text = dump_sorted(o);
    ck_assert_ptr_null(strstr(text, "4915123456789"));
    ck_assert_ptr_null(strstr(text, "ann@"));
    ck_assert_ptr_null(strstr(text, "Ann"));
    free(text);
    /* writing again later: the same person (the id follows from the phone),
     * no longer erased, holding only what they brought now */
    char again[OH_ID_MAX];
    ck_assert_int_eq(oh_contact_link(&d, "c_new", a, 1, "", again), 0);
    ck_assert_str_eq(again, ca);
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, ca, &got), 0);
    ck_assert(!json_is_true(json_object_get(got, "erased")));
    ck_assert_int_eq(json_array_size(json_object_get(got, "identifiers")), 1);
    json_decref(got);
    json_decref(o);
}
END_TEST

/* 3,000 people on WhatsApp and webchat with the same verified phone, 4,000
 * people on one channel, some of them sharing an unverified email with
 * someone else: every pair is one contact, nobody else is. */
START_TEST(ten_thousand_synthetic_contacts)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    json_t *seen = json_object();
    char conv[64], cid[OH_ID_MAX], other[OH_ID_MAX], phone[32], national[32];
    for (int p = 0; p < 3000; p++) {
        struct oh_contact_ident w[2], t[2];
        snprintf(phone, sizeof phone, "+49151%08d", p);
        snprintf(national, sizeof national, "0151 %04d %04d", p / 10000, p % 10000);
        ident(&w[0], "phone", phone, true);
        snprintf(w[1].value, sizeof w[1].value, "49151%08d", p);
        snprintf(w[1].type, sizeof w[1].type, "whatsapp");
        w[1].verified = true;
        snprintf(conv, sizeof conv, "c_wa_%d", p);
        ck_assert_int_eq(oh_contact_link(&d, conv, w, 2, "", cid), 0);
        /* the token's phone claim, written nationally and normalized */
        json_t *data =
            json_pack("{s:s, s:{s:s, s:[{s:s, s:s, s:b}]}}", "channel", "webchat", "contact", "id",
                      "", "identifiers", "type", "phone", "value", national, "verified", 1);
        snprintf(w[1].value, sizeof w[1].value, "web-%d", p);
        json_object_set_new(json_object_get(data, "contact"), "id", json_string(w[1].value));
        int n = oh_contact_idents(data, "DE", t, 2);
        json_decref(data);
        ck_assert_int_eq(n, 2);
        snprintf(conv, sizeof conv, "c_web_%d", p);
        ck_assert_int_eq(oh_contact_link(&d, conv, t, n, "", other), 0);
        ck_assert_str_eq(cid, other);
        ck_assert_ptr_null(json_object_get(seen, cid));
        json_object_set_new(seen, cid, json_true());
    }
    for (int p = 0; p < 4000; p++) {
        struct oh_contact_ident s[2];
        snprintf(phone, sizeof phone, "tg-%d", p);
        ident(&s[0], "telegram", phone, true);
        /* pairs of strangers claiming one address, unverified */
        snprintf(phone, sizeof phone, "shared%d@example.org", p / 2);
        ident(&s[1], "email", phone, false);
        snprintf(conv, sizeof conv, "c_tg_%d", p);
        ck_assert_int_eq(oh_contact_link(&d, conv, s, 2, "", cid), 0);
        ck_assert_ptr_null(json_object_get(seen, cid));
        json_object_set_new(seen, cid, json_true());
    }
    ck_assert_int_eq(json_object_size(seen), 7000);
    /* the unverified address made a suggestion, not a merge */
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, cid, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 1);
    ck_assert_int_eq(json_array_size(json_object_get(got, "suggestions")), 1);
    json_decref(got);
    json_decref(seen);
    json_decref(o);
}
END_TEST

/* A directory that counts its reads and can read many keys at once. */
static int gets, manys;

static int cget(void *o, const char *key, char *out, size_t len)
{
    gets++;
    return mget(o, key, out, len);
}

static int cmany(void *o, const char *const *keys, size_t n,
                 void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    manys++;
    for (size_t i = 0; i < n; i++) {
        const char *v = json_string_value(json_object_get(o, keys[i]));
        if (v) fn(ctx, i, v);
    }
    return 0;
}

/* 2,000 people on two channels each, linked one at a time into one
 * directory and in batches of 50 read ahead (prefetch) into another:
 * the same directory, byte for byte, and the batches' links read
 * nothing but their two reads ahead. */
START_TEST(prefetched_batches_same_directory)
{
    json_t *one = json_object(), *many = json_object();
    struct oh_contact_dir d1 = mem_dir(one);
    struct oh_contact_dir d2 = {many, cget, mput, mdel, NULL, cmany};
    enum { P = 2000, B = 50 };
    static struct oh_contact_ident ids[2 * P][2];
    static char convs[2 * P][32];
    for (int p = 0; p < P; p++) {
        char phone[32];
        snprintf(phone, sizeof phone, "+49151%08d", p);
        /* the same person's second conversation comes in a later batch */
        ident(&ids[p][0], "phone", phone, true);
        snprintf(phone, sizeof phone, "49151%08d", p);
        ident(&ids[p][1], "whatsapp", phone, true);
        snprintf(convs[p], sizeof convs[p], "c_wa_%d", p);
        snprintf(phone, sizeof phone, "+49151%08d", p);
        ident(&ids[P + p][0], "phone", phone, true);
        snprintf(phone, sizeof phone, "w-%d", p);
        ident(&ids[P + p][1], "webchat", phone, p % 3 != 0); /* a third unverified */
        snprintf(convs[P + p], sizeof convs[P + p], "c_web_%d", p);
    }
    char c1[OH_ID_MAX], c2[OH_ID_MAX];
    for (int i = 0; i < 2 * P; i++)
        ck_assert_int_eq(oh_contact_link(&d1, convs[i], ids[i], 2, "", c1), 0);
    int extra_gets = 0;
    for (int i0 = 0; i0 < 2 * P; i0 += B) {
        struct oh_contact_linkreq req[B];
        for (int j = 0; j < B; j++)
            req[j] = (struct oh_contact_linkreq){convs[i0 + j], ids[i0 + j], 2};
        struct oh_contact_batch bt;
        ck_assert_int_eq(oh_contact_batch_begin(&bt, &d2), 0);
        manys = 0;
        ck_assert_int_eq(oh_contact_batch_prefetch(&bt, req, B), 0);
        ck_assert_int_le(manys, 2);
        gets = 0;
        for (int j = 0; j < B; j++) {
            ck_assert_int_eq(oh_contact_link(&bt.dir, convs[i0 + j], ids[i0 + j], 2, "", c2), 0);
            /* the contact the one-at-a-time directory gave the conversation */
            char key[64];
            snprintf(key, sizeof key, "k:%s", convs[i0 + j]);
            json_t *k = json_loads(json_string_value(json_object_get(one, key)),
                                   JSON_DECODE_ANY, NULL);
            ck_assert_int_eq(oh_contact_root(&d1, json_string_value(k), c1), 0);
            ck_assert_str_eq(c1, c2);
            json_decref(k);
        }
        extra_gets += gets;
        ck_assert_int_eq(oh_contact_batch_end(&bt, true), 0);
    }
    /* every read of a link was read ahead */
    ck_assert_int_eq(extra_gets, 0);
    ck_assert_msg(json_equal(one, many), "the batched directory differs");
    /* a linked conversation again (a replay): same contact, nothing new */
    struct oh_contact_batch bt;
    struct oh_contact_linkreq r = {convs[P + 5], ids[P + 5], 2};
    ck_assert_int_eq(oh_contact_batch_begin(&bt, &d2), 0);
    ck_assert_int_eq(oh_contact_batch_prefetch(&bt, &r, 1), 0);
    ck_assert_int_eq(oh_contact_link(&bt.dir, convs[P + 5], ids[P + 5], 2, "", c2), 0);
    ck_assert_int_eq(oh_contact_batch_end(&bt, true), 0);
    ck_assert_int_eq(oh_contact_link(&d1, convs[P + 5], ids[P + 5], 2, "", c1), 0);
    ck_assert_str_eq(c1, c2);
    ck_assert_msg(json_equal(one, many), "the replay changed the directory");
    json_decref(one);
    json_decref(many);
}
END_TEST

/* Links N conversations "<prefix><i>" of the person with telegram id TG,
 * in batches of 100 read ahead when BATCHED; the contact into OUT. */
static void link_many(struct oh_contact_dir *d, const char *tg, const char *prefix, int n,
                      bool batched, char out[OH_ID_MAX])
{
    struct oh_contact_ident id;
    ident(&id, "telegram", tg, true);
    static char convs[100][48];
    for (int i0 = 0; i0 < n; i0 += 100) {
        int k = n - i0 < 100 ? n - i0 : 100;
        struct oh_contact_linkreq req[100];
        struct oh_contact_batch bt;
        for (int j = 0; j < k; j++) {
            snprintf(convs[j], sizeof convs[j], "%s%d", prefix, i0 + j);
            req[j] = (struct oh_contact_linkreq){convs[j], &id, 1};
        }
        if (batched) {
            ck_assert_int_eq(oh_contact_batch_begin(&bt, d), 0);
            ck_assert_int_eq(oh_contact_batch_prefetch(&bt, req, (size_t)k), 0);
        }
        for (int j = 0; j < k; j++)
            ck_assert_int_eq(oh_contact_link(batched ? &bt.dir : d, convs[j], &id, 1, "", out), 0);
        if (batched) ck_assert_int_eq(oh_contact_batch_end(&bt, true), 0);
    }
}

/* Whether LIST holds "<prefix>0" .. "<prefix><n-1>", each once, and
 * nothing else of PREFIX. */
static void holds_all(const json_t *list, const char *prefix, int n)
{
    json_t *seen = json_object(), *v;
    size_t i, pl = strlen(prefix);
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (strncmp(s, prefix, pl) != 0) continue;
        ck_assert_msg(!json_object_get(seen, s), "%s listed twice", s);
        json_object_set_new(seen, s, json_true());
    }
    for (int k = 0; k < n; k++) {
        char conv[48];
        snprintf(conv, sizeof conv, "%s%d", prefix, k);
        ck_assert_msg(json_object_get(seen, conv), "%s not listed", conv);
    }
    ck_assert_int_eq(json_object_size(seen), n);
    json_decref(seen);
}

/* A person with 2,500 conversations (more than one record's page holds):
 * every one is listed, merged, split off and erased, each value stays
 * under the kv's 64 KiB, and a family's pages are read in one round. */
START_TEST(thousands_of_conversations_all_listed)
{
    json_t *o = json_object();
    struct oh_contact_dir d = {o, cget, mput, mdel, NULL, cmany};
    enum { N = 2500 };
    char ca[OH_ID_MAX], cb[OH_ID_MAX], cmd[512];
    link_many(&d, "111", "c_a_", N, false, ca);
    link_many(&d, "222", "c_b_", N, true, cb);
    ck_assert_str_ne(ca, cb);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ck_assert_msg(json_string_length(v) < 64 * 1024, "%s: %zu bytes", k, json_string_length(v));
    }
    json_t *got;
    manys = 0;
    ck_assert_int_eq(oh_contact_get(&d, ca, &got), 0);
    ck_assert_int_le(manys, 2); /* the members' records, then all their pages */
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), N);
    holds_all(json_object_get(got, "conversations"), "c_a_", N);
    json_decref(got);
    struct oh_contact_result r;
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", ca, cb);
    command(&d, cmd, 200, true, &r);
    ck_assert_int_eq(json_array_size(r.convs), 2 * N);
    holds_all(r.convs, "c_a_", N);
    holds_all(r.convs, "c_b_", N);
    ck_assert_int_eq(json_array_size(r.moved), N);
    holds_all(r.moved, "c_b_", N);
    oh_contact_result_clear(&r);
    ck_assert_int_eq(oh_contact_get(&d, cb, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), 2 * N);
    json_decref(got);
    /* a link after the merge still lands on the merged-in person's pages */
    char root[OH_ID_MAX];
    link_many(&d, "222", "c_b2_", 10, false, root);
    ck_assert_str_eq(root, ca);
    snprintf(cmd, sizeof cmd,
             "{\"op\":\"unmerge\",\"contact_id\":\"%s\",\"identifier\":{\"type\":\"telegram\","
             "\"value\":\"222\"}}",
             ca);
    command(&d, cmd, 200, true, &r);
    ck_assert_int_eq(json_array_size(r.convs), N + 10);
    holds_all(r.convs, "c_b_", N);
    oh_contact_result_clear(&r);
    snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", ca, cb);
    command(&d, cmd, 200, true, &r);
    oh_contact_result_clear(&r);
    snprintf(cmd, sizeof cmd, "{\"op\":\"erase\",\"contact_id\":\"%s\"}", cb);
    command(&d, cmd, 200, true, &r);
    ck_assert_int_eq(json_array_size(r.convs), 2 * N + 10);
    holds_all(r.convs, "c_a_", N);
    holds_all(r.convs, "c_b_", N);
    holds_all(r.convs, "c_b2_", 10);
    oh_contact_result_clear(&r);
    json_decref(o);
}
END_TEST

/* A space whose pages of conversations cannot be read. */
static int pages_fail(void *o, const char *const *keys, size_t n,
                      void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(keys[i], "p:", 2) == 0) return OH_EIO;
    return cmany(o, keys, n, fn, ctx);
}

/* An erasure that cannot read every conversation erases none of them and
 * changes nothing (503: try again), rather than a part. */
START_TEST(unreadable_pages_change_nothing)
{
    json_t *o = json_object();
    struct oh_contact_dir d = {o, mget, mput, mdel, NULL, pages_fail};
    char c[OH_ID_MAX], cmd[256];
    link_many(&d, "444", "c_u_", OH_CONTACT_CONVS_MAX + 1, false, c);
    char *before = dump_sorted(o);
    struct oh_contact_result r;
    snprintf(cmd, sizeof cmd, "{\"op\":\"erase\",\"contact_id\":\"%s\"}", c);
    command(&d, cmd, 503, false, &r);
    ck_assert_ptr_null(r.convs);
    oh_contact_result_clear(&r);
    char *after = dump_sorted(o);
    ck_assert_str_eq(before, after);
    json_t *got = NULL;
    ck_assert_int_eq(oh_contact_get(&d, c, &got), OH_EIO);
    ck_assert_ptr_null(got);
    free(before);
    free(after);
    json_decref(o);
}
END_TEST

/* Past the most pages a contact keeps, a conversation is still linked to
 * it (logged as an error), and nothing already listed is lost. */
START_TEST(past_the_last_page_still_linked)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    struct oh_contact_ident id;
    char c[OH_ID_MAX], key[OH_ID_MAX + 32], again[OH_ID_MAX];
    ident(&id, "telegram", "333", true);
    ck_assert_int_eq(oh_contact_link(&d, "c_first", &id, 1, "", c), 0);
    /* as if OH_CONTACT_PAGES_MAX full pages had been written */
    snprintf(key, sizeof key, "c:%s", c);
    json_t *rec = json_loads(json_string_value(json_object_get(o, key)), 0, NULL);
    json_object_set_new(rec, "pages", json_integer(OH_CONTACT_PAGES_MAX));
    char *text = json_dumps(rec, JSON_COMPACT);
    mput(o, key, text);
    free(text);
    json_decref(rec);
    for (int p = 1; p <= OH_CONTACT_PAGES_MAX; p++) {
        json_t *page = json_array();
        for (int i = 0; i < OH_CONTACT_CONVS_MAX; i++) {
            char conv[48];
            snprintf(conv, sizeof conv, "c_%d_%d", p, i);
            json_array_append_new(page, json_string(conv));
        }
        text = json_dumps(page, JSON_COMPACT);
        snprintf(key, sizeof key, "p:%s:%d", c, p);
        mput(o, key, text);
        free(text);
        json_decref(page);
    }
    ck_assert_int_eq(oh_contact_link(&d, "c_past", &id, 1, "", again), 0);
    ck_assert_str_eq(again, c);
    ck_assert_ptr_nonnull(json_object_get(o, "k:c_past"));
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, c, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")),
                     1 + OH_CONTACT_PAGES_MAX * OH_CONTACT_CONVS_MAX);
    json_decref(got);
    json_decref(o);
}
END_TEST

/* Every value of directory O is within a contact record's bound. */
static void all_within(json_t *o)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ck_assert_msg(json_string_length(v) <= OH_CONTACT_RECORD_MAX, "%s: %zu bytes", k,
                      json_string_length(v));
    }
}

/* A root's record lists its family's members: merges go on while the
 * record can hold them, then are refused (409) with nothing written, and
 * the contact stays readable and linkable (past 64 KiB its record could
 * not be read back, and the next link made a new contact over it). */
START_TEST(merges_stop_where_a_record_is_full)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    enum { CONVS = 900, OTHERS = 1000 };
    const char *prefix = "c_0123456789abcdefghijklmnopqrstu_"; /* as long as a real id */
    char root[OH_ID_MAX], other[OH_ID_MAX], cmd[256];
    link_many(&d, "root", prefix, CONVS, true, root);
    int merged = 0, refused = 0;
    for (int i = 0; i < OTHERS; i++) {
        char tg[32], conv[48];
        struct oh_contact_ident id;
        snprintf(tg, sizeof tg, "m%d", i);
        snprintf(conv, sizeof conv, "c_other_%d", i);
        ident(&id, "telegram", tg, true);
        ck_assert_int_eq(oh_contact_link(&d, conv, &id, 1, "", other), 0);
        snprintf(cmd, sizeof cmd, "{\"op\":\"merge\",\"contact_id\":\"%s\",\"other\":\"%s\"}", root,
                 other);
        json_t *c = json_loads(cmd, 0, NULL);
        struct oh_contact_result r;
        /* what a merge writes: both records (and the members', here none) */
        char ka[64], kb[64];
        snprintf(ka, sizeof ka, "c:%s", root);
        snprintf(kb, sizeof kb, "c:%s", other);
        json_t *was_a = json_deep_copy(json_object_get(o, ka));
        json_t *was_b = json_deep_copy(json_object_get(o, kb));
        size_t keys = json_object_size(o);
        oh_contact_command(&d, c, "DE", NULL, &r);
        json_decref(c);
        ck_assert_msg(r.code == 200 || r.code == 409, "merge %d: %d (%s)", i, r.code, r.why);
        if (r.code == 200) {
            merged++;
        } else { /* nothing written */
            refused++;
            ck_assert(json_equal(was_a, json_object_get(o, ka)));
            ck_assert(json_equal(was_b, json_object_get(o, kb)));
            ck_assert_uint_eq(keys, json_object_size(o));
        }
        json_decref(was_a);
        json_decref(was_b);
        oh_contact_result_clear(&r);
        ck_assert_uint_le(json_string_length(json_object_get(o, ka)), OH_CONTACT_RECORD_MAX);
    }
    ck_assert_int_gt(merged, 100);
    ck_assert_int_gt(refused, 0);
    /* readable, every conversation of the family listed */
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, root, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")), CONVS + merged);
    ck_assert_int_eq(json_array_size(json_object_get(got, "merged")), merged);
    holds_all(json_object_get(got, "conversations"), prefix, CONVS);
    json_decref(got);
    /* the person writes again: linked to the same contact, listed */
    char again[OH_ID_MAX];
    link_many(&d, "root", "c_later_", 50, false, again);
    ck_assert_str_eq(again, root);
    ck_assert_int_eq(oh_contact_get(&d, root, &got), 0);
    holds_all(json_object_get(got, "conversations"), "c_later_", 50);
    json_decref(got);
    all_within(o);
    json_decref(o);
}
END_TEST

/* Identifiers a full record cannot list (here long ones, escaped in JSON)
 * are not kept, nor looked up by: the record reads back, the person's
 * conversations stay on one contact, and an erasure leaves none of them. */
START_TEST(identifiers_stop_where_a_record_is_full)
{
    json_t *o = json_object();
    struct oh_contact_dir d = mem_dir(o);
    char c[OH_ID_MAX], again[OH_ID_MAX], cmd[256];
    link_many(&d, "full", "c_0123456789abcdefghijklmnopqrstu_", OH_CONTACT_CONVS_MAX, false, c);
    struct oh_contact_ident ids[OH_CONTACT_IDS_MAX];
    ident(&ids[0], "telegram", "full", true);
    for (int e = 0; e < 4; e++) {
        for (int i = 1; i < OH_CONTACT_IDS_MAX; i++) {
            char v[OH_CONTACT_VALUE_MAX];
            memset(v, '\\', sizeof v - 8);
            snprintf(v + sizeof v - 8, 8, "%d_%02d", e, i);
            ident(&ids[i], "api:some-very-long-channel-name-for-the-identifier-type", v, false);
        }
        char conv[48];
        snprintf(conv, sizeof conv, "c_more_%d", e);
        ck_assert_int_eq(oh_contact_link(&d, conv, ids, OH_CONTACT_IDS_MAX, "", again), 0);
        ck_assert_str_eq(again, c);
        all_within(o);
    }
    json_t *got;
    ck_assert_int_eq(oh_contact_get(&d, c, &got), 0);
    ck_assert_int_eq(json_array_size(json_object_get(got, "conversations")),
                     OH_CONTACT_CONVS_MAX + 4);
    json_decref(got);
    struct oh_contact_result r;
    snprintf(cmd, sizeof cmd, "{\"op\":\"erase\",\"contact_id\":\"%s\"}", c);
    command(&d, cmd, 200, true, &r);
    oh_contact_result_clear(&r);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        ck_assert_msg(strncmp(k, "u:", 2) != 0 && strncmp(k, "v:", 2) != 0,
                      "%.60s... outlived the erasure", k);
    }
    json_decref(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("contacts");
    TCase *tc = tcase_create("directory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, phone_numbers);
    tcase_add_test(tc, idents_of_events);
    tcase_add_test(tc, long_names_are_cut);
    tcase_add_test(tc, verified_links_unverified_suggests);
    tcase_add_test(tc, batch_links_together);
    tcase_add_test(tc, merge_unmerge_round_trip);
    tcase_add_test(tc, then_writes_with_the_decision);
    tcase_add_test(tc, erase_forgets_identifiers);
    tcase_add_test(tc, ten_thousand_synthetic_contacts);
    tcase_add_test(tc, prefetched_batches_same_directory);
    tcase_add_test(tc, thousands_of_conversations_all_listed);
    tcase_add_test(tc, past_the_last_page_still_linked);
    tcase_add_test(tc, unreadable_pages_change_nothing);
    tcase_add_test(tc, merges_stop_where_a_record_is_full);
    tcase_add_test(tc, identifiers_stop_where_a_record_is_full);
    suite_add_tcase(s, tc);
    return oh_test_run(s);
}
