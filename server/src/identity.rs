//! Verified identity: a subject's JWT is checked against configured keys (a JWKS file),
//! issuer and audience (each, when configured, a claim the token must carry) and validity
//! window, with asymmetric algorithms only (`alg: none` and HMAC, including HMAC "signed"
//! with a public key, are rejected). Claims become the subject and identity facts
//! (`aws:MultiFactorAuthPresent`, `aws:MultiFactorAuthAge`, `aws:TokenIssueTime`) that
//! override anything the caller put in the context. Verified tokens are cached by digest
//! until they expire.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8192;
/// Algorithms accepted unless configured otherwise.
pub const DEFAULT_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The claims that carry a subject's roles and tags (in tokens, `jwt_authn` payloads and
/// `token-claims-change` signals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    /// Claims holding roles (an array of strings, or a space-separated string).
    pub roles: Vec<String>,
    /// Claim holding principal tags (an object of strings).
    pub tags: String,
}

/// How tokens are checked and mapped.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Required `iss`, if any.
    pub issuer: Option<String>,
    /// Required `aud` (one of), if any.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
    /// Claims holding roles (an array of strings, or a space-separated string).
    pub roles_claims: Vec<String>,
    /// Claim holding principal tags (an object of strings).
    pub tags_claim: String,
    /// Accepted algorithms (asymmetric only).
    pub algorithms: Vec<Algorithm>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            issuer: None,
            audience: None,
            leeway_secs: 30,
            roles_claims: vec!["roles".into(), "groups".into()],
            tags_claim: "tags".into(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
        }
    }
}

/// Why a token was not accepted. Messages name the reason, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not three base64url segments with a JSON header.
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    /// Over [`MAX_TOKEN_BYTES`].
    #[error("the token is {0} bytes, over the limit of {MAX_TOKEN_BYTES}")]
    TooLong(usize),
    /// `alg: none`.
    #[error("unsigned tokens (`alg: none`) are not accepted")]
    Unsigned,
    /// An algorithm not configured (always the case for HMAC).
    #[error("algorithm `{0}` is not accepted")]
    AlgorithmNotAccepted(String),
    /// No `kid` and more than one key.
    #[error("the token names no key (`kid`) and more than one key is configured")]
    MissingKid,
    /// `kid` not among the keys.
    #[error("unknown signing key `{0}`")]
    UnknownKid(String),
    /// The key is of another type than the algorithm, or pinned to another algorithm.
    #[error("key `{kid}` cannot verify `{alg}` signatures")]
    KeyMismatch {
        /// The key.
        kid: String,
        /// The token's algorithm.
        alg: String,
    },
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// Past `exp`.
    #[error("the token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iss` missing, not a string, or not the configured issuer.
    #[error("the token's issuer (`iss`) is missing or not accepted")]
    WrongIssuer,
    /// `aud` missing, or neither the configured audience nor an array holding it.
    #[error("the token's audience (`aud`) is missing or not accepted")]
    WrongAudience,
    /// A required claim is missing or has the wrong type.
    #[error("claim `{0}` is missing or invalid")]
    BadClaim(String),
    /// Any other verification failure.
    #[error("the token cannot be verified: {0}")]
    Other(String),
}

impl IdentityError {
    /// A short name of the failure, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            IdentityError::Malformed(_) => "malformed",
            IdentityError::TooLong(_) => "too_long",
            IdentityError::Unsigned => "unsigned",
            IdentityError::AlgorithmNotAccepted(_) => "algorithm",
            IdentityError::MissingKid => "missing_kid",
            IdentityError::UnknownKid(_) => "unknown_kid",
            IdentityError::KeyMismatch { .. } => "key_mismatch",
            IdentityError::BadSignature => "bad_signature",
            IdentityError::Expired => "expired",
            IdentityError::NotYetValid => "not_yet_valid",
            IdentityError::WrongIssuer => "issuer",
            IdentityError::WrongAudience => "audience",
            IdentityError::BadClaim(_) => "claim",
            IdentityError::Other(_) => "other",
        }
    }
}

/// Why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The JWKS file cannot be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The JWKS file is not a JWK set.
    #[error("`{path}` is not a JWK set: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An algorithm that is never accepted was configured.
    #[error("algorithm `{0:?}` cannot be accepted: only asymmetric algorithms are")]
    Symmetric(Algorithm),
}

/// A verified identity: the subject and the facts its token proves.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// `sub`.
    pub id: String,
    /// Roles from the configured claims.
    pub roles: Vec<String>,
    /// Tags from the configured claim.
    pub tags: BTreeMap<String, String>,
    /// `amr` contains `mfa`.
    pub mfa: bool,
    /// `auth_time`, epoch seconds.
    pub auth_time: Option<i64>,
    /// `iat`, epoch seconds.
    pub issued_at: Option<i64>,
    /// `exp`, epoch seconds.
    pub expires_at: i64,
    /// `sid`: the session the token belongs to.
    pub session: Option<String>,
}

impl Verified {
    /// The facts the token proves, as context entries that override the caller's.
    pub fn facts(&self, now: i64) -> Vec<(&'static str, pdp_engine::Value)> {
        let mut out = vec![(
            "aws:MultiFactorAuthPresent",
            pdp_engine::Value::from(self.mfa),
        )];
        if let Some(t) = self.auth_time.filter(|_| self.mfa) {
            out.push((
                "aws:MultiFactorAuthAge",
                pdp_engine::Value::from(now.saturating_sub(t)),
            ));
        }
        if let Some(t) = self
            .issued_at
            .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        {
            out.push((
                "aws:TokenIssueTime",
                pdp_engine::Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            ));
        }
        out
    }
}

pub(crate) struct Key {
    pub(crate) decoding: DecodingKey,
    /// Algorithms this key may verify: its family, narrowed to its `alg` when the JWK pins one.
    pub(crate) algorithms: Vec<Algorithm>,
}

/// Verifies tokens.
pub struct Verifier {
    /// Replaced whole when keys are refreshed.
    keys: arc_swap::ArcSwap<HashMap<String, Key>>,
    config: IdentityConfig,
    cache: moka::sync::Cache<[u8; 32], Arc<Verified>>,
    /// Signalled when a token names an unknown key, so that a key source that can be
    /// refreshed (a JWKS URL) is fetched again.
    unknown_kid: tokio::sync::Notify,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "kids",
                &self.keys.load().keys().cloned().collect::<Vec<_>>(),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

pub(crate) fn is_symmetric(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl Verifier {
    /// A verifier over the keys of a JWKS file.
    pub fn from_jwks_file(path: &Path, config: IdentityConfig) -> Result<Self, KeysError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeysError::Io {
            path: shown.clone(),
            source,
        })?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| KeysError::Invalid {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::new(&set, config).map_err(|e| match e {
            KeysError::Invalid { message, .. } => KeysError::Invalid {
                path: shown,
                message,
            },
            other => other,
        })
    }

    /// A verifier over a JWK set.
    pub fn new(set: &JwkSet, config: IdentityConfig) -> Result<Self, KeysError> {
        if let Some(a) = config.algorithms.iter().copied().find(|a| is_symmetric(*a)) {
            return Err(KeysError::Symmetric(a));
        }
        let keys = build_keys(set, &config)?;
        Ok(Verifier {
            keys: arc_swap::ArcSwap::from_pointee(keys),
            config,
            cache: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(600))
                .eviction_listener(|_, _, cause| crate::cache::evicted("token", cause))
                .build(),
            unknown_kid: tokio::sync::Notify::new(),
        })
    }

    /// Replaces the keys (e.g. after fetching a JWKS URL again); returns how many are usable.
    /// Tokens already verified stay cached until they expire.
    pub fn replace_keys(&self, set: &JwkSet) -> Result<usize, KeysError> {
        let keys = build_keys(set, &self.config)?;
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(n)
    }

    /// Completes when a token named a key this verifier does not have.
    pub async fn unknown_kid_seen(&self) {
        self.unknown_kid.notified().await;
    }
}

pub(crate) fn build_keys(
    set: &JwkSet,
    config: &IdentityConfig,
) -> Result<HashMap<String, Key>, KeysError> {
    {
        let invalid = |message: String| KeysError::Invalid {
            path: String::new(),
            message,
        };
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            let family: &[Algorithm] = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => &[
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ],
                AlgorithmParameters::EllipticCurve(_) => &[Algorithm::ES256, Algorithm::ES384],
                AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
                // Symmetric and unknown keys are never used.
                _ => continue,
            };
            let pinned = jwk
                .common
                .key_algorithm
                .and_then(|ka| ka.to_string().parse::<Algorithm>().ok());
            let algorithms = family
                .iter()
                .copied()
                .filter(|a| pinned.is_none_or(|p| p == *a) && config.algorithms.contains(a))
                .collect();
            let decoding =
                DecodingKey::from_jwk(jwk).map_err(|e| invalid(format!("key `{kid}`: {e}")))?;
            keys.insert(
                kid,
                Key {
                    decoding,
                    algorithms,
                },
            );
        }
        if keys.is_empty() {
            return Err(invalid("no usable (asymmetric) key".into()));
        }
        Ok(keys)
    }
}

impl Verifier {
    /// Verifies a token at `now` (epoch seconds).
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<Verified>, IdentityError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(IdentityError::TooLong(token.len()));
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self.cache.get(&digest);
        crate::metrics::metrics().cache_lookup("token", cached.is_some());
        if let Some(hit) = cached {
            // A cached identity still expires on time.
            if hit.expires_at + i64::try_from(self.config.leeway_secs).unwrap_or(0) >= now {
                return Ok(hit);
            }
            self.cache.invalidate(&digest);
            return Err(IdentityError::Expired);
        }
        let verified = Arc::new(self.verify_uncached(token)?);
        self.cache.insert(digest, verified.clone());
        Ok(verified)
    }

    fn verify_uncached(&self, token: &str) -> Result<Verified, IdentityError> {
        let alg_name = header_alg(token)?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(IdentityError::Unsigned);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                IdentityError::AlgorithmNotAccepted(alg_name.clone())
            }
            _ => IdentityError::Malformed(e.to_string()),
        })?;
        let alg = header.alg;
        if is_symmetric(alg) || !self.config.algorithms.contains(&alg) {
            return Err(IdentityError::AlgorithmNotAccepted(format!("{alg:?}")));
        }
        let keys = self.keys.load();
        let (kid, key) = match &header.kid {
            Some(kid) => match keys.get(kid) {
                Some(key) => (kid.clone(), key),
                None => {
                    self.unknown_kid.notify_one();
                    return Err(IdentityError::UnknownKid(kid.clone()));
                }
            },
            None if keys.len() == 1 => keys
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v))
                .ok_or(IdentityError::MissingKid)?,
            None => return Err(IdentityError::MissingKid),
        };
        if !key.algorithms.contains(&alg) {
            return Err(IdentityError::KeyMismatch {
                kid,
                alg: format!("{alg:?}"),
            });
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        // The library checks `iss` and `aud` only when the token has them: a configured
        // issuer or audience makes the claim required, and `issuer_and_audience` checks its
        // shape and value again below.
        let mut required = vec!["exp", "sub"];
        if self.config.issuer.is_some() {
            required.push("iss");
        }
        if self.config.audience.is_some() {
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        match &self.config.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.decoding,
            &validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::InvalidSignature => IdentityError::BadSignature,
                K::ExpiredSignature => IdentityError::Expired,
                K::ImmatureSignature => IdentityError::NotYetValid,
                K::InvalidIssuer => IdentityError::WrongIssuer,
                K::InvalidAudience => IdentityError::WrongAudience,
                K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) if c == "iss" => {
                    IdentityError::WrongIssuer
                }
                K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) if c == "aud" => {
                    IdentityError::WrongAudience
                }
                K::MissingRequiredClaim(c) | K::InvalidClaimFormat(c) => {
                    IdentityError::BadClaim(c.clone())
                }
                K::InvalidAlgorithm => IdentityError::KeyMismatch {
                    kid: kid.clone(),
                    alg: format!("{alg:?}"),
                },
                K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                    IdentityError::Malformed(e.to_string())
                }
                _ => IdentityError::Other(e.to_string()),
            }
        })?;
        issuer_and_audience(&data.claims, &self.config)?;
        self.claims(&data.claims)
    }

    fn claims(
        &self,
        c: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Verified, IdentityError> {
        verified_from_claims(c, &self.config.roles_claims, &self.config.tags_claim, true)
    }
}

/// With an issuer configured, `iss` must be present, a string, and that issuer (an array is
/// refused, whatever it holds); with an audience configured, `aud` must be present and be that
/// audience or an array holding it. Without either configured, the claim is not read.
fn issuer_and_audience(
    c: &serde_json::Map<String, serde_json::Value>,
    config: &IdentityConfig,
) -> Result<(), IdentityError> {
    if let Some(issuer) = &config.issuer {
        match c.get("iss") {
            Some(serde_json::Value::String(iss)) if iss == issuer => {}
            _ => return Err(IdentityError::WrongIssuer),
        }
    }
    if let Some(audience) = &config.audience {
        let held = match c.get("aud") {
            Some(serde_json::Value::String(aud)) => aud == audience,
            Some(serde_json::Value::Array(auds)) => {
                auds.iter().any(|a| a.as_str() == Some(audience.as_str()))
            }
            _ => false,
        };
        if !held {
            return Err(IdentityError::WrongAudience);
        }
    }
    Ok(())
}

/// The subject and facts of an already verified payload: `sub` (required), roles from
/// `roles_claims` (arrays of strings or space-separated strings), tags from `tags_claim`,
/// `amr`, `auth_time`, `iat`, `sid`; `exp` is required when `require_exp`, else taken as
/// never when absent (a payload someone else verified, e.g. Envoy's `jwt_authn`).
pub fn verified_from_claims(
    c: &serde_json::Map<String, serde_json::Value>,
    roles_claims: &[String],
    tags_claim: &str,
    require_exp: bool,
) -> Result<Verified, IdentityError> {
    let id = match c.get("sub") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(IdentityError::BadClaim("sub".into())),
    };
    let expires_at = match c.get("exp").and_then(serde_json::Value::as_i64) {
        Some(exp) => exp,
        None if !require_exp => i64::MAX,
        None => return Err(IdentityError::BadClaim("exp".into())),
    };
    let mut roles = Vec::new();
    for claim in roles_claims {
        match c.get(claim) {
            Some(serde_json::Value::Array(a)) => {
                roles.extend(
                    a.iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(str::to_owned),
                );
            }
            Some(serde_json::Value::String(s)) => {
                roles.extend(s.split_whitespace().map(str::to_owned))
            }
            _ => {}
        }
    }
    roles.sort();
    roles.dedup();
    let tags = match c.get(tags_claim) {
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    };
    let mfa = matches!(c.get("amr"), Some(serde_json::Value::Array(a)) if a.iter().any(|m| m.as_str() == Some("mfa")));
    Ok(Verified {
        id,
        roles,
        tags,
        mfa,
        auth_time: c.get("auth_time").and_then(serde_json::Value::as_i64),
        issued_at: c.get("iat").and_then(serde_json::Value::as_i64),
        expires_at,
        session: c
            .get("sid")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= crate::signals::MAX_FIELD_BYTES)
            .map(str::to_owned),
    })
}

/// The header's `alg`, read before the library parses it, so that `none` gets its own answer.
pub(crate) fn header_alg(token: &str) -> Result<String, IdentityError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdentityError::Malformed(
            "expected three `.`-separated segments".into(),
        ));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| IdentityError::Malformed("the header is not base64url".into()))?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| IdentityError::Malformed("the header is not JSON".into()))?;
    json.get("alg")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| IdentityError::Malformed("the header has no `alg`".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn token(exp: i64) -> Result<String, Box<dyn std::error::Error>> {
        let pem = std::fs::read(fixture("rsa.pem"))?;
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("rsa-1".into());
        let claims = serde_json::json!({"sub": "alice", "exp": exp});
        Ok(jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&pem)?,
        )?)
    }

    #[test]
    fn a_cached_token_still_expires_on_time() -> Result<(), Box<dyn std::error::Error>> {
        let config = IdentityConfig {
            leeway_secs: 0,
            ..IdentityConfig::default()
        };
        let verifier = Verifier::from_jwks_file(&fixture("jwks.json"), config)?;
        let now = chrono::Utc::now().timestamp();
        let t = token(now + 60)?;
        assert_eq!(
            verifier.verify(&t, now).map(|v| v.id.clone()),
            Ok("alice".to_owned())
        );
        // Served from the cache while valid...
        assert!(verifier.verify(&t, now + 59).is_ok());
        // ...and refused once past `exp`, without another signature check.
        assert_eq!(
            verifier.verify(&t, now + 61).err(),
            Some(IdentityError::Expired)
        );
        Ok(())
    }
}
