/* jwks.h - the public signing keys of an identity provider's JWKS document
 * (auth.jwks_file), for RS256 and ES256 bearer tokens. */
#ifndef OH_JWKS_H
#define OH_JWKS_H

#include "core/oh.h"

enum oh_jwk_alg { OH_JWK_RS256, OH_JWK_ES256 };

struct oh_jwk {
    enum oh_jwk_alg alg;
    char kid[128]; /* "" when the document gave none */
    char *pem;     /* the public key, PEM (SubjectPublicKeyInfo) */
};

typedef struct oh_jwks oh_jwks;

/* Loads the JWKS document at PATH: RSA keys (2048 bits or more) for RS256,
 * EC P-256 keys for ES256; keys for other uses or algorithms are skipped,
 * a private key or a malformed one is an error. NULL with ERR naming the
 * file and the key otherwise. Caller frees with oh_jwks_free(). */
oh_jwks *oh_jwks_load(const char *path, char *err, size_t errlen);
void oh_jwks_free(oh_jwks *ks);

/* The key for ALG with KID; with KID NULL, the only key of ALG if there is
 * exactly one. Borrowed from KS. NULL when none matches. */
const struct oh_jwk *oh_jwks_find(const oh_jwks *ks, enum oh_jwk_alg alg, const char *kid);

#endif
