/* crypto.h - HMAC signatures, encodings and constant-time comparison used
 * by every webhook check and by the CLI's `sign`. */
#ifndef OH_CRYPTO_H
#define OH_CRYPTO_H

#include <openssl/evp.h>
#include "core/oh.h"

#define OH_SHA256_LEN 32

void oh_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[OH_SHA256_LEN]);
void oh_sha256(const void *data, size_t len, uint8_t out[OH_SHA256_LEN]);

/* SHA-256 fetched once: OpenSSL 3 looks EVP_sha256() up again on every
 * implicit use, which costs more than hashing a short id. Borrowed for the
 * process's lifetime; thread-safe. */
const EVP_MD *oh_sha256_md(void);

/* Lower-case hex; OUT holds 2*LEN+1. */
void oh_hex(const uint8_t *in, size_t len, char *out);
/* Standard base64 with padding; OUT holds 4*((LEN+2)/3)+1. */
void oh_base64(const uint8_t *in, size_t len, char *out);
/* base64url without padding; OUT holds 4*((LEN+2)/3)+1. */
void oh_base64url(const uint8_t *in, size_t len, char *out);

/* Decodes base64url (no padding, no other characters) of IN[0..LEN) into
 * OUT (CAP bytes, one kept for a terminating NUL). Returns the decoded
 * length, or -1 on a bad character or when OUT is too small. */
int oh_base64url_decode(const char *in, size_t len, uint8_t *out, size_t cap);

/* Compares A and B in time independent of where they differ. */
bool oh_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Checks HEADER == PREFIX + hex(HMAC-SHA256(SECRET, BODY)), e.g. prefix
 * "sha256=". Hex is accepted in either case. Constant time over the
 * digest. OH_EAUTH when missing or wrong. */
int oh_sig_check_hex(const char *secret, const void *body, size_t len, const char *prefix,
                     const char *header);
/* Same with base64 (LINE, X). */
int oh_sig_check_b64(const char *secret, const void *body, size_t len, const char *prefix,
                     const char *header);
/* "sha256=<hex>" for BODY; OUT holds 72 bytes. */
void oh_sig_make_hex(const char *secret, const void *body, size_t len, char out[72]);

/* CRC-32C (Castagnoli) of LEN bytes at BUF, continuing CRC (0 to start):
 * the per-event checksum of the store. SSE4.2's crc32 instruction where the
 * CPU has it, else a table. */
uint32_t oh_crc32c(uint32_t crc, const void *buf, size_t len);

/* Random bytes from the OS; 0 or OH_EIO. */
int oh_random(void *buf, size_t len);

#endif
