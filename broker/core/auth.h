/* auth.h - bearer tokens: JWTs signed HS256 with auth.jwt_secret, or RS256
 * / ES256 with a key of auth.jwks_file; claims sub, role, device, exp, and
 * the optional name, teams, email and phone. */
#ifndef OH_AUTH_H
#define OH_AUTH_H

#include "core/config.h"
#include "core/event.h"
#include "core/oh.h"

/* An admin may do all an agent may (oh_auth_is_agent), plus what is
 * admin-only (the knowledge base, every report). */
enum oh_role { OH_ROLE_CUSTOMER, OH_ROLE_AGENT, OH_ROLE_ADMIN };

/* Bounds of the optional claims: a token over them is refused (401), never
 * cut, so two gateways never disagree about who a caller is. */
#define OH_AUTH_NAME_MAX  128 /* "name", bytes with the NUL */
#define OH_AUTH_TEAMS_MAX 16  /* entries of "teams" */
#define OH_AUTH_TEAM_MAX  64  /* one team id, bytes with the NUL */
#define OH_AUTH_EMAIL_MAX 255
#define OH_AUTH_PHONE_MAX 33

struct oh_principal {
    char sub[128];
    char device[128];
    enum oh_role role;
    int64_t exp; /* seconds since the epoch */
    /* optional claims, "" / 0 when absent */
    char name[OH_AUTH_NAME_MAX];
    char teams[OH_AUTH_TEAMS_MAX][OH_AUTH_TEAM_MAX];
    int nteams;
    /* a customer's identifiers the token's issuer vouches for (verified;
     * kept for contacts): an address with one '@', a number in E.164 */
    char email[OH_AUTH_EMAIL_MAX];
    char phone[OH_AUTH_PHONE_MAX];
    /* The conversation a customer owns, "" none: not a claim of the token
     * but what the channel serving customers derives from sub (the gateway
     * asks the connector that declares customer_conversation). */
    char owns[OH_ID_MAX];
};

/* Clock skew allowed to a token's nbf and iat (issuers' clocks run ahead). */
#define OH_AUTH_CLOCK_SKEW_S 60

/* Whether a token with EXP has expired at NOW_S (seconds since the epoch):
 * at exp itself, with no skew allowed (that is for nbf and iat only). The
 * one rule for oh_auth_verify() and for a WebSocket that outlives its
 * token. */
static inline bool oh_auth_expired(int64_t exp, int64_t now_s)
{
    return exp <= now_s;
}

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
/* The same with the optional claims NAME (NULL: none) and TEAMS (NTEAMS
 * strings; 0: no "teams" claim). */
char *oh_auth_issue_claims(const char *secret, const char *sub, const char *role,
                           const char *device, int64_t ttl_s, const char *name,
                           const char *const *teams, int nteams);

/* May P act on conversation CONV? Agents (and admins) act on every
 * conversation; a customer on P->owns only (nothing when it is ""). */
bool oh_auth_may_access(const struct oh_principal *p, const char *conv);

/* True for the roles that may do all an agent may: agent and admin. */
bool oh_auth_is_agent(const struct oh_principal *p);

/* "agent", "admin" or "customer": the role's name in tokens and in the
 * store (an admin's read cursors are their own). */
const char *oh_auth_role_name(enum oh_role role);

#endif
