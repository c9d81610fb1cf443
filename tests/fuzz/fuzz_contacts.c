/* fuzz_contacts.c - the contact directory over identifiers from outside:
 * the bytes as a phone number (E.164 in every notation and region), and as
 * event data {channel, contact: {id, name, identifiers}} whose identifiers
 * are normalized, linked into a directory in memory, looked up again and
 * merged, unmerged and erased with the bodies "merge" {other} and "unmerge"
 * {identifier} the desk's API would check first. */
#include <ctype.h>
#include "contact_memdir.h"
#include "core/contacts.h"
#include "fuzz.h"

static const char *const regions[] = {NULL, "", "DE", "us", "GB", "RU", "HU", "AU", "XX"};
#define REGION "DE" /* the directory's default region */

/* "+" and 7..15 digits, no leading 0 */
static bool e164_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 8 || n > 16 || s[0] != '+' || s[1] == '0') return false;
    for (size_t i = 1; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

static void phone(const char *in)
{
    for (size_t i = 0; i < sizeof regions / sizeof *regions; i++) {
        char out[17], again[17];
        if (oh_phone_e164(in, regions[i], out, sizeof out) != 0) continue;
        /* normalized is final, whatever the region */
        if (!e164_ok(out) || oh_phone_e164(out, "XX", again, sizeof again) != 0 ||
            strcmp(out, again) != 0 || oh_phone_e164(in, regions[i], again, 16) == 0)
            abort();
    }
}

static void check_idents(const struct oh_contact_ident *ids, int n, int max)
{
    if (n < 0 || n > max) abort();
    for (int i = 0; i < n; i++) {
        const struct oh_contact_ident *x = &ids[i];
        if (!x->type[0] || !x->value[0] || strlen(x->value) >= OH_CONTACT_VALUE_MAX) abort();
        if (!strcmp(x->type, OH_IDENT_PHONE) && !e164_ok(x->value)) abort();
        if (!strcmp(x->type, OH_IDENT_EMAIL)) {
            const char *at = strchr(x->value, '@');
            if (!at || at == x->value || strchr(at + 1, '@')) abort();
            for (const char *p = x->value; *p; p++)
                if (isupper((unsigned char)*p)) abort();
        }
    }
}

/* The contact of a verified identifier is the one it was linked to. */
static void found(const struct oh_contact_dir *d, const struct oh_contact_ident *x,
                  const char *want)
{
    char root[OH_ID_MAX];
    if (!x->verified) return;
    if (oh_contact_find(d, x->type, x->value, REGION, root) != 0 || strcmp(root, want) != 0)
        abort();
}

static void command(const struct oh_contact_dir *d, const char *op, const char *id, const char *key,
                    json_t *arg)
{
    json_t *cmd = json_pack("{s:s, s:s, s:{s:s, s:s}}", "op", op, "contact_id", id, "author",
                            "kind", "agent", "id", "a1");
    if (!cmd) abort();
    if (key) json_object_set(cmd, key, arg);
    struct oh_contact_result r;
    oh_contact_command(d, cmd, REGION, NULL, &r);
    if (r.code != 200 && r.code != 400 && r.code != 404 && r.code != 409) abort();
    if (r.code == 200 && !json_is_array(r.convs)) abort();
    oh_contact_result_clear(&r);
    json_decref(cmd);
}

static void directory(json_t *data)
{
    struct oh_contact_ident ids[OH_CONTACT_IDS_MAX], two[2];
    for (size_t i = 0; i < sizeof regions / sizeof *regions; i++)
        check_idents(ids, oh_contact_idents(data, regions[i], ids, OH_CONTACT_IDS_MAX),
                     OH_CONTACT_IDS_MAX);
    check_idents(two, oh_contact_idents(data, REGION, two, 2), 2);
    int n = oh_contact_idents(data, REGION, ids, OH_CONTACT_IDS_MAX);

    json_t *kv = json_object();
    struct oh_contact_dir d = mem_dir(kv);
    const char *name = json_string_value(json_object_get(json_object_get(data, "contact"), "name"));
    char a[OH_ID_MAX], b[OH_ID_MAX];
    struct oh_contact_ident other = {"telegram", "4242", true};
    if (oh_contact_link(&d, "c_1", ids, n, name, a) != 0 ||
        oh_contact_link(&d, "c_2", &other, 1, "Other", b) != 0)
        abort();
    /* a contact that was linked can be read back, and so can its identifiers */
    json_t *c = NULL;
    if (oh_contact_get(&d, a, &c) != 0) abort();
    json_decref(c);
    for (int i = 0; i < n; i++)
        found(&d, &ids[i], a);

    char why[160];
    json_t *merge = json_object_get(data, "merge"), *unmerge = json_object_get(data, "unmerge");
    (void)oh_contact_check("merge", data, why, sizeof why);
    (void)oh_contact_check("unmerge", data, why, sizeof why);
    if (merge && oh_contact_check("merge", merge, why, sizeof why) == 0)
        command(&d, "merge", a, "other", json_object_get(merge, "other"));
    json_t *bid = json_string(b);
    command(&d, "merge", a, "other", bid);
    json_decref(bid);
    found(&d, &other, a);
    if (unmerge && oh_contact_check("unmerge", unmerge, why, sizeof why) == 0)
        command(&d, "unmerge", a, "identifier", json_object_get(unmerge, "identifier"));
    for (int i = 0; i < n; i++) {
        json_t *x = json_pack("{s:s, s:s}", "type", ids[i].type, "value", ids[i].value);
        command(&d, "unmerge", a, "identifier", x);
        json_decref(x);
    }
    if (json_is_true(json_object_get(data, "erase"))) command(&d, "erase", a, NULL, NULL);
    if (oh_contact_get(&d, a, &c) != 0) abort();
    json_decref(c);
    json_decref(kv);
}

/* GET /v1/contacts?identifier=<type>:<value> on an empty directory */
static void lookup(char *q)
{
    char *value = strchr(q, ':'), root[OH_ID_MAX];
    if (!value) return;
    *value++ = '\0';
    json_t *kv = json_object();
    struct oh_contact_dir d = mem_dir(kv);
    int rc = oh_contact_find(&d, q, value, REGION, root);
    if (rc != OH_EINVAL && rc != OH_ENOTFOUND) abort();
    json_decref(kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    phone(s);
    lookup(s);
    free(s);
    json_t *v = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(v)) directory(v);
    json_decref(v);
    return 0;
}
