//! Which callers may assert a subject (its id, roles, tags and identity facts) without a
//! token: by default loopback callers (a sidecar or app on the same host); with mutual TLS,
//! callers whose client certificate carries a trusted subject alternative name (a SPIFFE ID
//! or DNS name). Everyone else is anonymous.
//!
//! Changing the server (the admin service, and publishing signals) takes an explicit grant
//! instead: a client certificate SAN listed for it, or the configured admin bearer token.
//! Loopback is not enough by default: in a Kubernetes pod, every container is on loopback.
//! The `loopback` grant exists for development only.

use std::net::SocketAddr;

use tonic::transport::CertificateDer;

/// The trust policy.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// Trust loopback callers.
    pub loopback: bool,
    /// Trusted client certificate SANs: exact, or a prefix ending in `*`
    /// (`spiffe://example.org/sidecar/*`).
    pub sans: Vec<String>,
    /// Who may call `AuthorizationService` at all: client certificate SANs (as above);
    /// empty: anyone who can connect. Loopback callers may when `loopback` is set.
    pub check_callers: Vec<String>,
    /// Who may use the admin service and publish signals.
    pub admin: AdminGrant,
}

/// Who may use the admin service and publish signals; nobody by default.
#[derive(Clone, Default)]
pub struct AdminGrant {
    /// Every loopback caller (development only).
    pub loopback: bool,
    /// Client certificate SANs (exact, or a prefix ending in `*`).
    pub callers: Vec<String>,
    /// The SHA-256 digest of the admin bearer token.
    pub token_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for AdminGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminGrant")
            .field("loopback", &self.loopback)
            .field("callers", &self.callers)
            .field("token", &self.token_sha256.map(|_| "<set>"))
            .finish()
    }
}

/// Why a caller may not administer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// It presented a bearer token, and not the admin token.
    BadToken,
    /// It has no grant.
    NoGrant,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy {
            loopback: true,
            sans: Vec::new(),
            check_callers: Vec::new(),
            admin: AdminGrant::default(),
        }
    }
}

impl TrustPolicy {
    /// Whether a caller may use the admin service and publish signals; `bearer` is the
    /// token of its `authorization: Bearer` header, if any.
    pub fn may_administer(
        &self,
        peer: Option<SocketAddr>,
        sans: &[String],
        bearer: Option<&str>,
    ) -> Result<(), AdminRefusal> {
        let grant = &self.admin;
        if let Some(token) = bearer {
            return match &grant.token_sha256 {
                Some(want) if digest_eq(want, token) => Ok(()),
                _ => Err(AdminRefusal::BadToken),
            };
        }
        if grant.loopback && peer.is_some_and(|a| a.ip().is_loopback()) {
            return Ok(());
        }
        let listed = sans
            .iter()
            .any(|san| grant.callers.iter().any(|p| san_matches(p, san)));
        if listed {
            Ok(())
        } else {
            Err(AdminRefusal::NoGrant)
        }
    }
}

/// Whether `token`'s SHA-256 digest is `want`, comparing every byte (no early exit).
fn digest_eq(want: &[u8; 32], token: &str) -> bool {
    use sha2::Digest;
    let got = sha2::Sha256::digest(token.as_bytes());
    want.iter()
        .zip(got.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

impl TrustPolicy {
    /// Whether a caller may assert subjects.
    pub fn trusts(&self, peer: Option<SocketAddr>, sans: &[String]) -> bool {
        if self.loopback && peer.is_some_and(|a| a.ip().is_loopback()) {
            return true;
        }
        sans.iter()
            .any(|san| self.sans.iter().any(|p| san_matches(p, san)))
    }
}

impl TrustPolicy {
    /// Whether a caller may call `AuthorizationService`.
    pub fn may_check(&self, peer: Option<SocketAddr>, sans: &[String]) -> bool {
        if self.check_callers.is_empty()
            || (self.loopback && peer.is_some_and(|a| a.ip().is_loopback()))
        {
            return true;
        }
        sans.iter()
            .any(|san| self.check_callers.iter().any(|p| san_matches(p, san)))
    }
}

fn san_matches(pattern: &str, san: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => san.starts_with(prefix),
        None => pattern == san,
    }
}

/// URI and DNS subject alternative names of a DER certificate.
pub fn sans_of(der: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn san_patterns_match_exactly_or_by_prefix() {
        assert!(san_matches("spiffe://a/sidecar", "spiffe://a/sidecar"));
        assert!(!san_matches("spiffe://a/sidecar", "spiffe://a/sidecar2"));
        assert!(san_matches("spiffe://a/*", "spiffe://a/anything"));
        assert!(!san_matches("spiffe://a/*", "spiffe://b/x"));
    }

    #[test]
    fn loopback_trust_can_be_turned_off() {
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let remote: SocketAddr = "10.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        assert!(TrustPolicy::default().trusts(Some(local), &[]));
        assert!(!TrustPolicy::default().trusts(Some(remote), &[]));
        let strict = TrustPolicy {
            loopback: false,
            ..TrustPolicy::default()
        };
        assert!(!strict.trusts(Some(local), &[]));
    }

    #[test]
    fn administering_takes_an_explicit_grant() {
        use sha2::Digest;
        let local: SocketAddr = "127.0.0.1:9".parse().unwrap_or_else(|_| unreachable!());
        let default = TrustPolicy::default();
        assert_eq!(
            default.may_administer(Some(local), &[], None),
            Err(AdminRefusal::NoGrant)
        );
        let mut granted = TrustPolicy::default();
        granted.admin.token_sha256 = Some(sha2::Sha256::digest(b"s3cret-token").into());
        assert_eq!(
            granted.may_administer(Some(local), &[], Some("s3cret-token")),
            Ok(())
        );
        assert_eq!(
            granted.may_administer(Some(local), &[], Some("s3cret-tokem")),
            Err(AdminRefusal::BadToken)
        );
        granted.admin.loopback = true;
        assert_eq!(granted.may_administer(Some(local), &[], None), Ok(()));
    }
}
