/* fuzz_signature.c - webhook signature checks (hex and base64 schemes) on
 * arbitrary headers and bodies: input = header, '\n', body. */
#include "core/crypto.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    char *header = fuzz_cstr(data, hlen);
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t blen = nl ? size - hlen - 1 : 0;
    static const char *const prefixes[] = {"sha256=", "", "sha1="};
    const char *prefix = prefixes[size % 3];
    int a = oh_sig_check_hex("fuzz-secret", body, blen, prefix, header);
    int b = oh_sig_check_b64("fuzz-secret", body, blen, prefix, header);
    if ((a != OH_OK && a != OH_EAUTH) || (b != OH_OK && b != OH_EAUTH)) abort();
    /* a signature we made ourselves always verifies */
    char good[72];
    oh_sig_make_hex("fuzz-secret", body, blen, good);
    if (oh_sig_check_hex("fuzz-secret", body, blen, "sha256=", good) != OH_OK) abort();
    free(header);
    return 0;
}
