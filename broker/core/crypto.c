/* crypto.c - HMAC-SHA256 signatures, hex/base64 encodings and constant-time
 * comparison on top of OpenSSL. */
#include <pthread.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "core/crypto.h"

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* HMAC-SHA256 with its algorithms fetched once: each signature copies this
 * keyless context (OpenSSL 3's one-shot HMAC() fetches both per call). */
static EVP_MAC_CTX *hmac_template;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    if (mac && (hmac_template = EVP_MAC_CTX_new(mac)) &&
        !EVP_MAC_CTX_set_params(hmac_template, params)) {
        EVP_MAC_CTX_free(hmac_template);
        hmac_template = NULL;
    }
    EVP_MAC_free(mac); /* the context keeps its own reference */
}

const EVP_MD *oh_sha256_md(void)
{
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_md ? sha256_md : EVP_sha256();
}

void oh_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[OH_SHA256_LEN])
{
    pthread_once(&sha256_once, fetch_sha256);
    EVP_MAC_CTX *c = hmac_template ? EVP_MAC_CTX_dup(hmac_template) : NULL;
    size_t n = 0;
    /* a zero-length key: OpenSSL wants a non-NULL pointer */
    bool ok = c && EVP_MAC_init(c, keylen ? key : (const void *)"", keylen, NULL) &&
              EVP_MAC_update(c, data, len) && EVP_MAC_final(c, out, &n, OH_SHA256_LEN) &&
              n == OH_SHA256_LEN;
    EVP_MAC_CTX_free(c);
    if (!ok) {
        unsigned int outlen = OH_SHA256_LEN;
        HMAC(oh_sha256_md(), key, (int)keylen, data, len, out, &outlen);
    }
}

void oh_sha256(const void *data, size_t len, uint8_t out[OH_SHA256_LEN])
{
    unsigned int outlen = OH_SHA256_LEN;
    EVP_Digest(data, len, out, &outlen, oh_sha256_md(), NULL);
}

void oh_hex(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static void b64(const uint8_t *in, size_t len, char *out, const char *alpha, bool pad)
{
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        out[o++] = alpha[v >> 6 & 63];
        out[o++] = alpha[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = alpha[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad) out[o++] = '=';
    }
    out[o] = '\0';
}

void oh_base64(const uint8_t *in, size_t len, char *out)
{
    b64(in, len, out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
}

void oh_base64url(const uint8_t *in, size_t len, char *out)
{
    b64(in, len, out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", false);
}

int oh_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    if (cap == 0) return -1;
    for (size_t i = 0; i < len; i++) {
        const char *p = in[i] ? memchr(alpha, in[i], 64) : NULL;
        if (!p) return -1;
        acc = acc << 6 | (uint32_t)(p - alpha);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= cap) return -1;
            out[o++] = (uint8_t)(acc >> bits & 0xFF);
        }
    }
    out[o] = '\0';
    return (int)o;
}

bool oh_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

static int check_prefixed(const char *prefix, const char *header, const char *expect,
                          bool fold_case)
{
    size_t plen = strlen(prefix);
    if (!header || strncmp(header, prefix, plen) != 0) return OH_EAUTH;
    const char *got = header + plen;
    size_t glen = strlen(got), elen = strlen(expect);
    if (glen != elen) return OH_EAUTH;
    char low[128];
    if (glen >= sizeof low) return OH_EAUTH;
    for (size_t i = 0; i < glen; i++)
        low[i] = fold_case && got[i] >= 'A' && got[i] <= 'F' ? (char)(got[i] + 32) : got[i];
    return oh_ct_equal(low, glen, expect, elen) ? OH_OK : OH_EAUTH;
}

int oh_sig_check_hex(const char *secret, const void *body, size_t len, const char *prefix,
                     const char *header)
{
    if (!secret || !*secret) return OH_EAUTH;
    uint8_t mac[OH_SHA256_LEN];
    char hex[2 * OH_SHA256_LEN + 1];
    oh_hmac_sha256(secret, strlen(secret), body, len, mac);
    oh_hex(mac, sizeof mac, hex);
    return check_prefixed(prefix, header, hex, true);
}

int oh_sig_check_b64(const char *secret, const void *body, size_t len, const char *prefix,
                     const char *header)
{
    if (!secret || !*secret) return OH_EAUTH;
    uint8_t mac[OH_SHA256_LEN];
    char enc[48];
    oh_hmac_sha256(secret, strlen(secret), body, len, mac);
    oh_base64(mac, sizeof mac, enc);
    return check_prefixed(prefix, header, enc, false);
}

void oh_sig_make_hex(const char *secret, const void *body, size_t len, char out[72])
{
    uint8_t mac[OH_SHA256_LEN];
    oh_hmac_sha256(secret, strlen(secret), body, len, mac);
    memcpy(out, "sha256=", 7);
    oh_hex(mac, sizeof mac, out + 7);
}

int oh_random(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? OH_OK : OH_EIO;
}
