#!/usr/bin/env python3
"""Writes the demo's subject tokens, deploy/demo/tokens/{alice,bob}.jwt: RS256 JWTs signed with
the test key server/tests/fixtures/rsa.pem (kid `rsa-1`, public half in deploy/demo/jwks.json),
valid until 2036, with the issuer and audience deploy/pdp/pdp.toml requires.

    pip install pyjwt cryptography
    python3 deploy/demo/make-tokens.py

alice is in ApplicationRole and signed in with MFA at generation time (`auth_time`), so by the
time anyone runs the demo her MFA is older than the 5 minutes the `deny-destructive` guardrail
accepts: deleting a bucket asks for a step-up. bob signed in with MFA too but holds no role, so
his requests are denied for want of a permission, not for want of MFA.

The key is a published test key: these tokens prove nothing outside this demo."""

import datetime
import pathlib
import time

import jwt

HERE = pathlib.Path(__file__).resolve().parent
KEY = HERE.parent.parent / "server" / "tests" / "fixtures" / "rsa.pem"
KID = "rsa-1"
ISSUER = "https://idp.demo.local"
AUDIENCE = "pdp-demo"
EXPIRES = int(datetime.datetime(2036, 1, 1, tzinfo=datetime.timezone.utc).timestamp())


def token(key: bytes, now: int, sub: str, **claims) -> str:
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": EXPIRES,
        **claims,
    }
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": KID})


def main() -> None:
    key = KEY.read_bytes()
    now = int(time.time())
    out = HERE / "tokens"
    out.mkdir(exist_ok=True)
    tokens = {
        "alice": token(key, now, "alice", roles=["ApplicationRole"], amr=["mfa"], auth_time=now),
        "bob": token(key, now, "bob", amr=["mfa"], auth_time=now),
    }
    for name, text in tokens.items():
        (out / f"{name}.jwt").write_text(text + "\n")
        print(f"wrote {out / (name + '.jwt')}")


if __name__ == "__main__":
    main()
