/* auth.h - bearer tokens: JWT HS256 with claims sub, role, device, exp. */
#ifndef OH_AUTH_H
#define OH_AUTH_H

#include "oh.h"

enum oh_role { OH_ROLE_CUSTOMER, OH_ROLE_AGENT };

struct oh_principal {
    char sub[128];
    char device[128];
    enum oh_role role;
    int64_t exp; /* seconds since the epoch */
};

/* Clock skew allowed to a token's nbf and iat (issuers' clocks run ahead). */
#define OH_AUTH_CLOCK_SKEW_S 60

/* Verifies TOKEN with SECRET: alg must be HS256 (none and every other alg
 * are refused), no "crit" header, the signature must match, exp must be in
 * the future, nbf and iat (when present) no more than OH_AUTH_CLOCK_SKEW_S
 * ahead of NOW_S, sub and role must be present and valid. OH_EAUTH with a
 * reason in ERR. */
int oh_auth_verify(const char *secret, const char *token, int64_t now_s, struct oh_principal *out,
                   char *err, size_t errlen);

/* Issues a token; caller frees the string. NULL on failure. */
char *oh_auth_issue(const char *secret, const char *sub, const char *role, const char *device,
                    int64_t ttl_s);

/* Does P own conversation CONV? Customers own exactly the webchat
 * conversation derived from their sub; agents act on every conversation. */
bool oh_auth_may_access(const struct oh_principal *p, const char *conv);

/* "agent" or "customer": the role's name in tokens and in the store. */
const char *oh_auth_role_name(enum oh_role role);

/* The webchat conversation of customer SUB. */
void oh_auth_customer_conversation(const char *sub, char out[129]);

#endif
