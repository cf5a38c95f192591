//! The demo subject token the load tests send: alice, in `ApplicationRole`, signed in with
//! MFA, signed RS256 with the published test key `server/tests/fixtures/rsa.pem` (kid
//! `rsa-1`, verified by `server/tests/fixtures/jwks.json`), issuer `https://idp.example.test`,
//! audience `pdp`, valid until 2036. The key is public: the token proves nothing outside tests.

/// The token's issuer.
pub const ISSUER: &str = "https://idp.example.test";
/// The token's audience.
pub const AUDIENCE: &str = "pdp";
/// 2036-01-01T00:00:00Z.
pub const EXPIRES: u64 = 2_082_758_400;

/// Signs the demo token with the RSA private key `pem`, issued at `now` (Unix seconds).
pub fn demo_token(pem: &[u8], now: u64) -> Result<String, jsonwebtoken::errors::Error> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem)?;
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice",
        "roles": ["ApplicationRole"], "amr": ["pwd", "mfa"],
        "iat": now, "auth_time": now, "exp": EXPIRES,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    jsonwebtoken::encode(&header, &claims, &key)
}
