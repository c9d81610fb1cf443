/* test_auth.c - JWT checks: good tokens, expiry, alg none, other algs,
 * bad signatures, missing claims; conversation ownership. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "core/auth.h"
#include "core/crypto.h"
#include "core/event.h"
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

/* oh_auth_verify() with a verifier of the HS256 secret KEY alone. */
static int verify(const char *key, const char *tok, int64_t now, struct oh_principal *p, char *err,
                  size_t errlen)
{
    oh_auth *a = oh_auth_new(&(struct oh_auth_opts){.secret = key}, err, errlen);
    ck_assert_ptr_nonnull(a);
    int rc = oh_auth_verify(a, tok, now, p, err, errlen);
    oh_auth_free(a);
    return rc;
}

START_TEST(good_token)
{
    struct oh_principal p;
    char err[128];
    char *tok = oh_auth_issue(secret, "alice", "customer", "phone", 60);
    ck_assert_int_eq(verify(secret, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
    ck_assert_str_eq(p.sub, "alice");
    ck_assert_str_eq(p.device, "phone");
    ck_assert_int_eq(p.role, OH_ROLE_CUSTOMER);
    ck_assert_int_eq(verify("other", tok, oh_now_ms() / 1000, &p, err, sizeof err),
                     OH_EAUTH);
    free(tok);
    tok = oh_auth_issue(secret, "bob", "agent", NULL, 60);
    ck_assert_int_eq(verify(secret, tok, oh_now_ms() / 1000, &p, err, sizeof err), OH_OK);
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
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_ptr_nonnull(strstr(err, "expired"));
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"none\",\"typ\":\"JWT\"}", payload, "");
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", payload, secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_OK);
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"root\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"HS256\"}", payload, secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    tok = forge("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"role\":\"agent\"}", secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    ck_assert_int_eq(verify(secret, "garbage", now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_int_eq(verify(secret, "", now, &p, err, sizeof err), OH_EAUTH);
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
        ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), cases[i].want);
        free(tok);
    }
    snprintf(payload, sizeof payload,
             "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld,\"nbf\":\"x\"}", now + 60);
    char *tok = forge("{\"alg\":\"HS256\"}", payload, secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    snprintf(payload, sizeof payload, "{\"sub\":\"a\",\"role\":\"agent\",\"exp\":%ld}", now + 60);
    tok = forge("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", payload, secret);
    ck_assert_int_eq(verify(secret, tok, now, &p, err, sizeof err), OH_EAUTH);
    ck_assert_ptr_nonnull(strstr(err, "critical"));
    free(tok);
}
END_TEST

START_TEST(ownership)
{
    /* a customer acts on the one conversation the gateway found they own
     * (owns), nothing else; with none, on nothing at all */
    struct oh_principal alice = {.sub = "alice", .device = "d", .role = OH_ROLE_CUSTOMER};
    struct oh_principal agent = {.sub = "ag", .device = "d", .role = OH_ROLE_AGENT};
    struct oh_principal nobody = {.sub = "bob", .device = "d", .role = OH_ROLE_CUSTOMER};
    char mine[OH_ID_MAX], hers[OH_ID_MAX];
    oh_conversation_id(mine, "chan", "default", "alice");
    oh_conversation_id(hers, "chan", "default", "carol");
    snprintf(alice.owns, sizeof alice.owns, "%s", mine);
    ck_assert(oh_auth_may_access(&alice, mine));
    ck_assert(!oh_auth_may_access(&alice, hers));
    ck_assert(oh_auth_may_access(&agent, hers));
    ck_assert(!oh_auth_may_access(&nobody, ""));
    ck_assert(!oh_auth_may_access(&nobody, mine));
}
END_TEST

/* ---- RS256 / ES256 through a JWKS document ---- */

/* base64url of a big number of KEY's parameter NAME, padded to WIDTH
 * bytes (EC coordinates are fixed-width). */
static void param_b64(EVP_PKEY *key, const char *name, int width, char *out)
{
    BIGNUM *bn = NULL;
    ck_assert_int_eq(EVP_PKEY_get_bn_param(key, name, &bn), 1);
    uint8_t buf[600];
    int n = width ? BN_bn2binpad(bn, buf, width) : BN_bn2bin(bn, buf);
    oh_base64url(buf, (size_t)n, out);
    BN_free(bn);
}

static char *private_pem(EVP_PKEY *key)
{
    BIO *mem = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PrivateKey(mem, key, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    char *pem = strndup(data, (size_t)len);
    BIO_free(mem);
    return pem;
}

static char *public_pem(EVP_PKEY *key)
{
    BIO *mem = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PUBKEY(mem, key), 1);
    char *data;
    long len = BIO_get_mem_data(mem, &data);
    char *pem = strndup(data, (size_t)len);
    BIO_free(mem);
    return pem;
}

/* A token with CLAIMS (JSON) signed by libjwt with ALG and KEY (a PEM or a
 * secret), header kid KID (NULL: none). */
static char *sign(jwt_alg_t alg, const char *key, const char *kid, const char *claims)
{
    jwt_t *jwt = NULL;
    ck_assert_int_eq(jwt_new(&jwt), 0);
    ck_assert_int_eq(jwt_add_grants_json(jwt, claims), 0);
    if (kid) ck_assert_int_eq(jwt_add_header(jwt, "kid", kid), 0);
    ck_assert_int_eq(jwt_set_alg(jwt, alg, (const unsigned char *)key, (int)strlen(key)), 0);
    char *tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    ck_assert_ptr_nonnull(tok);
    return tok;
}

START_TEST(jwks_rs256_es256)
{
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ck_assert(rsa && ec);
    char n[400], e[16], x[64], y[64];
    param_b64(rsa, OSSL_PKEY_PARAM_RSA_N, 0, n);
    param_b64(rsa, OSSL_PKEY_PARAM_RSA_E, 0, e);
    param_b64(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
    param_b64(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
    char path[] = "/tmp/oh-jwks-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"use\":\"sig\",\"alg\":\"RS256\","
            "\"n\":\"%s\",\"e\":\"%s\"},"
            "{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
            "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"%s\"}]}",
            n, e, x, y, n, e);
    fclose(f);
    char err[160];
    oh_auth *a = oh_auth_new(&(struct oh_auth_opts){.jwks_file = path, .issuer = "https://idp",
                                                    .audience = "omnihub"},
                             err, sizeof err);
    ck_assert_msg(a != NULL, "%s", err);
    long now = (long)(oh_now_ms() / 1000);
    char good[256], wrong_aud[256], no_iss[256];
    snprintf(good, sizeof good,
             "{\"sub\":\"u1\",\"role\":\"customer\",\"exp\":%ld,\"iss\":\"https://idp\","
             "\"aud\":[\"other\",\"omnihub\"]}",
             now + 60);
    snprintf(wrong_aud, sizeof wrong_aud,
             "{\"sub\":\"u1\",\"role\":\"customer\",\"exp\":%ld,\"iss\":\"https://idp\","
             "\"aud\":\"other\"}",
             now + 60);
    snprintf(no_iss, sizeof no_iss,
             "{\"sub\":\"u1\",\"role\":\"customer\",\"exp\":%ld,\"aud\":\"omnihub\"}",
             now + 60);
    char *rsa_priv = private_pem(rsa), *ec_priv = private_pem(ec), *rsa_pub = public_pem(rsa);
    struct oh_principal p;
    static const struct {
        int key; /* 0 RSA, 1 EC, 2 the RSA public PEM as an HMAC secret */
        jwt_alg_t alg;
        const char *kid, *claims_name;
        int want;
    } cases[] = {
        {0, JWT_ALG_RS256, "r1", "good", OH_OK},
        {1, JWT_ALG_ES256, "e1", "good", OH_OK},
        {1, JWT_ALG_ES256, NULL, "good", OH_OK},      /* the only EC key */
        {0, JWT_ALG_RS256, NULL, "good", OH_OK},      /* the only RS256 signing key */
        {0, JWT_ALG_RS256, "e1", "good", OH_EAUTH},   /* kid of another type */
        {0, JWT_ALG_RS256, "enc", "good", OH_EAUTH},  /* an encryption key */
        {0, JWT_ALG_RS256, "nope", "good", OH_EAUTH}, /* unknown kid */
        {0, JWT_ALG_RS256, "r1", "wrong_aud", OH_EAUTH},
        {0, JWT_ALG_RS256, "r1", "no_iss", OH_EAUTH},
        {2, JWT_ALG_HS256, "r1", "good", OH_EAUTH}, /* algorithm confusion */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *claims = !strcmp(cases[i].claims_name, "good")        ? good
                             : !strcmp(cases[i].claims_name, "wrong_aud") ? wrong_aud
                                                                          : no_iss;
        const char *key = cases[i].key == 0 ? rsa_priv : cases[i].key == 1 ? ec_priv : rsa_pub;
        char *tok = sign(cases[i].alg, key, cases[i].kid, claims);
        int rc = oh_auth_verify(a, tok, now, &p, err, sizeof err);
        ck_assert_msg(rc == cases[i].want, "case %zu: %d (%s)", i, rc, err);
        if (rc == OH_OK) ck_assert_str_eq(p.sub, "u1");
        free(tok);
    }
    /* a token signed by a key not in the document */
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *other_priv = private_pem(other);
    char *tok = sign(JWT_ALG_ES256, other_priv, "e1", good);
    ck_assert_int_eq(oh_auth_verify(a, tok, now, &p, err, sizeof err), OH_EAUTH);
    free(tok);
    oh_auth_free(a);
    /* a private key has no place in the document: refused at start */
    f = fopen(path, "w");
    fprintf(f, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"AA\"}]}",
            x, y);
    fclose(f);
    ck_assert_ptr_null(oh_auth_new(&(struct oh_auth_opts){.jwks_file = path}, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "private"));
    f = fopen(path, "w");
    fprintf(f, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}");
    fclose(f);
    ck_assert_ptr_null(oh_auth_new(&(struct oh_auth_opts){.jwks_file = path}, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "2048"));
    unlink(path);
    free(other_priv);
    free(rsa_priv);
    free(ec_priv);
    free(rsa_pub);
    EVP_PKEY_free(other);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
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
    tcase_add_test(tc, jwks_rs256_es256);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
