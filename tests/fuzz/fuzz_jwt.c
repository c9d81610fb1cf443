/* fuzz_jwt.c - bearer token verification on arbitrary strings: never
 * accepts what the secret did not sign, never crashes. */
#include "core/auth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static oh_auth *auth;
    char err[128];
    if (!auth && !(auth = oh_auth_new(&(struct oh_auth_opts){.secret = "fuzz-secret"}, err,
                                      sizeof err)))
        abort();
    char *tok = fuzz_cstr(data, size);
    struct oh_principal who;
    int rc = oh_auth_verify(auth, tok, 1767225600, &who, err, sizeof err);
    if (rc == OH_OK && (!who.sub[0] || who.exp <= 1767225600)) abort();
    free(tok);
    return 0;
}
