/* auth.c - JWT checks with libjwt, plus our own look at the header so that
 * "alg": "none" and algorithm confusion are refused before anything else. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <jwt.h>
#include "core/auth.h"
#include "core/crypto.h"
#include "core/event.h"
#include "core/jwks.h"

struct oh_auth {
    char *secret, *issuer, *audience;
    oh_jwks *keys;
};

static char *dup_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

oh_auth *oh_auth_new(const struct oh_auth_opts *opts, char *err, size_t errlen)
{
    oh_auth *a = calloc(1, sizeof *a);
    if (!a) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    a->secret = dup_opt(opts->secret);
    a->issuer = dup_opt(opts->issuer);
    a->audience = dup_opt(opts->audience);
    if (opts->jwks_file && *opts->jwks_file &&
        !(a->keys = oh_jwks_load(opts->jwks_file, err, errlen))) {
        oh_auth_free(a);
        return NULL;
    }
    if (!a->secret && !a->keys) {
        oh_errf(err, errlen, "auth.jwt_secret or auth.jwks_file is required to verify tokens");
        oh_auth_free(a);
        return NULL;
    }
    return a;
}

oh_auth *oh_auth_from_config(const oh_config *cfg, char *err, size_t errlen)
{
    struct oh_auth_opts o = {oh_config_str(cfg, "auth.jwt_secret"),
                             oh_config_str(cfg, "auth.jwks_file"), oh_config_str(cfg, "auth.issuer"),
                             oh_config_str(cfg, "auth.audience")};
    return oh_auth_new(&o, err, errlen);
}

void oh_auth_free(oh_auth *a)
{
    if (!a) return;
    free(a->secret);
    free(a->issuer);
    free(a->audience);
    oh_jwks_free(a->keys);
    free(a);
}

/* Whether the optional time claim NAME lies more than OH_AUTH_CLOCK_SKEW_S
 * after NOW_S (or is not a number). */
static bool not_yet(jwt_t *jwt, const char *name, int64_t now_s)
{
    /* libjwt reads a non-number as 0: look at the JSON value itself */
    char *text = jwt_get_grants_json(jwt, name);
    if (!text) return false; /* absent: both are optional */
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    bool bad = !json_is_number(v) || json_number_value(v) > (double)(now_s + OH_AUTH_CLOCK_SKEW_S);
    json_decref(v);
    return bad;
}

/* "aud" is a string or an array of strings (RFC 7519 4.1.3). */
static bool audience_ok(jwt_t *jwt, const char *want)
{
    char *text = jwt_get_grants_json(jwt, "aud");
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    free(text);
    bool ok = json_is_string(v) && strcmp(json_string_value(v), want) == 0;
    size_t i;
    json_t *item;
    if (json_is_array(v)) json_array_foreach(v, i, item) ok |= json_is_string(item) &&
                                                                strcmp(json_string_value(item),
                                                                       want) == 0;
    json_decref(v);
    return ok;
}

/* The claim NAME as JSON (a new reference), NULL when absent. */
static json_t *claim(jwt_t *jwt, const char *name)
{
    char *text = jwt_get_grants_json(jwt, name);
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    free(text);
    return v;
}

/* A string of 1..MAX-1 bytes without control characters (names and ids
 * end up in JSON answers, logs and the UI). */
static bool plain_string(const json_t *v, size_t max)
{
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= max)
        return false;
    for (const unsigned char *p = (const unsigned char *)json_string_value(v); *p; p++)
        if (*p < 0x20 || *p == 0x7f) return false;
    return true;
}

/* Loosely: one '@' with something on either side, no spaces. */
static bool email_ok(const json_t *v)
{
    if (!plain_string(v, OH_AUTH_EMAIL_MAX)) return false;
    const char *s = json_string_value(v), *at = strchr(s, '@');
    return at && at != s && at[1] && !strchr(at + 1, '@') && !strchr(s, ' ');
}

/* E.164: '+' and 2..15 digits. */
static bool phone_ok(const json_t *v)
{
    if (!plain_string(v, OH_AUTH_PHONE_MAX)) return false;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    return s[0] == '+' && n >= 3 && n <= 16 && strspn(s + 1, "0123456789") == n - 1;
}

/* The optional claims into OUT; OH_EAUTH with a reason when one of them
 * has the wrong type or passes its bound. */
static int optional_claims(jwt_t *jwt, struct oh_principal *out, char *err, size_t errlen)
{
    json_t *name = claim(jwt, "name"), *teams = claim(jwt, "teams");
    json_t *email = claim(jwt, "email"), *phone = claim(jwt, "phone");
    int rc = OH_EAUTH;
    size_t i;
    json_t *t;
    if (name && !plain_string(name, sizeof out->name)) {
        oh_errf(err, errlen, "token name must be a string of 1..%d bytes", OH_AUTH_NAME_MAX - 1);
    } else if (teams && (!json_is_array(teams) || json_array_size(teams) > OH_AUTH_TEAMS_MAX)) {
        oh_errf(err, errlen, "token teams must be an array of at most %d team ids",
                OH_AUTH_TEAMS_MAX);
    } else if (email && !email_ok(email)) {
        oh_errf(err, errlen, "token email is not an address");
    } else if (phone && !phone_ok(phone)) {
        oh_errf(err, errlen, "token phone is not an E.164 number");
    } else {
        rc = OH_OK;
        json_array_foreach(teams, i, t)
        {
            if (!plain_string(t, OH_AUTH_TEAM_MAX)) {
                oh_errf(err, errlen, "token teams[%zu] must be a string of 1..%d bytes", i,
                        OH_AUTH_TEAM_MAX - 1);
                rc = OH_EAUTH;
                break;
            }
            snprintf(out->teams[i], sizeof out->teams[i], "%s", json_string_value(t));
            out->nteams = (int)i + 1;
        }
        if (name) snprintf(out->name, sizeof out->name, "%s", json_string_value(name));
        if (email) snprintf(out->email, sizeof out->email, "%s", json_string_value(email));
        if (phone) snprintf(out->phone, sizeof out->phone, "%s", json_string_value(phone));
    }
    json_decref(name);
    json_decref(teams);
    json_decref(email);
    json_decref(phone);
    return rc;
}

/* The key and libjwt algorithm for the token header H, or an error:
 * each algorithm is checked only with its own kind of key. */
static int pick_key(const oh_auth *a, json_t *h, const unsigned char **key, int *keylen,
                    jwt_alg_t *alg, char *err, size_t errlen)
{
    const char *name = json_string_value(json_object_get(h, "alg"));
    const char *kid = json_string_value(json_object_get(h, "kid"));
    if (name && strcmp(name, "HS256") == 0 && a->secret) {
        *key = (const unsigned char *)a->secret;
        *keylen = (int)strlen(a->secret);
        *alg = JWT_ALG_HS256;
        return OH_OK;
    }
    bool rs = name && strcmp(name, "RS256") == 0, es = name && strcmp(name, "ES256") == 0;
    if ((rs || es) && a->keys) {
        const struct oh_jwk *k = oh_jwks_find(a->keys, rs ? OH_JWK_RS256 : OH_JWK_ES256, kid);
        if (!k) {
            oh_errf(err, errlen, "no key for this token (kid %s)", kid ? "unknown" : "missing");
            return OH_EAUTH;
        }
        *key = (const unsigned char *)k->pem;
        *keylen = (int)strlen(k->pem);
        *alg = rs ? JWT_ALG_RS256 : JWT_ALG_ES256;
        return OH_OK;
    }
    oh_errf(err, errlen, "token algorithm must be %s%s%s", a->secret ? "HS256" : "",
            a->secret && a->keys ? ", " : "", a->keys ? "RS256 or ES256" : "");
    return OH_EAUTH;
}

/* TOKEN's HS256 signature checked here, in constant time: libjwt 1.10
 * compares it with strcmp unless patched (CVE-2024-25189; Debian's
 * 1.10.2-1+deb12u1 is), so the daemon does not depend on the build it
 * links. libjwt then checks it again and reads the claims. */
static bool hs256_ok(const char *token, const unsigned char *key, int keylen)
{
    const char *dot = strrchr(token, '.');
    uint8_t sig[OH_SHA256_LEN + 3], mac[OH_SHA256_LEN];
    int n = dot ? oh_base64url_decode(dot + 1, strlen(dot + 1), sig, sizeof sig) : -1;
    if (n < 0) return false;
    oh_hmac_sha256(key, (size_t)keylen, token, (size_t)(dot - token), mac);
    return oh_ct_equal(sig, (size_t)n, mac, sizeof mac);
}

int oh_auth_verify(const oh_auth *a, const char *token, int64_t now_s, struct oh_principal *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!token || !*token || strlen(token) > 4096) {
        oh_errf(err, errlen, "missing or oversized token");
        return OH_EAUTH;
    }
    const char *dot = strchr(token, '.');
    uint8_t header[512];
    if (!dot || oh_base64url_decode(token, (size_t)(dot - token), header, sizeof header) < 0) {
        oh_errf(err, errlen, "malformed token");
        return OH_EAUTH;
    }
    json_t *h = json_loads((const char *)header, 0, NULL);
    const unsigned char *key = NULL;
    int keylen = 0;
    jwt_alg_t alg = JWT_ALG_NONE;
    int picked = pick_key(a, h, &key, &keylen, &alg, err, errlen);
    /* RFC 7515 4.1.11: "crit" names extensions the verifier must
     * understand; this verifier understands none */
    bool crit = json_object_get(h, "crit") != NULL;
    json_decref(h);
    if (picked) return picked;
    if (crit) {
        oh_errf(err, errlen, "token has critical header extensions");
        return OH_EAUTH;
    }
    jwt_t *jwt = NULL;
    if ((alg == JWT_ALG_HS256 && !hs256_ok(token, key, keylen)) ||
        jwt_decode(&jwt, token, key, keylen) != 0 || !jwt || jwt_get_alg(jwt) != alg) {
        jwt_free(jwt);
        oh_errf(err, errlen, "bad token signature");
        return OH_EAUTH;
    }
    int rc = OH_EAUTH;
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *role = jwt_get_grant(jwt, "role");
    const char *device = jwt_get_grant(jwt, "device");
    /* a NumericDate may have a fraction (RFC 7519 2); libjwt reads only integers */
    json_t *expv = claim(jwt, "exp");
    double expd = json_is_number(expv) ? json_number_value(expv) : 0;
    long exp = expd >= 1 && expd < (double)LONG_MAX ? (long)expd : 0;
    json_decref(expv);
    if (!sub || !*sub || strlen(sub) >= sizeof out->sub) {
        oh_errf(err, errlen, "token lacks sub");
    } else if (!role ||
               (strcmp(role, "customer") && strcmp(role, "agent") && strcmp(role, "admin"))) {
        oh_errf(err, errlen, "token role must be customer, agent or admin");
    } else if (exp <= 0) {
        oh_errf(err, errlen, "token lacks exp");
    } else if (oh_auth_expired(exp, now_s)) {
        oh_errf(err, errlen, "token expired");
    } else if (not_yet(jwt, "nbf", now_s) || not_yet(jwt, "iat", now_s)) {
        oh_errf(err, errlen, "token not valid yet (nbf or iat in the future)");
    } else if (a->issuer &&
               (!jwt_get_grant(jwt, "iss") || strcmp(jwt_get_grant(jwt, "iss"), a->issuer) != 0)) {
        oh_errf(err, errlen, "token issuer (iss) is not auth.issuer");
    } else if (a->audience && !audience_ok(jwt, a->audience)) {
        oh_errf(err, errlen, "token audience (aud) does not include auth.audience");
    } else if (device && strlen(device) >= sizeof out->device) {
        oh_errf(err, errlen, "token device too long");
    } else if (optional_claims(jwt, out, err, errlen) == OH_OK) {
        snprintf(out->sub, sizeof out->sub, "%s", sub);
        snprintf(out->device, sizeof out->device, "%s", device && *device ? device : "default");
        out->role = strcmp(role, "agent") == 0   ? OH_ROLE_AGENT
                    : strcmp(role, "admin") == 0 ? OH_ROLE_ADMIN
                                                 : OH_ROLE_CUSTOMER;
        out->exp = exp;
        rc = OH_OK;
    }
    if (rc) memset(out, 0, sizeof *out); /* no half-filled principal */
    jwt_free(jwt);
    return rc;
}

char *oh_auth_issue(const char *secret, const char *sub, const char *role, const char *device,
                    int64_t ttl_s)
{
    return oh_auth_issue_claims(secret, sub, role, device, ttl_s, NULL, NULL, 0);
}

char *oh_auth_issue_claims(const char *secret, const char *sub, const char *role,
                           const char *device, int64_t ttl_s, const char *name,
                           const char *const *teams, int nteams)
{
    jwt_t *jwt = NULL;
    char *out = NULL, *extra = NULL;
    json_t *o = json_object();
    if (o && name) json_object_set_new(o, "name", json_string(name));
    if (o && nteams > 0) {
        json_t *arr = json_array();
        for (int i = 0; arr && i < nteams; i++)
            json_array_append_new(arr, json_string(teams[i]));
        json_object_set_new(o, "teams", arr);
    }
    extra = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!extra || jwt_new(&jwt) != 0) {
        free(extra);
        return NULL;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0 &&
        jwt_add_grant(jwt, "sub", sub) == 0 && jwt_add_grant(jwt, "role", role) == 0 &&
        (!device || jwt_add_grant(jwt, "device", device) == 0) &&
        jwt_add_grant_int(jwt, "exp", (long)(oh_now_ms() / 1000 + ttl_s)) == 0 &&
        jwt_add_grants_json(jwt, extra) == 0)
        out = jwt_encode_str(jwt);
    free(extra);
    jwt_free(jwt);
    return out;
}

bool oh_auth_may_access(const struct oh_principal *p, const char *conv)
{
    if (oh_auth_is_agent(p)) return true;
    return p->owns[0] && strcmp(p->owns, conv) == 0;
}

bool oh_auth_is_agent(const struct oh_principal *p)
{
    return p->role == OH_ROLE_AGENT || p->role == OH_ROLE_ADMIN;
}

const char *oh_auth_role_name(enum oh_role role)
{
    return role == OH_ROLE_AGENT ? "agent" : role == OH_ROLE_ADMIN ? "admin" : "customer";
}
