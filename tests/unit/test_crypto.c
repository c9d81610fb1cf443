/* test_crypto.c - signatures (RFC 4231 vector), encodings, comparisons. */
#include <string.h>
#include <openssl/hmac.h>
#include "core/crypto.h"
#include "tap.h"

START_TEST(hmac_vector)
{
    /* RFC 4231 test case 2 */
    uint8_t mac[32];
    char hex[65];
    oh_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
    oh_hex(mac, 32, hex);
    ck_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* test case 6: a key longer than the block is hashed first */
    uint8_t key[131];
    memset(key, 0xaa, sizeof key);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    oh_hmac_sha256(key, sizeof key, d6, strlen(d6), mac);
    oh_hex(mac, 32, hex);
    ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* the same as OpenSSL's one-shot HMAC() for every key and data length
     * around the block size, the empty ones included */
    uint8_t buf[200], want[32];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    for (size_t kl = 0; kl <= 130; kl += 13)
        for (size_t dl = 0; dl <= sizeof buf; dl += 9) {
            unsigned int wl = 32;
            HMAC(EVP_sha256(), buf, (int)kl, buf + 1, dl - (dl > 0), want, &wl);
            oh_hmac_sha256(buf, kl, buf + 1, dl - (dl > 0), mac);
            ck_assert_mem_eq(mac, want, 32);
        }
}
END_TEST

START_TEST(signature_checks)
{
    const char *body = "{\"a\":1}";
    char sig[72];
    oh_sig_make_hex("s3cret", body, strlen(body), sig);
    ck_assert_int_eq(oh_sig_check_hex("s3cret", body, strlen(body), "sha256=", sig), OH_OK);
    char upper[72];
    strcpy(upper, sig);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
    ck_assert_int_eq(oh_sig_check_hex("s3cret", body, strlen(body), "sha256=", upper), OH_OK);
    ck_assert_int_eq(oh_sig_check_hex("other", body, strlen(body), "sha256=", sig), OH_EAUTH);
    ck_assert_int_eq(oh_sig_check_hex("s3cret", "{\"a\":2}", 7, "sha256=", sig), OH_EAUTH);
    ck_assert_int_eq(oh_sig_check_hex("s3cret", body, strlen(body), "sha256=", NULL), OH_EAUTH);
    ck_assert_int_eq(oh_sig_check_hex("s3cret", body, strlen(body), "sha256=", sig + 7), OH_EAUTH);
    sig[20] = sig[20] == '0' ? '1' : '0';
    ck_assert_int_eq(oh_sig_check_hex("s3cret", body, strlen(body), "sha256=", sig), OH_EAUTH);
    ck_assert_int_eq(oh_sig_check_hex("", body, strlen(body), "sha256=", "sha256="), OH_EAUTH);
    uint8_t mac[32];
    char b64[48];
    oh_hmac_sha256("k", 1, body, strlen(body), mac);
    oh_base64(mac, 32, b64);
    ck_assert_int_eq(oh_sig_check_b64("k", body, strlen(body), "", b64), OH_OK);
    ck_assert_int_eq(oh_sig_check_b64("j", body, strlen(body), "", b64), OH_EAUTH);
}
END_TEST

START_TEST(encodings)
{
    char out[16];
    oh_base64((const uint8_t *)"foob", 4, out);
    ck_assert_str_eq(out, "Zm9vYg==");
    oh_base64url((const uint8_t *)"\xfb\xff", 2, out);
    ck_assert_str_eq(out, "-_8");
    ck_assert(oh_ct_equal("abc", 3, "abc", 3));
    ck_assert(!oh_ct_equal("abc", 3, "abd", 3));
    ck_assert(!oh_ct_equal("abc", 3, "abcd", 4));
}
END_TEST

/* The store's per-event checksum: RFC 3720's check value, and continuing
 * a CRC over pieces gives the CRC of the whole. */
START_TEST(crc32c)
{
    ck_assert_uint_eq(oh_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(oh_crc32c(0, "", 0), 0);
    char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)(i * 7);
    uint32_t whole = oh_crc32c(0, buf, sizeof buf);
    ck_assert_uint_eq(oh_crc32c(oh_crc32c(0, buf, 333), buf + 333, sizeof buf - 333), whole);
    buf[500] ^= 1;
    ck_assert_uint_ne(oh_crc32c(0, buf, sizeof buf), whole);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("crypto");
    TCase *tc = tcase_create("crypto");
    tcase_add_test(tc, hmac_vector);
    tcase_add_test(tc, signature_checks);
    tcase_add_test(tc, encodings);
    tcase_add_test(tc, crc32c);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return oh_test_run(suite());
}
