"""Tokens from an identity provider: RS256 and ES256 keys from a JWKS
document (auth.jwks_file, chosen by kid), issuer and audience checks, beside
the HS256 secret. Tokens are made by PyJWT, an implementation of its own."""
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from conftest import JWT_SECRET


@pytest.fixture
def idp(tmp_path):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, alg, key in (("r1", RSAAlgorithm, rsa_key), ("e1", ECAlgorithm, ec_key)):
        jwk = json.loads(alg.to_jwk(key.public_key()))
        jwk.update({"kid": kid, "use": "sig"})
        keys.append(jwk)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return {"path": path, "RS256": ("r1", rsa_key), "ES256": ("e1", ec_key)}


def token(idp, alg, **claims):
    kid, key = idp[alg]
    body = {"sub": "idp-user", "role": "agent", "exp": int(time.time()) + 300,
            "iss": "https://login.example", "aud": "omnihub"}
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg,
                      headers={"kid": kid})


def test_rs256_and_es256_tokens_from_a_jwks_document(omnihub, idp):
    d = omnihub({"auth.jwks_file": str(idp["path"]), "auth.issuer": "https://login.example",
                 "auth.audience": "omnihub"})

    def status(tok):
        return d.request("GET", "/v1/conversations", token=tok).status_code

    assert status(token(idp, "RS256")) == 200
    assert status(token(idp, "ES256")) == 200
    assert status(token(idp, "RS256", aud=["x", "omnihub"])) == 200
    # the HS256 secret still signs tokens, under the same iss and aud rules
    hs = {"sub": "a", "role": "agent", "exp": int(time.time()) + 60,
          "iss": "https://login.example", "aud": "omnihub"}
    assert status(jwt.encode(hs, JWT_SECRET, algorithm="HS256")) == 200
    assert status(d.agent_token()) == 401  # no iss, no aud
    assert status(token(idp, "RS256", iss="https://evil.example")) == 401
    assert status(token(idp, "RS256", iss=None)) == 401
    assert status(token(idp, "ES256", aud="someone-else")) == 401
    assert status(token(idp, "RS256", exp=int(time.time()) - 10)) == 401
    # a key the document does not hold, under a known kid
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode({"sub": "x", "role": "agent", "exp": int(time.time()) + 60,
                         "iss": "https://login.example", "aud": "omnihub"}, stranger,
                        algorithm="ES256", headers={"kid": "e1"})
    assert status(forged) == 401
    # algorithm confusion: the RSA public key used as an HMAC secret
    pub_pem = idp["RS256"][1].public_key().public_bytes(
        encoding=__import__("cryptography.hazmat.primitives.serialization",
                            fromlist=["Encoding"]).Encoding.PEM,
        format=__import__("cryptography.hazmat.primitives.serialization",
                          fromlist=["PublicFormat"]).PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "r1"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(
        {"sub": "x", "role": "agent", "exp": int(time.time()) + 60,
         "iss": "https://login.example", "aud": "omnihub"}).encode())
    import hashlib
    import hmac
    signing = header + b"." + payload
    sig = jwt.utils.base64url_encode(hmac.new(pub_pem, signing, hashlib.sha256).digest())
    assert status((signing + b"." + sig).decode()) == 401


def test_a_jwks_file_alone_is_enough_and_a_bad_one_stops_the_start(omnihub, idp, tmp_path):
    d = omnihub({"auth.jwks_file": str(idp["path"]), "auth.jwt_secret": ""})
    assert d.request("GET", "/v1/conversations",
                     token=token(idp, "RS256")).status_code == 200
    # no HS256 secret: an HS256 token is refused
    hs = jwt.encode({"sub": "a", "role": "agent", "exp": int(time.time()) + 60}, JWT_SECRET,
                    algorithm="HS256")
    assert d.request("GET", "/v1/conversations", token=hs).status_code == 401
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}')
    with pytest.raises(RuntimeError, match="auth.jwks_file"):
        omnihub({"auth.jwks_file": str(bad)})
