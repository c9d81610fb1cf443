/* auth.h - bearer tokens: JWTs signed HS256 with auth.jwt_secret, or RS256
 * / ES256 with a key of auth.jwks_file; claims sub, role, device, exp. */
#ifndef OH_AUTH_H
#define OH_AUTH_H

#include "core/config.h"
#include "core/event.h"
#include "core/oh.h"

enum oh_role { OH_ROLE_CUSTOMER, OH_ROLE_AGENT };

struct oh_principal {
    char sub[128];
    char device[128];
    enum oh_role role;
    int64_t exp; /* seconds since the epoch */
    /* The conversation a customer owns, "" none: not a claim of the token
     * but what the channel serving customers derives from sub (the gateway
     * asks the connector that declares customer_conversation). */
    char owns[OH_ID_MAX];
};

/* Clock skew allowed to a token's nbf and iat (issuers' clocks run ahead). */
#define OH_AUTH_CLOCK_SKEW_S 60

/* What tokens are checked against. */
struct oh_auth_opts {
    const char *secret;    /* HS256 secret, or NULL: no HS256 tokens */
    const char *jwks_file; /* JWKS document, or NULL: no RS256/ES256 tokens */
    const char *issuer;    /* required "iss", or NULL */
    const char *audience;  /* required in "aud" (a string or an array), or NULL */
};

typedef struct oh_auth oh_auth;

/* A verifier for OPTS (copied; the JWKS file is read now). NULL with ERR
 * when the JWKS file cannot be used or neither a secret nor keys are
 * given. Caller frees with oh_auth_free(). */
oh_auth *oh_auth_new(const struct oh_auth_opts *opts, char *err, size_t errlen);
void oh_auth_free(oh_auth *a);

/* oh_auth_new() with auth.jwt_secret, auth.jwks_file, auth.issuer and
 * auth.audience of CFG. */
oh_auth *oh_auth_from_config(const oh_config *cfg, char *err, size_t errlen);

/* Verifies TOKEN: alg HS256 with the secret, or RS256/ES256 with the JWKS
 * key its "kid" names (none, and every other alg, are refused, and an
 * algorithm is never checked with another's key); no "crit" header; the
 * signature must match; exp must be in the future, nbf and iat (when
 * present) no more than OH_AUTH_CLOCK_SKEW_S ahead of NOW_S; iss and aud
 * as configured; sub and role present and valid. OH_EAUTH with a reason
 * in ERR. Thread-safe. */
int oh_auth_verify(const oh_auth *a, const char *token, int64_t now_s, struct oh_principal *out,
                   char *err, size_t errlen);

/* Issues a token; caller frees the string. NULL on failure. */
char *oh_auth_issue(const char *secret, const char *sub, const char *role, const char *device,
                    int64_t ttl_s);

/* May P act on conversation CONV? Agents act on every conversation; a
 * customer on P->owns only (nothing when it is ""). */
bool oh_auth_may_access(const struct oh_principal *p, const char *conv);

/* "agent" or "customer": the role's name in tokens and in the store. */
const char *oh_auth_role_name(enum oh_role role);

#endif
