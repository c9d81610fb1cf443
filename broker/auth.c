/* auth.c - JWT checks with libjwt, plus our own look at the header so that
 * "alg": "none" and algorithm confusion are refused before anything else. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <jwt.h>
#include "auth.h"
#include "event.h"

#define WEBCHAT_ACCOUNT "default"

static int b64url_decode(const char *in, size_t len, char *out, size_t cap)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = memchr(alpha, in[i], 64);
        if (!p || !in[i]) return -1;
        acc = acc << 6 | (uint32_t)(p - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) return -1;
            out[o++] = (char)(acc >> bits & 0xFF);
        }
    }
    out[o] = '\0';
    return (int)o;
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
    bool bad = !json_is_integer(v) || json_integer_value(v) > now_s + OH_AUTH_CLOCK_SKEW_S;
    json_decref(v);
    return bad;
}

int oh_auth_verify(const char *secret, const char *token, int64_t now_s, struct oh_principal *out,
                   char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!token || !*token || strlen(token) > 4096) {
        oh_errf(err, errlen, "missing or oversized token");
        return OH_EAUTH;
    }
    const char *dot = strchr(token, '.');
    char header[512];
    if (!dot || b64url_decode(token, (size_t)(dot - token), header, sizeof header) < 0) {
        oh_errf(err, errlen, "malformed token");
        return OH_EAUTH;
    }
    json_t *h = json_loads(header, 0, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    bool hs256 = alg && strcmp(alg, "HS256") == 0;
    /* RFC 7515 4.1.11: "crit" names extensions the verifier must
     * understand; this verifier understands none */
    bool crit = json_object_get(h, "crit") != NULL;
    json_decref(h);
    if (!hs256) {
        oh_errf(err, errlen, "token algorithm must be HS256");
        return OH_EAUTH;
    }
    if (crit) {
        oh_errf(err, errlen, "token has critical header extensions");
        return OH_EAUTH;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0 || !jwt ||
        jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        oh_errf(err, errlen, "bad token signature");
        return OH_EAUTH;
    }
    int rc = OH_EAUTH;
    const char *sub = jwt_get_grant(jwt, "sub");
    const char *role = jwt_get_grant(jwt, "role");
    const char *device = jwt_get_grant(jwt, "device");
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (!sub || !*sub || strlen(sub) >= sizeof out->sub) {
        oh_errf(err, errlen, "token lacks sub");
    } else if (!role || (strcmp(role, "customer") && strcmp(role, "agent"))) {
        oh_errf(err, errlen, "token role must be customer or agent");
    } else if (errno || exp <= 0) {
        oh_errf(err, errlen, "token lacks exp");
    } else if (exp <= now_s) {
        oh_errf(err, errlen, "token expired");
    } else if (not_yet(jwt, "nbf", now_s) || not_yet(jwt, "iat", now_s)) {
        oh_errf(err, errlen, "token not valid yet (nbf or iat in the future)");
    } else if (device && strlen(device) >= sizeof out->device) {
        oh_errf(err, errlen, "token device too long");
    } else {
        snprintf(out->sub, sizeof out->sub, "%s", sub);
        snprintf(out->device, sizeof out->device, "%s", device && *device ? device : "default");
        out->role = strcmp(role, "agent") == 0 ? OH_ROLE_AGENT : OH_ROLE_CUSTOMER;
        out->exp = exp;
        rc = OH_OK;
    }
    jwt_free(jwt);
    return rc;
}

char *oh_auth_issue(const char *secret, const char *sub, const char *role, const char *device,
                    int64_t ttl_s)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (jwt_new(&jwt) != 0) return NULL;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) == 0 &&
        jwt_add_grant(jwt, "sub", sub) == 0 && jwt_add_grant(jwt, "role", role) == 0 &&
        (!device || jwt_add_grant(jwt, "device", device) == 0) &&
        jwt_add_grant_int(jwt, "exp", (long)(oh_now_ms() / 1000 + ttl_s)) == 0)
        out = jwt_encode_str(jwt);
    jwt_free(jwt);
    return out;
}

void oh_auth_customer_conversation(const char *sub, char out[129])
{
    oh_conversation_id(out, "webchat", WEBCHAT_ACCOUNT, sub);
}

bool oh_auth_may_access(const struct oh_principal *p, const char *conv)
{
    if (p->role == OH_ROLE_AGENT) return true;
    char mine[OH_ID_MAX];
    oh_auth_customer_conversation(p->sub, mine);
    return strcmp(mine, conv) == 0;
}

const char *oh_auth_role_name(enum oh_role role)
{
    return role == OH_ROLE_AGENT ? "agent" : "customer";
}
