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

/* Each thread keeps the contexts of the last few keys it signed with, keyed
 * once: a signature then re-initializes one (a copy of its inner state) and
 * hashes the data, where a fresh context hashed both padded key blocks again
 * and was allocated and freed per call (21k of the 201k instructions of the
 * gateway thread per signed POST /v1/inbound; docs/performance.md). */
#define HMAC_KEYS 4

struct hmac_key {
    EVP_MAC_CTX *ctx; /* keyed with key[0..len) */
    unsigned char *key;
    size_t len;
};

struct hmac_cache {
    struct hmac_key k[HMAC_KEYS];
    unsigned next; /* the slot the next new key replaces */
};

static pthread_key_t hmac_tls;
static pthread_once_t hmac_tls_once = PTHREAD_ONCE_INIT;
static bool hmac_tls_ok;

static void hmac_key_clear(struct hmac_key *k)
{
    EVP_MAC_CTX_free(k->ctx);
    if (k->key) OPENSSL_clear_free(k->key, k->len);
    *k = (struct hmac_key){0};
}

static void hmac_cache_free(void *p)
{
    struct hmac_cache *c = p;
    for (int i = 0; i < HMAC_KEYS; i++)
        hmac_key_clear(&c->k[i]);
    OPENSSL_free(c);
}

static void hmac_tls_init(void)
{
    hmac_tls_ok = pthread_key_create(&hmac_tls, hmac_cache_free) == 0;
}

/* This thread's context keyed with KEY, ready for data; NULL when none can be
 * made (the caller falls back to one-shot HMAC). */
static EVP_MAC_CTX *hmac_keyed(const void *key, size_t keylen)
{
    pthread_once(&sha256_once, fetch_sha256);
    pthread_once(&hmac_tls_once, hmac_tls_init);
    if (!hmac_template || !hmac_tls_ok) return NULL;
    struct hmac_cache *c = pthread_getspecific(hmac_tls);
    if (!c) {
        if (!(c = OPENSSL_zalloc(sizeof *c))) return NULL;
        if (pthread_setspecific(hmac_tls, c) != 0) {
            OPENSSL_free(c);
            return NULL;
        }
    }
    for (int i = 0; i < HMAC_KEYS; i++) {
        struct hmac_key *k = &c->k[i];
        /* the keys are the daemon's own secrets, compared without
         * branching on their bytes all the same; a key of NULL takes the
         * context back to its keyed state */
        if (k->ctx && k->len == keylen && CRYPTO_memcmp(k->key, key, keylen) == 0)
            return EVP_MAC_init(k->ctx, NULL, 0, NULL) ? k->ctx : NULL;
    }
    struct hmac_key *k = &c->k[c->next];
    c->next = (c->next + 1) % HMAC_KEYS;
    hmac_key_clear(k);
    /* a zero-length key: OpenSSL wants a non-NULL pointer */
    if (!(k->ctx = EVP_MAC_CTX_dup(hmac_template)) ||
        !(k->key = OPENSSL_malloc(keylen ? keylen : 1)) ||
        !EVP_MAC_init(k->ctx, keylen ? key : (const void *)"", keylen, NULL)) {
        hmac_key_clear(k);
        return NULL;
    }
    memcpy(k->key, key, keylen);
    k->len = keylen;
    return k->ctx;
}

void oh_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[OH_SHA256_LEN])
{
    EVP_MAC_CTX *c = hmac_keyed(key, keylen);
    size_t n = 0;
    if (c && EVP_MAC_update(c, data, len) && EVP_MAC_final(c, out, &n, OH_SHA256_LEN) &&
        n == OH_SHA256_LEN)
        return;
    unsigned int outlen = OH_SHA256_LEN;
    HMAC(oh_sha256_md(), key, (int)keylen, data, len, out, &outlen);
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

/* ---- CRC-32C ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static bool crc_hw;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
#if defined(__x86_64__)
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* slicing-by-8: eight table lookups per 8 bytes */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t len)
{
    while (len >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
            crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_sse42(uint32_t c, const uint8_t *p,
                                                            size_t len)
{
    uint64_t c64 = c;
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = __builtin_ia32_crc32di(c64, v);
    }
    c = (uint32_t)c64;
    while (len--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t oh_crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw) return ~crc_sse42(c, buf, len);
#endif
    return ~crc_sw(c, buf, len);
}
