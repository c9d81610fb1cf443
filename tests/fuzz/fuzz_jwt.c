/* fuzz_jwt.c - bearer token verification on arbitrary strings: never
 * accepts what the secret did not sign, never crashes. */
#include "auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tok = fuzz_cstr(data, size);
    struct oh_principal who;
    char err[128];
    int rc = oh_auth_verify("fuzz-secret", tok, 1767225600, &who, err, sizeof err);
    if (rc == OH_OK && (!who.sub[0] || who.exp <= 1767225600)) abort();
    free(tok);
    return 0;
}
