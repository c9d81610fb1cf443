/* contacts_ident.c - identifiers: phone numbers to E.164, the identifiers an
 * event's contact brings, and the checks the directory (contacts.c) applies
 * to an identifier given in a command or a lookup. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "core/contacts.h"
#include "core/contacts_int.h"
#include "core/event.h"

/* ---- phone numbers ---- */

struct region {
    const char *iso, *cc, *trunk, *intl;
};

/* Calling code, trunk prefix (dropped from national numbers) and
 * international prefix of the regions customers most often write from. */
static const struct region regions[] = {
    {"US", "1", "1", "011"},  {"CA", "1", "1", "011"},   {"GB", "44", "0", "00"},
    {"IE", "353", "0", "00"}, {"DE", "49", "0", "00"},   {"AT", "43", "0", "00"},
    {"CH", "41", "0", "00"},  {"FR", "33", "0", "00"},   {"BE", "32", "0", "00"},
    {"NL", "31", "0", "00"},  {"LU", "352", "", "00"},   {"IT", "39", "", "00"},
    {"ES", "34", "", "00"},   {"PT", "351", "", "00"},   {"GR", "30", "", "00"},
    {"DK", "45", "", "00"},   {"NO", "47", "", "00"},    {"SE", "46", "0", "00"},
    {"FI", "358", "0", "00"}, {"PL", "48", "", "00"},    {"CZ", "420", "", "00"},
    {"HU", "36", "06", "00"}, {"RO", "40", "0", "00"},   {"UA", "380", "0", "00"},
    {"RU", "7", "8", "810"},  {"TR", "90", "0", "00"},   {"IL", "972", "0", "00"},
    {"AE", "971", "0", "00"}, {"SA", "966", "0", "00"},  {"EG", "20", "0", "00"},
    {"ZA", "27", "0", "00"},  {"NG", "234", "0", "009"}, {"KE", "254", "0", "000"},
    {"IN", "91", "0", "00"},  {"PK", "92", "0", "00"},   {"CN", "86", "0", "00"},
    {"HK", "852", "", "001"}, {"JP", "81", "0", "010"},  {"KR", "82", "0", "001"},
    {"SG", "65", "", "000"},  {"ID", "62", "0", "001"},  {"PH", "63", "0", "00"},
    {"TH", "66", "0", "001"}, {"VN", "84", "0", "00"},   {"AU", "61", "0", "0011"},
    {"NZ", "64", "0", "00"},  {"BR", "55", "0", "0021"}, {"MX", "52", "", "00"},
    {"AR", "54", "0", "00"},  {"CL", "56", "", "00"},    {"CO", "57", "", "009"},
};

/* ITU calling codes with one or two digits; any other code has three and
 * starts with a digit none of these start with. */
static const char *const short_codes[] = {
    "1",  "7",  "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45",
    "46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
    "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98"};

static const struct region *region_of(const char *iso)
{
    for (size_t i = 0; iso && i < OH_ARRAY_SIZE(regions); i++)
        if (strcasecmp(regions[i].iso, iso) == 0) return &regions[i];
    return NULL;
}

/* The international number DIGITS: its calling code must be one the ITU
 * assigned (a short one, or a three-digit one outside their ranges). */
static bool code_ok(const char *digits)
{
    if (digits[0] == '0') return false;
    for (size_t i = 0; i < OH_ARRAY_SIZE(short_codes); i++)
        if (strncmp(digits, short_codes[i], strlen(short_codes[i])) == 0) return true;
    /* 2xx, 3xx, 4xx, 5xx, 6xx, 8xx, 9xx three-digit codes (e.g. 234, 351, 852, 971) */
    return digits[0] != '1' && digits[0] != '7';
}

int oh_phone_e164(const char *in, const char *region, char *out, size_t outlen)
{
    char d[40];
    size_t n = 0;
    bool plus = false;
    if (!in || outlen < 17) return OH_EINVAL;
    for (const char *p = in; *p; p++) {
        if (isdigit((unsigned char)*p)) {
            if (n + 1 >= sizeof d) return OH_EINVAL;
            d[n++] = *p;
        } else if (*p == '+' && n == 0 && !plus) {
            plus = true;
        } else if (!strchr(" .-()/\t", *p)) {
            return OH_EINVAL; /* letters, extensions: not a number we compare */
        }
    }
    d[n] = '\0';
    const char *digits = d;
    char buf[48];
    const struct region *r = region_of(region);
    if (!plus) {
        const char *intl = r ? r->intl : "00";
        size_t il = strlen(intl);
        if (n > il + 6 && memcmp(d, intl, il) == 0) {
            digits = d + il; /* international prefix of the region */
        } else if (!r) {
            return OH_EINVAL; /* national notation needs a region */
        } else {
            const char *nat = d;
            size_t tl = strlen(r->trunk);
            if (tl && strncmp(d, r->trunk, tl) == 0) nat = d + tl;
            /* NANP: a ten-digit number without its trunk "1" */
            if (strlen(nat) < 4 || (tl && nat[0] == '0')) return OH_EINVAL;
            snprintf(buf, sizeof buf, "%s%s", r->cc, nat);
            digits = buf;
        }
    }
    size_t len = strlen(digits);
    if (len < 7 || len > 15 || !code_ok(digits)) return OH_EINVAL;
    /* NANP numbers are exactly 11 digits with the code */
    if (digits[0] == '1' && len != 11) return OH_EINVAL;
    snprintf(out, outlen, "+%s", digits);
    return 0;
}

/* ---- identifiers of an event ---- */

bool oh_contact_normalize(struct oh_contact_ident *id, const char *region)
{
    if (strcmp(id->type, OH_IDENT_PHONE) == 0) {
        char e[24];
        if (oh_phone_e164(id->value, region, e, sizeof e)) return false;
        snprintf(id->value, sizeof id->value, "%s", e);
    } else if (strcmp(id->type, OH_IDENT_EMAIL) == 0) {
        const char *at = strchr(id->value, '@');
        if (!at || at == id->value || !at[1] || strchr(at + 1, '@')) return false;
        for (char *p = id->value; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    return id->value[0] != '\0';
}

bool oh_contact_type_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n >= 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && !strchr(":._-", t[i])) return false;
    return true;
}

bool oh_contact_value_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= OH_CONTACT_VALUE_MAX || !oh_utf8_valid(v, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20) return false;
    return true;
}

int oh_contact_idents(const json_t *data, const char *region, struct oh_contact_ident *out, int max)
{
    const json_t *contact = json_object_get(data, "contact"), *v;
    const char *channel = json_string_value(json_object_get(data, "channel"));
    const char *cid = json_string_value(json_object_get(contact, "id"));
    int n = 0;
    size_t i;
    bool own = false;
    json_array_foreach(json_object_get(contact, "identifiers"), i, v)
    {
        const char *t = json_string_value(json_object_get(v, "type"));
        const char *val = json_string_value(json_object_get(v, "value"));
        /* listed, even when dropped below: the connector spoke for its
         * channel's id (an email From it leaves unverified must not come
         * back verified as the channel's own id) */
        if (t && channel && strcmp(t, channel) == 0) own = true;
        if (n >= max || !t || !val || !oh_contact_type_ok(t) || !oh_contact_value_ok(val)) continue;
        struct oh_contact_ident *id = &out[n];
        snprintf(id->type, sizeof id->type, "%s", t);
        snprintf(id->value, sizeof id->value, "%s", val);
        id->verified = json_is_true(json_object_get(v, "verified"));
        if (oh_contact_normalize(id, region)) n++;
    }
    if (!own && n < max && channel && cid && oh_contact_type_ok(channel) &&
        oh_contact_value_ok(cid)) {
        snprintf(out[n].type, sizeof out[n].type, "%s", channel);
        snprintf(out[n].value, sizeof out[n].value, "%s", cid);
        out[n].verified = true;
        /* a channel named like an identifier type keeps that type's form */
        if (oh_contact_normalize(&out[n], region)) n++;
    }
    return n;
}
