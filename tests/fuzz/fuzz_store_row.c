/* fuzz_store_row.c - the check every stored event passes before it is
 * served (oh_store_text_crc): any bytes as a damaged row are refused or
 * checksummed without reading outside them, and any text that ends in '}'
 * given its seq and epoch suffix checksums as the text without it. */
#include <stdint.h>
#include "core/crypto.h"
#include "core/oh.h"
#include "fuzz.h"
#include "store/store_fields.h"

static const int64_t seqs[] = {0, 1, 7, -1, 1000000007, INT64_MAX, INT64_MIN};
static const char *const epochs[] = {
    "", "e1", "01JD6Y0C8X7W4V3T2S1R0QPNMK",
    "an-epoch-longer-than-the-suffix-buffer-takes-0123456789-0123456789-0123456789-0123456789"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exactly SIZE bytes: a read past the row is caught */
    char *row = malloc(size ? size : 1);
    if (!row) abort();
    memcpy(row, data, size);
    for (size_t i = 0; i < OH_ARRAY_SIZE(seqs); i++)
        for (size_t j = 0; j < OH_ARRAY_SIZE(epochs); j++) {
            uint32_t crc;
            (void)oh_store_text_crc(row, size, seqs[i], epochs[j], &crc);
        }
    free(row);
    if (!size || data[size - 1] != '}') return 0;
    uint32_t want = oh_crc32c(0, data, size);
    for (size_t i = 0; i < OH_ARRAY_SIZE(seqs); i++)
        for (size_t j = 0; j < OH_ARRAY_SIZE(epochs); j++) {
            char suffix[160];
            int n = snprintf(suffix, sizeof suffix, ",\"seq\":%lld,\"epoch\":\"%s\"}",
                             (long long)seqs[i], epochs[j]);
            size_t len = size - 1 + (size_t)n;
            char *text = malloc(len);
            if (!text) abort();
            memcpy(text, data, size - 1);
            memcpy(text + size - 1, suffix, (size_t)n);
            uint32_t crc = 0;
            int rc = oh_store_text_crc(text, len, seqs[i], epochs[j], &crc);
            /* suffixes that fit the check's bound are taken, the rest refused */
            if ((n < 128 && size > 1) ? rc != 0 || crc != want : rc != OH_EDAMAGED) abort();
            /* another seq or epoch is damage */
            if (rc == 0 && (oh_store_text_crc(text, len, seqs[i] ^ 1, epochs[j], &crc) == 0 ||
                            oh_store_text_crc(text, len, seqs[i], "e2", &crc) == 0))
                abort();
            free(text);
        }
    return 0;
}
