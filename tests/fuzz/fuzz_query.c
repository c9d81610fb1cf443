/* fuzz_query.c - query-string parameters as connectors read them
 * (oh_http_query_param): URL decoding, truncation, missing values. */
#include "core/connector.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *q = fuzz_cstr(data, size);
    struct oh_http_req req = {"GET", "/webhooks/fuzz", q, (const uint8_t *)"", 0, NULL, NULL};
    static const char *const names[] = {
        "hub.mode", "hub.verify_token", "hub.challenge", "crc_token", "access_token", "a", ""};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char small[8], big[2048];
        int rc = oh_http_query_param(&req, names[i], small, sizeof small);
        if (rc == OH_OK && strlen(small) >= sizeof small) abort();
        rc = oh_http_query_param(&req, names[i], big, sizeof big);
        if (rc != OH_OK && rc != OH_ENOTFOUND && rc != OH_ETOOBIG) abort();
    }
    free(q);
    return 0;
}
