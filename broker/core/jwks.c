/* jwks.c - the public keys of a JWKS document (RFC 7517) as PEM, the form
 * libjwt verifies RS256 and ES256 signatures with. RSA keys from n and e,
 * EC keys on P-256 from x and y (RFC 7518 6.2, 6.3). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include "core/crypto.h"
#include "core/jwks.h"

#define JWKS_MAX_BYTES (1u << 20)
#define JWKS_MAX_KEYS  64

struct oh_jwks {
    struct oh_jwk keys[JWKS_MAX_KEYS];
    size_t n;
};

/* A base64url member of K as a big-endian number. */
static BIGNUM *member_bn(json_t *k, const char *name)
{
    const char *s = json_string_value(json_object_get(k, name));
    uint8_t buf[1024];
    int n = s ? oh_base64url_decode(s, strlen(s), buf, sizeof buf) : -1;
    return n > 0 ? BN_bin2bn(buf, n, NULL) : NULL;
}

/* PEM of the public key in PARAMS of TYPE ("RSA" or "EC"); caller frees. */
static char *pem_of(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;
    char *pem = NULL;
    BIO *mem = NULL;
    if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
        (mem = BIO_new(BIO_s_mem())) && PEM_write_bio_PUBKEY(mem, pkey) == 1) {
        char *data;
        long len = BIO_get_mem_data(mem, &data);
        if (len > 0 && (pem = malloc((size_t)len + 1))) {
            memcpy(pem, data, (size_t)len);
            pem[len] = '\0';
        }
    }
    BIO_free(mem);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pem;
}

static char *rsa_pem(json_t *k, char *err, size_t errlen)
{
    BIGNUM *n = member_bn(k, "n"), *e = member_bn(k, "e");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    char *pem = NULL;
    if (!n || !e || BN_num_bits(n) < 2048)
        oh_errf(err, errlen, "an RSA key needs n (2048 bits or more) and e");
    else if (bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) && !(pem = pem_of("RSA", bld)))
        oh_errf(err, errlen, "not a valid RSA public key");
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pem;
}

static char *ec_pem(json_t *k, char *err, size_t errlen)
{
    const char *crv = json_string_value(json_object_get(k, "crv"));
    const char *x = json_string_value(json_object_get(k, "x"));
    const char *y = json_string_value(json_object_get(k, "y"));
    uint8_t point[65] = {0x04}, tmp[40];
    if (!crv || strcmp(crv, "P-256") != 0) {
        oh_errf(err, errlen, "an EC key must be on P-256 (ES256)");
        return NULL;
    }
    if (!x || !y || oh_base64url_decode(x, strlen(x), tmp, sizeof tmp) != 32) {
        oh_errf(err, errlen, "an EC key needs x and y of 32 bytes");
        return NULL;
    }
    memcpy(point + 1, tmp, 32);
    if (oh_base64url_decode(y, strlen(y), tmp, sizeof tmp) != 32) {
        oh_errf(err, errlen, "an EC key needs x and y of 32 bytes");
        return NULL;
    }
    memcpy(point + 33, tmp, 32);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    char *pem = NULL;
    if (bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point))
        pem = pem_of("EC", bld);
    if (!pem) oh_errf(err, errlen, "not a point on P-256");
    OSSL_PARAM_BLD_free(bld);
    return pem;
}

/* One member of "keys": added, skipped (not a signing key we can use: 0
 * with *SKIPPED), or an error. */
static int add_key(struct oh_jwks *ks, json_t *k, bool *skipped, char *err, size_t errlen)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *alg = json_string_value(json_object_get(k, "alg"));
    const char *use = json_string_value(json_object_get(k, "use"));
    *skipped = false;
    if (!json_is_object(k) || !kty) {
        oh_errf(err, errlen, "a key without kty");
        return OH_EINVAL;
    }
    if ((use && strcmp(use, "sig") != 0) || json_object_get(k, "d")) {
        /* an encryption key, or a private one that has no place here */
        if (json_object_get(k, "d")) {
            oh_errf(err, errlen, "key %s holds a private key (d): publish public keys only",
                    kid ? kid : "(no kid)");
            return OH_EINVAL;
        }
        *skipped = true;
        return OH_OK;
    }
    struct oh_jwk *out = &ks->keys[ks->n];
    if (strcmp(kty, "RSA") == 0) {
        out->alg = OH_JWK_RS256;
        out->pem = rsa_pem(k, err, errlen);
    } else if (strcmp(kty, "EC") == 0) {
        out->alg = OH_JWK_ES256;
        out->pem = ec_pem(k, err, errlen);
    } else {
        *skipped = true; /* "oct" and others: not for public-key tokens */
        return OH_OK;
    }
    if (!out->pem) return OH_EINVAL;
    if (alg && strcmp(alg, out->alg == OH_JWK_RS256 ? "RS256" : "ES256") != 0) {
        free(out->pem);
        out->pem = NULL;
        *skipped = true; /* e.g. an RSA key for PS256: we verify RS256 only */
        return OH_OK;
    }
    snprintf(out->kid, sizeof out->kid, "%s", kid ? kid : "");
    ks->n++;
    return OH_OK;
}

oh_jwks *oh_jwks_load(const char *path, char *err, size_t errlen)
{
    json_error_t je;
    FILE *f = fopen(path, "rb");
    if (!f) {
        oh_errf(err, errlen, "auth.jwks_file: cannot open %s", path);
        return NULL;
    }
    char *text = malloc(JWKS_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, JWKS_MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!text || len > JWKS_MAX_BYTES) {
        free(text);
        oh_errf(err, errlen, "auth.jwks_file: %s is over 1 MiB", path);
        return NULL;
    }
    json_t *doc = json_loadb(text, len, 0, &je);
    free(text);
    json_t *keys = json_object_get(doc, "keys");
    oh_jwks *ks = calloc(1, sizeof *ks);
    int rc = OH_EINVAL;
    char why[256] = "";
    if (!doc) {
        snprintf(why, sizeof why, "not JSON: %s (line %d)", je.text, je.line);
    } else if (!json_is_array(keys) || json_array_size(keys) == 0) {
        snprintf(why, sizeof why, "no \"keys\" array");
    } else if (json_array_size(keys) > JWKS_MAX_KEYS) {
        snprintf(why, sizeof why, "more than %d keys", JWKS_MAX_KEYS);
    } else if (ks) {
        rc = OH_OK;
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            bool skipped;
            char kerr[192];
            if (add_key(ks, k, &skipped, kerr, sizeof kerr)) {
                snprintf(why, sizeof why, "key %zu: %s", i, kerr);
                rc = OH_EINVAL;
                break;
            }
        }
        if (!rc && ks->n == 0) {
            snprintf(why, sizeof why, "no RS256 or ES256 signing key");
            rc = OH_EINVAL;
        }
    }
    json_decref(doc);
    if (rc || !ks) {
        oh_errf(err, errlen, "auth.jwks_file: %s: %s", path, ks ? why : "out of memory");
        oh_jwks_free(ks);
        return NULL;
    }
    return ks;
}

void oh_jwks_free(oh_jwks *ks)
{
    if (!ks) return;
    for (size_t i = 0; i < ks->n; i++)
        free(ks->keys[i].pem);
    free(ks);
}

const struct oh_jwk *oh_jwks_find(const oh_jwks *ks, enum oh_jwk_alg alg, const char *kid)
{
    const struct oh_jwk *only = NULL;
    size_t of_alg = 0;
    for (size_t i = 0; ks && i < ks->n; i++) {
        if (ks->keys[i].alg != alg) continue;
        if (kid && strcmp(ks->keys[i].kid, kid) == 0) return &ks->keys[i];
        of_alg++;
        only = &ks->keys[i];
    }
    /* no kid in the token: unambiguous only with one key of that type */
    return !kid && of_alg == 1 ? only : NULL;
}
