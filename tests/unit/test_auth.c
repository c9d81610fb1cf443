/* test_auth.c - JWT checks: good tokens, expiry, alg none, other algs,
 * bad signatures, missing claims; conversation ownership. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jwt.h>
#include "auth.h"
#include "crypto.h"
#include "event.h"
#include "tap.h"

static const char *secret = "jwt-secret";

/* A token with an arbitrary header and payload, HS256-signed with KEY. */
static char *forge(const char *header, const char *payload, const char *key)
{
    char h[512], p[1024], sig[64];
    oh_base64url((const uint8_t *)header, strlen(header), h);
    oh_base64url((const uint8_t *)payload, strlen(payload), p);
    char *signing = NULL;
    if (asprintf(&signing, "%s.%s", h, p) < 0) abort();
    uint8_t mac[32];
    oh_hmac_sha256(key, strlen(key), signing, strlen(signing), mac);
    oh_base64url(mac, 32, sig);
    char *tok = NULL;
    if (asprintf(&tok, "%s.%s", signing, key ? sig : "") < 0) abort();
    free(signing);
    return tok;
}

START_TEST(good_token)
{
    struct oh_principal p;
    char err[128];
    char *tok = oh_auth_issue(secret, "alice", "customer", "phone", 60);
    ck_assert_int_eq(oh_auth_verify(secret, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
    ck_assert_str_eq(p.sub, "alice");
    ck_assert_str_eq(p.device, "phone");
    ck_assert_int_eq(p.role, OH_ROLE_CUSTOMER);
    ck_assert_int_eq(oh_auth_verify("other", tok, oh_now_ms() / 1000, &p, err, sizeof err),
                     OH_EAUTH);
    free(tok);
    tok = oh_auth_issue(secret, "bob", "agent", NULL, 60);
    ck_assert_int_eq(oh_auth_verify(secret, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
    ck_assert_int_eq(p.role, OH_ROLE_AGENT);
    ck_assert_str_eq(p.device, "default");
    free(tok);
}
END_TEST

START_TEST(refusals)
{
    struct oh_principal p;
    char err[128], payload[256];
    long now = (long)(oh_now_ms() / 1000);
    char *tok = oh_auth_issue(secret, "alice", "customer", "d", -10);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_ptr_nonnull(strstr(err, "expired"));
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, "");
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload, secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_OK);
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"root\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"HS256\"}", payload, secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"role\":\"agent\"}", secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    ck_assert_int_eq(oh_auth_verify(secret, "garbage", now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_int_eq(oh_auth_verify(secret, "", now, &p, err, sizeof err), OH_EAUTH);
}
END_TEST

/* nbf and iat in the future (beyond the allowed skew) and any "crit"
 * header are refused; within the skew they pass. */
START_TEST(time_claims_and_crit)
{
    struct oh_principal p;
    char err[128], payload[256];
    long now = (long)(oh_now_ms() / 1000);
    static const struct {
        const char *claim;
        long ahead;
        int want;
    } cases[] = {
        {"nbf", 3600, OH_EAUTH},
        {"iat", 3600, OH_EAUTH},
        {"nbf", OH_AUTH_CLOCK_SKEW_S + 5, OH_EAUTH},
        {"nbf", 30, OH_OK},
        {"iat", 30, OH_OK},
        {"iat", -600, OH_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(payload, sizeof payload,
                 "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld,\"%s\":%ld}", now + 7200,
                 cases[i].claim, now + cases[i].ahead);
        char *tok = forge("{\"alg\":\"HS256\"}", payload, secret);
        ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), cases[i].want);
        free(tok);
    }
    snprintf(payload, sizeof payload,
             "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld,\"nbf\":\"x\"}", now + 60);
    char *tok = forge("{\"alg\":\"HS256\"}", payload, secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", payload, secret);
    ck_assert_int_eq(oh_auth_verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_ptr_nonnull(strstr(err, "critical"));
    free(tok);
}
END_TEST

START_TEST(ownership)
{
    struct oh_principal alice = {"alice", "d", OH_ROLE_CUSTOMER, 0};
    struct oh_principal agent = {"ag", "d", OH_ROLE_AGENT, 0};
    char mine[OH_ID_MAX], hers[OH_ID_MAX];
    oh_auth_customer_conversation("alice", mine);
    oh_auth_customer_conversation("carol", hers);
    ck_assert(oh_auth_may_access(&alice, mine));
    ck_assert(!oh_auth_may_access(&alice, hers));
    ck_assert(oh_auth_may_access(&agent, hers));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("auth");
    tcase_add_test(tc, good_token);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, time_claims_and_crit);
    tcase_add_test(tc, ownership);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
